//! `baton validate` and `baton plan` (text and JSON) of big generated plans, end to
//! end through the built binary: wall time and peak RSS of each command, one fresh
//! process per measurement (getrusage of the child, read by a wrapper: this binary
//! re-executed as `__measure`), and peak memory per 1,000 steps. Output goes to
//! `/dev/null`. Nothing is asserted about time or memory.
//!
//! `cargo bench --bench big_plans` runs 10k and 50k steps (`BATON_BENCH_SIZES` to
//! choose, comma-separated) of the `chain` and `random` shapes; without `--bench` (as
//! `cargo test --all-targets` runs it) only 1k chain steps.

mod plan_gen;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use plan_gen::Shape;

const COMMANDS: [(&str, &[&str]); 3] = [
    ("validate", &["validate"]),
    ("plan", &["plan"]),
    ("plan json", &["plan", "--format", "json"]),
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("__measure") {
        measure(&args[2..]);
        return;
    }
    let bench = args.iter().any(|a| a == "--bench");
    let sizes: Vec<usize> = match std::env::var("BATON_BENCH_SIZES") {
        Ok(list) => list
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect(),
        Err(_) if bench => vec![10_000, 50_000],
        Err(_) => vec![1_000],
    };
    let shapes: &[Shape] = if bench {
        &[Shape::Chain, Shape::Random]
    } else {
        &[Shape::Chain]
    };
    let bin = std::env::var_os("BATON_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_baton")));
    let dir = tempfile::tempdir().expect("temp dir");
    println!(
        "big plans: {} (load average {})",
        bin.display(),
        std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    );
    println!(
        "{:<7} {:>6} {:<10} {:>9} {:>9} {:>12}",
        "shape", "steps", "command", "wall s", "peak MiB", "MiB / 1k"
    );
    let mut times = std::collections::BTreeMap::new();
    for &shape in shapes {
        for &n in &sizes {
            let path = dir.path().join(format!("{}-{n}.yaml", shape.name()));
            std::fs::write(&path, plan_gen::plan_yaml(shape, n)).expect("write plan");
            for (name, command) in COMMANDS {
                let (wall, peak_kib) = run(&bin, command, &path);
                let peak = peak_kib as f64 / 1024.0;
                println!(
                    "{:<7} {:>6} {:<10} {:>9.2} {:>9.1} {:>12.2}",
                    shape.name(),
                    n,
                    name,
                    wall,
                    peak,
                    peak / (n as f64 / 1000.0)
                );
                times.insert((shape.name(), name, n), wall);
            }
        }
    }
    for &shape in shapes {
        for (name, _) in COMMANDS {
            if let (Some(small), Some(big)) = (
                times.get(&(shape.name(), name, 10_000)),
                times.get(&(shape.name(), name, 50_000)),
            ) {
                println!("{} {name}: 50k / 10k = {:.1}", shape.name(), big / small);
            }
        }
    }
}

/// Runs `baton <command> <plan> --var …` through the wrapper; wall seconds and the
/// command's peak RSS in KiB.
fn run(bin: &Path, command: &[&str], plan: &Path) -> (f64, u64) {
    let mut cmd = Command::new(std::env::current_exe().expect("own path"));
    cmd.arg("__measure").arg(bin).args(command).arg(plan);
    for var in plan_gen::VARS {
        cmd.arg("--var").arg(var);
    }
    cmd.args(["--api", "v3"])
        .env_remove("BATON_ENDPOINT")
        .env_remove("BATON_PROFILE");
    let started = Instant::now();
    let output = cmd.output().expect("run the wrapper");
    let wall = started.elapsed().as_secs_f64();
    assert!(
        output.status.success(),
        "baton {command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let peak = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("the wrapper prints the peak RSS in KiB");
    (wall, peak)
}

/// `__measure CMD ARGS…`: runs the command with stdout to /dev/null and prints its
/// peak RSS (KiB) from getrusage of the reaped child.
fn measure(args: &[String]) {
    use nix::sys::resource::{UsageWho, getrusage};
    let (program, rest) = args.split_first().expect("__measure CMD ARGS…");
    let status = Command::new(program)
        .args(rest)
        .stdout(Stdio::null())
        .status()
        .expect("spawn");
    assert!(status.success(), "{program} {rest:?}: {status}");
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN).expect("getrusage");
    println!("{}", usage.max_rss());
}
