//! Which of JOB's wire generations a request came in on ([`Protocol`]); a job remembers
//! it so that its callbacks and views answer in the same generation.

/// Which wire generation a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// ESB `/api/c/compapi/v2/job/<name>/`.
    V2,
    /// Gateway `/api/v3/<name>`.
    V3,
    /// Gateway `/api/v4/<name>`.
    V4,
}

impl Protocol {
    /// `v2`, `v3` or `v4`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::V2 => "v2",
            Protocol::V3 => "v3",
            Protocol::V4 => "v4",
        }
    }
}
