//! Operator mistakes are refused before anything is sent: an unusable `--report`,
//! `--junit`, `--log-file` or `--state-dir` of `baton run` and `baton resume`, and a
//! bad world file loaded by `baton emulator --world` or `baton run --world`. Each exits
//! 2 with a message naming what is wrong and where, carries no internal diagnostic
//! code, and — proved through the emulator's request log — sends JOB nothing.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::support::{BATON, Emulator, app_credentials, baton, text};

const SECRET: &str = "mistakes-app-secret";

const PLAN: &str = r#"version: 1
name: mistakes
api: v3
scope: { type: biz, id: 2 }
defaults: { account: root, timeout: 60 }
hosts:
  web: { ips: ["0:10.0.0.1"] }
steps:
  - id: hello
    targets: web
    script: { language: shell, content: "echo hello" }
"#;

/// A scratch folder with [`PLAN`] and a standalone emulator accepting app `baton`.
struct Bench {
    dir: tempfile::TempDir,
    emulator: Emulator,
}

impl Bench {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("plan.yaml"), PLAN).expect("write plan");
        let world = format!(
            "credentials:\n  apps: [{{ code: baton, secret: {SECRET} }}]\n  users: [admin]\n"
        );
        let emulator = Emulator::start(&world, &dir.path().join("sandbox"));
        Bench { dir, emulator }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `baton <command> [plan] --endpoint <emulator> <extra>` with app credentials.
    fn baton(&self, command: &str, target: &Path, extra: &[&Path]) -> Output {
        let mut cmd = baton(self.dir.path());
        cmd.arg(command)
            .arg(target)
            .arg("--endpoint")
            .arg(self.emulator.url())
            .arg("--wait")
            .arg("poll")
            .args(extra);
        app_credentials(&mut cmd, SECRET);
        cmd.output().expect("run baton")
    }

    fn run(&self, extra: &[&Path]) -> Output {
        self.baton("run", &self.path("plan.yaml"), extra)
    }

    fn requests(&self) -> usize {
        self.emulator.all_requests().len()
    }
}

