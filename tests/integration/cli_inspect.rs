//! `baton validate`, `plan`, `graph` and `schema` as a user runs them: exit codes,
//! located messages, masking and drawings.

use std::path::{Path, PathBuf};
use std::process::Output;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/invalid")
        .join(name)
}

/// Runs the built baton with a clean environment for its own variables, from the
/// fixture folder so file names in messages are short.
fn baton(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = assert_cmd::cargo::cargo_bin_cmd!("baton");
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("BATON_VAR_") || key.starts_with("BK_") {
            cmd.env_remove(key);
        }
    }
    cmd.current_dir(dir)
        .args(args)
        .output()
        .expect("baton runs")
}

fn run_fixture(name: &str, args: &[&str]) -> (i32, String, String) {
    let dir = fixture("");
    let mut all = vec!["validate", name];
    all.extend_from_slice(args);
    let output = baton(&dir, &all);
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn assert_invalid(name: &str, expected: &[&str]) -> String {
    let (code, stdout, stderr) = run_fixture(name, &[]);
    assert_eq!(code, 2, "{name}: exit code\nstderr:\n{stderr}");
    assert!(
        stdout.is_empty(),
        "{name}: stdout should be empty: {stdout}"
    );
    for text in expected {
        assert!(
            stderr.contains(text),
            "{name}: missing {text:?} in:\n{stderr}"
        );
    }
    assert!(
        !stderr.contains('\u{1b}'),
        "no ANSI escapes when stderr is not a terminal"
    );
    stderr
}

fn write_plan(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("plan.yaml");
    std::fs::write(&path, text).expect("write plan");
    path
}

fn stdout_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn every_invalid_fixture_exits_2_with_located_errors() {
    let dir = fixture("");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("fixtures folder") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        seen += 1;
        let name = path.file_name().and_then(|n| n.to_str()).expect("name");
        let stderr = assert_invalid(name, &["nothing was sent"]);
        let headline = format!("{name}:");
        let located = stderr.lines().any(|line| {
            line.trim_start_matches(['×', ' ']).starts_with(&headline)
                && line
                    .split(':')
                    .nth(1)
                    .is_some_and(|l| l.parse::<u32>().is_ok())
        });
        assert!(
            located,
            "{name}: no `file:line:column` headline in:\n{stderr}"
        );
    }
    assert!(seen >= 5, "expected the invalid fixtures, found {seen}");
}

#[test]
fn misspelt_need_is_located_and_gets_a_suggestion() {
    assert_invalid(
        "unknown_need.yaml",
        &[
            "unknown_need.yaml:12:13: steps[1].needs[0]: step `restart` needs `push-pakage`, which is not a step of this plan",
            "did you mean `push-package`?",
            "unknown_need.yaml is invalid (1 problem); nothing was sent",
        ],
    );
}

#[test]
fn cycles_are_printed_whole() {
    assert_invalid(
        "cycle.yaml",
        &["cycle.yaml:9:13: steps[0].needs[0]: dependency cycle: a -> b -> c -> a"],
    );
}

#[test]
fn type_errors_name_file_line_and_field_after_cjk_comments() {
    assert_invalid(
        "bad_type.yaml",
        &["bad_type.yaml:7:14: steps[0].timeout: invalid duration `soon`"],
    );
}

#[test]
fn all_errors_of_a_plan_are_printed_together() {
    let stderr = assert_invalid(
        "many_errors.yaml",
        &[
            "many_errors.yaml:2:10: version: unsupported plan version 2",
            "many_errors.yaml:8:25: hosts.web.ips[1]: `0:10.0.0.300` is not a host address",
            "many_errors.yaml:12:14: steps[0].targets: there is no host set `wbe` in `hosts`",
            "many_errors.yaml:13:28: steps[0].rolling.expression: invalid rolling expression `25%%`",
            "many_errors.yaml:14:14: steps[0].timeout: timeout 0s is outside JOB's range",
            "many_errors.yaml:18:27: steps[1].push_file.sources[0].files[0]: step `push`, field `push_file.sources[0].files[0]`: `relative/app.tar.gz` is not an absolute path",
            "many_errors.yaml:21:9: steps[2].id: duplicate step id `push`",
            "many_errors.yaml:22:13: steps[2].script: step `push`: `language` is needed",
            "(8 problems)",
        ],
    );
    let first = stderr.find("version: unsupported").expect("first");
    let last = stderr.find("duplicate step id").expect("last");
    assert!(first < last, "errors come in plan order");
}

