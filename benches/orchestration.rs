//! End-to-end orchestration benchmarks: drives the `baton` binary (built by cargo for
//! this bench, or `BATON_BIN`) on generated plans of trivial script steps and reads the
//! JSON report it writes. Nothing is asserted about time; figures are printed as a
//! table (and as JSON lines with `BATON_BENCH_JSON=1`) and recorded in
//! `benches/README.md` by hand.
//!
//! Scenarios (all on one host, `--sandbox` in a temporary folder, `--report` JSON):
//!
//! - `chain/N` (10, 100, 500): each step needs the previous one, `--wait callback`,
//!   on the emulator embedded in `baton run`. The slope between 10 and 100 steps is the
//!   end-to-end cost of one more step (sandboxed script, HTTP round trips, journal).
//! - `fan/1000`: one root, 998 steps needing it, one step needing them all;
//!   `--max-parallel 64`.
//! - `poll/10`: the 10-step chain with `--wait poll` (default backoff: 1 s, ×1.5, 15 s cap).
//! - `instances/1000`: 1,000 independent steps held running by a separately started
//!   `baton emulator` (`simulate: true`, 5 s host delay), tracked by one
//!   `baton run --max-parallel 1000`; CPU time and peak RSS are those of the runner
//!   alone (getrusage of the child, read by a wrapper process).
//!
//! Script time is the sum of JOB's own start→end per step (`timings.job_ms`); baton's
//! overhead per step is (wall − script time) / steps. Handoff is `timings.handoff_us`:
//! the dependency's finish observed (callback received) → this step's submit sent.
//!
//! `BATON_BENCH_STATE_ROOT=/dev/shm` keeps the run journal on tmpfs, which takes the
//! disk's fsync latency out of the figures.
//!
//! `cargo bench --bench orchestration [-- FILTER]` runs them; without `--bench` (as
//! `cargo test --all-targets` runs it) a 3-step chain and a 4-instance run make a
//! seconds-long smoke test.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("__rusage") {
        rusage_wrapper(&args[2..]);
        return;
    }
    let bench = args.iter().any(|a| a == "--bench");
    let filter = args
        .iter()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .cloned()
        .unwrap_or_default();
    let bin = std::env::var_os("BATON_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_baton")));
    let work = tempfile::Builder::new()
        .prefix("baton-orchestration-")
        .tempdir()
        .expect("temporary folder");
    let ctx = Ctx {
        bin,
        work: work.path().to_path_buf(),
        json: std::env::var_os("BATON_BENCH_JSON").is_some(),
    };
    println!(
        "orchestration: {} (load average {})",
        ctx.bin.display(),
        load_average()
    );
    if !bench {
        smoke(&ctx);
        return;
    }
    let wanted = |name: &str| filter.is_empty() || name.contains(&filter);
    let repeats: usize = std::env::var("BATON_BENCH_REPEATS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);

    let mut chain = std::collections::BTreeMap::new();
    for n in [10usize, 100, 500] {
        let name = format!("chain/{n}");
        if !wanted(&name) {
            continue;
        }
        // Short chains are repeated and the median kept: one run is mostly start-up.
        let times = if n <= 100 { repeats } else { 1 };
        let mut runs: Vec<Run> = (0..times)
            .map(|_| ctx.run_embedded(&name, &chain_plan(n), 8, "callback"))
            .collect();
        runs.sort_by_key(|r| r.wall);
        let run = runs.swap_remove(runs.len() / 2);
        run.print(&ctx);
        chain.insert(n, run.wall);
    }
    if let (Some(t10), Some(t100)) = (chain.get(&10), chain.get(&100)) {
        let slope = t100.saturating_sub(*t10).as_secs_f64() * 1e3 / 90.0;
        println!("slope chain/10 → chain/100: {slope:.2} ms per step");
        ctx.emit_json(&serde_json::json!({"name": "slope/10-100", "ms_per_step": slope}));
    }
    if wanted("fan/1000") {
        ctx.run_embedded("fan/1000", &fan_plan(1000), 64, "callback")
            .print(&ctx);
    }
    if wanted("poll/10") {
        ctx.run_embedded("poll/10", &chain_plan(10), 8, "poll")
            .print(&ctx);
    }
    if wanted("instances/1000") {
        ctx.instances(1000, Duration::from_secs(5));
    }
}

