//! Run state end to end: the journal and run folder a `baton run` leaves, a runner
//! killed with SIGKILL mid-step and `baton resume` finishing the plan with every job run
//! exactly once, the plan lock (exit 75, `--wait-lock`, a dead holder, `concurrency:
//! replace`), history (`baton runs`, `runs show`, `--keep`), `--skip-if-successful-since`,
//! plan-change refusal, `--step`/`--downstream`, secrets kept out of state files, and
//! `--log-file`.
//!
//! The emulator lives in this test process, so jobs outlive the `baton` processes that
//! are killed. Nothing waits on a clock: running jobs are held at the emulator's host
//! checkpoint, and the tests act once `baton` has said what it did.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, ChildStdout, Command, Output, Stdio};

use serde_json::Value;

use crate::support::{Emulator, app_credentials, baton};

/// Held in most tests: the host of the middle step.
const HELD: &str = "0:10.0.0.2";

const WORLD: &str = "credentials:\n  apps: [{ code: baton, secret: s3cret }]\n";

/// a → b → c. `a` and `c` run on 10.0.0.1, `b` on 10.0.0.2 (the held host). Each step
/// appends its name to `/tmp/ran` on its host, so a step that ran twice shows twice;
/// `a` hands an output to `c`.
fn chain_plan(extra: &str) -> String {
    format!(
        r#"version: 1
name: chain
scope: {{ type: biz, id: 2 }}
defaults: {{ account: root }}
{extra}vars:
  version: {{ default: "1.0.0" }}
  token: {{ secret: true }}
hosts:
  one: {{ ips: ["0:10.0.0.1"] }}
  two: {{ ips: ["0:10.0.0.2"] }}
steps:
  - id: a
    targets: one
    outputs: [artifact]
    script:
      language: shell
      content: |
        echo a >> /tmp/ran
        echo "<BATON_VAR>artifact:app-{{{{version}}}}.tgz</BATON_VAR>"
  - id: b
    needs: [a]
    targets: two
    script:
      language: shell
      content: "echo b >> /tmp/ran"
  - id: c
    needs: [b]
    targets: one
    script:
      language: shell
      content: |
        echo c >> /tmp/ran
        echo "{{{{steps.a.outputs.artifact}}}}" > /tmp/artifact
"#
    )
}

/// What these tests read from the shared emulator beyond its own methods.
trait EmulatorExt {
    fn instances_of(&self, id: &str) -> Vec<Value>;
}

impl EmulatorExt for Emulator {
    /// Instances whose task name says they are step `id` of a baton run.
    fn instances_of(&self, id: &str) -> Vec<Value> {
        self.instances()
            .into_iter()
            .filter(|i| {
                i["name"]
                    .as_str()
                    .is_some_and(|n| n.contains(&format!(" {id}#")))
            })
            .collect()
    }
}

/// A scratch folder: plan, state folder, emulator sandbox.
struct Bench {
    dir: tempfile::TempDir,
    emulator: Emulator,
}

impl Bench {
    fn new(plan: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("plan.yaml"), plan).expect("write plan");
        let emulator = Emulator::start(WORLD, &dir.path().join("sandbox"));
        Bench { dir, emulator }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn state(&self) -> PathBuf {
        self.path("state")
    }

    fn host_file(&self, host: &str, path: &str) -> String {
        std::fs::read_to_string(self.emulator.host_path(host, path)).unwrap_or_default()
    }

    /// `baton <args>` against the emulator with this bench's state folder.
    fn baton(&self, args: &[&str]) -> Command {
        let mut cmd = baton(self.dir.path());
        cmd.args(args)
            .env("BATON_ENDPOINT", self.emulator.url())
            .env("BATON_VAR_token", "tok-Zq9-secret");
        app_credentials(&mut cmd, "s3cret");
        cmd
    }

    fn run(&self, extra: &[&str]) -> Output {
        let plan = self.path("plan.yaml");
        let mut args = vec!["run", plan.to_str().expect("utf-8 path")];
        args.extend_from_slice(extra);
        self.baton(&args).output().expect("run baton")
    }

