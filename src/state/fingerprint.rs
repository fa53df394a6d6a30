//! A run's [`Fingerprint`]: the plan's content hash with per-step and per-field hashes,
//! as stored in the run record, and what differs between two of them ([`PlanChanges`]).
//!
//! Resume compares the stored hash with the plan as it is now; when they differ, the
//! per-step and per-field hashes name the changed steps, so the refusal says which steps
//! moved instead of "something changed". The hashes are computed where the plan is
//! known (`compile::fingerprint`); state only keeps and compares them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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

    fn print(hash: &str, steps: &[(&str, &str)], fields: &[(&str, &str)]) -> Fingerprint {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        Fingerprint {
            hash: hash.to_owned(),
            steps: map(steps),
            fields: map(fields),
        }
    }

    #[test]
    fn names_the_changed_step_only() {
        let old = print("1", &[("a", "x"), ("b", "y")], &[("name", "n")]);
        let new = print("2", &[("a", "x"), ("b", "z")], &[("name", "n")]);
        let diff = compare(&old, &new);
        assert_eq!(diff.changed, vec!["b".to_owned()]);
        assert!(diff.added.is_empty() && diff.removed.is_empty() && diff.fields.is_empty());
    }

    #[test]
    fn added_removed_and_plan_fields_are_reported() {
        let old = print("1", &[("a", "x"), ("b", "y")], &[("name", "n")]);
        let new = print(
            "2",
            &[("a", "x"), ("c", "w")],
            &[("name", "n"), ("defaults", "d")],
        );
        let diff = compare(&old, &new);
        assert_eq!(diff.added, vec!["c".to_owned()]);
        assert_eq!(diff.removed, vec!["b".to_owned()]);
        assert_eq!(diff.fields, vec!["defaults".to_owned()]);
        assert_eq!(diff.describe().len(), 3);
    }

    #[test]
    fn the_same_hashes_are_no_change() {
        let one = print("1", &[("a", "x")], &[("name", "n")]);
        assert!(compare(&one, &one.clone()).is_empty());
    }
}
