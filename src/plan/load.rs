//! Reading a plan file into the typed model.
//!
//! Owns everything that can go wrong before the model exists: unreadable, oversized,
//! binary or non-UTF-8 files, YAML syntax errors, alias bombs and deep nesting (which
//! serde_yaml refuses with an error rather than a crash), and type errors, which keep
//! serde_yaml's field path and `line:column`. It also reads the script files a plan
//! refers to, relative to the plan's folder, so later stages never touch the disk.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::model::{Plan, Step};
use super::span::{Issue, PlanErrors, PlanSource};

/// Larger plans are refused before parsing. Hand-written runbooks are a few hundred KiB;
/// generated ones reach 50 000 steps at roughly 200 bytes each, so the cap leaves room
/// for those while still refusing a mistaken multi-gigabyte file up front.
pub const MAX_PLAN_BYTES: u64 = 32 * 1024 * 1024;

/// How a plan's script files are read. The plan knows no backend: whoever runs the plan
/// says how large a script file may be; without that, a script file may be as large as
/// a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOptions {
    /// Larger script files are refused without being read whole.
    pub max_script_file_bytes: u64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            max_script_file_bytes: MAX_PLAN_BYTES,
        }
    }
}

/// A parsed plan with its source text and the script files it refers to.
#[derive(Debug, Clone)]
pub struct LoadedPlan {
    /// The text, its name and span index.
    pub source: PlanSource,
    /// The typed plan.
    pub plan: Plan,
    /// The folder `script.file` paths are relative to.
    pub base_dir: PathBuf,
    /// Script file contents by the field path that names them (`steps[3].script.file`,
    /// `steps[4].job.overrides[0].file`).
    pub script_files: HashMap<String, String>,
    /// Script files that could not be read; reported with the other semantic errors.
    pub file_issues: Vec<Issue>,
}

/// Reads and parses the plan at `path`, script files up to the plan's own cap.
pub fn load(path: &Path) -> Result<LoadedPlan, PlanErrors> {
    load_with(path, &LoadOptions::default())
}

/// Reads and parses the plan at `path`, script files as `options` say.
pub fn load_with(path: &Path, options: &LoadOptions) -> Result<LoadedPlan, PlanErrors> {
    let name = path.display().to_string();
    let unreadable = |message: String| PlanErrors {
        file: name.clone(),
        text: Arc::from(""),
        issues: vec![Issue::unlocated(name.clone(), message)],
    };
    let bytes = read_capped(path, MAX_PLAN_BYTES).map_err(|e| unreadable(e.to_string()))?;
    let text = decode_text(&bytes).map_err(|e| undecodable(&name, &bytes, e.to_string()))?;
    let base_dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    parse_with(&name, Arc::from(text), &base_dir, options)
}

/// Parses plan `text` (named `name` in messages); script files are read from `base_dir`
/// up to the plan's own cap.
pub fn parse(name: &str, text: Arc<str>, base_dir: &Path) -> Result<LoadedPlan, PlanErrors> {
    parse_with(name, text, base_dir, &LoadOptions::default())
}

/// Parses plan `text` (named `name` in messages); script files are read from `base_dir`
/// as `options` say.
pub fn parse_with(
    name: &str,
    text: Arc<str>,
    base_dir: &Path,
    options: &LoadOptions,
) -> Result<LoadedPlan, PlanErrors> {
    let source = PlanSource::new(name, text.clone());
    if text.trim().is_empty() || is_only_comments(&text) {
        return Err(source.errors(vec![Issue {
            location: Some(source.spans().location_of_byte(0)),
            ..Issue::unlocated("plan", "the plan file is empty")
                .with_help("a plan needs at least `version: 1`, `name` and `steps`")
        }]));
    }
    if let Err(bomb) = super::expansion::check(&text) {
        let location = bomb.offset.map(|at| source.spans().location_of_byte(at));
        return Err(source.errors(vec![Issue {
            field: "plan".to_owned(),
            message: bomb.to_string(),
            location: Some(location.unwrap_or_else(|| source.spans().location_of_byte(0))),
            label: Some("expansion passed the limit here".to_owned()),
            help: Some("write repeated values out, or reference large anchors fewer times".into()),
        }]));
    }
    let plan: Plan = match serde_yaml::from_str(&text) {
        Ok(plan) => plan,
        Err(error) => return Err(source.errors(vec![yaml_issue(&source, &error)])),
    };
    let (script_files, file_issues) = read_script_files(
        &source,
        &plan.steps,
        base_dir,
        options.max_script_file_bytes,
    );
    Ok(LoadedPlan {
        source,
        plan,
        base_dir: base_dir.to_path_buf(),
        script_files,
        file_issues,
    })
}

