//! JOB's own rules, shared by plan validation (to fail before anything is sent) and the
//! emulator (to refuse what JOB refuses): the rolling-expression grammar, the path rules
//! for file pushes, and the documented limits.

use std::fmt;

/// JOB's widest timeout range in seconds (`JobConstants.MIN/MAX_JOB_TIMEOUT_SECONDS`).
pub const TIMEOUT_RANGE: std::ops::RangeInclusive<u64> = 1..=259_200;
/// The range the v2 docs state; values outside it work on JOB 3.x but earn a warning.
pub const V2_DOC_TIMEOUT_RANGE: std::ops::RangeInclusive<u64> = 60..=86_400;
/// Maximum `script_param` length in bytes (before base64) for non-sensitive params.
pub const MAX_PARAM_BYTES: usize = 65_535;
/// Maximum `script_param` length in bytes (before base64) for sensitive params.
pub const MAX_SENSITIVE_PARAM_BYTES: usize = 48_128;
/// Maximum `task_name` length in characters.
pub const MAX_TASK_NAME_CHARS: usize = 512;
/// Maximum `windows_interpreter` length in characters.
pub const MAX_WINDOWS_INTERPRETER_CHARS: usize = 260;
/// Maximum `encrypted_password` length in characters.
pub const MAX_ENCRYPTED_PASSWORD_CHARS: usize = 172;
/// Maximum number of rolling batches.
pub const MAX_ROLLING_BATCHES: usize = 500;
/// Maximum hosts in one batch log query.
pub const MAX_LOG_BATCH_HOSTS: usize = 500;
/// Maximum `script_content` length in bytes after base64 decoding (MEDIUMTEXT).
pub const MAX_SCRIPT_CONTENT_BYTES: usize = 16_777_215;

/// Why a rolling expression was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RollingError {
    /// JOB 1244026: the expression does not follow the grammar.
    #[error("invalid rolling expression `{expression}`: {reason}")]
    Invalid { expression: String, reason: String },
    /// JOB 1244027: the expression splits the hosts into too many batches.
    #[error(
        "rolling expression `{expression}` makes {batches} batches for {hosts} hosts; JOB allows at most {MAX_ROLLING_BATCHES}"
    )]
    TooManyBatches {
        expression: String,
        hosts: usize,
        batches: usize,
    },
}

/// One part of a rolling expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollingPart {
    /// `N`: a fixed number of hosts.
    Quantity(u64),
    /// `N%`: a share of all hosts, rounded up.
    Percent(u64),
    /// `+N`: the previous batch plus N (the first batch is N).
    Plus(u64),
    /// `*N`: the previous batch times N (the first batch is N).
    Times(u64),
}

/// A parsed rolling expression: batch k uses part `min(k, len)`, so the last part repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollingExpr {
    parts: Vec<RollingPart>,
}

impl fmt::Display for RollingPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RollingPart::Quantity(n) => write!(f, "{n}"),
            RollingPart::Percent(n) => write!(f, "{n}%"),
            RollingPart::Plus(n) => write!(f, "+{n}"),
            RollingPart::Times(n) => write!(f, "*{n}"),
        }
    }
}

impl RollingExpr {
    /// Parses JOB's grammar: parts split by single spaces, each `N`, `N%`, `+N` or `*N`
    /// with N > 0 (and ≤ 100 for a percentage).
    pub fn parse(expression: &str) -> Result<Self, RollingError> {
        let invalid = |reason: String| RollingError::Invalid {
            expression: expression.to_owned(),
            reason,
        };
        if expression.trim().is_empty() {
            return Err(invalid("it is empty".into()));
        }
        let mut parts = Vec::new();
        for raw in expression.split(' ') {
            if raw.is_empty() {
                return Err(invalid("parts are separated by single spaces".into()));
            }
            let (kind, digits): (fn(u64) -> RollingPart, &str) =
                if let Some(d) = raw.strip_suffix('%') {
                    (RollingPart::Percent, d)
                } else if let Some(d) = raw.strip_prefix('+') {
                    (RollingPart::Plus, d)
                } else if let Some(d) = raw.strip_prefix('*') {
                    (RollingPart::Times, d)
                } else {
                    (RollingPart::Quantity, raw)
                };
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid(format!("`{raw}` is not one of N, N%, +N or *N")));
            }
            let n: u64 = digits
                .parse()
                .map_err(|_| invalid(format!("`{raw}` is too large")))?;
            if n == 0 {
                return Err(invalid(format!("`{raw}` must be greater than zero")));
            }
            let part = kind(n);
            if let RollingPart::Percent(p) = part
                && p > 100
            {
                return Err(invalid(format!("`{raw}` is more than 100%")));
            }
            parts.push(part);
        }
        Ok(RollingExpr { parts })
    }

    /// The parts, in order.
    pub fn parts(&self) -> &[RollingPart] {
        &self.parts
    }

    /// Batch sizes for `hosts` hosts; the last batch takes what is left. Refuses more
    /// than [`MAX_ROLLING_BATCHES`] batches, as JOB does.
    pub fn batch_sizes(&self, hosts: usize) -> Result<Vec<usize>, RollingError> {
        let mut sizes = Vec::new();
        let mut remaining = hosts as u64;
        let mut previous: u64 = 0;
        let total = hosts as u64;
        while remaining > 0 {
            let part = self.parts[sizes.len().min(self.parts.len() - 1)];
            let wanted = match part {
                RollingPart::Quantity(n) => n,
                RollingPart::Percent(p) => (total * p).div_ceil(100).max(1),
                RollingPart::Plus(n) => previous.saturating_add(n),
                RollingPart::Times(n) => {
                    if previous == 0 {
                        n
                    } else {
                        previous.saturating_mul(n)
                    }
                }
            };
            let size = wanted.min(remaining);
            sizes.push(size as usize);
            previous = wanted;
            remaining -= size;
            if sizes.len() > MAX_ROLLING_BATCHES {
                return Err(RollingError::TooManyBatches {
                    expression: self.to_string(),
                    hosts,
                    batches: self.count_batches(hosts),
                });
            }
        }
        Ok(sizes)
    }

    /// How many batches `hosts` hosts make, without the 500 cap (for messages).
    fn count_batches(&self, hosts: usize) -> usize {
        let total = hosts as u64;
        let mut remaining = total;
        let mut previous: u64 = 0;
        let mut count = 0usize;
        while remaining > 0 {
            let part = self.parts[count.min(self.parts.len() - 1)];
            let wanted = match part {
                RollingPart::Quantity(n) => n,
                RollingPart::Percent(p) => (total * p).div_ceil(100).max(1),
                RollingPart::Plus(n) => previous.saturating_add(n),
                RollingPart::Times(n) => {
                    if previous == 0 {
                        n
                    } else {
                        previous.saturating_mul(n)
                    }
                }
            };
            remaining -= wanted.min(remaining);
            previous = wanted;
            count += 1;
        }
        count
    }
}