/// The run was refused as a usage mistake naming `flag` and `path` (and `why`), with no
/// internal code, and the emulator saw no more than `requests_before`.
fn assert_refused(bench: &Bench, output: &Output, flag: &str, path: &Path, why: &str) {
    let seen = text(output);
    assert_eq!(output.status.code(), Some(2), "{seen}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let named = format!("{flag} {}", path.display());
    assert!(stderr.contains(&named), "`{named}` not named:\n{seen}");
    assert!(stderr.contains(why), "`{why}` not said:\n{seen}");
    assert!(!stderr.contains("baton::"), "internal code shown:\n{seen}");
    assert_eq!(bench.requests(), 0, "JOB was contacted:\n{seen}");
}

/// `--report`, `--junit` or `--log-file` into a missing folder, given as a folder, and
/// under a file: each refused, nothing sent, nothing created.
fn output_file_mistakes(flag: &str) {
    let bench = Bench::new();
    let missing = bench.path("nope/out");
    let output = bench.run(&[Path::new(flag), &missing]);
    let why = format!("the folder {} does not exist", bench.path("nope").display());
    assert_refused(&bench, &output, flag, &missing, &why);
    assert!(!bench.path("nope").exists(), "the folder was created");

    let folder = bench.path("reports");
    std::fs::create_dir(&folder).expect("mkdir");
    let output = bench.run(&[Path::new(flag), &folder]);
    assert_refused(&bench, &output, flag, &folder, "it is a folder");

    let file = bench.path("a-file");
    std::fs::write(&file, "not a folder").expect("write");
    let under_file = file.join("out");
    let output = bench.run(&[Path::new(flag), &under_file]);
    let why = format!("{} is not a folder", file.display());
    assert_refused(&bench, &output, flag, &under_file, &why);
    assert_eq!(
        std::fs::read_to_string(&file).expect("read"),
        "not a folder"
    );
}

#[test]
fn report_path_mistakes_are_refused_before_anything_is_sent() {
    output_file_mistakes("--report");
}

#[test]
fn junit_path_mistakes_are_refused_before_anything_is_sent() {
    output_file_mistakes("--junit");
}

#[test]
fn log_file_mistakes_are_refused_before_anything_is_sent() {
    output_file_mistakes("--log-file");
}

#[test]
fn a_state_dir_that_is_a_file_is_refused_before_anything_is_sent() {
    let bench = Bench::new();
    let file = bench.path("state-file");
    std::fs::write(&file, "not a folder").expect("write");
    let output = bench.run(&[Path::new("--state-dir"), &file]);
    assert_refused(&bench, &output, "--state-dir", &file, "not a folder");

    let under_file = file.join("baton");
    let output = bench.run(&[Path::new("--state-dir"), &under_file]);
    let why = format!("{} is a file, not a folder", file.display());
    assert_refused(&bench, &output, "--state-dir", &under_file, &why);
    assert_eq!(
        std::fs::read_to_string(&file).expect("read"),
        "not a folder"
    );
}

/// The same checks guard `baton resume`: after a real run, a resume with a report
/// into a missing folder is refused and sends nothing more.
#[test]
fn resume_checks_its_output_paths_before_anything_is_sent() {
    let bench = Bench::new();
    let first = bench.run(&[]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let before = bench.requests();
    assert!(before > 0, "the good run reached the emulator");

    let missing = bench.path("nope/report.json");
    let output = bench.baton(
        "resume",
        Path::new("last"),
        &[
            Path::new("--step"),
            Path::new("hello"),
            Path::new("--report"),
            &missing,
        ],
    );
    let seen = text(&output);
    assert_eq!(output.status.code(), Some(2), "{seen}");
    assert!(
        seen.contains(&format!("--report {}", missing.display())),
        "{seen}"
    );
    assert!(!seen.contains("baton::"), "{seen}");
    assert_eq!(
        bench.requests(),
        before,
        "the resume contacted JOB:\n{seen}"
    );
}

/// An existing report survives the check: the run refused afterwards (here for an
/// invalid plan, refused with exit 2 as ever) leaves the previous report as it was; a
/// good run then replaces it.
#[test]
fn an_existing_report_is_kept_when_the_run_is_refused() {
    let bench = Bench::new();
    let report = bench.path("report.json");
    std::fs::write(&report, "{\"previous\": true}\n").expect("write");
    std::fs::write(bench.path("plan.yaml"), PLAN.replace("steps:", "stepz:")).expect("plan");
    let output = bench.run(&[Path::new("--report"), &report]);
    let seen = text(&output);
    assert_eq!(output.status.code(), Some(2), "{seen}");
    assert!(seen.contains("stepz"), "{seen}");
    assert!(!seen.contains("baton::"), "{seen}");
    assert_eq!(
        std::fs::read_to_string(&report).expect("report kept"),
        "{\"previous\": true}\n"
    );
    assert_eq!(bench.requests(), 0, "{seen}");

    std::fs::write(bench.path("plan.yaml"), PLAN).expect("plan");
    let output = bench.run(&[Path::new("--report"), &report]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let written = std::fs::read_to_string(&report).expect("report");
    assert!(written.contains("\"hello\""), "{written}");
}

/// World files with a bad value and a bad field: (name, text, `file:line` suffix, field).
fn bad_worlds() -> Vec<(&'static str, String, &'static str, &'static str)> {
    vec![
        (
            "bad host IP",
            "hosts:\n  - { host_id: 1, cloud: 0, ip: 10.0.0.300 }\n".to_owned(),
            ":2:",
            "hosts[0].ip",
        ),
        (
            "bad host reference",
            "dynamic_groups:\n  - id: g\n    hosts: [\"0:10.0.0.300\"]\n".to_owned(),
            ":3:",
            "dynamic_groups[0].hosts[0]",
        ),
        (
            "host reference without its cloud",
            "topology:\n  - node_type: module\n    id: 1\n    hosts: [\":10.0.0.1\"]\n".to_owned(),
            ":4:",
            "topology[0].hosts[0]",
        ),
        (
            "unknown field",
            "hosts:\n  - { host_id: 1, ip: 10.0.0.1, colour: red }\n".to_owned(),
            ":2:",
            "colour",
        ),
        (
            "bad type",
            "settings:\n  parallel_limit: many\n".to_owned(),
            ":2:",
            "settings.parallel_limit",
        ),
    ]
}

fn assert_world_refused(case: &str, world: &Path, line: &str, field: &str, output: &Output) {
    let seen = text(output);
    assert_eq!(output.status.code(), Some(2), "{case}: {seen}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let place = format!("{}{line}", world.display());
    assert!(
        stderr.contains(&place),
        "{case}: `{place}` not named:\n{seen}"
    );
    assert!(
        stderr.contains(field),
        "{case}: `{field}` not named:\n{seen}"
    );
    assert!(
        !stderr.contains("baton::"),
        "{case}: internal code shown:\n{seen}"
    );
}

#[test]
fn baton_emulator_refuses_a_bad_world_naming_file_line_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let world = dir.path().join("w.yaml");
    for (case, yaml, line, field) in bad_worlds() {
        std::fs::write(&world, &yaml).expect("write world");
        let mut child = Command::new(BATON)
            .args(["emulator", "--listen", "127.0.0.1:0", "--world"])
            .arg(&world)
            .arg("--root")
            .arg(dir.path().join("root"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the emulator");
        // A started emulator says so on its first line and serves until stopped; a
        // refused one closes stdout with nothing on it.
        let mut first = String::new();
        let stdout = child.stdout.take().expect("stdout");
        let _ = BufReader::new(stdout).read_line(&mut first);
        if first.starts_with("baton emulator listening") {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{case}: the emulator started with {yaml}");
        }
        let output = child.wait_with_output().expect("emulator exits");
        assert_world_refused(case, &world, line, field, &output);
    }
}

#[test]
fn baton_run_refuses_a_bad_world_naming_file_line_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("plan.yaml"), PLAN).expect("write plan");
    let world = dir.path().join("w.yaml");
    for (case, yaml, line, field) in bad_worlds() {
        std::fs::write(&world, &yaml).expect("write world");
        let output = baton(dir.path())
            .arg("run")
            .arg(dir.path().join("plan.yaml"))
            .arg("--world")
            .arg(&world)
            .arg("--sandbox")
            .arg(dir.path().join("sandbox"))
            .output()
            .expect("run baton");
        assert_world_refused(case, &world, line, field, &output);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            !stdout.contains("rehearsal on the local JOB emulator"),
            "{case}: the emulator was started:\n{}",
            text(&output)
        );
    }
    // Refused before the run was recorded or its lock taken.
    let runs = dir.path().join("state/runs");
    let recorded = std::fs::read_dir(&runs).map(|d| d.count()).unwrap_or(0);
    assert_eq!(recorded, 0, "a run was recorded in {}", runs.display());
}