/// Turns a serde_yaml error (in a plan, or in any YAML file baton reads) into an
/// issue. Its message already starts with the field
/// path (`steps[2].script.language: unknown variant ...`) and ends with
/// `at line L column C`, which is dropped because the location is rendered separately.
pub fn yaml_issue(source: &PlanSource, error: &serde_yaml::Error) -> Issue {
    let full = error.to_string();
    let message = match full.rfind(" at line ") {
        Some(at) if error.location().is_some() => full[..at].to_owned(),
        _ => full.clone(),
    };
    let (field, message) = split_field_path(&message);
    // Every YAML error gets a place: serde_yaml gives none for a second document (point
    // at where it starts) and a few internal limits (point at the top).
    let offset = match error.location() {
        Some(loc) => loc.index(),
        None => second_document_offset(&source.text).unwrap_or(0),
    };
    let mut location = source.spans().location_of_byte(offset);
    let rest = &source.text[location.offset..];
    location.len = rest
        .find(['\n', ',', ']', '}'])
        .unwrap_or(rest.len())
        .min(80);
    Issue {
        field,
        message: message.to_owned(),
        location: Some(location),
        label: Some("here".to_owned()),
        help: None,
    }
}

/// `steps[2].script.language: unknown variant` → (`steps[2].script.language`, `unknown
/// variant`). Messages without a leading path belong to the whole plan.
fn split_field_path(message: &str) -> (String, &str) {
    if let Some((head, rest)) = message.split_once(": ") {
        let looks_like_path = !head.is_empty()
            && head
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '[' | ']'));
        if looks_like_path {
            return (head.to_owned(), rest);
        }
    }
    ("plan".to_owned(), message)
}

/// Where the second YAML document of `text` begins: a `---` line after a document has
/// begun (content or an earlier `---`), or the first content after a `...` line.
fn second_document_offset(text: &str) -> Option<usize> {
    let mut begun = false;
    let mut ended = false;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let trimmed = line.trim_end();
        let is_marker =
            trimmed == "---" || trimmed.starts_with("--- ") || trimmed.starts_with("---\t");
        if is_marker {
            if begun {
                return Some(start);
            }
            begun = true;
            ended = false;
            continue;
        }
        if trimmed == "..." {
            ended = true;
            continue;
        }
        let content = trimmed.trim_start();
        if content.is_empty() || content.starts_with('#') || line.starts_with('%') {
            continue;
        }
        if ended {
            return Some(start);
        }
        begun = true;
    }
    None
}

/// Bytes that are not plan text. The issue points at the first offending byte (line
/// and column), so a stray binary or Latin-1 byte can be found in an editor; the
/// snippet is shown for text with a bad byte, never for binary files.
fn undecodable(name: &str, bytes: &[u8], message: String) -> PlanErrors {
    let first_nul = bytes.iter().position(|&b| b == 0);
    let valid_up_to = match std::str::from_utf8(bytes) {
        Ok(_) => bytes.len(),
        Err(e) => e.valid_up_to(),
    };
    // Up to this offset the lossy text has exactly the file's bytes.
    let bad = first_nul.unwrap_or(bytes.len()).min(valid_up_to);
    let lossy: Arc<str> = Arc::from(String::from_utf8_lossy(bytes).as_ref());
    let source = PlanSource::new(name, lossy.clone());
    let mut location = source.spans().location_of_byte(bad);
    location.len = usize::from(bad < lossy.len());
    let shown_text = if first_nul.is_some() {
        Arc::from("")
    } else {
        location.len = lossy[bad..].chars().next().map_or(0, char::len_utf8);
        lossy
    };
    PlanErrors {
        file: name.to_owned(),
        text: shown_text,
        issues: vec![Issue {
            field: "plan".to_owned(),
            message,
            location: Some(location),
            label: Some("this byte".to_owned()),
            help: None,
        }],
    }
}

