//! The plan's input variables: declarations checked, values gathered and checked.
//!
//! Values come from `--var k=v` (repeatable), a `--vars-file` YAML mapping, and the
//! environment (`BATON_VAR_<name>`); a flag beats the file, the file beats the
//! environment, and any of them beats the declared default. Every problem (a missing
//! required value, a value that does not match its pattern, a value for a variable the
//! plan does not declare) is collected so the user sees them all at once, before
//! anything is sent. Secret values are kept apart so every printer can mask them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::model::VarDecl;
use super::span::{Issue, PlanSource};

/// Names a variable cannot have: they are the template context's own roots.
pub const RESERVED_NAMES: [&str; 3] = ["steps", "run", "plan"];

/// How secret values appear in output.
pub const MASK: &str = "******";

/// Prefix of environment variables that supply values.
pub const ENV_PREFIX: &str = "BATON_VAR_";

/// Variable values as the user supplied them, before checking.
#[derive(Debug, Clone, Default)]
pub struct VarInputs {
    /// `--var k=v`, in command-line order (a later one wins).
    pub flags: Vec<String>,
    /// `--vars-file`.
    pub file: Option<PathBuf>,
    /// `BATON_VAR_<name>` pairs (name without the prefix).
    pub env: Vec<(String, String)>,
}

impl VarInputs {
    /// Collects `BATON_VAR_*` from the process environment.
    pub fn with_process_env(mut self) -> Self {
        self.env = std::env::vars_os()
            .filter_map(|(key, value)| {
                let key = key.into_string().ok()?;
                let name = key.strip_prefix(ENV_PREFIX)?.to_owned();
                Some((name, value.into_string().ok()?))
            })
            .collect();
        self
    }
}

/// Every declared variable's value (an optional variable without a value is empty).
#[derive(Debug, Clone, Default)]
pub struct ResolvedVars {
    values: BTreeMap<String, String>,
    secret_names: BTreeSet<String>,
}

impl ResolvedVars {
    /// Value of a declared variable.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// All values by name (secrets included; mask before printing).
    pub fn values(&self) -> &BTreeMap<String, String> {
        &self.values
    }

    /// Names of the variables declared `secret: true`.
    pub fn secret_names(&self) -> &BTreeSet<String> {
        &self.secret_names
    }

    /// The non-empty values of secret variables, longest first so that masking a value
    /// that contains another masks the whole of it.
    pub fn secret_values(&self) -> Vec<&str> {
        let mut values: Vec<&str> = self
            .secret_names
            .iter()
            .filter_map(|name| self.get(name))
            .filter(|value| !value.is_empty())
            .collect();
        values.sort_by_key(|value| std::cmp::Reverse(value.len()));
        values.dedup();
        values
    }

    /// `text` with every secret value replaced by [`MASK`].
    pub fn mask(&self, text: &str) -> String {
        let mut masked = text.to_owned();
        for secret in self.secret_values() {
            if masked.contains(secret) {
                masked = masked.replace(secret, MASK);
            }
        }
        masked
    }

    /// Values with secrets replaced by [`MASK`] (for journals and reports).
    pub fn masked_values(&self) -> BTreeMap<String, String> {
        self.values
            .iter()
            .map(|(name, value)| {
                let shown = if self.secret_names.contains(name) {
                    MASK.to_owned()
                } else {
                    value.clone()
                };
                (name.clone(), shown)
            })
            .collect()
    }
}

/// A template-usable name: a letter or `_`, then letters, digits, `_` or `-`.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The closest of `candidates` to `wanted`, when it is close enough to be a typo.
pub fn closest<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|candidate| (strsim::jaro_winkler(wanted, candidate), candidate))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

/// Where a supplied value came from, for messages.
#[derive(Debug, Clone)]
enum Origin {
    Flag,
    File(String),
    Env,
    Default,
}

impl Origin {
    fn describe(&self, name: &str) -> String {
        match self {
            Origin::Flag => format!("--var {name}"),
            Origin::File(file) => format!("{file}: {name}"),
            Origin::Env => format!("{ENV_PREFIX}{name}"),
            Origin::Default => format!("vars.{name}.default"),
        }
    }
}