#[test]
fn undefined_template_names_say_step_field_and_name() {
    assert_invalid(
        "undefined_var.yaml",
        &[
            "undefined_var.yaml:14:15: steps[0].script.params: step `deploy`, field `script.params`: `verison` is not a declared variable",
            "did you mean `version`?",
        ],
    );
}

#[test]
fn a_step_reference_without_the_needs_edge_names_the_missing_need() {
    assert_invalid(
        "missing_needs_edge.yaml",
        &[
            "steps[1].script.content: step `deploy`, field `script.content`: `steps.build.outputs.tag` reads step `build`, which is not upstream of `deploy`: `needs` of `deploy` is missing `build`",
            "add `needs: [build]` to step `deploy`",
        ],
    );
}

#[test]
fn a_field_the_protocol_cannot_carry_names_field_and_protocol() {
    assert_invalid(
        "protocol_field.yaml",
        &["steps[0].script.windows_interpreter:", "protocol v2"],
    );
    let (code, stdout, _) = run_fixture("protocol_field.yaml", &["--api", "v3"]);
    assert_eq!(code, 0, "v3 carries windows_interpreter");
    assert_eq!(
        stdout,
        "protocol_field.yaml: valid (1 step in 1 wave, protocol v3)\n"
    );
}

const RELEASE: &str = r#"# yaml-language-server: $schema=../schemas/plan.schema.json
version: 1
name: release-web
description: Ship web {{version}}
vars:
  version: { required: true, pattern: '^\d+\.\d+\.\d+$' }
  db_password: { secret: true }
scope: { type: biz, id: 2 }
defaults: { account: root, timeout: 10m }
hosts:
  web: { ips: ["0:10.0.0.1", "0:10.0.0.2"] }
steps:
  - id: build
    script: { language: shell, content: "echo '<BATON_VAR>tag:v{{version}}</BATON_VAR>'" }
    targets: web
    outputs: [tag]
  - id: migrate
    needs: [build]
    script:
      language: shell
      content: "migrate --password {{db_password}} --tag {{steps.build.outputs.tag}}"
      params: "--password {{db_password}}"
    targets: web
  - id: push-package
    needs: [build]
    push_file:
      sources: [{ files: ["/data/release/app-{{version}}.tar.gz"], from: web }]
      target_path: /opt/app/
    targets: web
  - id: restart
    needs: [migrate, push-package]
    script: { language: shell, content: "systemctl restart web" }
    targets: web
"#;

#[test]
fn validate_reports_steps_waves_and_protocol() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_plan(dir.path(), RELEASE);
    let output = baton(
        dir.path(),
        &["validate", "plan.yaml", "--var", "version=1.2.3"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_eq!(
        stdout_of(&output),
        "plan.yaml: valid (4 steps in 3 waves, protocol v3)\n"
    );
}

#[test]
fn missing_and_malformed_variables_are_reported_together() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_plan(dir.path(), RELEASE);
    let output = baton(
        dir.path(),
        &[
            "validate",
            "plan.yaml",
            "--var",
            "verison=1.2.3",
            "--var",
            "db_password=x",
        ],
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("--var verison: variable `verison` is not declared"),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean `version`?"), "{stderr}");
    assert!(
        stderr.contains("plan.yaml:6:3: vars.version: required variable `version` has no value"),
        "{stderr}"
    );

    let output = baton(
        dir.path(),
        &["validate", "plan.yaml", "--var", "version=1.2"],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr_of(&output).contains("--var version: value `1.2` does not match the pattern"));
}

#[test]
fn variables_come_from_a_file_and_the_environment_with_flags_winning() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_plan(dir.path(), RELEASE);
    std::fs::write(dir.path().join("vars.yaml"), "version: 2.0.0\n").expect("vars file");
    let output = assert_cmd::cargo::cargo_bin_cmd!("baton")
        .current_dir(dir.path())
        .env("BATON_VAR_version", "not-a-version")
        .args([
            "plan",
            "plan.yaml",
            "--vars-file",
            "vars.yaml",
            "--format",
            "json",
        ])
        .output()
        .expect("baton runs");
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert!(stdout_of(&output).contains("/data/release/app-2.0.0.tar.gz"));

    let output = assert_cmd::cargo::cargo_bin_cmd!("baton")
        .current_dir(dir.path())
        .env("BATON_VAR_version", "not-a-version")
        .args([
            "plan",
            "plan.yaml",
            "--vars-file",
            "vars.yaml",
            "--var",
            "version=3.0.0",
            "--format",
            "json",
        ])
        .output()
        .expect("baton runs");
    assert!(stdout_of(&output).contains("/data/release/app-3.0.0.tar.gz"));
}

