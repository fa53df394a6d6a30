//! [`Findings`]: the errors and warnings found while checking a plan, each located in
//! the plan file, collected so the user fixes a plan in one pass.
//!
//! Every check of a plan (the plan's own and, later, JOB's rules) writes here; errors
//! block, warnings never do. Both lists are ordered by their place in the file.

use super::span::{Issue, PlanErrors, PlanSource};

/// Collects issues while walking a plan.
#[derive(Debug)]
pub struct Findings<'a> {
    /// The plan's text and locations.
    pub source: &'a PlanSource,
    /// Problems that refuse the plan.
    pub errors: Vec<Issue>,
    /// Findings that never block.
    pub warnings: Vec<Issue>,
}

impl<'a> Findings<'a> {
    /// Starts with `errors` already found (e.g. unreadable script files).
    pub fn new(source: &'a PlanSource, errors: Vec<Issue>) -> Self {
        Findings {
            source,
            errors,
            warnings: Vec::new(),
        }
    }

    /// Records an error at `field`; the returned issue takes a label or help.
    pub fn error(&mut self, field: impl Into<String>, message: impl Into<String>) -> &mut Issue {
        self.errors.push(self.source.issue(field, message));
        let last = self.errors.len() - 1;
        &mut self.errors[last]
    }

    /// Records a warning at `field`.
    pub fn warning(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(self.source.issue(field, message));
    }

    /// Every error, in file order.
    pub fn finish_with_errors(mut self) -> PlanErrors {
        sort_issues(&mut self.errors);
        self.source.errors(self.errors)
    }

    /// The warnings, in file order (once there are no errors).
    pub fn into_warnings(mut self) -> Vec<Issue> {
        sort_issues(&mut self.warnings);
        self.warnings
    }
}

/// Orders issues by their place in the file (unlocated ones first) and drops repeats.
pub fn sort_issues(issues: &mut Vec<Issue>) {
    issues.sort_by_key(|issue| issue.location.map(|l| (1, l.offset)).unwrap_or((0, 0)));
    issues.dedup();
}