/// Checks the declarations and the supplied values. Returns the values (complete even
/// when there are errors, so later checks can go on), the errors, and the warnings.
pub fn resolve(
    source: &PlanSource,
    decls: &BTreeMap<String, VarDecl>,
    inputs: &VarInputs,
) -> (ResolvedVars, Vec<Issue>, Vec<Issue>) {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();

    let mut patterns = BTreeMap::new();
    for (name, decl) in decls {
        let field = format!("vars.{name}");
        if !is_identifier(name) {
            errors.push(source.key_issue(
                &field,
                format!("variable name `{name}` is not an identifier (letters, digits, `_`, `-`; not starting with a digit)"),
            ));
        } else if RESERVED_NAMES.contains(&name.as_str()) {
            errors.push(source.key_issue(
                &field,
                format!("`{name}` is reserved for the template context (`steps`, `run`, `plan`); rename the variable"),
            ));
        }
        if let Some(pattern) = &decl.pattern {
            match regex::Regex::new(&format!("^(?:{pattern})$")) {
                Ok(regex) => {
                    patterns.insert(name.clone(), regex);
                }
                Err(e) => errors.push(source.issue(
                    format!("{field}.pattern"),
                    format!("invalid regular expression: {}", one_line(&e.to_string())),
                )),
            }
        }
    }

    let mut supplied: BTreeMap<String, (String, Origin)> = BTreeMap::new();
    let declared = |name: &str| decls.contains_key(name);
    let undeclared = |name: &str, origin: &Origin| {
        let mut issue = Issue::unlocated(
            origin.describe(name),
            format!("variable `{name}` is not declared in the plan's `vars`"),
        );
        if let Some(near) = closest(name, decls.keys().map(String::as_str)) {
            issue = issue.with_help(format!("did you mean `{near}`?"));
        }
        issue
    };

    for (name, value) in &inputs.env {
        if declared(name) {
            supplied.insert(name.clone(), (value.clone(), Origin::Env));
        } else {
            // The environment is shared with other plans and tools, so a stray
            // BATON_VAR_ is worth a warning, not a refusal.
            warnings.push(undeclared(name, &Origin::Env));
        }
    }

    if let Some(path) = &inputs.file {
        let file_name = path.display().to_string();
        match read_vars_file(path) {
            Ok(pairs) => {
                for (name, value) in pairs {
                    let origin = Origin::File(file_name.clone());
                    if declared(&name) {
                        supplied.insert(name, (value, origin));
                    } else {
                        errors.push(undeclared(&name, &origin));
                    }
                }
            }
            Err(problem) => errors.push(Issue::unlocated(
                format!("--vars-file {file_name}"),
                problem.to_string(),
            )),
        }
    }

    for flag in &inputs.flags {
        match flag.split_once('=') {
            Some((name, value)) if !name.trim().is_empty() => {
                let name = name.trim();
                if declared(name) {
                    supplied.insert(name.to_owned(), (value.to_owned(), Origin::Flag));
                } else {
                    errors.push(undeclared(name, &Origin::Flag));
                }
            }
            _ => errors.push(Issue::unlocated(
                format!("--var {flag}"),
                "expected `--var name=value`",
            )),
        }
    }

    let mut resolved = ResolvedVars::default();
    for (name, decl) in decls {
        if decl.secret {
            resolved.secret_names.insert(name.clone());
        }
        let chosen = supplied.remove(name).or_else(|| {
            decl.default
                .as_ref()
                .map(|d| (d.0.clone(), Origin::Default))
        });
        let value = match chosen {
            Some((value, origin)) => {
                if let Some(regex) = patterns.get(name)
                    && !regex.is_match(&value)
                {
                    let shown = if decl.secret {
                        MASK.to_owned()
                    } else {
                        format!("`{value}`")
                    };
                    let pattern = decl.pattern.as_deref().unwrap_or_default();
                    let issue = match origin {
                        Origin::Default => source.issue(
                            format!("vars.{name}.default"),
                            format!("the default {shown} does not match the pattern `{pattern}`"),
                        ),
                        other => Issue::unlocated(
                            other.describe(name),
                            format!(
                                "value {shown} does not match the pattern `{pattern}` of variable `{name}`"
                            ),
                        ),
                    };
                    errors.push(issue);
                }
                value
            }
            None if decl.required => {
                let mut issue = source.key_issue(
                    format!("vars.{name}"),
                    format!("required variable `{name}` has no value"),
                );
                let hint = format!(
                    "pass `--var {name}=...`, put it in a --vars-file, or set {ENV_PREFIX}{name}"
                );
                issue = issue.with_help(match &decl.description {
                    Some(description) => format!("{description}; {hint}"),
                    None => hint,
                });
                errors.push(issue);
                String::new()
            }
            None => String::new(),
        };
        resolved.values.insert(name.clone(), value);
    }
    (resolved, errors, warnings)
}