#[test]
fn plan_prints_requests_by_wave_and_never_a_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_plan(dir.path(), RELEASE);
    let secret = "hunter2-s3cret";
    let output = baton(
        dir.path(),
        &[
            "plan",
            "plan.yaml",
            "--var",
            "version=1.2.3",
            "--var",
            &format!("db_password={secret}"),
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let stdout = stdout_of(&output);
    let all = format!("{stdout}{}", stderr_of(&output));
    assert!(!all.contains(secret), "secret leaked:\n{all}");
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("--password {secret}"));
    assert!(!all.contains(&encoded), "base64 of the secret leaked");
    assert!(
        stdout.starts_with(
            "plan release-web (plan.yaml): 4 steps in 3 waves, protocol v3\nShip web 1.2.3\n"
        ),
        "{stdout}"
    );
    assert!(stdout.contains(r#"auth: X-Bkapi-Authorization: {"bk_app_code":"<BK_APP_CODE>","bk_app_secret":"******","bk_username":"<BK_USERNAME>"}"#), "{stdout}");
    assert!(
        stdout.contains("\nwave 1\n  step build\n    POST /api/v3/fast_execute_script\n"),
        "{stdout}"
    );
    assert!(stdout.contains("\nwave 2\n  step migrate\n"), "{stdout}");
    assert!(
        stdout.contains("  step push-package\n    POST /api/v3/fast_transfer_file\n"),
        "{stdout}"
    );
    assert!(stdout.contains("\nwave 3\n  step restart\n"), "{stdout}");
    let masked_params = base64::engine::general_purpose::STANDARD.encode("--password ******");
    assert!(
        stdout.contains(&masked_params),
        "params rendered with the mask:\n{stdout}"
    );
    assert!(stdout.contains("note: at run time baton adds a unique `task_name`"));
}

#[test]
fn plan_json_is_one_document_with_waves_and_bodies() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_plan(dir.path(), RELEASE);
    let output = baton(
        dir.path(),
        &[
            "plan",
            "plan.yaml",
            "--api",
            "v2",
            "--var",
            "version=1.2.3",
            "--var",
            "db_password=pw-xyz",
            "--format",
            "json",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let stdout = stdout_of(&output);
    assert!(!stdout.contains("pw-xyz"));
    let document: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON document");
    assert_eq!(document["protocol"], "v2");
    assert_eq!(
        document["waves"],
        serde_json::json!([["build"], ["migrate", "push-package"], ["restart"]])
    );
    let push = &document["steps"][2];
    assert_eq!(push["id"], "push-package");
    assert_eq!(push["method"], "POST");
    assert_eq!(push["path"], "/api/c/compapi/v2/job/fast_push_file/");
    assert_eq!(push["body"]["bk_app_secret"], "******");
    assert_eq!(push["body"]["bk_app_code"], "<BK_APP_CODE>");
    assert_eq!(push["body"]["file_target_path"], "/opt/app/");
}

#[test]
fn plan_preview_uses_placeholders_for_upstream_results() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_plan(dir.path(), RELEASE);
    let output = baton(
        dir.path(),
        &[
            "plan",
            "plan.yaml",
            "--var",
            "version=1.2.3",
            "--format",
            "json",
        ],
    );
    let document: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("one JSON document");
    let content = document["steps"][1]["body"]["script_content"]
        .as_str()
        .expect("script content");
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(content)
        .expect("base64");
    assert_eq!(
        String::from_utf8(decoded).expect("utf-8"),
        "migrate --password ****** --tag <steps.build.outputs.tag>"
    );
}

#[test]
fn script_files_are_read_relative_to_the_plan() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("scripts")).expect("mkdir");
    std::fs::write(
        dir.path().join("scripts/stop.sh"),
        "systemctl stop {{service}}\n",
    )
    .expect("script");
    let plan = r#"version: 1
name: files
vars:
  service: { default: web }
scope: { type: biz, id: 2 }
defaults: { account: root }
hosts:
  web: { ips: ["0:10.0.0.1"] }
steps:
  - id: stop
    script: { language: shell, file: scripts/stop.sh }
    targets: web
  - id: start
    script: { language: shell, file: scripts/start.sh }
    targets: web
"#;
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).expect("mkdir");
    write_plan(dir.path(), plan);
    let output = baton(&sub, &["validate", "../plan.yaml"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("../plan.yaml:14:38: steps[1].script.file: step `start`: script file"),
        "{stderr}"
    );
    assert!(stderr.contains("scripts/start.sh"), "{stderr}");
    assert!(!stderr.contains("steps[0]"), "stop.sh exists: {stderr}");

    std::fs::write(dir.path().join("scripts/start.sh"), "systemctl start web\n").expect("script");
    let output = baton(&sub, &["plan", "../plan.yaml", "--format", "json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    use base64::Engine as _;
    let expected = base64::engine::general_purpose::STANDARD.encode("systemctl stop web\n");
    assert!(stdout_of(&output).contains(&expected));
}

#[test]
fn unreadable_and_broken_files_are_clean_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = baton(dir.path(), &["validate", "missing.yaml"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr_of(&output).contains("missing.yaml: cannot read"),
        "{}",
        stderr_of(&output)
    );

    for (name, bytes, expected) in [
        ("empty.yaml", &b""[..], "the plan file is empty"),
        ("binary.yaml", &b"version: 1\0\x01\x02"[..], "binary file"),
        ("latin1.yaml", &b"name: caf\xe9\n"[..], "not valid UTF-8"),
    ] {
        std::fs::write(dir.path().join(name), bytes).expect("write");
        let output = baton(dir.path(), &["validate", name]);
        assert_eq!(output.status.code(), Some(2), "{name}");
        let stderr = stderr_of(&output);
        assert!(stderr.contains(expected), "{name}: {stderr}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    }

    let bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n";
    let deep = format!("{}{}", "[".repeat(50_000), "]".repeat(50_000));
    for (name, text) in [("bomb.yaml", bomb.to_owned()), ("deep.yaml", deep)] {
        std::fs::write(dir.path().join(name), text).expect("write");
        let output = baton(dir.path(), &["validate", name]);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{name}: {}",
            stderr_of(&output)
        );
        assert!(stderr_of(&output).contains(&format!("{name}:")), "{name}");
    }
}

#[test]
fn graph_draws_dot_and_mermaid_with_plain_labels() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_plan(dir.path(), RELEASE);
    let output = baton(dir.path(), &["graph", "plan.yaml"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let dot = stdout_of(&output);
    assert!(dot.starts_with("digraph {"), "{dot}");
    assert!(dot.contains("label = \"push-package\""), "{dot}");
    assert!(
        dot.contains("0 -> 1") && dot.contains("1 -> 3") && dot.contains("2 -> 3"),
        "{dot}"
    );
    assert!(!dot.contains("\\\""), "Debug-quoted labels: {dot}");

    let output = baton(dir.path(), &["graph", "plan.yaml", "--format", "mermaid"]);
    assert_eq!(
        stdout_of(&output),
        "flowchart LR\n    s0[\"build\"]\n    s1[\"migrate\"]\n    s2[\"push-package\"]\n    s3[\"restart\"]\n    s0 --> s1\n    s0 --> s2\n    s1 --> s3\n    s2 --> s3\n"
    );

    let output = baton(&fixture(""), &["graph", "cycle.yaml"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr_of(&output).contains("dependency cycle: a -> b -> c -> a"));
}

#[test]
fn warnings_do_not_block() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = RELEASE.replace("timeout: 10m", "timeout: 30");
    write_plan(dir.path(), &plan);
    let output = baton(
        dir.path(),
        &[
            "validate",
            "plan.yaml",
            "--api",
            "v2",
            "--var",
            "version=1.0.0",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains(
            "plan.yaml:9:37: defaults.timeout: timeout 30s is outside the v2 documentation's range"
        ),
        "{stderr}"
    );
    assert_eq!(
        stdout_of(&output),
        "plan.yaml: valid (4 steps in 3 waves, protocol v2)\n"
    );
}

#[test]
fn schema_prints_the_committed_schema() {
    let output = baton(Path::new(env!("CARGO_MANIFEST_DIR")), &["schema"]);
    assert_eq!(output.status.code(), Some(0));
    let schema: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(schema["title"], "Plan");
    assert!(stdout_of(&output).ends_with("}\n"));
}
