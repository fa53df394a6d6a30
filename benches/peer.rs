//! Side-by-side with a peer: the same chains of no-op script steps through dagu (a
//! single-binary workflow engine, installed from the npm registry into a temporary
//! folder) and through `baton run` (sandboxed rehearsal on the embedded emulator,
//! `--wait callback`), alternating the two in one run so both see the same machine
//! load. Prints the per-step slope (wall(chain/100) − wall(chain/10)) / 90 of each and
//! baton's slope as a fraction of dagu's. Nothing is asserted about time.
//!
//! `cargo bench --bench peer` runs it (needs `npm` and the registry, or
//! `DAGU_BIN=/path/to/dagu`). Knobs: `BATON_BENCH_REPEATS` (runs per chain and tool,
//! median kept; default 5), `BATON_BIN` (another baton binary), `DAGU_VERSION`
//! (default 1.30.2), `BATON_BENCH_UNISOLATED=1` (also baton `--unisolated`).
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) it is a smoke test that
//! needs no network: a 3-step chain through baton, and through dagu only when
//! `DAGU_BIN` names one.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DAGU_PACKAGE: &str = "@dagu-org/dagu-linux-x64";
const DEFAULT_DAGU_VERSION: &str = "1.30.2";

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let work = tempfile::Builder::new()
        .prefix("baton-peer-")
        .tempdir()
        .expect("temporary folder");
    let baton = std::env::var_os("BATON_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_baton")));
    let repeats: usize = std::env::var("BATON_BENCH_REPEATS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    println!(
        "peer: {} (load average {})",
        baton.display(),
        load_average()
    );

    let mut tools: Vec<Tool> = vec![Tool::Baton {
        bin: baton.clone(),
        unisolated: false,
    }];
    if std::env::var_os("BATON_BENCH_UNISOLATED").is_some() {
        tools.push(Tool::Baton {
            bin: baton,
            unisolated: true,
        });
    }
    let dagu = match std::env::var_os("DAGU_BIN") {
        Some(bin) => Some(PathBuf::from(bin)),
        None if bench => Some(install_dagu(work.path())),
        None => None,
    };
    if let Some(bin) = dagu {
        tools.insert(0, Tool::Dagu { bin });
    }

    if !bench {
        for tool in &tools {
            let wall = tool.run(work.path(), "smoke", 3);
            println!("smoke/chain/3 {:<18} {:>8.1} ms", tool.name(), ms(wall));
        }
        return;
    }

    // medians[tool][size]
    let sizes = [10usize, 100];
    let mut samples: Vec<Vec<Vec<Duration>>> = vec![vec![Vec::new(); sizes.len()]; tools.len()];
    for round in 0..repeats {
        for (s, &n) in sizes.iter().enumerate() {
            for (t, tool) in tools.iter().enumerate() {
                let wall = tool.run(work.path(), &format!("r{round}"), n);
                samples[t][s].push(wall);
            }
        }
    }
    let mut slopes = Vec::new();
    for (t, tool) in tools.iter().enumerate() {
        let median: Vec<Duration> = samples[t].iter_mut().map(|v| median(v)).collect();
        let slope = (ms(median[1]) - ms(median[0])) / 90.0;
        let spread: Vec<String> = samples[t]
            .iter()
            .zip(sizes)
            .map(|(v, n)| {
                let lo = v.iter().min().copied().unwrap_or_default();
                let hi = v.iter().max().copied().unwrap_or_default();
                format!("chain/{n} {:.1}–{:.1} ms", ms(lo), ms(hi))
            })
            .collect();
        println!(
            "{:<18} chain/10 {:>7.1} ms  chain/100 {:>7.1} ms  slope {:>5.2} ms/step  (ranges: {})",
            tool.name(),
            ms(median[0]),
            ms(median[1]),
            slope,
            spread.join(", "),
        );
        slopes.push((tool.name(), slope));
    }
    if let Some((_, dagu_slope)) = slopes.iter().find(|(name, _)| name.starts_with("dagu")) {
        for (name, slope) in slopes.iter().filter(|(n, _)| !n.starts_with("dagu")) {
            println!(
                "ratio {name} / dagu: {:.2} (per-step slope; medians of {repeats}, load average {})",
                slope / dagu_slope,
                load_average()
            );
        }
    }
}