    fn output(&self, args: &[&str]) -> Output {
        self.baton(args).output().expect("run baton")
    }

    /// Starts `baton run` and reads its output until `until` appears.
    fn spawn_run(&self, extra: &[&str], until: &str) -> Running {
        let plan = self.path("plan.yaml");
        let mut args = vec!["run", plan.to_str().expect("utf-8 path")];
        args.extend_from_slice(extra);
        self.spawn(&args, until)
    }

    fn spawn(&self, args: &[&str], until: &str) -> Running {
        let mut child = self
            .baton(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn baton");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let stderr = child.stderr.take().expect("stderr");
        let mut running = Running {
            child,
            stdout,
            stderr: Some(stderr),
            seen: String::new(),
        };
        running.read_until(until);
        running
    }

    /// The run folders' files, concatenated.
    fn state_files(&self) -> String {
        let mut all = String::new();
        let mut stack = vec![self.state()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    all.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
                }
            }
        }
        all
    }
}

/// A `baton` process being watched.
struct Running {
    child: Child,
    stdout: BufReader<ChildStdout>,
    stderr: Option<ChildStderr>,
    seen: String,
}

impl Running {
    /// Reads stdout lines until one contains `until` (panics at end of output).
    fn read_until(&mut self, until: &str) {
        loop {
            let mut line = String::new();
            let n = self.stdout.read_line(&mut line).expect("read stdout");
            if n == 0 {
                let stderr = self.drain_stderr();
                panic!(
                    "baton ended before saying {until:?}:\n{}{stderr}",
                    self.seen
                );
            }
            self.seen.push_str(&line);
            if line.contains(until) {
                return;
            }
        }
    }

    fn drain_stderr(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut stderr) = self.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        }
        text
    }

    /// Waits for the end; returns the exit code and everything printed.
    fn finish(mut self) -> (Option<i32>, String) {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut self.stdout, &mut rest);
        self.seen.push_str(&rest);
        let stderr = self.drain_stderr();
        let status = self.child.wait().expect("wait");
        (status.code(), format!("{}{stderr}", self.seen))
    }

    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn only_run_dir(bench: &Bench) -> PathBuf {
    let runs: Vec<PathBuf> = std::fs::read_dir(bench.state().join("runs"))
        .expect("runs folder")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs[0].clone()
}

#[test]
fn a_run_leaves_its_plan_inputs_and_journal_without_secrets() {
    let bench = Bench::new(&chain_plan(""));
    let out = bench.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let dir = only_run_dir(&bench);
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).expect("run.json"))
            .expect("json");
    assert_eq!(meta["plan"], "chain");
    assert_eq!(meta["inputs"]["version"], "1.0.0");
    assert_eq!(meta["inputs"]["token"], "******");
    assert_eq!(meta["exit_code"], 0);
    assert_eq!(
        meta["fingerprint"]["hash"].as_str().map(str::len),
        Some(64),
        "a sha256"
    );
    assert!(
        std::fs::read_to_string(dir.join("plan.yaml"))
            .expect("plan copy")
            .contains("name: chain")
    );

    let journal = std::fs::read_to_string(dir.join("journal.jsonl")).expect("journal");
    let kinds: Vec<String> = journal
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("each line is JSON")["event"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(kinds.first().map(String::as_str), Some("journal"));
    assert_eq!(kinds.last().map(String::as_str), Some("run_finished"));
    // The intent precedes the answer, for every step.
    for step in ["a", "b", "c"] {
        let at = |kind: &str| {
            journal.lines().position(|l| {
                l.contains(&format!("\"event\":\"{kind}\""))
                    && l.contains(&format!("\"id\":\"{step}\""))
            })
        };
        let (submitting, submitted) = (at("step_submitting"), at("step_submitted"));
        assert!(
            submitting.is_some() && submitting < submitted,
            "{step}: {journal}"
        );
    }
    assert!(journal.contains("\"artifact\":\"app-1.0.0.tgz\""));
    assert!(
        !bench.state_files().contains("tok-Zq9-secret"),
        "a secret value reached the state folder"
    );
}

