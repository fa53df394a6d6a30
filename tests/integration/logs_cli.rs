//! `baton logs`, shell completions and the man page.

use crate::faults::{APP_SECRET, app_world};
use crate::support::{Emulator, app_credentials, baton, text};

const PLAN: &str = r#"version: 1
name: logs
api: API
scope: { type: biz, id: 2 }
defaults: { account: root, timeout: 120 }
hosts:
  web: { ips: ["0:10.0.0.1", "0:10.0.0.2"] }
steps:
  - id: talk
    targets: web
    script:
      language: shell
      content: |
        for i in $(seq 1 40); do echo "line $i of a long log"; done
"#;

/// Runs a plan against a JOB (the emulator in this process) and reads a step's whole
/// log back with `baton logs`, all of it, per host, with the run's protocol.
#[test]
fn logs_prints_a_steps_full_log_per_host_with_the_runs_protocol() {
    for api in ["v2", "v3", "v4"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let emulator = Emulator::start(
            &app_world(
                "faults:\n  hosts:\n    - { host: \"0:10.0.0.2\", status: 104, exit_code: 3, log: \"first\\nboom: disk full\\n\" }\n",
            ),
            &dir.path().join("sandbox"),
        );
        std::fs::write(dir.path().join("plan.yaml"), PLAN.replace("API", api)).expect("plan");
        let mut run = baton(dir.path());
        run.arg("run")
            .arg(dir.path().join("plan.yaml"))
            .arg("--endpoint")
            .arg(emulator.url())
            .arg("--wait")
            .arg("poll");
        app_credentials(&mut run, APP_SECRET);
        let out = run.output().expect("run");
        assert_eq!(out.status.code(), Some(1), "{api}: {}", text(&out));
        let before = emulator.all_requests().len();

        let mut logs = baton(dir.path());
        logs.args(["logs", "last", "talk"]);
        app_credentials(&mut logs, APP_SECRET);
        let out = logs.output().expect("logs");
        assert_eq!(out.status.code(), Some(0), "{api}: {}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("--- 0:10.0.0.1: success"),
            "{api}: {stdout}"
        );
        for i in [1, 20, 40] {
            assert!(
                stdout.contains(&format!("line {i} of a long log")),
                "{api}: whole log, not a tail: {stdout}"
            );
        }
        assert!(stdout.contains("boom: disk full"), "{api}: {stdout}");
        assert!(!stdout.contains(APP_SECRET));
        // Read with the protocol the run used.
        let asked: Vec<String> = emulator.all_requests()[before..]
            .iter()
            .filter_map(|r| r["path"].as_str().map(str::to_owned))
            .collect();
        let prefix = match api {
            "v2" => "/api/c/compapi/v2/",
            "v3" => "/api/v3/",
            _ => "/api/v4/",
        };
        assert!(
            !asked.is_empty() && asked.iter().all(|p| p.starts_with(prefix)),
            "{api}: {asked:?}"
        );

        let mut one = baton(dir.path());
        one.args(["logs", "last", "talk", "--host", "0:10.0.0.2"]);
        app_credentials(&mut one, APP_SECRET);
        let out = one.output().expect("logs --host");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{api}: {}", text(&out));
        assert!(
            stdout.contains("boom: disk full") && !stdout.contains("0:10.0.0.1"),
            "{stdout}"
        );
    }
}

#[test]
fn logs_of_an_unknown_step_or_a_rehearsal_say_why_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("plan.yaml"), PLAN.replace("API", "v3")).expect("plan");
    let out = baton(dir.path())
        .arg("run")
        .arg(dir.path().join("plan.yaml"))
        .arg("--sandbox")
        .arg(dir.path().join("sandbox"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = baton(dir.path())
        .args(["logs", "last", "nope"])
        .output()
        .expect("logs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no step `nope` (its steps: talk)"));
    let out = baton(dir.path())
        .args(["logs", "last", "talk"])
        .output()
        .expect("logs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("local emulator") && stderr.contains("sandbox"),
        "{stderr}"
    );
}

#[test]
fn completions_and_the_man_page_cover_every_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef baton"),
        ("fish", "complete -c baton"),
    ] {
        let out = baton(dir.path())
            .args(["completions", shell])
            .output()
            .expect("completions");
        assert_eq!(out.status.code(), Some(0));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        for command in ["run", "resume", "runs", "logs", "html"] {
            assert!(script.contains(command), "{shell} lacks {command}");
        }
    }
    let out = baton(dir.path()).arg("man").output().expect("man");
    assert_eq!(out.status.code(), Some(0));
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(
        page.starts_with(".ie") || page.contains(".TH baton"),
        "{page}"
    );
    for command in ["run", "resume", "logs", "completions"] {
        assert!(page.contains(command), "man page lacks {command}");
    }
}
