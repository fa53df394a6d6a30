//! A job plan instance's global variables as they change while it runs ([`JobVar`]),
//! and reading the `name=value` lines bash's `set` prints for the variables a shell
//! step may change ([`parse_set_output`]).
//!
//! JOB lets a shell step assign a "changeable" string variable: the agent sources the
//! user's script from a wrapper whose EXIT trap writes `set | egrep '^name=|...'` to a
//! file, reads that file back, and stores the values for the step instance and the
//! steps after it (bk-job `src/backend/job-execute/service-job-execute/src/main/java/
//! com/tencent/bk/job/execute/engine/executor/ScriptGseTaskStartCommand.java`,
//! `buildWrapperScriptWhenExistChangeableVar` / `buildOutputVarsOnExitFunction`, and
//! `.../engine/result/ScriptResultHandleTask.java`, `parseVariableValueFromResult`).

use crate::emulator::model::inventory::Host;

/// JOB's global variable types.
pub mod var_type {
    /// A string.
    pub const STRING: u8 = 1;
    /// A namespace variable.
    pub const NAMESPACE: u8 = 2;
    /// A host list.
    pub const HOSTS: u8 = 3;
    /// A password.
    pub const PASSWORD: u8 = 4;
}

/// One global variable of a running job plan instance.
#[derive(Debug, Clone, PartialEq)]
pub struct JobVar {
    /// Variable id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Type (see [`var_type`]).
    pub kind: u8,
    /// The current value (non-host variables).
    pub value: String,
    /// Whether a shell step may assign it (string variables only).
    pub changeable: bool,
    /// The hosts (host-list variables).
    pub hosts: Vec<Host>,
}

impl JobVar {
    /// Whether a shell step's assignment is read back.
    pub fn is_captured(&self) -> bool {
        self.changeable && self.kind == var_type::STRING
    }
}

/// The values of `names` in the output of bash's `set` filtered to them. Lines of other
/// names are ignored; a value is unquoted as bash quotes it (`'a b'`, `$'a\nb'`, bare).
pub fn parse_set_output(text: &str, names: &[String]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, raw)) = line.split_once('=') else {
            continue;
        };
        let name = name.trim();
        if !names.iter().any(|n| n == name) {
            continue;
        }
        let value = unquote(raw.trim());
        match out.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => out.push((name.to_owned(), value)),
        }
    }
    out
}

/// Undoes bash's quoting of a `set` value.
fn unquote(raw: &str) -> String {
    if let Some(inner) = raw.strip_prefix("$'").and_then(|r| r.strip_suffix('\'')) {
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        }
        return out;
    }
    if raw.len() >= 2 && raw.starts_with('\'') && raw.ends_with('\'') {
        // `set` writes a quote inside a value as '\'' .
        return raw[1..raw.len() - 1].replace("'\\''", "'");
    }
    raw.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_output_is_unquoted_and_filtered() {
        let names = vec!["schema".to_owned(), "note".to_owned(), "multi".to_owned()];
        let text = "schema=42\nnote='a b'\\''c'\nother=x\nmulti=$'l1\\nl2'\n";
        assert_eq!(
            parse_set_output(text, &names),
            vec![
                ("schema".into(), "42".into()),
                ("note".into(), "a b'c".into()),
                ("multi".into(), "l1\nl2".into()),
            ]
        );
    }
}
