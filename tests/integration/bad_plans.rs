//! Every broken plan under `tests/bad_plans/` is refused by `baton validate` with exit
//! code 2, its file, line, field path and a message naming the problem, and never a
//! panic. Each `NAME.yaml` has a sidecar `NAME.expect`:
//!
//! ```text
//! field: steps[0].timeout      the field path of the issue
//! line: 12                     its line, or `none` when the file has no lines to point at
//! message: timeout 0s is ...   a fragment of the message, on the same headline
//! help: did you mean `build`?  optional: a fragment of the help text
//! problems: 2                  optional: how many problems (default 1: one concern each)
//! ```
//!
//! A `# api: v2` line near the top of a plan selects the protocol with `--api`.
//! Plans too big to commit (a file over the size cap, oversized params) are generated
//! into a temporary folder by the tests below. `baton run` against a live emulator
//! proves that a refused plan sends nothing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

fn bad_plans_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_plans")
}

/// What a bad plan's `.expect` file promises.
#[derive(Debug)]
struct Expect {
    field: String,
    line: Option<usize>,
    message: String,
    help: Option<String>,
    problems: usize,
}

fn parse_expect(name: &str, text: &str) -> Expect {
    let mut field = None;
    let mut line = None;
    let mut message = None;
    let mut help = None;
    let mut problems = 1;
    for raw in text.lines() {
        let Some((key, value)) = raw.split_once(": ") else {
            assert!(raw.trim().is_empty(), "{name}.expect: bad line {raw:?}");
            continue;
        };
        let value = value.trim().to_owned();
        match key {
            "field" => field = Some(value),
            "line" => {
                line = Some(if value == "none" {
                    None
                } else {
                    Some(value.parse().expect("line number"))
                })
            }
            "message" => message = Some(value),
            "help" => help = Some(value),
            "problems" => problems = value.parse().expect("problem count"),
            other => panic!("{name}.expect: unknown key {other:?}"),
        }
    }
    Expect {
        field: field.unwrap_or_else(|| panic!("{name}.expect: no field")),
        line: line.unwrap_or_else(|| panic!("{name}.expect: no line")),
        message: message.unwrap_or_else(|| panic!("{name}.expect: no message")),
        help,
        problems,
    }
}

/// The `# api: vN` header of a plan, if it has one in its first lines.
fn api_header(bytes: &[u8]) -> Option<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .take(5)
        .find_map(|line| line.strip_prefix("# api: ").map(|v| v.trim().to_owned()))
}

/// The built baton, run from `dir` without any BATON_/BK_ settings of the caller.
fn baton(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_baton"));
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("BATON_") || key.starts_with("BK_") {
            cmd.env_remove(key);
        }
    }
    // A refused plan must leave no run record; should one appear, it lands in a
    // throwaway folder, never in the user's state directory.
    let state = std::env::temp_dir().join(format!("baton-bad-plans-state-{}", std::process::id()));
    cmd.current_dir(dir)
        .env("NO_COLOR", "1")
        .env("BATON_STATE_DIR", state);
    cmd
}

fn validate(dir: &Path, name: &str, api: Option<&str>) -> Output {
    let mut cmd = baton(dir);
    cmd.args(["validate", name]);
    if let Some(api) = api {
        cmd.args(["--api", api]);
    }
    cmd.output().expect("baton runs")
}

