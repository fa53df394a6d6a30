//! No secret leaks: secret plan variables (used in script content, params, a step's
//! `task_name` and `name`), a sensitive literal parameter (`script.sensitive: true`)
//! that its script echoes into JOB's log, the app secret, a user or access token and
//! the callback token never appear in anything baton writes or prints — stdout and
//! stderr (with and without `-v`/`-vv`), the `--log-file` file, the JSON and JUnit
//! reports, every file under the state folder (journal, record, stored plan copy,
//! locks) — for `baton run`, `baton resume last` of the failed run, `baton runs` and
//! `baton runs show last` (text and `--json`), nor in `baton plan`.
//!
//! Each value is searched as itself, JSON-escaped, XML-escaped, URL-encoded and
//! base64-encoded (at each alignment), and its first 8 characters in the same textual
//! forms, so a cut that left part of a secret is found too. The values carry the
//! characters those encodings change, and prefixes that occur nowhere else.
//!
//! And masking never reaches the wire: JOB (the emulator) receives the real values
//! where the plan put them — script content, parameters, the task name — never `******`.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use base64::Engine as _;
use serde_json::Value;

use crate::faults::{collect, free_port};
use crate::support::{Emulator, baton, step as report_step, text};

/// Goes through the environment into a quoted heredoc: any character is safe, so it
/// carries every character JSON, XML and URL encodings change.
const DB_PASSWORD: &str = r#"pw-Zq81"kL&m<N0'v\X>/+"#;
/// Goes through a shell parameter string: only shell-safe characters, some of which
/// URL encoding changes.
const API_KEY: &str = "key-7Hj2+Rt9/wQ4e@x";
const SENSITIVE: &str = "plainsens-5Tg8+Yc1/z";
const APP_SECRET: &str = "app-Sx9Qe2Lr5Tz";
const USER_TOKEN: &str = "tok-Ux3Pd6Sa0Kf";
const ACCESS_TOKEN: &str = "acc-Wm4Nb7Cv2Lo";

/// Three steps: `use` takes both secret variables (content, params, task name, name)
/// and prints the password as an output; after it, `sens` passes a sensitive literal
/// parameter, echoes it (also as an output), checks its length and fails, and `leak` prints both secrets and its parameter, then fails: their
/// logs are shown in the table and the reports.
fn plan(api: &str) -> String {
    format!(
        r#"version: 1
name: secrets
api: {api}
scope: {{ type: biz, id: 2 }}
defaults: {{ account: root, timeout: 120 }}
vars:
  db_password: {{ secret: true }}
  api_key: {{ secret: true }}
hosts:
  web: {{ ips: ["0:10.0.0.1"] }}
steps:
  - id: use
    name: "use {{{{db_password}}}}"
    task_name: "deploy {{{{api_key}}}}"
    targets: web
    outputs: [pw]
    script:
      language: shell
      content: |
        test "$1" = "--key={{{{api_key}}}}" || exit 9
        cat <<'EOF'
        connecting with {{{{db_password}}}}
        <BATON_VAR>pw:{{{{db_password}}}}</BATON_VAR>
        EOF
      params: "--key={{{{api_key}}}}"
  - id: sens
    needs: [use]
    on_failure: continue
    targets: web
    outputs: [tok]
    script:
      language: shell
      content: |
        printf 'sensitive: %s\n' "$1"
        printf '<BATON_VAR>tok:%s</BATON_VAR>\n' "$1"
        test "${{#1}}" = {sens_len} && echo "length ok"
        exit 4
      params: "--token={SENSITIVE}"
      sensitive: true
  - id: leak
    needs: [use]
    targets: web
    script:
      language: shell
      content: |
        cat <<'EOF'
        password={{{{db_password}}}} key={{{{api_key}}}}
        EOF
        printf 'params: %s\n' "$1"
        exit 3
      params: "{{{{api_key}}}}"
"#,
        sens_len = "--token=".len() + SENSITIVE.len()
    )
}

