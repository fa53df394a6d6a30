//! The plan's warnings on stderr, rendered like its errors ([`print_plan_warnings`]),
//! before a command goes on with the plan.

use miette::Severity;

use crate::compile::CompiledPlan;
use crate::error::render_issues;
use crate::mask::Masker;

/// Prints `validated`'s warnings to stderr, nothing when it has none. With `masker`,
/// secrets the run knows are hidden in them.
pub fn print_plan_warnings(validated: &CompiledPlan, masker: Option<&Masker>) {
    if validated.warnings.is_empty() {
        return;
    }
    let text = render_issues(
        &validated.source.name,
        &validated.source.text,
        &validated.warnings,
        Severity::Warning,
    );
    match masker {
        Some(masker) => eprint!("{}", masker.mask(&text)),
        None => eprint!("{text}"),
    }
}