/// Checks one refusal; returns what is wrong with it, if anything.
fn check_refusal(name: &str, output: &Output, expect: &Expect) -> Result<(), String> {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let fail = |what: String| Err(format!("{name}: {what}\n--- stderr:\n{stderr}"));
    if output.status.code() != Some(2) {
        return fail(format!("exit code {:?}, expected 2", output.status.code()));
    }
    if stderr.contains("panicked") {
        return fail("panicked".into());
    }
    if !stdout.is_empty() {
        return fail(format!("stdout should be empty, got {stdout:?}"));
    }
    let headlines: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("× "))
        .collect();
    let wanted_start = match expect.line {
        Some(line) => format!("{name}:{line}:"),
        None => format!("{name}: "),
    };
    let field_part = format!(": {}: ", expect.field);
    let matching = headlines.iter().any(|h| {
        let starts = match expect.line {
            // `file:line:column: field: message`
            Some(_) => {
                h.starts_with(&wanted_start)
                    && h[wanted_start.len()..]
                        .split(':')
                        .next()
                        .is_some_and(|c| c.parse::<usize>().is_ok())
            }
            // An unplaceable problem still names the file, as its field.
            None => h.starts_with(&wanted_start) || h.starts_with(&format!("{}: ", expect.field)),
        };
        let field_ok = match expect.line {
            Some(_) => h.contains(&field_part),
            None => h.starts_with(&format!("{}: ", expect.field)),
        };
        starts && field_ok && h.contains(&expect.message)
    });
    if !matching {
        return fail(format!(
            "no headline `{wanted_start}COL{field_part}...{}...`",
            expect.message
        ));
    }
    if !stderr.contains(name) {
        return fail("the file is not named".into());
    }
    let count = format!(
        "({} problem{})",
        expect.problems,
        if expect.problems == 1 { "" } else { "s" }
    );
    if !stderr.contains(&count) {
        return fail(format!("expected {count}"));
    }
    if let Some(help) = &expect.help
        && !stderr.contains(help.as_str())
    {
        return fail(format!("no help {help:?}"));
    }
    if !stderr.contains("nothing was sent") {
        return fail("does not say that nothing was sent".into());
    }
    Ok(())
}

/// Every `.yaml` under tests/bad_plans with its expectation, sorted by name.
fn committed_bad_plans() -> Vec<(String, Vec<u8>, Expect)> {
    let dir = bad_plans_dir();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("tests/bad_plans")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let stem = name.trim_end_matches(".yaml");
            let expect_text = std::fs::read_to_string(dir.join(format!("{stem}.expect")))
                .unwrap_or_else(|e| panic!("{stem}.expect: {e}"));
            let expect = parse_expect(stem, &expect_text);
            let bytes = std::fs::read(dir.join(&name)).expect("read plan");
            (name, bytes, expect)
        })
        .collect()
}

#[test]
fn every_bad_plan_is_refused_with_exit_2_location_field_and_message() {
    let dir = bad_plans_dir();
    let plans = committed_bad_plans();
    assert!(plans.len() >= 40, "only {} bad plans", plans.len());
    let failures: Vec<String> = plans
        .iter()
        .filter_map(|(name, bytes, expect)| {
            let output = validate(&dir, name, api_header(bytes).as_deref());
            check_refusal(name, &output, expect).err()
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} bad plans misbehaved:\n\n{}",
        failures.len(),
        plans.len(),
        failures.join("\n\n")
    );
}

#[test]
fn every_bad_plan_says_what_is_wrong_in_its_first_line() {
    for (name, bytes, _) in committed_bad_plans() {
        // An empty file and a binary file cannot carry a comment.
        if bytes.is_empty() || bytes.contains(&0) {
            continue;
        }
        let first = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
        assert!(
            first.starts_with(b"# BAD: ") && first.len() > 12,
            "{name}: first line should be `# BAD: <what is wrong>`"
        );
    }
}

