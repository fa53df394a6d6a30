//! No secret leaks: secret plan variables (used in script content and params), a
//! sensitive literal parameter (`script.sensitive: true`), the app secret and a user
//! token never appear in anything baton writes — stdout, stderr (with and without
//! `-v`/`-vv`), the JSON report, the JUnit report, the run's journal and record in the
//! state folder, or any other file it leaves behind
//! outside the host sandboxes — nor in `baton plan`. Each value is also searched for
//! in the base64 forms baton sends it in, since a request body echoed in a log would
//! carry it encoded. And masking never reaches the wire: JOB (the emulator) receives
//! the real values where the plan put them, never `******`.

use std::path::Path;

use base64::Engine as _;
use serde_json::Value;

use crate::faults::{baton_run, collect, report_step, text};
use crate::support::{Emulator, baton};

const DB_PASSWORD: &str = "pw-Zq81kLmN0vX";
const API_KEY: &str = "key-7Hj2Rt9wQ4e";
const SENSITIVE: &str = "plainsens-5Tg8Yc1";
const USER_TOKEN: &str = "tok-Ux3Pd6Sa0Kf";
const ACCESS_TOKEN: &str = "acc-Wm4Nb7Cv2Lo";

/// Three steps: one uses both secret variables (content and params) and prints the
/// password as an output; one passes a sensitive literal parameter; the last prints
/// both secrets and fails, so its log is shown in the table and the reports.
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
    targets: web
    outputs: [pw]
    script:
      language: shell
      content: |
        test "$1" = "--key={{{{api_key}}}}" || exit 9
        echo "connecting with {{{{db_password}}}}"
        echo "<BATON_VAR>pw:{{{{db_password}}}}</BATON_VAR>"
      params: "--key={{{{api_key}}}}"
  - id: sens
    needs: [use]
    targets: web
    script:
      language: shell
      content: 'test "${{#1}}" = {sens_len} || exit 9'
      params: "--token={SENSITIVE}"
      sensitive: true
  - id: leak
    needs: [sens]
    targets: web
    script:
      language: shell
      content: |
        echo "password={{{{db_password}}}} key={{{{api_key}}}}"
        echo "params: $1"
        exit 3
      params: "{{{{api_key}}}}"
"#,
        sens_len = "--token=".len() + SENSITIVE.len()
    )
}

/// Every form a value could be written in: itself, and base64 of it at each of the
/// three alignments (what a base64-encoded script or parameter containing it holds).
fn forms(value: &str) -> Vec<String> {
    let engine = base64::engine::general_purpose::STANDARD;
    let mut out = vec![value.to_owned()];
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
    out
}

/// Fails naming every place a secret (or a base64 form of it) appears.
fn assert_clean(place: &str, haystack: &str, secrets: &[&str]) {
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

/// Every file under `dir` except the plan itself and the host sandboxes (what the
/// scripts write there is theirs).
fn written_files(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        for entry in entries.flatten() {
            let p = entry.path();
            if p.file_name()
                .is_some_and(|n| n == "sandbox" || n == "plan.yaml")
            {
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

/// What JOB received for each step's script: `(content, params)` decoded.
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

struct Creds {
    name: &'static str,
    world_tokens: &'static str,
    env: Vec<(&'static str, &'static str)>,
    secrets: Vec<&'static str>,
}

fn run_and_search(api: &str, creds: &Creds, verbosity: &[&str]) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("plan.yaml"), plan(api)).expect("plan");
    let emu = Emulator::start(
        &format!(
            "credentials:\n  apps: [{{ code: baton, secret: {} }}]\n  users: [admin]\n  tokens: {}\n",
            crate::faults::APP_SECRET,
            creds.world_tokens
        ),
        &dir.path().join("sandbox"),
    );
    let mut cmd = baton_run(dir.path(), &emu.url(), verbosity);
    cmd.arg("--log-file")
        .arg(dir.path().join("baton.log"))
        .arg("--var")
        .arg(format!("api_key={API_KEY}"))
        .env("BATON_VAR_db_password", DB_PASSWORD)
        .env_remove("BK_USERNAME")
        .env_remove("BK_APP_CODE")
        .env_remove("BK_APP_SECRET");
    for (k, v) in &creds.env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("spawn baton");
    let output = collect(child).join().expect("baton ran");
    let label = format!("{api} {} {verbosity:?}", creds.name);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{label}: only `leak` fails\n{}",
        text(&output)
    );
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("report.json")).expect("report"),
    )
    .expect("report JSON");
    assert_eq!(
        report_step(&report, "use")["status"],
        "succeeded",
        "{label}"
    );
    assert_eq!(
        report_step(&report, "sens")["status"],
        "succeeded",
        "{label}"
    );
    assert_eq!(report_step(&report, "leak")["status"], "failed", "{label}");
    // The masked output is still there, proving the values went through the masker.
    assert_eq!(
        report_step(&report, "use")["outputs"]["pw"],
        "******",
        "{label}"
    );
    let leak = report_step(&report, "leak").to_string();
    assert!(leak.contains("password=******"), "{label}: {leak}");

    let mut secrets = vec![DB_PASSWORD, API_KEY, SENSITIVE];
    secrets.extend(&creds.secrets);
    let out = String::from_utf8_lossy(&output.stdout);
    let err = String::from_utf8_lossy(&output.stderr);
    assert_clean(&format!("{label} stdout"), &out, &secrets);
    assert_clean(&format!("{label} stderr"), &err, &secrets);
    let files = written_files(dir.path());
    for expected in [
        "junit.xml",
        "report.json",
        "journal.jsonl",
        "run.json",
        "baton.log",
    ] {
        assert!(
            files.iter().any(|(p, _)| p.ends_with(expected)),
            "{label}: {expected} searched too"
        );
    }
    for (path, content) in &files {
        assert_clean(&format!("{label} {path}"), content, &secrets);
    }

    // The wire carries the real values where the plan put them, never the mask.
    let scripts = received_scripts(&emu);
    assert_eq!(scripts.len(), 3, "{label}: three submissions");
    let (use_content, use_params, _) = &scripts[0];
    assert!(
        use_content.contains(&format!("connecting with {DB_PASSWORD}")),
        "{label}: {use_content}"
    );
    assert_eq!(use_params, &format!("--key={API_KEY}"), "{label}");
    let (_, sens_params, sens_body) = &scripts[1];
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
            ("BK_APP_SECRET", crate::faults::APP_SECRET),
            ("BK_TOKEN", USER_TOKEN),
        ],
        secrets: vec![crate::faults::APP_SECRET, USER_TOKEN],
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
                .env("BK_APP_SECRET", crate::faults::APP_SECRET)
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
                &[
                    DB_PASSWORD,
                    API_KEY,
                    SENSITIVE,
                    crate::faults::APP_SECRET,
                    USER_TOKEN,
                ],
            );
        }
    }
}
