//! Peak memory of planning: load + validate + render every request, per plan size.
//!
//! Each measurement runs in a fresh child process (this binary re-executed with
//! `--child`), because a process's high-water mark (`VmHWM` in /proc/self/status)
//! never goes down: measuring sizes one after another in one process would report the
//! largest so far. The parent generates the plan file, so the child's peak is only
//! the pipeline (plus the process's own baseline, reported as the `empty` row). Under
//! `cargo test --all-targets` (no `--bench`) only the 1k plans run.

mod plan_gen;

use std::path::Path;
use std::process::Command;

use plan_gen::Shape;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--child") {
        child(args.get(at + 1).map(String::as_str));
        return;
    }
    let sizes: Vec<usize> = match std::env::var("BATON_BENCH_SIZES") {
        Ok(list) => list
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect(),
        Err(_) if args.iter().any(|a| a == "--bench") => vec![1_000, 10_000, 50_000],
        Err(_) => vec![1_000],
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = std::env::current_exe().expect("own path");
    println!("peak RSS (VmHWM) of load + validate + render all (v3), one process each");
    println!(
        "{:<8} {:>7} {:>10} {:>12}",
        "shape", "steps", "yaml KiB", "peak MiB"
    );
    let empty = run_child(&exe, None);
    println!("{:<8} {:>7} {:>10} {:>12.1}", "empty", 0, 0, empty);
    for n in sizes {
        for shape in Shape::ALL {
            let path = dir.path().join(format!("{}-{n}.yaml", shape.name()));
            let text = plan_gen::plan_yaml(shape, n);
            std::fs::write(&path, &text).expect("write plan");
            let peak = run_child(&exe, Some(&path));
            println!(
                "{:<8} {:>7} {:>10} {:>12.1}",
                shape.name(),
                n,
                text.len() / 1024,
                peak
            );
        }
    }
}

/// Runs the child on `path` (or on nothing, for the baseline) and returns its peak
/// resident set in MiB.
fn run_child(exe: &Path, path: Option<&Path>) -> f64 {
    let mut command = Command::new(exe);
    command.arg("--child");
    if let Some(path) = path {
        command.arg(path);
    }
    let output = command.output().expect("run child");
    assert!(
        output.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let kib: f64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("child prints VmHWM in KiB");
    kib / 1024.0
}

fn child(path: Option<&str>) {
    if let Some(path) = path {
        // Keep every request alive, as `baton plan` does before printing.
        let calls = plan_gen::plan_requests(Path::new(path), &plan_gen::validate_options());
        std::hint::black_box(&calls);
    }
    println!("{}", vm_hwm_kib());
}

/// The process's peak resident set size in KiB, from /proc/self/status.
fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM line")
}