/// The issue's list of concerns, by file, so a deleted or renamed plan is noticed.
#[test]
fn the_required_concerns_are_all_present() {
    let required = [
        "syntax_bad_indent",
        "syntax_unclosed_quote",
        "syntax_tab_indent",
        "syntax_duplicate_key",
        "type_string_for_number",
        "type_list_for_map",
        "unknown_top_level_field",
        "unknown_step_field",
        "unknown_script_field",
        "unknown_push_source_field",
        "unknown_rolling_field",
        "graph_duplicate_step_id",
        "graph_self_dependency",
        "graph_cycle_2",
        "graph_cycle_3",
        "graph_unknown_need_misspelt",
        "targets_missing",
        "targets_unknown_host_set",
        "targets_empty_host_set",
        "hosts_ip_octet_256",
        "hosts_ip_abc",
        "hosts_negative_cloud_id",
        "timeout_zero",
        "timeout_too_long",
        "timeout_bad_duration",
        "rolling_zero",
        "rolling_double_space",
        "rolling_percent_over_100",
        "rolling_word",
        "rolling_too_many_batches",
        "windows_interpreter_not_exe",
        "windows_interpreter_too_long",
        "task_name_too_long",
        "template_undefined_var",
        "template_misspelt_var",
        "template_steps_without_needs",
        "template_undeclared_output",
        "path_relative_target",
        "path_filesrcip_without_root",
        "proto_v2_windows_interpreter",
        "proto_v2_host_ids",
        "proto_v2_topo_nodes",
        "proto_v4_push_file",
        "proto_v3_job_overrides",
        "script_no_source",
        "script_no_language",
        "step_two_kinds",
        "step_no_kind",
        "version_2",
        "empty",
        "deep_nesting",
        "alias_bomb",
        "invalid_utf8",
        "binary",
    ];
    let dir = bad_plans_dir();
    for stem in required {
        assert!(
            dir.join(format!("{stem}.yaml")).is_file(),
            "tests/bad_plans/{stem}.yaml is missing"
        );
    }
}

const BASE: &str = r#"version: 1
name: generated
scope: { type: biz, id: 2 }
defaults: { account: root }
hosts:
  web: { ips: ["0:10.0.0.1"] }
steps:
  - id: a
    targets: web
"#;

/// A plan whose step runs a script with `params` of `len` bytes.
fn params_plan(len: usize, sensitive: bool) -> String {
    format!(
        "# BAD: generated params of {len} bytes\n{BASE}    script:\n      language: shell\n      content: \"echo a\"\n      sensitive: {sensitive}\n      params: \"{}\"\n",
        "p".repeat(len)
    )
}

#[test]
fn generated_oversized_params_are_refused_at_the_limit_and_not_before() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Plan line 15 is `params:` (header, 9 base lines, script, language, content, sensitive).
    let cases = [
        (
            "params_65536.yaml",
            65_536,
            false,
            Some("65536 bytes after rendering; JOB allows at most 65535"),
        ),
        ("params_65535.yaml", 65_535, false, None),
        (
            "sensitive_48129.yaml",
            48_129,
            true,
            Some("48129 bytes after rendering; JOB allows at most 48128 for sensitive params"),
        ),
        ("sensitive_48128.yaml", 48_128, true, None),
    ];
    for (name, len, sensitive, refusal) in cases {
        std::fs::write(dir.path().join(name), params_plan(len, sensitive)).expect("write");
        let output = validate(dir.path(), name, None);
        match refusal {
            Some(message) => {
                let expect = Expect {
                    field: "steps[0].script.params".into(),
                    line: Some(15),
                    message: message.into(),
                    help: None,
                    problems: 1,
                };
                if let Err(failure) = check_refusal(name, &output, &expect) {
                    panic!("{failure}");
                }
            }
            None => assert_eq!(
                output.status.code(),
                Some(0),
                "{name} is at the limit and valid: {}",
                String::from_utf8_lossy(&output.stderr)
            ),
        }
    }
}

#[test]
fn a_file_over_the_size_cap_is_refused_without_parsing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let name = "huge.yaml";
    let mut file = std::fs::File::create(dir.path().join(name)).expect("create");
    // Valid YAML all the way (comments), so only the size can be the reason.
    let line = format!("# {}\n", "x".repeat(1022));
    let cap = baton::plan::load::MAX_PLAN_BYTES as usize;
    for _ in 0..=(cap / line.len()) {
        file.write_all(line.as_bytes()).expect("write");
    }
    drop(file);
    let output = validate(dir.path(), name, None);
    // Refused before reading: there is no line to point at, so the file is the field.
    let expect = Expect {
        field: name.into(),
        line: None,
        message: "the file is larger than 32 MiB; baton refuses it".into(),
        help: None,
        problems: 1,
    };
    if let Err(failure) = check_refusal(name, &output, &expect) {
        panic!("{failure}");
    }
}

