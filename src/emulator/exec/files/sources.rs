//! Source matching: [`match_sources`] turns a source path as written (`…/REGEX:<re>`,
//! a shell glob with `*` or `?`, or a plain path) into the host paths it names, read
//! through the host's sandbox; plus the host-path joins the copy shares.

use std::path::{Path, PathBuf};

use regex::Regex;

use crate::emulator::exec::sandbox::error::SandboxError;
use crate::emulator::exec::sandbox::host_paths::HostSandboxes;
use crate::job_api::types::HostAddr;

/// Why a source pattern gave no files.
pub(super) enum SourceError {
    /// Nothing exists at the path, or nothing matches the pattern (203).
    Missing,
    /// Refused or unreadable (202).
    Failed(String),
}

impl From<SandboxError> for SourceError {
    fn from(e: SandboxError) -> Self {
        SourceError::Failed(e.to_string())
    }
}

/// The last component of a host path (`/data/dir/` → `dir`).
pub(super) fn base_name(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    trimmed.rsplit('/').next().unwrap_or(trimmed)
}

/// `folder` + `/` + `name` in host terms, whether or not `folder` ends with a slash.
pub(super) fn join_host(folder: &str, name: &str) -> String {
    format!("{}/{name}", folder.trim_end_matches('/'))
}

