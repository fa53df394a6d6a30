//! What the reports say about failure paths: why a handler ran, and how an approval
//! gate was answered.

use serde::Serialize;

/// Why a handler ran.
#[derive(Debug, Clone, Serialize)]
pub struct HandlerRecord {
    /// Its `if` as written.
    pub condition: String,
    /// What made it true, e.g. "`deploy` failed".
    pub because: String,
}

/// An approval gate in the report.
#[derive(Debug, Clone, Serialize)]
pub struct GateRecord {
    /// What was asked.
    pub message: String,
    /// `approved`, `rejected`, `timed_out`, or absent while it waits.
    pub decision: Option<String>,
    /// Who answered.
    pub by: Option<String>,
    /// How: `terminal`, `baton approve`, `--approve`, `timeout`.
    pub via: Option<String>,
    /// When it was answered.
    pub at: Option<String>,
}

impl GateRecord {
    /// `approved by ana (baton approve) at …`, once answered.
    pub fn answer(&self) -> Option<String> {
        let decision = self.decision.as_deref()?.replace('_', " ");
        let by = self
            .by
            .as_ref()
            .map(|b| format!(" by {b}"))
            .unwrap_or_default();
        let via = self.via.as_deref().unwrap_or("");
        let at = self.at.as_deref().unwrap_or("");
        Some(format!("{decision}{by} ({via}) at {at}: {}", self.message))
    }
}