/// A running `baton emulator`, stopped when dropped.
struct Emulator {
    child: Child,
    base_url: String,
    _root: tempfile::TempDir,
}

impl Emulator {
    fn start() -> Emulator {
        let root = tempfile::tempdir().expect("temp dir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_baton"))
            .args(["emulator", "--listen", "127.0.0.1:0", "--root"])
            .arg(root.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the emulator");
        let stdout = child.stdout.take().expect("emulator stdout");
        let mut first = String::new();
        BufReader::new(stdout)
            .read_line(&mut first)
            .expect("emulator first line");
        let base_url = first
            .trim()
            .rsplit(' ')
            .next()
            .filter(|url| url.starts_with("http://"))
            .unwrap_or_else(|| panic!("no base URL in {first:?}"))
            .trim_end_matches('/')
            .to_owned();
        Emulator {
            child,
            base_url,
            _root: root,
        }
    }

    /// `GET /_emulator/requests`: every API request the emulator received.
    fn requests(&self) -> serde_json::Value {
        let authority = self.base_url.trim_start_matches("http://");
        let mut stream = TcpStream::connect(authority).expect("connect to the emulator");
        write!(
            stream,
            "GET /_emulator/requests HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read");
        let (head, body) = answer.split_once("\r\n\r\n").expect("HTTP answer");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `baton run` against a real emulator refuses every bad plan with exit 2, and the
/// emulator receives no request at all: validation happens before anything is sent.
#[test]
fn bad_plans_send_nothing_to_the_emulator() {
    let emulator = Emulator::start();
    let dir = bad_plans_dir();
    let mut failures = Vec::new();
    for (name, bytes, expect) in committed_bad_plans() {
        let mut cmd = baton(&dir);
        let state = tempfile::tempdir().expect("temp dir");
        cmd.args(["run", &name, "--endpoint", &emulator.base_url, "--yes"])
            // Keep any run folder a regression might create out of the repository.
            .env("HOME", state.path())
            .env("XDG_STATE_HOME", state.path())
            .env("BK_APP_CODE", "baton-test")
            .env("BK_APP_SECRET", "secret")
            .env("BK_USERNAME", "admin");
        if let Some(api) = api_header(&bytes) {
            cmd.args(["--api", &api]);
        }
        let output = cmd.output().expect("baton runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        if output.status.code() != Some(2) || stderr.contains("panicked") {
            failures.push(format!("{name}: exit {:?}\n{stderr}", output.status.code()));
        } else if !stderr.contains(&expect.message) {
            failures.push(format!("{name}: missing {:?}\n{stderr}", expect.message));
        }
    }
    let received = emulator.requests();
    assert_eq!(
        received.as_array().map(Vec::len),
        Some(0),
        "bad plans reached the emulator: {received}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));

    // Control: a valid plan through the same command does reach the emulator, so the
    // empty list above means "nothing sent", not "asked the wrong place".
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("valid.yaml"),
        "version: 1\nname: control\nscope: { type: biz, id: 2 }\nsteps:\n  - id: j\n    job: { plan_id: 1 }\n",
    )
    .expect("write");
    let output = baton(dir.path())
        .args([
            "run",
            "valid.yaml",
            "--endpoint",
            &emulator.base_url,
            "--yes",
        ])
        .env("HOME", dir.path())
        .env("XDG_STATE_HOME", dir.path())
        .env("BK_APP_CODE", "baton-test")
        .env("BK_APP_SECRET", "secret")
        .env("BK_USERNAME", "admin")
        .output()
        .expect("baton runs");
    let received = emulator.requests();
    assert!(
        received.as_array().is_some_and(|list| !list.is_empty()),
        "the control plan should reach the emulator (exit {:?}): {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
}