/// `value` JSON-escaped (inside a string).
fn json_escaped(value: &str) -> String {
    let quoted = serde_json::to_string(value).expect("a string serializes");
    quoted[1..quoted.len() - 1].to_owned()
}

/// `value` XML-escaped: as element text (`'` and `"` as they are), and as an
/// attribute in both apostrophe styles.
fn xml_escaped(value: &str) -> Vec<String> {
    let text = value
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let attribute = text.replace('"', "&quot;");
    vec![
        attribute.replace('\'', "&apos;"),
        attribute.replace('\'', "&#39;"),
        text,
    ]
}

/// `value` percent-encoded (everything but RFC 3986's unreserved characters).
fn url_encoded(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The textual forms of `value`: itself, JSON-escaped, XML-escaped, URL-encoded.
fn textual_forms(value: &str) -> Vec<String> {
    let mut out = vec![value.to_owned(), json_escaped(value), url_encoded(value)];
    out.extend(xml_escaped(value));
    out
}

/// Every form a value could be written in: its textual forms, base64 of it at each of
/// the three alignments (what a base64-encoded script or parameter containing it
/// holds), and the textual forms of its first 8 characters.
fn forms(value: &str) -> Vec<String> {
    let engine = base64::engine::general_purpose::STANDARD;
    let mut out = textual_forms(value);
    for pad in 0..3 {
        let padded = format!("{}{value}", "#".repeat(pad));
        let encoded = engine.encode(padded.as_bytes());
        // Drop the characters touched by the padding prefix and the tail: what remains
        // is fixed by the value alone.
        let skip = (pad * 4).div_ceil(3);
        let keep = encoded.len().saturating_sub(skip + 4);
        if keep >= 8 {
            out.push(encoded[skip..skip + keep].to_owned());
        }
    }
    let prefix: String = value.chars().take(8).collect();
    out.extend(textual_forms(&prefix));
    out.sort();
    out.dedup();
    out
}

#[test]
fn the_searched_forms_differ_from_the_values() {
    // Otherwise the escaped and encoded searches would prove nothing.
    assert_eq!(json_escaped(DB_PASSWORD), r#"pw-Zq81\"kL&m<N0'v\\X>/+"#);
    assert!(xml_escaped(DB_PASSWORD).iter().all(|x| x.contains("&amp;")));
    assert_eq!(url_encoded(API_KEY), "key-7Hj2%2BRt9%2FwQ4e%40x");
    assert_eq!(url_encoded(SENSITIVE), "plainsens-5Tg8%2BYc1%2Fz");
    assert!(forms(DB_PASSWORD).len() >= 10, "{:?}", forms(DB_PASSWORD));
}

/// Fails naming every place a secret (or a form of it) appears.
fn assert_clean(place: &str, haystack: &str, secrets: &[String]) {
    let mut found = Vec::new();
    for secret in secrets {
        for form in forms(secret) {
            if haystack.contains(&form) {
                found.push(format!("`{secret}` (as `{form}`)"));
            }
        }
    }
    assert!(
        found.is_empty(),
        "{place} leaks {}:\n{haystack}",
        found.join(", ")
    );
}

/// Every file under `dir` except the plan the test wrote and the host sandboxes (what
/// the scripts write there is theirs). The run folder's copy of the plan is searched.
fn written_files(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    let plan = dir.join("plan.yaml");
    while let Some(path) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        for entry in entries.flatten() {
            let p = entry.path();
            if p == plan || p.file_name().is_some_and(|n| n == "sandbox") {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                out.push((
                    p.display().to_string(),
                    String::from_utf8_lossy(&bytes).into_owned(),
                ));
            }
        }
    }
    out
}

/// What JOB received for each step's script: `(content, params, body)`, content and
/// params decoded.
fn received_scripts(emu: &Emulator) -> Vec<(String, String, Value)> {
    let engine = base64::engine::general_purpose::STANDARD;
    let decode = |v: &Value| {
        v.as_str()
            .and_then(|s| engine.decode(s).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    emu.all_requests()
        .into_iter()
        .filter(|r| r["api"] == "fast_execute_script")
        .map(|r| {
            let body = r["body"].clone();
            let params = if body["script_param"].is_string() {
                decode(&body["script_param"])
            } else {
                decode(&body["script_params"])
            };
            (decode(&body["script_content"]), params, body)
        })
        .collect()
}

/// The callback tokens JOB was given (the last segment of each callback URL).
fn callback_tokens(emu: &Emulator) -> Vec<String> {
    let mut tokens: Vec<String> = emu
        .all_requests()
        .iter()
        .filter_map(|r| {
            let body = &r["body"];
            let url = body["callback_url"]
                .as_str()
                .or_else(|| body["bk_callback_url"].as_str())?;
            Some(url.rsplit('/').next()?.to_owned())
        })
        .collect();
    tokens.sort();
    tokens.dedup();
    tokens
}

struct Creds {
    name: &'static str,
    world_tokens: &'static str,
    env: Vec<(&'static str, &'static str)>,
    secrets: Vec<&'static str>,
}

/// `baton run` (or `baton resume last`) against `emu`, with the plan's secret inputs
/// and the credentials of `creds`, reports beside the plan under `name`.
fn session(dir: &Path, emu: &Emulator, creds: &Creds, name: &str, args: &[&str]) -> Command {
    let port = free_port();
    let mut cmd = baton(dir);
    cmd.args(args)
        .arg("--endpoint")
        .arg(emu.url())
        .arg("--callback-listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--callback-url")
        .arg(format!("http://127.0.0.1:{port}"))
        .arg("--report")
        .arg(dir.join(format!("{name}.json")))
        .arg("--junit")
        .arg(dir.join(format!("{name}.xml")))
        .arg("--var")
        .arg(format!("api_key={API_KEY}"))
        .env("BATON_VAR_db_password", DB_PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in &creds.env {
        cmd.env(k, v);
    }
    cmd
}

fn output_of(cmd: &mut Command) -> Output {
    collect(cmd.spawn().expect("spawn baton"))
        .join()
        .expect("baton ran")
}

fn run_and_search(api: &str, creds: &Creds, verbosity: &[&str]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    std::fs::write(dir.join("plan.yaml"), plan(api)).expect("plan");
    let emu = Emulator::start(
        &format!(
            "credentials:\n  apps: [{{ code: baton, secret: {APP_SECRET} }}]\n  users: [admin]\n  tokens: {}\n",
            creds.world_tokens
        ),
        &dir.join("sandbox"),
    );
    let label = format!("{api} {} {verbosity:?}", creds.name);
    let plan_path = dir.join("plan.yaml");
    let plan_arg = plan_path.to_str().expect("utf-8 path");
    let log_file = dir.join("baton.log");
    let log_arg = log_file.to_str().expect("utf-8 path");

    // The run writes its log to the file; the resume logs to stderr, so both of the
    // log's writers are searched.
    let mut run_args = vec!["run", plan_arg, "--log-file", log_arg];
    run_args.extend(verbosity);
    let run = output_of(&mut session(dir, &emu, creds, "report", &run_args));
    assert_eq!(
        run.status.code(),
        Some(1),
        "{label}: `sens` and `leak` fail\n{}",
        text(&run)
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).expect("report"))
            .expect("report JSON");
    assert_eq!(
        report_step(&report, "use")["status"],
        "succeeded",
        "{label}"
    );
    assert_eq!(report_step(&report, "sens")["status"], "failed", "{label}");
    assert_eq!(report_step(&report, "leak")["status"], "failed", "{label}");
    // The masks are there, proving the values went through the masker and the
    // scripts printed them.
    assert_eq!(
        report_step(&report, "use")["outputs"]["pw"],
        "******",
        "{label}"
    );
    assert_eq!(
        report_step(&report, "sens")["outputs"]["tok"],
        "******",
        "{label}"
    );
    let sens = report_step(&report, "sens").to_string();
    assert!(
        sens.contains("sensitive: ******") && sens.contains("length ok"),
        "{label}: the parameter arrived whole and was echoed masked: {sens}"
    );
    let leak = report_step(&report, "leak").to_string();
    assert!(
        leak.contains("password=****** key=******") && leak.contains("params: ******"),
        "{label}: {leak}"
    );
    let table = String::from_utf8_lossy(&run.stdout);
    assert!(
        table.contains("sensitive: ******") && table.contains("params: ******"),
        "{label}: the table shows the log tails: {table}"
    );
    let run_id = report["run_id"].as_str().expect("run id").to_owned();
    // The journal and the report hold the task name masked, with the suffix that
    // names run, step and attempt intact.
    assert_eq!(
        report_step(&report, "use")["task_names"][0],
        format!("deploy ****** [baton {run_id} use#1]"),
        "{label}"
    );

    let mut resume_args = vec!["resume", "last"];
    resume_args.extend(verbosity);
    let resume = output_of(&mut session(dir, &emu, creds, "resumed", &resume_args));
    assert_eq!(
        resume.status.code(),
        Some(1),
        "{label}: the resumed `sens` and `leak` fail again\n{}",
        text(&resume)
    );
    let resumed = std::fs::read_to_string(dir.join("resumed.json")).expect("resume report");
    assert!(
        resumed.contains("params: ******") && resumed.contains("sensitive: ******"),
        "{label}: the resumed steps ran: {resumed}"
    );

    let mut outputs = vec![("run", run), ("resume", resume)];
    for args in [
        &["runs"][..],
        &["runs", "show", "last"][..],
        &["runs", "show", "last", "--json"][..],
    ] {
        let shown = baton(dir).args(args).output().expect("baton runs");
        assert_eq!(
            shown.status.code(),
            Some(0),
            "{label} {args:?}: {}",
            text(&shown)
        );
        outputs.push((args.last().copied().unwrap_or_default(), shown));
    }
    let shown = String::from_utf8_lossy(&outputs[3].1.stdout).into_owned();
    assert!(
        shown.contains("params: ******"),
        "{label}: runs show: {shown}"
    );

    let mut secrets: Vec<String> = [DB_PASSWORD, API_KEY, SENSITIVE]
        .iter()
        .chain(&creds.secrets)
        .map(|s| (*s).to_owned())
        .collect();
    let tokens = callback_tokens(&emu);
    assert_eq!(tokens.len(), 2, "{label}: one callback token per session");
    secrets.extend(tokens);
    for (what, output) in &outputs {
        let out = String::from_utf8_lossy(&output.stdout);
        let err = String::from_utf8_lossy(&output.stderr);
        assert_clean(&format!("{label} {what} stdout"), &out, &secrets);
        assert_clean(&format!("{label} {what} stderr"), &err, &secrets);
    }
    let files = written_files(dir);
    for expected in [
        "report.json",
        "report.xml",
        "resumed.json",
        "resumed.xml",
        "journal.jsonl",
        "run.json",
        "plan.yaml",
        "baton.log",
    ] {
        assert!(
            files.iter().any(|(p, _)| p.ends_with(expected)),
            "{label}: {expected} searched too"
        );
    }
    let log = std::fs::read_to_string(&log_file).unwrap_or_default();
    assert!(
        log.contains("step leak failed"),
        "{label}: the log file holds the progress lines: {log}"
    );
    for (path, content) in &files {
        assert_clean(&format!("{label} {path}"), content, &secrets);
    }
    let journal = files
        .iter()
        .find(|(p, _)| p.ends_with("journal.jsonl"))
        .map(|(_, c)| c.clone())
        .unwrap_or_default();
    assert!(
        journal.contains(&format!("\"deploy ****** [baton {run_id} use#1]\"")),
        "{label}: the journal holds the masked task name: {journal}"
    );

    // The wire carries the real values where the plan put them, never the mask.
    let scripts = received_scripts(&emu);
    assert_eq!(
        scripts.len(),
        5,
        "{label}: three submissions, then `sens` and `leak` again"
    );
    let sent = |marker: &str| -> Vec<&(String, String, Value)> {
        scripts
            .iter()
            .filter(|(c, _, _)| c.contains(marker))
            .collect()
    };
    let [(use_content, use_params, use_body)] = sent("connecting with")[..] else {
        panic!("{label}: `use` sent once: {scripts:?}");
    };
    assert!(
        use_content.contains(&format!("connecting with {DB_PASSWORD}")),
        "{label}: {use_content}"
    );
    assert_eq!(use_params, &format!("--key={API_KEY}"), "{label}");
    assert_eq!(
        use_body["task_name"],
        format!("deploy {API_KEY} [baton {run_id} use#1]"),
        "{label}: JOB gets the real task name"
    );
    let sens_sent = sent("sensitive: ");
    assert_eq!(sens_sent.len(), 2, "{label}: `sens` run and resumed");
    for (_, sens_params, sens_body) in sens_sent {
        assert_eq!(sens_params, &format!("--token={SENSITIVE}"), "{label}");
        let flag = if sens_body["is_param_sensitive"].is_null() {
            &sens_body["param_sensitive"]
        } else {
            &sens_body["is_param_sensitive"]
        };
        assert!(
            flag == 1 || flag == true,
            "{label}: sensitive flag sent: {sens_body}"
        );
    }
    let leak_sent = sent("params: ");
    assert_eq!(leak_sent.len(), 2, "{label}: `leak` run and resumed");
    for (content, params, _) in leak_sent {
        assert_eq!(params, API_KEY, "{label}");
        assert!(
            content.contains(&format!("password={DB_PASSWORD} key={API_KEY}")),
            "{label}: {content}"
        );
    }
    for request in emu.all_requests() {
        let raw = request.to_string();
        assert!(!raw.contains("******"), "{label}: a mask was sent: {raw}");
    }
    for (content, params, _) in &scripts {
        assert!(
            !content.contains("******") && !params.contains("******"),
            "{label}: a mask was sent in a script: {content} {params}"
        );
    }
}

fn credential_sets(api: &str) -> Vec<Creds> {
    let app_and_token = Creds {
        name: "app secret + BK_TOKEN",
        world_tokens: "[{ token: tok-Ux3Pd6Sa0Kf, user: admin }]",
        env: vec![
            ("BK_APP_CODE", "baton"),
            ("BK_APP_SECRET", APP_SECRET),
            ("BK_TOKEN", USER_TOKEN),
        ],
        secrets: vec![APP_SECRET, USER_TOKEN],
    };
    if api == "v2" {
        // ESB takes app credentials only.
        return vec![app_and_token];
    }
    vec![
        app_and_token,
        Creds {
            name: "BK_ACCESS_TOKEN",
            world_tokens: "[{ token: acc-Wm4Nb7Cv2Lo, user: admin }]",
            env: vec![("BK_ACCESS_TOKEN", ACCESS_TOKEN)],
            secrets: vec![ACCESS_TOKEN],
        },
    ]
}

fn secrets_never_leak(api: &str) {
    let sets = credential_sets(api);
    std::thread::scope(|scope| {
        let handles: Vec<_> = sets
            .iter()
            .flat_map(|creds| {
                [&[][..], &["-v"][..], &["-vv"][..]]
                    .into_iter()
                    .map(move |verbosity| (creds, verbosity))
            })
            .map(|(creds, verbosity)| scope.spawn(move || run_and_search(api, creds, verbosity)))
            .collect();
        for h in handles {
            if let Err(panic) = h.join() {
                std::panic::resume_unwind(panic);
            }
        }
    });
}

#[test]
fn secrets_never_leak_v2() {
    secrets_never_leak("v2");
}

#[test]
fn secrets_never_leak_v3() {
    secrets_never_leak("v3");
}

#[test]
fn secrets_never_leak_v4() {
    secrets_never_leak("v4");
}

/// `baton plan` (text and JSON) shows the requests with every secret masked, also
/// inside base64-encoded script content and parameters.
#[test]
fn baton_plan_never_shows_a_secret() {
    for api in ["v2", "v3", "v4"] {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("plan.yaml"), plan(api)).expect("plan");
        for format in ["text", "json"] {
            let output = baton(dir.path())
                .arg("plan")
                .arg(dir.path().join("plan.yaml"))
                .arg("--format")
                .arg(format)
                .arg("--var")
                .arg(format!("api_key={API_KEY}"))
                .env("BATON_VAR_db_password", DB_PASSWORD)
                .env("BK_APP_CODE", "baton")
                .env("BK_APP_SECRET", APP_SECRET)
                .env("BK_TOKEN", USER_TOKEN)
                .env_remove("BK_USERNAME")
                .output()
                .expect("baton plan");
            let all = text(&output);
            assert_eq!(output.status.code(), Some(0), "{api} {format}: {all}");
            let mut shown = all.clone();
            // Decode every base64-looking word, so an encoded secret is found too.
            let engine = base64::engine::general_purpose::STANDARD;
            for word in all.split(|c: char| !(c.is_ascii_alphanumeric() || "+/=".contains(c))) {
                if word.len() >= 8
                    && let Ok(bytes) = engine.decode(word)
                {
                    shown.push('\n');
                    shown.push_str(&String::from_utf8_lossy(&bytes));
                }
            }
            assert_clean(
                &format!("baton plan {api} {format}"),
                &shown,
                &[DB_PASSWORD, API_KEY, SENSITIVE, APP_SECRET, USER_TOKEN].map(str::to_owned),
            );
        }
    }
}

/// An invalid plan is reported with snippets of its source; the lines they quote may
/// hold a secret default or a sensitive literal, which must not reach the terminal (or
/// cron's mail) while the error still points at the right place.
#[test]
fn an_invalid_plan_is_reported_without_its_secrets() {
    const DEFAULT: &str = "Hidden-Def4ult-91";
    const LITERAL: &str = "Sens-Literal-77xq";
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = dir.path().join("plan.yaml");
    std::fs::write(
        &plan,
        format!(
            "version: 1\nname: leaky\nscope: {{ type: biz, id: 2 }}\nvars:\n  db_password: {{ secret: true, default: \"{DEFAULT}\", pattern: '^[0-9]+$' }}\nhosts: {{ web: {{ ips: [\"0:10.0.0.1\"] }} }}\nsteps:\n  - {{ id: s, needs: [nope], targets: web, script: {{ language: shell, content: echo, params: \"--token={LITERAL}\", sensitive: true }} }}\n"
        ),
    )
    .expect("plan");
    for command in ["validate", "plan", "run"] {
        let out = baton(dir.path())
            .arg(command)
            .arg(&plan)
            .output()
            .expect("baton");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        assert!(
            stderr.contains("nope"),
            "{command}: the error is still shown: {stderr}"
        );
        assert!(
            stderr.contains("plan.yaml:8:"),
            "{command}: located: {stderr}"
        );
        for secret in [DEFAULT, LITERAL] {
            for shown in [secret, &secret[..8]] {
                assert!(
                    !stderr.contains(shown) && !stdout.contains(shown),
                    "{command} shows {shown}: {stderr}"
                );
            }
        }
    }
}