#[test]
fn a_runner_killed_mid_step_is_resumed_and_every_job_runs_once() {
    let bench = Bench::new(&chain_plan(""));
    bench.emulator.hold_host(HELD);
    let first = bench.spawn_run(&[], "step b submitted (job ");
    first.kill();

    // Nothing recorded an end: the run is abandoned, and resumable.
    let history = bench.output(&["runs"]);
    assert!(text(&history).contains("abandoned"), "{}", text(&history));
    let shown = bench.output(&["runs", "show", "last"]);
    assert!(text(&shown).contains("did not finish"), "{}", text(&shown));

    // The resumed run waits for b's instance; it does not submit b again.
    let resumed = bench.spawn(&["resume", "last"], "re-attached to job");
    bench.emulator.release_host(HELD);
    let (code, seen) = resumed.finish();
    assert_eq!(code, Some(0), "{seen}");

    for step in ["a", "b", "c"] {
        let instances = bench.emulator.instances_of(step);
        assert_eq!(
            instances.len(),
            1,
            "step {step} ran {} times",
            instances.len()
        );
        assert_eq!(instances[0]["status"], 3, "step {step}: {}", instances[0]);
    }
    assert_eq!(bench.emulator.instances().len(), 3);
    assert_eq!(bench.host_file("0:10.0.0.1", "/tmp/ran"), "a\nc\n");
    assert_eq!(bench.host_file(HELD, "/tmp/ran"), "b\n");
    // a's output, restored from the journal, still reached c's template.
    assert_eq!(
        bench.host_file("0:10.0.0.1", "/tmp/artifact"),
        "app-1.0.0.tgz\n"
    );

    let history = text(&bench.output(&["runs"]));
    assert!(history.contains("succeeded (resumed 1x)"), "{history}");
    let shown = text(&bench.output(&["runs", "show", "last"]));
    assert!(shown.contains("3 succeeded"), "{shown}");
}