pub(super) fn sorted_names(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        names.push(entry?.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// The host paths a source pattern names on `host`, sorted:
/// - `…/REGEX:<re>`: names in that folder that `re` matches in full;
/// - a component with `*` or `?`: a shell-style glob in its folder (a leading dot is
///   matched only by a pattern starting with a dot, as in a shell);
/// - otherwise the path itself, which must exist (a folder is pushed with its content).
pub(super) fn match_sources(
    sb: &HostSandboxes,
    host: &HostAddr,
    pattern: &str,
) -> Result<Vec<String>, SourceError> {
    if let Some(at) = pattern.find("REGEX:") {
        let (folder, expr) = (&pattern[..at], &pattern[at + "REGEX:".len()..]);
        let re = Regex::new(&format!("^(?:{expr})$"))
            .map_err(|e| SourceError::Failed(format!("invalid REGEX `{expr}`: {e}")))?;
        let names = list_folder(sb, host, folder)?;
        let found: Vec<String> = names
            .into_iter()
            .filter(|name| re.is_match(name))
            .map(|name| join_host(folder, &name))
            .collect();
        return if found.is_empty() {
            Err(SourceError::Missing)
        } else {
            Ok(found)
        };
    }
    if !pattern.contains(['*', '?']) {
        let real = sb.resolve(host, pattern)?;
        if std::fs::symlink_metadata(&real).is_err() {
            return Err(SourceError::Missing);
        }
        let path = pattern.trim_end_matches('/');
        return Ok(vec![if path.is_empty() {
            "/".into()
        } else {
            path.into()
        }]);
    }
    if !pattern.starts_with('/') {
        return Err(SourceError::Failed("not an absolute path".into()));
    }
    // Expand component by component, so `/data/*/logs/*.log` works too.
    let mut found = vec![String::new()];
    for part in pattern.split('/').filter(|p| !p.is_empty()) {
        let mut next = Vec::new();
        if part.contains(['*', '?']) {
            let glob = Glob::new(part);
            for folder in &found {
                let folder = if folder.is_empty() { "/" } else { folder };
                let Ok(names) = list_folder(sb, host, folder) else {
                    continue;
                };
                next.extend(
                    names
                        .into_iter()
                        .filter(|name| glob.is_match(name))
                        .map(|name| join_host(folder, &name)),
                );
            }
        } else {
            next = found.iter().map(|folder| join_host(folder, part)).collect();
        }
        found = next;
    }
    let mut existing = Vec::new();
    for path in found {
        let real = sb.resolve(host, &path)?;
        if std::fs::symlink_metadata(&real).is_ok() {
            existing.push(path);
        }
    }
    if existing.is_empty() {
        Err(SourceError::Missing)
    } else {
        Ok(existing)
    }
}

/// The entry names of a folder on `host`; a missing folder is a missing source.
fn list_folder(
    sb: &HostSandboxes,
    host: &HostAddr,
    folder: &str,
) -> Result<Vec<String>, SourceError> {
    let real: PathBuf = sb.resolve(host, folder)?;
    if !real.is_dir() {
        return Err(SourceError::Missing);
    }
    sorted_names(&real).map_err(|e| SourceError::Failed(e.to_string()))
}

/// A shell glob for one name: `*` any run, `?` one character, the rest literal; a
/// leading dot must be matched explicitly, as in a shell.
struct Glob {
    re: Regex,
    dot: bool,
}

impl Glob {
    fn new(glob: &str) -> Self {
        let mut re = String::from("^");
        for ch in glob.chars() {
            match ch {
                '*' => re.push_str(".*"),
                '?' => re.push('.'),
                other => re.push_str(&regex::escape(other.encode_utf8(&mut [0; 4]))),
            }
        }
        re.push('$');
        Glob {
            // Every character is escaped or a plain wildcard: the regex is always valid.
            re: Regex::new(&re).unwrap_or_else(|_| Regex::new("^$").expect("valid")),
            dot: glob.starts_with('.'),
        }
    }

    fn is_match(&self, name: &str) -> bool {
        (self.dot || !name.starts_with('.')) && self.re.is_match(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::exec::sandbox::isolation::Isolation;

    fn host(text: &str) -> HostAddr {
        HostAddr::parse(text).unwrap()
    }

    #[test]
    fn globs_match_names_like_a_shell() {
        let re = Glob::new("app-*.log");
        assert!(re.is_match("app-1.log"));
        assert!(re.is_match("app-.log"));
        assert!(!re.is_match("app-1.log.gz"));
        assert!(!re.is_match("xapp-1.log"));
        let re = Glob::new("*.txt");
        assert!(re.is_match("a.txt"));
        assert!(!re.is_match(".hidden.txt"));
        assert!(Glob::new(".*").is_match(".hidden"));
        assert!(Glob::new("a?c").is_match("abc"));
        assert!(!Glob::new("a?c").is_match("abbc"));
    }

    fn seeded() -> (tempfile::TempDir, HostSandboxes, HostAddr) {
        let dir = tempfile::tempdir().unwrap();
        let sb = HostSandboxes::new(dir.path(), Isolation::Unisolated).unwrap();
        let h = host("0:10.0.0.1");
        let base = sb.host_dir(&h).unwrap();
        std::fs::create_dir_all(base.join("data/sub")).unwrap();
        for name in ["a.txt", "b.txt", "c.log", ".h.txt", "sub/d.txt"] {
            std::fs::write(base.join("data").join(name), name).unwrap();
        }
        (dir, sb, h)
    }

    fn matches(sb: &HostSandboxes, h: &HostAddr, pattern: &str) -> Option<Vec<String>> {
        match match_sources(sb, h, pattern) {
            Ok(found) => Some(found),
            Err(SourceError::Missing) => None,
            Err(SourceError::Failed(reason)) => panic!("{pattern}: {reason}"),
        }
    }

    #[test]
    fn source_patterns_match() {
        let (_dir, sb, h) = seeded();
        assert_eq!(
            matches(&sb, &h, "/data/REGEX:[a-z]\\.txt").unwrap(),
            vec!["/data/a.txt", "/data/b.txt"]
        );
        // Full match: `txt` alone does not match `a.txt`.
        assert_eq!(matches(&sb, &h, "/data/REGEX:txt"), None);
        assert_eq!(
            matches(&sb, &h, "/data/*.txt").unwrap(),
            vec!["/data/a.txt", "/data/b.txt"]
        );
        assert_eq!(
            matches(&sb, &h, "/data/*/d.txt").unwrap(),
            vec!["/data/sub/d.txt"]
        );
        assert_eq!(matches(&sb, &h, "/data/sub/").unwrap(), vec!["/data/sub"]);
        assert_eq!(
            matches(&sb, &h, "/data/c.log").unwrap(),
            vec!["/data/c.log"]
        );
        assert_eq!(matches(&sb, &h, "/data/none.log"), None);
        assert_eq!(matches(&sb, &h, "/data/*.gz"), None);
        assert_eq!(matches(&sb, &h, "/nowhere/REGEX:.*"), None);
        assert!(matches!(
            match_sources(&sb, &h, "/data/../../x"),
            Err(SourceError::Failed(_))
        ));
        assert!(matches!(
            match_sources(&sb, &h, "/data/REGEX:(["),
            Err(SourceError::Failed(_))
        ));
    }

    #[test]
    fn paths_join_and_name() {
        assert_eq!(join_host("/tmp/", "a"), "/tmp/a");
        assert_eq!(join_host("/tmp", "a"), "/tmp/a");
        assert_eq!(join_host("/", "a"), "/a");
        assert_eq!(base_name("/data/dir/"), "dir");
        assert_eq!(base_name("/data/x.log"), "x.log");
    }
}
