//! The plan's content hash, and per-step hashes to say *what* changed.
//!
//! The run's plan hash is sha256 over the plan text and every script file it reads
//! (sorted by the field that names them), so editing `scripts/deploy.sh` changes it as
//! much as editing the YAML. Resume compares the stored hash with the plan as it is now;
//! when they differ, the per-step and per-field hashes name the changed steps, so the
//! refusal says which steps moved instead of "something changed".

use std::collections::{BTreeMap, HashMap};

use ring::digest::{Context, SHA256};
use serde::{Deserialize, Serialize};

use crate::plan::model::Plan;

/// Hashes of a plan as loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// sha256 of the plan text and its script files, hex.
    pub hash: String,
    /// Per step id: sha256 of the step as parsed and of its script files.
    pub steps: BTreeMap<String, String>,
    /// Per top-level field other than `steps` (`vars`, `hosts`, `defaults`, …).
    pub fields: BTreeMap<String, String>,
}

/// What differs between two fingerprints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanChanges {
    /// Steps present in both whose definition (or script file) changed.
    pub changed: Vec<String>,
    /// Steps only in the new plan.
    pub added: Vec<String>,
    /// Steps only in the old plan.
    pub removed: Vec<String>,
    /// Top-level fields that changed.
    pub fields: Vec<String>,
}

impl PlanChanges {
    /// Nothing that the run would see changed (the text may differ in comments or
    /// layout only).
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty()
            && self.added.is_empty()
            && self.removed.is_empty()
            && self.fields.is_empty()
    }

    /// One line per kind of change, for messages.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let mut push = |label: &str, items: &[String]| {
            if !items.is_empty() {
                lines.push(format!("{label}: {}", items.join(", ")));
            }
        };
        push("changed steps", &self.changed);
        push("added steps", &self.added);
        push("removed steps", &self.removed);
        push("changed plan fields", &self.fields);
        lines
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 of `parts`, each length-prefixed so that boundaries cannot shift.
fn digest(parts: &[&[u8]]) -> String {
    let mut context = Context::new(&SHA256);
    for part in parts {
        context.update(&(part.len() as u64).to_le_bytes());
        context.update(part);
    }
    hex(context.finish().as_ref())
}

/// Fingerprints a plan: `text` as read, `plan` as parsed, and the script files it
/// read, keyed by the field path that names them (`steps[3].script.file`).
pub fn fingerprint(text: &str, plan: &Plan, script_files: &HashMap<String, String>) -> Fingerprint {
    let mut files: Vec<(&String, &String)> = script_files.iter().collect();
    files.sort();
    let mut parts: Vec<&[u8]> = vec![text.as_bytes()];
    for (field, content) in &files {
        parts.push(field.as_bytes());
        parts.push(content.as_bytes());
    }
    let hash = digest(&parts);

    let mut steps = BTreeMap::new();
    for (index, step) in plan.steps.iter().enumerate() {
        let definition = serde_json::to_string(step).unwrap_or_default();
        let prefix = format!("steps[{index}].");
        // The index is dropped from the file's key: moving a step is not changing it.
        let mut own: Vec<(&str, &str)> = files
            .iter()
            .filter_map(|(field, content)| {
                field
                    .strip_prefix(&prefix)
                    .map(|rest| (rest, content.as_str()))
            })
            .collect();
        own.sort();
        let mut parts: Vec<&[u8]> = vec![definition.as_bytes()];
        for (field, content) in &own {
            parts.push(field.as_bytes());
            parts.push(content.as_bytes());
        }
        steps.insert(step.id.clone(), digest(&parts));
    }

    let mut fields = BTreeMap::new();
    if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(plan) {
        for (key, value) in map {
            if key != "steps" {
                fields.insert(key, digest(&[value.to_string().as_bytes()]));
            }
        }
    }
    Fingerprint {
        hash,
        steps,
        fields,
    }
}

/// What changed from `old` to `new`.
pub fn compare(old: &Fingerprint, new: &Fingerprint) -> PlanChanges {
    let mut changes = PlanChanges::default();
    for (id, hash) in &old.steps {
        match new.steps.get(id) {
            Some(now) if now != hash => changes.changed.push(id.clone()),
            Some(_) => {}
            None => changes.removed.push(id.clone()),
        }
    }
    for id in new.steps.keys() {
        if !old.steps.contains_key(id) {
            changes.added.push(id.clone());
        }
    }
    let keys: std::collections::BTreeSet<&String> =
        old.fields.keys().chain(new.fields.keys()).collect();
    for key in keys {
        if old.fields.get(key) != new.fields.get(key) {
            changes.fields.push(key.clone());
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(text: &str) -> Plan {
        serde_yaml::from_str(text).unwrap()
    }

    const BASE: &str = "version: 1\nname: p\nsteps:\n  - id: a\n    script: { content: echo a }\n  - id: b\n    needs: [a]\n    script: { content: echo b }\n";

    #[test]
    fn names_the_changed_step_only() {
        let changed = BASE.replace("echo b", "echo B");
        let old = fingerprint(BASE, &plan(BASE), &HashMap::new());
        let new = fingerprint(&changed, &plan(&changed), &HashMap::new());
        assert_ne!(old.hash, new.hash);
        let diff = compare(&old, &new);
        assert_eq!(diff.changed, vec!["b".to_owned()]);
        assert!(diff.added.is_empty() && diff.removed.is_empty() && diff.fields.is_empty());
    }

    #[test]
    fn a_comment_changes_the_hash_but_no_step() {
        let commented = format!("# tuned\n{BASE}");
        let old = fingerprint(BASE, &plan(BASE), &HashMap::new());
        let new = fingerprint(&commented, &plan(&commented), &HashMap::new());
        assert_ne!(old.hash, new.hash);
        assert!(compare(&old, &new).is_empty());
    }

    #[test]
    fn a_script_file_change_is_the_step_that_reads_it() {
        let p = plan(BASE);
        let mut files = HashMap::new();
        files.insert("steps[1].script.file".to_owned(), "echo one".to_owned());
        let old = fingerprint(BASE, &p, &files);
        files.insert("steps[1].script.file".to_owned(), "echo two".to_owned());
        let new = fingerprint(BASE, &p, &files);
        assert_ne!(old.hash, new.hash);
        assert_eq!(compare(&old, &new).changed, vec!["b".to_owned()]);
    }

    #[test]
    fn added_removed_and_plan_fields_are_reported() {
        let other = "version: 1\nname: p\ndefaults: { retries: 2 }\nsteps:\n  - id: a\n    script: { content: echo a }\n  - id: c\n    script: { content: echo c }\n";
        let old = fingerprint(BASE, &plan(BASE), &HashMap::new());
        let new = fingerprint(other, &plan(other), &HashMap::new());
        let diff = compare(&old, &new);
        assert_eq!(diff.added, vec!["c".to_owned()]);
        assert_eq!(diff.removed, vec!["b".to_owned()]);
        assert_eq!(diff.fields, vec!["defaults".to_owned()]);
    }
}