/// The seconds-long run of `cargo test --all-targets`: the binary really drives the
/// embedded emulator and an external one, and the reports parse.
fn smoke(ctx: &Ctx) {
    let run = ctx.run_embedded("smoke/chain/3", &chain_plan(3), 8, "callback");
    assert_eq!(run.steps, 3, "every step of the smoke chain succeeds");
    run.print(ctx);
    ctx.instances(4, Duration::from_millis(200));
}

struct Ctx {
    bin: PathBuf,
    work: PathBuf,
    json: bool,
}

/// What one `baton run` did.
struct Run {
    name: String,
    wall: Duration,
    steps: usize,
    job_ms: u64,
    handoff_us: Vec<u64>,
    detect_ms: Vec<u64>,
    via_callback: usize,
}

impl Ctx {
    fn dir(&self, name: &str) -> PathBuf {
        let dir = self.work.join(name.replace('/', "-"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("bench folder");
        dir
    }

    /// `baton run` with its own emulator, timed from spawn to exit.
    fn run_embedded(&self, name: &str, plan: &str, max_parallel: usize, wait: &str) -> Run {
        let dir = self.dir(name);
        let plan_path = dir.join("plan.yaml");
        std::fs::write(&plan_path, plan).expect("plan");
        let report = dir.join("report.json");
        let mut cmd = Command::new(&self.bin);
        cmd.arg("run")
            .arg(&plan_path)
            .arg("--sandbox")
            .arg(dir.join("sandbox"))
            .arg("--report")
            .arg(&report)
            .args(["--quiet", "--wait", wait])
            .arg("--max-parallel")
            .arg(max_parallel.to_string());
        state_env(&mut cmd, &dir);
        let started = Instant::now();
        let output = cmd.output().expect("run baton");
        let wall = started.elapsed();
        assert!(
            output.status.success(),
            "{name}: baton run failed: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let report = read_report(&report);
        Run::from_report(name, wall, &report)
    }

    /// `instances/N`: a separate emulator keeps N instances running for `hold`;
    /// one runner tracks them all. Its CPU time and peak RSS come from getrusage.
    fn instances(&self, n: usize, hold: Duration) {
        let name = format!("instances/{n}");
        let dir = self.dir(&name);
        let world = dir.join("world.yaml");
        std::fs::write(
            &world,
            format!(
                "settings: {{ simulate: true, host_delay_ms: {}, parallel_limit: 50, \
                 global_parallel_limit: {} }}\n",
                hold.as_millis(),
                n + 16
            ),
        )
        .expect("world");
        let mut emulator = Command::new(&self.bin)
            .args(["emulator", "--listen", "127.0.0.1:0", "--world"])
            .arg(&world)
            .arg("--root")
            .arg(dir.join("emulator"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start baton emulator");
        let mut first = String::new();
        BufReader::new(emulator.stdout.take().expect("stdout"))
            .read_line(&mut first)
            .expect("emulator's first line");
        let endpoint = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in the emulator's first line: {first:?}"))
            .trim_end_matches([',', '.', ';'])
            .to_owned();

        let plan_path = dir.join("plan.yaml");
        std::fs::write(&plan_path, independent_plan(n)).expect("plan");
        let report = dir.join("report.json");
        let usage = dir.join("rusage.json");
        // The runner's callback receiver must have a URL the emulator can reach before
        // it starts: a port picked here and handed to it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut cmd = Command::new(std::env::current_exe().expect("own path"));
        cmd.arg("__rusage")
            .arg(&usage)
            .arg(&self.bin)
            .arg("run")
            .arg(&plan_path)
            .args(["--endpoint", &endpoint, "--quiet", "--wait", "callback"])
            .arg("--callback-listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--callback-url")
            .arg(format!("http://127.0.0.1:{port}"))
            .arg("--report")
            .arg(&report)
            .arg("--max-parallel")
            .arg(n.to_string())
            .env(
                "BATON_BENCH_JOB_PORT",
                endpoint
                    .rsplit(':')
                    .next()
                    .unwrap_or_default()
                    .trim_end_matches('/'),
            )
            .env("BK_APP_CODE", "bench")
            .env("BK_APP_SECRET", "bench-secret")
            .env("BK_USERNAME", "bench");
        state_env(&mut cmd, &dir);
        let started = Instant::now();
        let output = cmd.output().expect("run the rusage wrapper");
        let wall = started.elapsed();
        let _ = emulator.kill();
        let _ = emulator.wait();
        assert!(
            output.status.success(),
            "{name}: baton run failed: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let usage: Value =
            serde_json::from_slice(&std::fs::read(&usage).expect("rusage")).expect("rusage json");
        let report = read_report(&report);
        let run = Run::from_report(&name, wall, &report);
        assert_eq!(run.steps, n, "{name}: every instance succeeds");
        let cpu = usage["user_s"].as_f64().unwrap_or(0.0) + usage["sys_s"].as_f64().unwrap_or(0.0);
        let rss = usage["max_rss_kib"].as_f64().unwrap_or(0.0) / 1024.0;
        println!(
            "{name:<16} wall {:>8.2} s  runner CPU {:.2} s (user {:.2} + sys {:.2}, {:.2} ms per instance)  peak RSS {:.1} MiB  peak sockets {} ({} to JOB)  via callback {}/{}",
            wall.as_secs_f64(),
            cpu,
            usage["user_s"].as_f64().unwrap_or(0.0),
            usage["sys_s"].as_f64().unwrap_or(0.0),
            cpu * 1e3 / n as f64,
            rss,
            usage["max_sockets"],
            usage["max_to_job"],
            run.via_callback,
            run.steps,
        );
        self.emit_json(&serde_json::json!({
            "name": name, "wall_s": wall.as_secs_f64(), "cpu_s": cpu,
            "user_s": usage["user_s"], "sys_s": usage["sys_s"], "peak_rss_mib": rss, "max_sockets": usage["max_sockets"], "max_to_job": usage["max_to_job"],
            "steps": run.steps, "via_callback": run.via_callback,
        }));
    }

    fn emit_json(&self, value: &Value) {
        if self.json {
            println!("JSON {value}");
        }
    }
}

impl Run {
    fn from_report(name: &str, wall: Duration, report: &Value) -> Run {
        let steps = report["steps"].as_array().cloned().unwrap_or_default();
        let ok: Vec<&Value> = steps
            .iter()
            .filter(|s| s["status"] == "succeeded")
            .collect();
        let t = |s: &Value, k: &str| s["timings"][k].as_u64();
        let mut handoff_us: Vec<u64> = ok.iter().filter_map(|s| t(s, "handoff_us")).collect();
        handoff_us.sort_unstable();
        let mut detect_ms: Vec<u64> = ok
            .iter()
            .filter_map(|s| Some(t(s, "duration_ms")?.saturating_sub(t(s, "job_ms")?)))
            .collect();
        detect_ms.sort_unstable();
        Run {
            name: name.to_owned(),
            wall,
            steps: ok.len(),
            job_ms: ok.iter().filter_map(|s| t(s, "job_ms")).sum(),
            handoff_us,
            detect_ms,
            via_callback: ok
                .iter()
                .filter(|s| s["timings"]["observed_via"] == "callback")
                .count(),
        }
    }

    fn print(&self, ctx: &Ctx) {
        let wall_ms = self.wall.as_secs_f64() * 1e3;
        let overhead = (wall_ms - self.job_ms as f64) / self.steps.max(1) as f64;
        let h50 = percentile(&self.handoff_us, 0.50);
        let h99 = percentile(&self.handoff_us, 0.99);
        let d50 = percentile(&self.detect_ms, 0.50);
        println!(
            "{:<16} wall {:>8.1} ms  steps {:>4}  script (JOB) {:>7} ms  overhead {:>6.2} ms/step  handoff p50 {:>6} µs p99 {:>6} µs  submit→observed−JOB p50 {:>5} ms  via callback {}/{}",
            self.name,
            wall_ms,
            self.steps,
            self.job_ms,
            overhead,
            fmt_opt(h50),
            fmt_opt(h99),
            fmt_opt(d50),
            self.via_callback,
            self.steps,
        );
        ctx.emit_json(&serde_json::json!({
            "name": self.name, "wall_ms": wall_ms, "steps": self.steps, "job_ms": self.job_ms,
            "overhead_ms_per_step": overhead, "handoff_p50_us": h50, "handoff_p99_us": h99,
            "detect_p50_ms": d50, "via_callback": self.via_callback,
        }));
    }
}

fn fmt_opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

fn read_report(path: &Path) -> Value {
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&text).expect("report JSON")
}

/// Run records (the fsync'd journal) go to the bench folder, not the user's state
/// folder; `BATON_BENCH_STATE_ROOT=/dev/shm` puts them on tmpfs instead, to show what
/// the disk's fsync latency costs.
fn state_env(cmd: &mut Command, dir: &Path) {
    let state = match std::env::var_os("BATON_BENCH_STATE_ROOT") {
        Some(root) => {
            let name = dir.file_name().unwrap_or_default().to_owned();
            Path::new(&root).join("baton-bench-state").join(name)
        }
        None => dir.join("state"),
    };
    cmd.env("BATON_STATE_DIR", state)
        .env_remove("BATON_ENDPOINT")
        .env_remove("BATON_WAIT")
        .env_remove("BATON_PROFILE");
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

const HEADER: &str = "version: 1\nscope: { type: biz, id: 2 }\ndefaults: { account: root }\n\
                      hosts: { h: { ips: [\"0:10.0.0.1\"] } }\n";

fn step(out: &mut String, i: usize, needs: &[usize], content: &str) {
    let _ = write!(out, "  - id: s{i}\n    targets: h\n");
    if !needs.is_empty() {
        let list: Vec<String> = needs.iter().map(|n| format!("s{n}")).collect();
        let _ = writeln!(out, "    needs: [{}]", list.join(", "));
    }
    let _ = writeln!(
        out,
        "    script: {{ language: shell, content: \"{content}\" }}"
    );
}

/// N steps, each needing the previous one.
fn chain_plan(n: usize) -> String {
    let mut out = format!("name: chain-{n}\n{HEADER}steps:\n");
    for i in 0..n {
        let needs: Vec<usize> = i.checked_sub(1).into_iter().collect();
        step(&mut out, i, &needs, "true");
    }
    out
}

/// One root, N − 2 steps needing it, one step needing them all.
fn fan_plan(n: usize) -> String {
    let mut out = format!("name: fan-{n}\n{HEADER}steps:\n");
    step(&mut out, 0, &[], "true");
    for i in 1..n - 1 {
        step(&mut out, i, &[0], "true");
    }
    let middle: Vec<usize> = (1..n - 1).collect();
    step(&mut out, n - 1, &middle, "true");
    out
}

/// N steps with no needs (the emulator's settings decide how long they run).
fn independent_plan(n: usize) -> String {
    let mut out = format!("name: instances-{n}\n{HEADER}steps:\n");
    for i in 0..n {
        step(&mut out, i, &[], "true");
    }
    out
}

/// `__rusage OUT CMD ARGS…`: runs the command, waits, and writes the resource usage of
/// its (reaped) process tree as JSON: a fresh process, so the peak RSS is that
/// command's alone.
fn rusage_wrapper(args: &[String]) {
    use nix::sys::resource::{UsageWho, getrusage};
    let (out, cmd) = args.split_first().expect("__rusage OUT CMD ARGS…");
    let (program, rest) = cmd.split_first().expect("a command");
    let mut child = Command::new(program)
        .args(rest)
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    // Open sockets of the runner, sampled: all of them (callbacks JOB opens to the
    // receiver included), and those connected to JOB's port, which must stay bounded
    // however many instances are tracked.
    let job_port: Option<u16> = std::env::var("BATON_BENCH_JOB_PORT")
        .ok()
        .and_then(|p| p.parse().ok());
    let fd_dir = format!("/proc/{}/fd", child.id());
    let tcp = format!("/proc/{}/net/tcp", child.id());
    let (mut max_sockets, mut max_to_job) = (0usize, 0usize);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        let inodes: std::collections::HashSet<String> = std::fs::read_dir(&fd_dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|e| {
                        let target = std::fs::read_link(e.path()).ok()?;
                        let target = target.to_string_lossy();
                        Some(
                            target
                                .strip_prefix("socket:[")?
                                .trim_end_matches(']')
                                .to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        max_sockets = max_sockets.max(inodes.len());
        if let (Some(port), Ok(table)) = (job_port, std::fs::read_to_string(&tcp)) {
            let to_job = table
                .lines()
                .skip(1)
                .filter(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    let remote_port = fields
                        .get(2)
                        .and_then(|a| a.rsplit(':').next())
                        .and_then(|p| u16::from_str_radix(p, 16).ok());
                    remote_port == Some(port) && fields.get(9).is_some_and(|i| inodes.contains(*i))
                })
                .count();
            max_to_job = max_to_job.max(to_job);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN).expect("getrusage");
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    let json = serde_json::json!({
        "user_s": secs(usage.user_time()),
        "sys_s": secs(usage.system_time()),
        "max_rss_kib": usage.max_rss(),
        "max_sockets": max_sockets,
        "max_to_job": max_to_job,
        "exit": status.code(),
    });
    std::fs::write(out, json.to_string()).expect("rusage file");
    std::process::exit(status.code().unwrap_or(1));
}