fn is_only_comments(text: &str) -> bool {
    text.lines().all(|line| {
        let line = line.trim();
        line.is_empty() || line.starts_with('#') || line == "---" || line == "..."
    })
}

/// Why a script file cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
enum FileProblem {
    #[error("cannot read: {0}")]
    Read(Arc<std::io::Error>),
    #[error("the file is larger than {mib} MiB; baton refuses it")]
    TooLarge { mib: u64 },
    #[error("this looks like a binary file (NUL byte at offset {at}), not YAML text")]
    Binary { at: usize },
    #[error("the file is not valid UTF-8 (invalid byte at offset {at}); save it as UTF-8")]
    NotUtf8 { at: usize },
}

impl From<std::io::Error> for FileProblem {
    fn from(error: std::io::Error) -> Self {
        FileProblem::Read(Arc::new(error))
    }
}

/// Reads at most `cap` bytes; a larger file is refused without reading it all.
fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, FileProblem> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(FileProblem::TooLarge {
            mib: cap / (1024 * 1024),
        });
    }
    Ok(bytes)
}

/// UTF-8 text without NUL bytes (a NUL means a binary file was given by mistake).
fn decode_text(bytes: &[u8]) -> Result<String, FileProblem> {
    if let Some(at) = bytes.iter().position(|&b| b == 0) {
        return Err(FileProblem::Binary { at });
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    String::from_utf8(bytes.to_vec()).map_err(|e| FileProblem::NotUtf8 {
        at: e.utf8_error().valid_up_to(),
    })
}

/// Reads every `script.file` and override `file`, once per distinct path.
fn read_script_files(
    source: &PlanSource,
    steps: &[Step],
    base_dir: &Path,
    max_bytes: u64,
) -> (HashMap<String, String>, Vec<Issue>) {
    let mut contents = HashMap::new();
    let mut issues = Vec::new();
    let mut cache: HashMap<PathBuf, Result<String, FileProblem>> = HashMap::new();
    let mut read = |field: String, relative: &str, step_id: &str| {
        let path = base_dir.join(relative);
        let result = cache
            .entry(path.clone())
            .or_insert_with(|| read_capped(&path, max_bytes).and_then(|bytes| decode_text(&bytes)))
            .clone();
        match result {
            Ok(text) => {
                contents.insert(field, text);
            }
            Err(problem) => issues.push(
                source
                    .issue(
                        field,
                        format!(
                            "step `{step_id}`: script file `{}` {problem}",
                            path.display()
                        ),
                    )
                    .with_label("this file")
                    .with_help(format!(
                        "script files are read relative to the plan's folder `{}`",
                        base_dir.display()
                    )),
            ),
        }
    };
    for (i, step) in steps.iter().enumerate() {
        if let Some(file) = step.script.as_ref().and_then(|s| s.file.as_deref()) {
            read(format!("steps[{i}].script.file"), file, &step.id);
        }
        if let Some(job) = &step.job {
            for (j, over) in job.overrides.iter().enumerate() {
                if let Some(file) = over.file.as_deref() {
                    read(
                        format!("steps[{i}].job.overrides[{j}].file"),
                        file,
                        &step.id,
                    );
                }
            }
        }
    }
    (contents, issues)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<LoadedPlan, PlanErrors> {
        parse("plan.yaml", Arc::from(text), Path::new("."))
    }

    fn only_issue(result: Result<LoadedPlan, PlanErrors>) -> Issue {
        let errors = result.expect_err("plan should be refused");
        assert_eq!(errors.issues.len(), 1, "{:?}", errors.issues);
        errors.issues.into_iter().next().unwrap()
    }

    #[test]
    fn type_errors_keep_the_field_path_and_location() {
        let issue = only_issue(parse_text(
            "version: 1\nname: x\nsteps:\n  - id: a\n    timeout: soon\n",
        ));
        assert_eq!(issue.field, "steps[0].timeout");
        let loc = issue.location.unwrap();
        assert_eq!((loc.line, loc.column), (5, 14));
        assert!(!issue.message.contains("at line"), "{}", issue.message);
    }

    #[test]
    fn unknown_fields_are_located_after_cjk_comments() {
        let issue = only_issue(parse_text(
            "# 发布\nversion: 1\nname: x\nsteps:\n  - id: a\n    scirpt: {}\n",
        ));
        assert_eq!(issue.field, "steps[0]");
        assert!(issue.message.contains("unknown field `scirpt`"));
        assert_eq!(issue.location.unwrap().line, 6);
    }

    #[test]
    fn empty_and_comment_only_files_are_refused() {
        for text in ["", "   \n", "# nothing\n---\n"] {
            let issue = only_issue(parse_text(text));
            assert!(
                issue.message.contains("empty"),
                "{text:?}: {}",
                issue.message
            );
        }
    }

    #[test]
    fn binary_and_non_utf8_bytes_are_refused() {
        assert!(
            decode_text(b"version: 1\0")
                .unwrap_err()
                .to_string()
                .contains("binary")
        );
        assert!(
            decode_text(b"name: \xff\xfe")
                .unwrap_err()
                .to_string()
                .contains("UTF-8")
        );
        assert_eq!(decode_text(b"\xEF\xBB\xBFa: 1").unwrap(), "a: 1");
    }

    #[test]
    fn alias_bombs_are_errors_not_crashes() {
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            bomb.push_str(&format!(
                "{n}: &{n} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n",
                n = (b'a' + i) as char,
                p = (b'a' + i - 1) as char
            ));
        }
        assert!(parse_text(&bomb).is_err());
    }

    #[test]
    fn deep_flow_nesting_is_an_error_not_a_crash() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse_text(&deep).is_err());
    }

    #[test]
    fn deep_block_nesting_is_an_error_not_a_crash() {
        let deep_map = (0..5_000)
            .map(|i| format!("{}k:\n", " ".repeat(i)))
            .collect::<String>();
        assert!(parse_text(&deep_map).is_err());
    }

    #[test]
    fn a_second_document_is_located_where_it_starts() {
        let issue = only_issue(parse_text(
            "# header\nversion: 1\nname: x\nsteps: []\n---\nversion: 1\n",
        ));
        assert!(issue.message.contains("more than one document"));
        assert_eq!(issue.location.map(|l| (l.line, l.column)), Some((5, 1)));
        assert_eq!(second_document_offset("---\na: 1\n---\nb: 2\n"), Some(9));
        assert_eq!(second_document_offset("a: 1\n...\nb: 2\n"), Some(9));
        assert_eq!(second_document_offset("---\na: 1\n"), None);
    }

    #[test]
    fn undecodable_files_point_at_the_first_bad_byte() {
        let errors = undecodable("p.yaml", b"a: 1\nname: caf\xe9\n", "not UTF-8".into());
        let loc = errors.issues[0].location.expect("located");
        assert_eq!((loc.line, loc.column), (2, 10));
        assert!(!errors.text.is_empty(), "text files keep a snippet");
        let errors = undecodable("p.yaml", b"%PDF-1.4\n\x00\x01", "binary".into());
        let loc = errors.issues[0].location.expect("located");
        assert_eq!(loc.line, 2);
        assert!(errors.text.is_empty(), "no snippet of binary data");
    }

    #[test]
    fn empty_files_are_located_at_the_top() {
        let issue = only_issue(parse_text("# only a comment\n"));
        assert_eq!(issue.location.map(|l| l.line), Some(1));
    }

    #[test]
    fn a_string_alias_bomb_is_refused_before_it_is_expanded() {
        let bomb = format!(
            "version: 1\nname: x\ndescription: &a \"{}\"\nhosts:\n  web: {{ dynamic_groups: [{}] }}\nsteps: []\n",
            "x".repeat(100_000),
            vec!["*a"; 2_000].join(", ")
        );
        let issue = only_issue(parse_text(&bomb));
        assert!(issue.message.contains("alias bombs"), "{}", issue.message);
        assert_eq!(issue.location.map(|l| l.line), Some(3));
    }
}
