//! How the runner learns that a submitted job finished: [`WaitMode`], chosen once per
//! run from the flag, the environment or the profile.

/// How the runner learns that a submitted job finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WaitMode {
    /// Only JOB's callback (plus the runner's deadline).
    Callback,
    /// Only status polling.
    Poll,
    /// Callback for speed, polling as the safety net.
    Both,
}