/// Why a vars file could not be used.
#[derive(Debug, thiserror::Error)]
enum VarsFileError {
    #[error("cannot read: {0}")]
    Read(#[from] std::io::Error),
    #[error(transparent)]
    Expansion(#[from] super::expansion::ExpansionError),
    #[error("expected a YAML mapping of names to values: {0}")]
    NotMapping(#[from] serde_yaml::Error),
    #[error("variable names must be strings")]
    NameNotString,
    #[error("`{0}`: a value must be a string, number or boolean")]
    ValueNotScalar(String),
}

/// A vars file: a YAML mapping of names to scalars.
fn read_vars_file(path: &std::path::Path) -> Result<Vec<(String, String)>, VarsFileError> {
    let text = std::fs::read_to_string(path)?;
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    super::expansion::check(&text)?;
    let mapping: serde_yaml::Mapping = serde_yaml::from_str(&text)?;
    let mut pairs = Vec::new();
    for (key, value) in mapping {
        let name = scalar_to_string(&key).ok_or(VarsFileError::NameNotString)?;
        let value =
            scalar_to_string(&value).ok_or_else(|| VarsFileError::ValueNotScalar(name.clone()))?;
        pairs.push((name, value));
    }
    Ok(pairs)
}

fn scalar_to_string(value: &serde_yaml::Value) -> Option<String> {
    match value {
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        serde_yaml::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::model::Scalar;

    fn decls() -> BTreeMap<String, VarDecl> {
        let mut decls = BTreeMap::new();
        decls.insert(
            "version".into(),
            VarDecl {
                required: true,
                pattern: Some(r"\d+\.\d+\.\d+".into()),
                ..VarDecl::default()
            },
        );
        decls.insert(
            "region".into(),
            VarDecl {
                default: Some(Scalar("sh".into())),
                ..VarDecl::default()
            },
        );
        decls.insert(
            "db_password".into(),
            VarDecl {
                secret: true,
                ..VarDecl::default()
            },
        );
        decls
    }

    fn source() -> PlanSource {
        PlanSource::new("plan.yaml", "vars:\n  version: {required: true}\n".into())
    }

    #[test]
    fn precedence_is_flag_then_file_then_env_then_default() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("vars.yaml");
        std::fs::write(&file, "version: 2.0.0\nregion: gz\n").unwrap();
        let inputs = VarInputs {
            flags: vec!["version=3.0.0".into()],
            file: Some(file),
            env: vec![
                ("version".into(), "1.0.0".into()),
                ("region".into(), "bj".into()),
            ],
        };
        let (vars, errors, warnings) = resolve(&source(), &decls(), &inputs);
        assert!(errors.is_empty() && warnings.is_empty(), "{errors:?}");
        assert_eq!(vars.get("version"), Some("3.0.0"));
        assert_eq!(vars.get("region"), Some("gz"));
        assert_eq!(vars.get("db_password"), Some(""));
    }

    #[test]
    fn all_problems_are_reported_together() {
        let inputs = VarInputs {
            flags: vec!["verison=1.0.0".into(), "region".into()],
            ..VarInputs::default()
        };
        let (_, errors, _) = resolve(&source(), &decls(), &inputs);
        let text: Vec<String> = errors
            .iter()
            .map(|e| format!("{}: {} {:?}", e.field, e.message, e.help))
            .collect();
        assert_eq!(errors.len(), 3, "{text:#?}");
        assert!(text[0].contains("--var verison") && text[0].contains("did you mean `version`"));
        assert!(text[1].contains("expected `--var name=value`"));
        assert!(text[2].contains("required variable `version` has no value"));
    }

    #[test]
    fn patterns_match_the_whole_value_and_secrets_are_masked() {
        let inputs = VarInputs {
            flags: vec!["version=1.2.3-rc1".into(), "db_password=hunter2".into()],
            ..VarInputs::default()
        };
        let (vars, errors, _) = resolve(&source(), &decls(), &inputs);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].message.contains("does not match"));
        assert_eq!(vars.mask("pw=hunter2;"), "pw=******;");
        assert_eq!(vars.masked_values()["db_password"], MASK);
    }

    #[test]
    fn reserved_and_malformed_names_are_refused() {
        let mut decls = BTreeMap::new();
        decls.insert("steps".to_owned(), VarDecl::default());
        decls.insert("9lives".to_owned(), VarDecl::default());
        let (_, errors, _) = resolve(&source(), &decls, &VarInputs::default());
        assert_eq!(errors.len(), 2);
    }

    #[test]
    fn a_vars_file_alias_bomb_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("vars.yaml");
        let bomb = format!(
            "a: &a \"{}\"\nb: [{}]\n",
            "x".repeat(100_000),
            vec!["*a"; 2_000].join(", ")
        );
        std::fs::write(&file, bomb).unwrap();
        let error = read_vars_file(&file).unwrap_err();
        assert!(error.to_string().contains("alias bombs"), "{error}");
    }
}