enum Tool {
    Dagu { bin: PathBuf },
    Baton { bin: PathBuf, unisolated: bool },
}

impl Tool {
    fn name(&self) -> String {
        match self {
            Tool::Dagu { .. } => format!("dagu {}", dagu_version()),
            Tool::Baton {
                unisolated: false, ..
            } => "baton sandboxed".into(),
            Tool::Baton {
                unisolated: true, ..
            } => "baton unisolated".into(),
        }
    }

    /// One chain of `n` `true` steps, timed from spawn to exit.
    fn run(&self, work: &Path, tag: &str, n: usize) -> Duration {
        let dir = work.join(format!(
            "{}-{tag}-{n}",
            self.name().replace([' ', '.'], "_")
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("bench folder");
        let mut cmd = match self {
            Tool::Dagu { bin } => {
                let plan = dir.join("chain.yaml");
                std::fs::write(&plan, dagu_chain(n)).expect("dag");
                let mut cmd = Command::new(bin);
                cmd.arg("start")
                    .arg(&plan)
                    .env("DAGU_HOME", dir.join("home"));
                cmd
            }
            Tool::Baton { bin, unisolated } => {
                let plan = dir.join("plan.yaml");
                std::fs::write(&plan, baton_chain(n)).expect("plan");
                let mut cmd = Command::new(bin);
                cmd.arg("run")
                    .arg(&plan)
                    .arg("--sandbox")
                    .arg(dir.join("sandbox"))
                    .args(["--quiet", "--wait", "callback"])
                    .env("BATON_STATE_DIR", dir.join("state"))
                    .env_remove("BATON_ENDPOINT")
                    .env_remove("BATON_WAIT")
                    .env_remove("BATON_PROFILE");
                if *unisolated {
                    cmd.arg("--unisolated");
                }
                cmd
            }
        };
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let started = Instant::now();
        let output = cmd.output().expect("start the tool");
        let wall = started.elapsed();
        assert!(
            output.status.success(),
            "{} chain/{n} failed: {}\n{}",
            self.name(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        wall
    }
}

fn dagu_version() -> String {
    std::env::var("DAGU_VERSION").unwrap_or_else(|_| DEFAULT_DAGU_VERSION.into())
}

/// `npm pack` of the binary package into `work`, unpacked there: nothing is installed
/// outside the bench's temporary folder.
fn install_dagu(work: &Path) -> PathBuf {
    let dir = work.join("dagu-npm");
    std::fs::create_dir_all(&dir).expect("dagu folder");
    let spec = format!("{DAGU_PACKAGE}@{}", dagu_version());
    let output = Command::new("npm")
        .args(["pack", "--silent", &spec])
        .current_dir(&dir)
        .output()
        .expect("npm (needed by the peer bench; or set DAGU_BIN)");
    assert!(
        output.status.success(),
        "npm pack {spec} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tarball = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let status = Command::new("tar")
        .arg("xzf")
        .arg(&tarball)
        .current_dir(&dir)
        .status()
        .expect("tar");
    assert!(status.success(), "unpacking {tarball}");
    let bin = dir.join("package/bin/dagu");
    assert!(bin.is_file(), "{} is missing from {tarball}", bin.display());
    bin
}

/// N steps, each depending on the previous one, each running `true`.
fn dagu_chain(n: usize) -> String {
    let mut out = format!("name: chain-{n}\nsteps:\n");
    for i in 0..n {
        let _ = write!(out, "  - name: s{i}\n    command: \"true\"\n");
        if i > 0 {
            let _ = writeln!(out, "    depends: [s{}]", i - 1);
        }
    }
    out
}

/// The same chain as a baton plan on one emulated host.
fn baton_chain(n: usize) -> String {
    let mut out = format!(
        "name: chain-{n}\nversion: 1\nscope: {{ type: biz, id: 2 }}\ndefaults: {{ account: root }}\n\
         hosts: {{ h: {{ ips: [\"0:10.0.0.1\"] }} }}\nsteps:\n"
    );
    for i in 0..n {
        let _ = write!(out, "  - id: s{i}\n    targets: h\n");
        if i > 0 {
            let _ = writeln!(out, "    needs: [s{}]", i - 1);
        }
        out.push_str("    script: { language: shell, content: \"true\" }\n");
    }
    out
}

fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}
