//! JOB's rules on field values that a request and a job plan's stored steps both obey:
//! base64 script content and parameters with their length limits, timeouts, script
//! languages and stored scripts, callback URLs, task names, target paths, and the
//! errors for an empty host list or a bad rolling strategy. Each refusal carries JOB's
//! code and the field name it was given.

use base64::Engine as _;

use crate::emulator::model::inventory::Inventory;
use crate::emulator::model::job_error::JobError;
use crate::job_api::rules::{
    MAX_PARAM_BYTES, MAX_SCRIPT_CONTENT_BYTES, MAX_SENSITIVE_PARAM_BYTES, MAX_TASK_NAME_CHARS,
    TIMEOUT_RANGE,
};

/// JOB's default timeout, seconds.
pub const DEFAULT_TIMEOUT: u64 = 7200;

/// Decodes a base64 field.
pub fn base64_field(field: &str, text: &str) -> Result<Vec<u8>, JobError> {
    let cleaned: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(cleaned.as_bytes())
        .map_err(|_| JobError::illegal(field))
}

/// Decodes `script_param`: base64, newlines become spaces, length limits by
/// sensitivity (decoded bytes).
pub fn script_param(
    field: &str,
    text: Option<String>,
    sensitive: bool,
) -> Result<String, JobError> {
    let Some(text) = text else {
        return Ok(String::new());
    };
    let bytes = base64_field(field, &text)?;
    let limit = if sensitive {
        MAX_SENSITIVE_PARAM_BYTES
    } else {
        MAX_PARAM_BYTES
    };
    if bytes.len() > limit {
        return Err(JobError {
            message: format!("Invalid request parameter [{field}]: longer than {limit} bytes"),
            ..JobError::illegal(field)
        });
    }
    Ok(String::from_utf8_lossy(&bytes).replace(['\r', '\n'], " "))
}

/// A timeout in seconds: default 7200, JOB's range 1..=259200.
pub fn timeout(field: &str, value: Option<i64>) -> Result<u64, JobError> {
    match value {
        None => Ok(DEFAULT_TIMEOUT),
        Some(v) if v >= 0 && TIMEOUT_RANGE.contains(&(v as u64)) => Ok(v as u64),
        Some(_) => Err(JobError {
            message: format!(
                "Invalid request parameter [{field}]: must be between {} and {}",
                TIMEOUT_RANGE.start(),
                TIMEOUT_RANGE.end()
            ),
            ..JobError::illegal(field)
        }),
    }
}

/// A script language code, 1..=6.
pub fn language(field: &str, value: Option<i64>) -> Result<u8, JobError> {
    match value {
        Some(v @ 1..=6) => Ok(v as u8),
        _ => Err(JobError::illegal(field)),
    }
}

/// Where a script comes from, by the priority of each protocol.
pub struct ScriptSource<'a> {
    /// Stored version id (v2 `script_id`, v3/v4 `script_version_id`).
    pub version_id: Option<i64>,
    /// v3/v4 `script_id` (online version).
    pub script_id: Option<String>,
    /// Base64 content.
    pub content: Option<String>,
    /// Language code given.
    pub language: Option<i64>,
    /// Field names for errors: (version, script id, content, language).
    pub names: (&'a str, &'a str, &'a str, &'a str),
    /// The missing-source message's parameter list.
    pub missing: &'a str,
}

/// Resolves a script to (language, text).
pub fn script(inventory: &Inventory, source: ScriptSource<'_>) -> Result<(u8, Vec<u8>), JobError> {
    let (version_name, id_name, content_name, language_name) = source.names;
    if let Some(version) = source.version_id {
        if version < 1 {
            return Err(JobError::illegal(version_name));
        }
        let def = inventory
            .script_version(version)
            .ok_or_else(|| JobError::illegal(version_name))?;
        return Ok((def.language, def.content.clone().into_bytes()));
    }
    if let Some(id) = source.script_id {
        let def = inventory
            .script_online(&id)
            .ok_or_else(|| JobError::illegal(id_name))?;
        return Ok((def.language, def.content.clone().into_bytes()));
    }
    let Some(content) = source.content else {
        return Err(JobError::missing(source.missing));
    };
    let lang = language(language_name, source.language)?;
    let bytes = base64_field(content_name, &content)?;
    if bytes.len() > MAX_SCRIPT_CONTENT_BYTES {
        return Err(JobError::illegal(content_name));
    }
    Ok((lang, bytes))
}

/// Whether a callback URL passes JOB's check: http(s), a host, no user info.
pub fn url_ok(url: &str) -> bool {
    match reqwest::Url::parse(url.trim()) {
        Ok(parsed) => {
            matches!(parsed.scheme(), "http" | "https")
                && parsed.host_str().is_some_and(|h| !h.is_empty())
                && parsed.username().is_empty()
                && parsed.password().is_none()
        }
        Err(_) => false,
    }
}

/// A callback URL, checked as JOB checks it.
pub fn callback_url(field: &str, value: Option<String>) -> Result<Option<String>, JobError> {
    match value {
        None => Ok(None),
        Some(url) if url_ok(&url) => Ok(Some(url.trim().to_owned())),
        Some(_) => Err(JobError {
            message: format!("Invalid request parameter [{field}]: invalid callback url"),
            ..JobError::illegal(field)
        }),
    }
}

/// A task name, or the default `<prefix><epoch ms>`.
pub fn task_name(value: Option<String>, prefix: &str) -> Result<String, JobError> {
    match value {
        Some(name) if name.chars().count() > MAX_TASK_NAME_CHARS => {
            Err(JobError::illegal("task_name"))
        }
        Some(name) => Ok(name),
        None => Ok(format!(
            "{prefix}{}",
            crate::emulator::model::jobs::now_ms()
        )),
    }
}

/// Checks a file target path.
pub fn target_path(field: &str, value: Option<String>) -> Result<String, JobError> {
    let path = value
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .ok_or_else(|| JobError::missing_or_illegal(field))?;
    crate::job_api::rules::check_target_path(&path)
        .map_err(|_| JobError::missing_or_illegal(field))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_decoded_and_limited() {
        assert_eq!(
            script_param("p", Some("aGVsbG8=".into()), false).unwrap(),
            "hello"
        );
        let big = base64::engine::general_purpose::STANDARD.encode(vec![b'a'; 48_129]);
        assert!(script_param("p", Some(big.clone()), false).is_ok());
        assert_eq!(
            script_param("p", Some(big), true).unwrap_err().code,
            1_241_005
        );
        assert_eq!(timeout("timeout", Some(0)).unwrap_err().code, 1_241_005);
        assert_eq!(timeout("timeout", Some(259_200)).unwrap(), 259_200);
    }

    #[test]
    fn callback_urls_are_checked_like_job() {
        assert!(url_ok("http://127.0.0.1:8080/cb"));
        assert!(url_ok("https://example.com/x?y=1"));
        assert!(!url_ok("ftp://example.com/"));
        assert!(!url_ok("http://user:pw@example.com/"));
        assert!(!url_ok("not a url"));
    }
}
