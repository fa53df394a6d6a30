//! The plan's content hashes, [`PlanHashes`]: one over the whole plan, one per step and
//! one per top-level field, computed where the plan model is known so that state only
//! keeps and compares them.
//!
//! The plan hash is sha256 over the plan text and every script file it reads (sorted by
//! the field that names them), so editing `scripts/deploy.sh` changes it as much as
//! editing the YAML. Run records store these values and resume compares them with the
//! plan as it is now, so the algorithm must not change: an existing run would otherwise
//! look edited.

use std::collections::{BTreeMap, HashMap};

use ring::digest::{Context, SHA256};

use crate::plan::model::Plan;

/// Hashes of a plan as loaded, all sha256 in hex.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanHashes {
    /// Over the plan text and its script files.
    pub hash: String,
    /// Per step id: over the step as parsed and its script files.
    pub steps: BTreeMap<String, String>,
    /// Per top-level field other than `steps` (`vars`, `hosts`, `defaults`, …).
    pub fields: BTreeMap<String, String>,
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
pub fn fingerprint(text: &str, plan: &Plan, script_files: &HashMap<String, String>) -> PlanHashes {
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
    PlanHashes {
        hash,
        steps,
        fields,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::fingerprint::{Fingerprint, compare};

    fn plan(text: &str) -> Plan {
        serde_yaml::from_str(text).unwrap()
    }

    /// The run record's form, to compare the way resume does.
    fn fingerprint(text: &str, plan: &Plan, files: &HashMap<String, String>) -> Fingerprint {
        let PlanHashes {
            hash,
            steps,
            fields,
        } = super::fingerprint(text, plan, files);
        Fingerprint {
            hash,
            steps,
            fields,
        }
    }

    const BASE: &str = "version: 1\nname: p\nsteps:\n  - id: a\n    script: { content: echo a }\n  - id: b\n    needs: [a]\n    script: { content: echo b }\n";

    #[test]
    fn the_hashes_stay_what_run_records_hold() {
        let mut files = HashMap::new();
        files.insert("steps[1].script.file".to_owned(), "echo one".to_owned());
        let print = super::fingerprint(BASE, &plan(BASE), &files);
        assert_eq!(
            print.hash,
            "4a9fde290008302a372dfaf58536ead2282ff6c9dcc902099b8f314f206790c4"
        );
        assert_eq!(
            print.steps["a"],
            "f9156102ab8db8d453b1f29d6f50d857fb39c37b5a0e631f6d9eba81180f4028"
        );
        assert_eq!(
            print.steps["b"],
            "360eea0152e90f01fbd2d2155d147c14a51f07c04c2087ea010825d206060664"
        );
        assert_eq!(
            print.fields["name"],
            "60c71cd2662805af1827b163b3f75ce4314a2ab9f57c3331386ac2f227a0ee72"
        );
        assert_eq!(
            print.fields["version"],
            "d8a7ccf8c19d45724402ed69bb491cac82dd0f55ec667602a3f4c81f4f2259c9"
        );
    }

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
