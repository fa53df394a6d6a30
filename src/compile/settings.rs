//! [`StepSettings`]: a step's own settings with the plan's `defaults` filled in, once,
//! at compile time: retries and their delay, the JOB-side timeout, how long the
//! runner waits, what a failure does to the run, whether JOB's "error ignored" counts
//! as success, the execution account, and the prefix of the task name the runner
//! makes unique per run.

use std::time::Duration;

use crate::plan::model::{self, AccountRef, Plan, Step};

/// JOB's own timeout when neither the step nor `defaults` sets one.
pub const DEFAULT_JOB_TIMEOUT: Duration = Duration::from_secs(7200);
/// Extra time beyond the JOB-side timeout before the runner gives up on an instance.
pub const DEADLINE_GRACE: Duration = Duration::from_secs(60);

/// What the run does after a step fails, as the engine reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// No new step starts; running ones finish.
    Stop,
    /// Steps that do not depend on the failed one go on.
    Continue,
}

impl From<model::OnFailure> for OnFailure {
    fn from(written: model::OnFailure) -> Self {
        match written {
            model::OnFailure::Stop => OnFailure::Stop,
            model::OnFailure::Continue => OnFailure::Continue,
        }
    }
}

/// Where a step's execution account was written.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedAccount {
    /// The account.
    pub account: AccountRef,
    /// The field it came from (`account`, or `defaults.account`), relative to the step
    /// for the step's own.
    pub field: &'static str,
}

/// A step's settings after the plan's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct StepSettings {
    /// Retries after a failed attempt.
    pub retries: u32,
    /// Pause before a retry.
    pub retry_delay: Duration,
    /// The JOB-side timeout, when the plan sets one (sent to JOB).
    pub timeout: Option<Duration>,
    /// The JOB-side timeout in force: the plan's, else JOB's default.
    pub job_timeout: Duration,
    /// How long the runner waits for a submitted instance before terminating it.
    pub wait_timeout: Duration,
    /// What a failure of this step does to the rest of the run.
    pub on_failure: OnFailure,
    /// Whether JOB's "error ignored" counts as success.
    pub ignore_errors: bool,
    /// The execution account, when the step or `defaults` names one.
    pub account: Option<ResolvedAccount>,
    /// The task name before the runner makes it unique: the step's `task_name`
    /// (rendered, once the step is), else the plan's name.
    pub task_name_prefix: String,
}

impl StepSettings {
    /// `step`'s settings with `plan`'s defaults filled in.
    pub fn resolve(plan: &Plan, step: &Step) -> Self {
        let defaults = plan.defaults.clone().unwrap_or_default();
        let timeout = step
            .timeout
            .or(defaults.timeout)
            .map(|s| Duration::from_secs(s.0));
        let job_timeout = timeout.unwrap_or(DEFAULT_JOB_TIMEOUT);
        let account = match (&step.account, defaults.account) {
            (Some(account), _) => Some(ResolvedAccount {
                account: account.clone(),
                field: "account",
            }),
            (None, Some(account)) => Some(ResolvedAccount {
                account,
                field: "defaults.account",
            }),
            (None, None) => None,
        };
        StepSettings {
            retries: step.retries.or(defaults.retries).unwrap_or(0),
            retry_delay: Duration::from_secs(
                step.retry_delay
                    .or(defaults.retry_delay)
                    .map(|s| s.0)
                    .unwrap_or(0),
            ),
            timeout,
            job_timeout,
            wait_timeout: step
                .wait_timeout
                .or(defaults.wait_timeout)
                .map(|s| Duration::from_secs(s.0))
                .unwrap_or(job_timeout + DEADLINE_GRACE),
            on_failure: step
                .on_failure
                .or(defaults.on_failure)
                .map_or(OnFailure::Stop, OnFailure::from),
            ignore_errors: step.ignore_errors.unwrap_or(false),
            account,
            task_name_prefix: step.task_name.clone().unwrap_or_else(|| plan.name.clone()),
        }
    }

    /// These settings for the rendered `step`: its rendered `task_name` becomes the
    /// prefix.
    pub fn rendered(&self, plan: &Plan, step: &Step) -> Self {
        StepSettings {
            task_name_prefix: step.task_name.clone().unwrap_or_else(|| plan.name.clone()),
            ..self.clone()
        }
    }
}

/// A rendered step with its settings: what the engine submits.
#[derive(Debug, Clone)]
pub struct ResolvedStep {
    /// The step with every template rendered and script files inlined.
    pub step: Step,
    /// Its settings, defaults filled in.
    pub settings: StepSettings,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(text: &str) -> Plan {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn the_step_wins_over_defaults_and_defaults_over_job() {
        let plan = plan(
            r#"
version: 1
name: rel
defaults: { account: root, timeout: 10m, retries: 2, on_failure: continue }
steps:
  - id: a
    timeout: 30
    task_name: deploy
  - id: b
    account: { id: 7 }
    wait_timeout: 5
"#,
        );
        let a = StepSettings::resolve(&plan, &plan.steps[0]);
        assert_eq!(a.retries, 2);
        assert_eq!(a.timeout, Some(Duration::from_secs(30)));
        assert_eq!(a.wait_timeout, Duration::from_secs(90));
        assert_eq!(a.on_failure, OnFailure::Continue);
        assert_eq!(
            a.account.as_ref().map(|a| a.field),
            Some("defaults.account")
        );
        assert_eq!(a.task_name_prefix, "deploy");
        let b = StepSettings::resolve(&plan, &plan.steps[1]);
        assert_eq!(b.job_timeout, Duration::from_secs(600));
        assert_eq!(b.wait_timeout, Duration::from_secs(5));
        assert_eq!(b.account.as_ref().map(|a| a.field), Some("account"));
        assert_eq!(b.task_name_prefix, "rel");
    }
}
