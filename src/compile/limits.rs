//! JOB's limits and path rules on rendered values: task-name length, params and
//! script sizes, push target and source paths. They are checked at compile time on
//! preview renders and again on every runtime render, since runtime values (upstream
//! outputs) are unknown until then. [`check_rendered_limits`] returns the first
//! broken rule as a [`LimitError`].

use std::collections::HashSet;

use crate::job_api::rules;
use crate::plan::model::{FileType, Step};

/// A rendered value that breaks one of JOB's limits or path rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct LimitError {
    /// Field path relative to the step, e.g. `script.params`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl LimitError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        LimitError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// JOB's limits and path rules on rendered values. Fields in `skip` (full names) hold
/// runtime placeholders and are checked when the run renders them.
pub fn check_rendered_limits(
    step: &Step,
    skip: &HashSet<String>,
    prefix: &str,
) -> Result<(), LimitError> {
    let checked = |suffix: &str| !skip.contains(&format!("{prefix}.{suffix}"));
    if let Some(name) = &step.task_name {
        let chars = name.chars().count();
        if chars > rules::MAX_TASK_NAME_CHARS && checked("task_name") {
            return Err(LimitError::new(
                "task_name",
                format!(
                    "{chars} characters after rendering; JOB allows at most {}",
                    rules::MAX_TASK_NAME_CHARS
                ),
            ));
        }
    }
    if let Some(script) = &step.script
        && let Some(params) = &script.params
        && checked("script.params")
    {
        let sensitive = script.sensitive.unwrap_or(false);
        let limit = if sensitive {
            rules::MAX_SENSITIVE_PARAM_BYTES
        } else {
            rules::MAX_PARAM_BYTES
        };
        if params.len() > limit {
            return Err(LimitError::new(
                "script.params",
                format!(
                    "{} bytes after rendering; JOB allows at most {limit}{}",
                    params.len(),
                    if sensitive {
                        " for sensitive params"
                    } else {
                        ""
                    }
                ),
            ));
        }
    }
    if let Some(script) = &step.script
        && let Some(content) = &script.content
        && content.len() > rules::MAX_SCRIPT_CONTENT_BYTES
    {
        return Err(LimitError::new(
            "script.content",
            format!(
                "{} bytes after rendering; JOB stores at most {}",
                content.len(),
                rules::MAX_SCRIPT_CONTENT_BYTES
            ),
        ));
    }
    if let Some(push) = &step.push_file {
        if checked("push_file.target_path") {
            rules::check_target_path(&push.target_path)
                .map_err(|e| LimitError::new("push_file.target_path", e.to_string()))?;
        }
        for (s, source) in push.sources.iter().enumerate() {
            if !matches!(source.file_type, None | Some(FileType::Server)) {
                continue;
            }
            for (f, file) in source.files.iter().enumerate() {
                let suffix = format!("push_file.sources[{s}].files[{f}]");
                if checked(&suffix) {
                    rules::check_source_path(file)
                        .map_err(|e| LimitError::new(suffix, e.to_string()))?;
                }
            }
        }
    }
    if let Some(job) = &step.job {
        for (o, over) in job.overrides.iter().enumerate() {
            if let Some(path) = &over.target_path {
                let suffix = format!("job.overrides[{o}].target_path");
                if checked(&suffix) {
                    rules::check_target_path(path)
                        .map_err(|e| LimitError::new(suffix, e.to_string()))?;
                }
            }
            for (s, source) in over.sources.iter().enumerate() {
                if !matches!(source.file_type, None | Some(FileType::Server)) {
                    continue;
                }
                for (f, file) in source.files.iter().enumerate() {
                    let suffix = format!("job.overrides[{o}].sources[{s}].files[{f}]");
                    if checked(&suffix) {
                        rules::check_source_path(file)
                            .map_err(|e| LimitError::new(suffix, e.to_string()))?;
                    }
                }
            }
        }
    }
    Ok(())
}
