//! What baton adds to every request it sends: the unique task name (run, step and
//! attempt, within JOB's length limit) and the callback URL under its per-protocol field.

use crate::job_api::build::ApiCall;
use crate::job_api::rules::MAX_TASK_NAME_CHARS;
use crate::job_api::types::Protocol;

/// Builds the unique task name: the plan's (or the plan name), plus a suffix naming the
/// run, step and attempt, cut to JOB's 512-character limit from the user's part.
pub fn task_name(prefix: &str, run_id: &str, step_id: &str, attempt: u32) -> String {
    let suffix = format!("[baton {run_id} {step_id}#{attempt}]");
    let room = MAX_TASK_NAME_CHARS.saturating_sub(suffix.chars().count() + 1);
    let prefix: String = prefix.trim().chars().take(room).collect();
    let name = if prefix.is_empty() {
        suffix
    } else {
        format!("{prefix} {suffix}")
    };
    name.chars().take(MAX_TASK_NAME_CHARS).collect()
}

/// The per-protocol name of the callback field.
fn callback_field(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::V2 => "bk_callback_url",
        Protocol::V3 | Protocol::V4 => "callback_url",
    }
}

/// Adds the task name (fast tasks only: plan executions have no such field) and the
/// callback URL to a request body.
pub(super) fn decorate(
    call: &mut ApiCall,
    protocol: Protocol,
    task_name: &str,
    callback_url: Option<&str>,
) {
    let Some(body) = call.body.as_object_mut() else {
        return;
    };
    if crate::job_api::build::carries_task_name(call.api) {
        body.insert("task_name".into(), task_name.into());
    }
    if let Some(url) = callback_url {
        body.insert(callback_field(protocol).into(), url.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_names_fit_and_stay_unique() {
        let long = "x".repeat(600);
        let name = task_name(&long, "run", "step", 3);
        assert_eq!(name.chars().count(), 512);
        assert!(name.ends_with("[baton run step#3]"));
        assert_eq!(task_name("", "r", "s", 1), "[baton r s#1]");
    }
}