impl fmt::Display for RollingExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{part}")?;
        }
        Ok(())
    }
}

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Not an absolute Linux path or a `X:\` Windows path.
    #[error("`{0}` is not an absolute path (JOB needs `/...` or `X:\\...`)")]
    NotAbsolute(String),
    /// A Windows path with a character Windows forbids in names.
    #[error("`{0}` contains a character Windows does not allow in a path (:?\"<>|)")]
    BadWindowsChar(String),
    /// Empty path.
    #[error("the path is empty")]
    Empty,
}

/// Checks a target folder (`file_target_path`) by JOB's rules: absolute Linux or `X:\`
/// paths; `[FILESRCIP]`, `[DATE:…]` and `${var}` are allowed anywhere after the root.
pub fn check_target_path(path: &str) -> Result<(), PathError> {
    check_path(path, false)
}

/// Checks a source file path by JOB's rules: as a target path, plus `REGEX:` and `*` in
/// the file name.
pub fn check_source_path(path: &str) -> Result<(), PathError> {
    check_path(path, true)
}

fn check_path(path: &str, is_source: bool) -> Result<(), PathError> {
    let path = path.trim();
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if path.contains("${") {
        return Ok(());
    }
    if path.starts_with('/') {
        return Ok(());
    }
    let bytes = path.as_bytes();
    let is_windows = bytes.len() >= 3
        && bytes[0].is_ascii_alphabetic()
        && bytes[1] == b':'
        && (bytes[2] == b'\\' || bytes[2] == b'/');
    if !is_windows {
        return Err(PathError::NotAbsolute(path.to_owned()));
    }
    let rest = &path[3..];
    let checked = if is_source {
        match rest.find("REGEX:") {
            Some(at) => &rest[..at],
            None => rest,
        }
    } else {
        rest
    };
    let without_macros = strip_macros(checked);
    if without_macros
        .chars()
        .any(|c| matches!(c, ':' | '?' | '"' | '<' | '>' | '|'))
    {
        return Err(PathError::BadWindowsChar(path.to_owned()));
    }
    Ok(())
}

/// Removes `[...]` macros such as `[DATE:yyyy-MM-dd]` so their colons are not mistaken
/// for forbidden characters.
fn strip_macros(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '[' => depth += 1,
            ']' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(expr: &str, hosts: usize) -> Vec<usize> {
        RollingExpr::parse(expr)
            .unwrap()
            .batch_sizes(hosts)
            .unwrap()
    }

    #[test]
    fn guide_examples_for_100_hosts() {
        assert_eq!(sizes("20", 100), vec![20; 5]);
        assert_eq!(sizes("30%", 100), vec![30, 30, 30, 10]);
        assert_eq!(sizes("5 *2", 100), vec![5, 10, 20, 40, 25]);
        assert_eq!(sizes("5 +10", 100), vec![5, 15, 25, 35, 20]);
        assert_eq!(sizes("10 20 20 20 100%", 100), vec![10, 20, 20, 20, 30]);
    }

    #[test]
    fn bad_expressions_are_refused() {
        for bad in [
            "", "0", "-1", "abc", "5  10", "101%", "10%%", "+", "*0", " 5",
        ] {
            assert!(RollingExpr::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn more_than_500_batches_is_refused() {
        let expr = RollingExpr::parse("1").unwrap();
        assert_eq!(expr.batch_sizes(500).unwrap().len(), 500);
        match expr.batch_sizes(501) {
            Err(RollingError::TooManyBatches { batches, .. }) => assert_eq!(batches, 501),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn path_rules() {
        for ok in [
            "/tmp/",
            "/tmp/[FILESRCIP]/",
            "/data/[DATE:yyyy-MM-dd_HH:mm:ss]/",
            "C:\\logs\\",
            "D:/data",
            "${dir}/x",
        ] {
            assert!(check_target_path(ok).is_ok(), "{ok}");
        }
        for bad in ["", "tmp/", "./a", "[FILESRCIP]/x", "C:\\a?b"] {
            assert!(check_target_path(bad).is_err(), "{bad}");
        }
        assert!(check_source_path("/tmp/REGEX:[a-z]*.txt").is_ok());
        assert!(check_source_path("C:\\tmp\\REGEX:myfile-[A-Za-z]{0,10}.tar.gz").is_ok());
        assert!(check_source_path("C:\\logs\\log*.log").is_ok());
        assert!(check_source_path("logs/x").is_err());
    }
}