#[test]
fn a_second_run_is_refused_with_75_then_waits_with_wait_lock() {
    let bench = Bench::new(&chain_plan(""));
    bench.emulator.hold_host(HELD);
    let first = bench.spawn_run(&[], "step b submitted (job ");
    let first_id = first
        .seen
        .lines()
        .find_map(|l| l.split("run ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .expect("run id in the first line");

    let refused = bench.run(&[]);
    assert_eq!(refused.status.code(), Some(75), "{}", text(&refused));
    let message = text(&refused);
    assert!(message.contains(&format!("run {first_id}")), "{message}");
    assert!(
        message.contains(&format!("pid {}", first.child.id())),
        "{message}"
    );
    assert!(message.contains("started 20"), "{message}");

    // A waiting run starts once the first one is done.
    let mut waiting = bench
        .baton(&[
            "run",
            bench.path("plan.yaml").to_str().expect("utf-8"),
            "--wait-lock",
            "10m",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stderr = BufReader::new(waiting.stderr.take().expect("stderr"));
    let mut line = String::new();
    stderr.read_line(&mut line).expect("read");
    assert!(line.contains("waiting up to 10m"), "{line}");
    assert!(
        line.contains(&format!(
            "being run by run {first_id} (pid {}, started 20",
            first.child.id()
        )),
        "{line}"
    );
    bench.emulator.release_host(HELD);
    let (code, seen) = first.finish();
    assert_eq!(code, Some(0), "{seen}");
    let status = waiting.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    assert_eq!(bench.emulator.instances_of("b").len(), 2, "two whole runs");
}

#[test]
fn a_lock_left_by_a_killed_run_is_taken_over() {
    let bench = Bench::new(&chain_plan(""));
    bench.emulator.hold_host(HELD);
    let first = bench.spawn_run(&[], "step b submitted (job ");
    first.kill();
    bench.emulator.release_host(HELD);
    let out = bench.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn concurrency_replace_terminates_the_older_run_and_takes_over() {
    let bench = Bench::new(&chain_plan("concurrency: replace\n"));
    bench.emulator.hold_host(HELD);
    let first = bench.spawn_run(&[], "step b submitted (job ");
    let old_job = bench.emulator.instances_of("b")[0]["job_instance_id"].clone();

    let first_pid = first.child.id();
    let second = bench.spawn_run(&[], "run ");
    let (first_code, first_seen) = first.finish();
    assert_ne!(first_code, Some(0), "{first_seen}");
    bench.emulator.release_host(HELD);
    let (code, seen) = second.finish();
    assert_eq!(code, Some(0), "{seen}");
    assert!(
        seen.contains("concurrency: replace: stopping run ")
            && seen.contains(&format!("(pid {first_pid}, started 20")),
        "{seen}"
    );
    assert!(
        seen.contains(&format!(
            "terminated job {old_job} (step b of the older run)"
        )),
        "{seen}"
    );
    let terminations = bench.emulator.requests("operate_job_instance");
    assert!(
        terminations
            .iter()
            .any(|r| r["body"]["job_instance_id"] == old_job && r["body"]["operation_code"] == 1),
        "{terminations:?}"
    );
    let old = bench
        .emulator
        .instances()
        .into_iter()
        .find(|i| i["job_instance_id"] == old_job)
        .expect("old instance");
    // 8 terminated, or 11 "stopped" once the stop took effect.
    assert!(
        old["status"] == 8 || old["status"] == 11,
        "terminated: {old}"
    );
}

#[test]
fn history_lists_shows_and_prunes_runs() {
    let bench = Bench::new(&chain_plan(""));
    for _ in 0..3 {
        let out = bench.run(&[]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    let list = text(&bench.output(&["runs"]));
    let rows: Vec<&str> = list.lines().filter(|l| l.contains(" chain ")).collect();
    assert_eq!(rows.len(), 3, "{list}");
    assert!(list.starts_with("RUN"), "{list}");
    assert!(
        rows.iter()
            .all(|r| r.contains("succeeded") && r.ends_with('0'))
    );

    let shown = text(&bench.output(&["runs", "show", "last"]));
    assert!(shown.contains("3 succeeded"), "{shown}");
    assert!(
        shown.contains("app-1.0.0.tgz") || shown.contains("  a "),
        "{shown}"
    );
    let json: Value =
        serde_json::from_slice(&bench.output(&["runs", "show", "last", "--json"]).stdout)
            .expect("json report");
    assert_eq!(json["schema"], "baton.run-report");
    assert_eq!(json["exit_code"], 0);

    let pruned = text(&bench.output(&["runs", "--keep", "1"]));
    assert!(pruned.contains("removed 2 runs"), "{pruned}");
    let list = text(&bench.output(&["runs"]));
    assert_eq!(list.lines().filter(|l| l.contains(" chain ")).count(), 1);
}

#[test]
fn skip_if_successful_since_does_nothing_after_an_identical_success() {
    let bench = Bench::new(&chain_plan(""));
    let out = bench.run(&["--skip-if-successful-since", "24h"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let before = bench.emulator.instances().len();

    let skipped = bench.run(&["--skip-if-successful-since", "24h"]);
    assert_eq!(skipped.status.code(), Some(0), "{}", text(&skipped));
    let stdout = String::from_utf8_lossy(&skipped.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with("baton: skipped: chain already succeeded in run "),
        "{stdout}"
    );
    assert_eq!(bench.emulator.instances().len(), before, "nothing was sent");

    // Other inputs are another release: it runs.
    let other = bench.run(&[
        "--skip-if-successful-since",
        "24h",
        "--var",
        "version=2.0.0",
    ]);
    assert_eq!(other.status.code(), Some(0), "{}", text(&other));
    assert!(bench.emulator.instances().len() > before);
}

#[test]
fn resume_refuses_a_changed_plan_naming_the_steps_unless_forced() {
    let bench = Bench::new(&chain_plan(""));
    bench.emulator.hold_host(HELD);
    bench.spawn_run(&[], "step b submitted (job ").kill();
    bench.emulator.release_host(HELD);
    let changed = chain_plan("").replace("echo b >> /tmp/ran", "echo B >> /tmp/ran");
    std::fs::write(bench.path("plan.yaml"), changed).expect("edit plan");

    let refused = bench.output(&["resume", "last"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    let message = text(&refused);
    assert!(message.contains("changed steps: b"), "{message}");
    assert!(message.contains("--force"), "{message}");

    let forced = bench.output(&["resume", "last", "--force"]);
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced));
    assert_eq!(bench.emulator.instances_of("b").len(), 1, "b was attached");
}

#[test]
fn resume_step_and_downstream_rerun_what_was_asked() {
    let bench = Bench::new(&chain_plan(""));
    let out = bench.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let nothing = bench.output(&["resume", "last"]);
    assert_eq!(nothing.status.code(), Some(0));
    assert!(
        text(&nothing).contains("nothing to resume"),
        "{}",
        text(&nothing)
    );

    let one = bench.output(&["resume", "last", "--step", "b"]);
    assert_eq!(one.status.code(), Some(0), "{}", text(&one));
    assert_eq!(bench.host_file(HELD, "/tmp/ran"), "b\nb\n");
    assert_eq!(bench.host_file("0:10.0.0.1", "/tmp/ran"), "a\nc\n");

    let down = bench.output(&["resume", "last", "--step", "b", "--downstream"]);
    assert_eq!(down.status.code(), Some(0), "{}", text(&down));
    assert_eq!(bench.host_file(HELD, "/tmp/ran"), "b\nb\nb\n");
    assert_eq!(bench.host_file("0:10.0.0.1", "/tmp/ran"), "a\nc\nc\n");
    // Fresh task names each time: attempts count on from the journal's.
    let names: Vec<String> = bench
        .emulator
        .instances_of("b")
        .iter()
        .filter_map(|i| i["name"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(names.len(), 3);
    assert!(names.iter().any(|n| n.ends_with("b#3]")), "{names:?}");
    assert_eq!(
        bench.host_file("0:10.0.0.1", "/tmp/artifact"),
        "app-1.0.0.tgz\n"
    );
}

#[test]
fn a_torn_journal_is_shown_and_resumed_up_to_its_last_whole_event() {
    let bench = Bench::new(&chain_plan(""));
    bench.emulator.hold_host(HELD);
    bench.spawn_run(&[], "step b submitted (job ").kill();
    let journal = only_run_dir(&bench).join("journal.jsonl");
    let mut bytes = std::fs::read(&journal).expect("journal");
    bytes.extend_from_slice(br#"{"event":"step_progress","step":{"index":1,"#);
    std::fs::write(&journal, bytes).expect("tear");

    let shown = text(&bench.output(&["runs", "show", "last"]));
    assert!(shown.contains("cut short"), "{shown}");
    bench.emulator.release_host(HELD);
    let out = bench.output(&["resume", "last"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(bench.emulator.instances_of("b").len(), 1);
    let repaired = std::fs::read_to_string(&journal).expect("journal");
    assert!(
        repaired
            .lines()
            .all(|l| serde_json::from_str::<Value>(l).is_ok()),
        "{repaired}"
    );
}

#[test]
fn log_file_gets_progress_lines_and_the_log() {
    let bench = Bench::new(&chain_plan(""));
    let log = bench.path("baton.log");
    let out = bench.run(&["--log-file", log.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let text = std::fs::read_to_string(&log).expect("log written");
    assert!(text.contains("step c succeeded"), "{text}");
    assert!(text.contains("run finished (exit 0)"), "{text}");
    assert!(
        text.contains("INFO") && text.contains("run recorded"),
        "the log too: {text}"
    );
    assert!(!text.contains("tok-Zq9-secret"));
}

/// Cuts the journal back to the moment between b's submission intent and JOB's answer:
/// exactly where a crash leaves a submission whose fate the runner never learned.
fn forget_the_answer_for_b(bench: &Bench) {
    let journal = only_run_dir(bench).join("journal.jsonl");
    let text = std::fs::read_to_string(&journal).expect("journal");
    let kept: Vec<&str> = text
        .lines()
        .take_while(|l| !(l.contains("\"event\":\"step_submitted\"") && l.contains("\"id\":\"b\"")))
        .collect();
    assert!(
        kept.last().is_some_and(|l| l.contains("step_submitting")),
        "{text}"
    );
    std::fs::write(&journal, kept.join("\n") + "\n").expect("rewrite journal");
}

#[test]
fn an_unanswered_submission_is_found_by_task_name_and_attached() {
    let bench = Bench::new(&chain_plan(""));
    bench.emulator.hold_host(HELD);
    bench.spawn_run(&[], "step b submitted (job ").kill();
    forget_the_answer_for_b(&bench);
    bench.emulator.release_host(HELD);

    let out = bench.output(&["resume", "last"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("its unanswered submission was found in JOB as job"),
        "{}",
        text(&out)
    );
    assert!(!bench.emulator.requests("get_job_instance_list").is_empty());
    assert_eq!(
        bench.emulator.instances_of("b").len(),
        1,
        "b was not sent again"
    );
    assert_eq!(bench.host_file(HELD, "/tmp/ran"), "b\n");
}

#[test]
fn an_unanswered_submission_that_cannot_be_looked_up_is_not_sent_again() {
    // As on a JOB 2.x ESB, which has no instance list to reconcile with.
    let bench = Bench::new(&chain_plan("api: v4\n"));
    bench.emulator.post(
        "/_emulator/faults",
        serde_json::json!({"api": [{"api": "get_job_instance_list", "kind": "error", "status": 404}]}),
    );
    bench.emulator.hold_host(HELD);
    bench.spawn_run(&[], "step b submitted (job ").kill();
    forget_the_answer_for_b(&bench);
    bench.emulator.release_host(HELD);

    let out = bench.output(&["resume", "last"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let message = text(&out);
    assert!(message.contains("is NOT sent again"), "{message}");
    assert!(message.contains("--step b --force"), "{message}");
    assert_eq!(bench.emulator.instances_of("b").len(), 1);
    assert!(bench.emulator.instances_of("c").is_empty(), "c waits for b");

    // Asked again, it still refuses; only the operator's explicit rerun sends it.
    let again = bench.output(&["resume", "last"]);
    assert_eq!(again.status.code(), Some(4), "{}", text(&again));
    assert_eq!(bench.emulator.instances_of("b").len(), 1);
    let forced = bench.output(&["resume", "last", "--step", "b", "--downstream", "--force"]);
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced));
    assert_eq!(bench.emulator.instances_of("b").len(), 2);
    assert_eq!(bench.emulator.instances_of("c").len(), 1);
}

#[test]
fn a_failed_rehearsal_resumes_in_its_own_sandbox_and_reruns_only_the_failure() {
    let plan = chain_plan("").replace(
        "content: \"echo b >> /tmp/ran\"",
        "content: \"test -f /tmp/go || exit 3; echo b >> /tmp/ran\"",
    );
    let bench = Bench::new(&plan);
    let sandbox = bench.path("rehearsal");
    let rehearse = |args: &[&str]| {
        let mut cmd = bench.baton(args);
        cmd.env_remove("BATON_ENDPOINT");
        cmd.output().expect("run baton")
    };
    let plan_path = bench.path("plan.yaml");
    let out = rehearse(&[
        "run",
        plan_path.to_str().expect("utf-8"),
        "--sandbox",
        sandbox.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let host_two = sandbox.join("hosts/0_10.0.0.2/tmp");
    std::fs::create_dir_all(&host_two).expect("host folder");
    std::fs::write(host_two.join("go"), "").expect("unblock b");

    let out = rehearse(&["resume", "last"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let ran = |host: &str| {
        std::fs::read_to_string(sandbox.join(format!("hosts/{host}/tmp/ran"))).unwrap_or_default()
    };
    assert_eq!(ran("0_10.0.0.1"), "a\nc\n", "a kept, c run once");
    assert_eq!(ran("0_10.0.0.2"), "b\n");
}
