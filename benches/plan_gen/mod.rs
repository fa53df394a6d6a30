//! Generated release plans for benchmarks: YAML text with N steps in one of three
//! DAG shapes.
//!
//! Shared by every bench binary (`mod plan_gen;`), so planning and orchestration
//! benchmarks measure the same plans. The steps resemble a real release: mostly
//! script steps whose `params` (and sometimes `content`) use `{{version}}`, file
//! pushes whose source names carry the version, a job-plan step every 50 steps, eight
//! host sets (addresses, host ids, dynamic groups, topology nodes), rolling batches on
//! some steps, and a few steps that read an upstream step's declared output
//! (`{{steps.<id>.outputs.tag}}`), which exercises the upstream check. [`plan_requests`]
//! is the pipeline every planning measurement times. Output is deterministic for a given (shape, n): the random shape
//! uses its own fixed-seed generator, so figures stay comparable across machines and
//! `rand` versions.

// Each bench binary compiles this module and uses a different part of it.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::Path;

use baton::compile::request::encode_step;
use baton::compile::{CompileOptions, RenderContext, load_and_compile};
use baton::job_api::build::ApiCall;
use baton::job_api::types::Protocol;
use baton::plan::VarInputs;

/// How the steps depend on each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Step i needs step i-1: N waves of one step.
    Chain,
    /// Step 0 is the root, every middle step needs only it, and the last step needs
    /// all middle steps (fan-out then fan-in): 3 waves.
    Fan,
    /// Each step needs up to 3 distinct earlier steps, mostly recent ones (as release
    /// stages depend on the stage before), sometimes any earlier step.
    Random,
}

impl Shape {
    /// All shapes, in table order.
    pub const ALL: [Shape; 3] = [Shape::Chain, Shape::Fan, Shape::Random];

    /// Lowercase name for benchmark ids and tables.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Chain => "chain",
            Shape::Fan => "fan",
            Shape::Random => "random",
        }
    }
}

/// The `--var` inputs the generated plans require.
pub const VARS: [&str; 2] = ["version=2.14.3", "db_password=s3cret"];

/// Validation options for the generated plans: protocol v3 and [`VARS`].
pub fn validate_options() -> CompileOptions {
    CompileOptions {
        api: Some(Protocol::V3),
        vars: VarInputs {
            flags: VARS.iter().map(|v| (*v).to_owned()).collect(),
            ..VarInputs::default()
        },
    }
}

/// What `baton plan` does before printing: load and validate the file, take the DAG's
/// waves, then render every step and encode its request, wave by wave.
pub fn plan_requests(path: &Path, options: &CompileOptions) -> Vec<ApiCall> {
    let validated = load_and_compile(path, options).unwrap_or_else(|errors| {
        let first: Vec<String> = errors
            .issues
            .iter()
            .take(3)
            .map(|issue| format!("{}: {}", issue.field, issue.message))
            .collect();
        panic!(
            "generated plan is invalid ({} issues): {}",
            errors.issues.len(),
            first.join("; ")
        )
    });
    let ctx = RenderContext::preview();
    let mut calls = Vec::with_capacity(validated.plan.steps.len());
    for wave in validated.graph.waves() {
        for index in wave {
            let resolved = validated
                .resolve_step(index, &ctx)
                .unwrap_or_else(|e| panic!("step {index} does not render: {e}"));
            let call = encode_step(
                &validated.plan,
                &resolved.step,
                &resolved.settings,
                validated.protocol,
            )
            .unwrap_or_else(|e| panic!("step {index} does not build: {e:?}"));
            calls.push(call);
        }
    }
    calls
}

const HOST_SETS: [&str; 8] = [
    "web", "api", "db", "cache", "worker", "gateway", "batch", "monitor",
];

/// Step `i` declares `outputs: [tag]` when this holds; later steps that need it read
/// the output in their params.
fn declares_outputs(i: usize) -> bool {
    i.is_multiple_of(7)
}

/// splitmix64: tiny, deterministic, good enough to scatter edges.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The `needs` of every step, as indexes of earlier steps (sorted, unique).
pub fn needs(shape: Shape, n: usize) -> Vec<Vec<usize>> {
    let mut rng = SplitMix(0x5EED_BA70_2026_1123);
    (0..n)
        .map(|i| match shape {
            _ if i == 0 => Vec::new(),
            Shape::Chain => vec![i - 1],
            Shape::Fan if i + 1 == n && n > 2 => (1..i).collect(),
            Shape::Fan => vec![0],
            Shape::Random => {
                let mut picked = Vec::with_capacity(3);
                for _ in 0..3 {
                    let dep = if rng.below(4) < 3 {
                        i - 1 - rng.below(i.min(64))
                    } else {
                        rng.below(i)
                    };
                    if !picked.contains(&dep) {
                        picked.push(dep);
                    }
                }
                picked.sort_unstable();
                picked
            }
        })
        .collect()
}

fn step_id(i: usize) -> String {
    format!("s{i:05}")
}

/// The plan's YAML text for `n` steps (n ≥ 1) in `shape`.
pub fn plan_yaml(shape: Shape, n: usize) -> String {
    let needs = needs(shape, n);
    let mut out = String::with_capacity(n * 360 + 2048);
    out.push_str(
        "version: 1\n\
         name: release-web\n\
         description: Ship web {{version}} to {{region}}\n\
         vars:\n  \
           version: { required: true, pattern: '^\\d+\\.\\d+\\.\\d+$' }\n  \
           region: { default: sh }\n  \
           db_password: { secret: true }\n\
         scope: { type: biz, id: 2 }\n\
         defaults: { account: root, timeout: 10m, retries: 0, on_failure: stop }\n\
         hosts:\n",
    );
    for (k, name) in HOST_SETS.iter().enumerate() {
        let base = 10 * (k + 1);
        // v3 ignores ip_list next to host_id_list, so validation refuses sets (and
        // target lists) that mix them: even sets use addresses, odd sets host ids.
        if k % 2 == 0 {
            let _ = writeln!(
                out,
                "  {name}:\n    ips: [\"0:10.0.{base}.1\", \"0:10.0.{base}.2\", \"0:10.0.{base}.3\", \"0:10.0.{base}.4\"]"
            );
        } else {
            let _ = writeln!(
                out,
                "  {name}:\n    host_ids: [{}, {}, {}]",
                1000 + base,
                1001 + base,
                1002 + base
            );
        }
        if k % 4 == 0 {
            let _ = writeln!(out, "    dynamic_groups: [\"grp{k}x8gojho0skft7pr5q0\"]");
        }
        if k % 3 == 0 {
            let _ = writeln!(
                out,
                "    topo_nodes: [{{ node_type: module, id: {} }}]",
                2000 + k
            );
        }
    }
    out.push_str("steps:\n");
    for (i, deps) in needs.iter().enumerate() {
        write_step(&mut out, i, deps);
    }
    out
}

fn write_step(out: &mut String, i: usize, deps: &[usize]) {
    let id = step_id(i);
    let set = HOST_SETS[i % HOST_SETS.len()];
    let _ = writeln!(out, "  - id: {id}");
    if !deps.is_empty() {
        let list: Vec<String> = deps.iter().map(|&d| step_id(d)).collect();
        let _ = writeln!(out, "    needs: [{}]", list.join(", "));
    }
    if i % 50 == 49 {
        let _ = writeln!(
            out,
            "    job:\n      plan_id: {}\n      vars:\n        version: \"{{{{version}}}}\"\n        region: \"{{{{region}}}}\"\n        targets: {{ hosts: {set} }}",
            1000 + i % 13
        );
        return;
    }
    let targets = if i % 4 == 1 {
        format!("[{set}, {}]", HOST_SETS[(i + 2) % HOST_SETS.len()])
    } else {
        set.to_owned()
    };
    let _ = writeln!(out, "    targets: {targets}");
    if i % 5 == 3 {
        let _ = writeln!(
            out,
            "    push_file:\n      sources:\n        - files: [\"/data/release/app-{{{{version}}}}.tar.gz\", \"/data/release/conf-{i}.tar.gz\"]\n          account: root\n          from: batch\n      target_path: /opt/app/{{{{version}}}}/"
        );
        return;
    }
    // Reading an upstream output: only from a direct need that declares it.
    let upstream = deps
        .iter()
        .rev()
        .find(|&&d| declares_outputs(d) && d % 50 != 49 && d % 5 != 3);
    let params = match upstream {
        Some(&d) => format!(
            "--version {{{{version}}}} --region {{{{region}}}} --tag {{{{steps.{}.outputs.tag}}}}",
            step_id(d)
        ),
        None => "--version {{version}} --region {{region}} --step ".to_owned() + &id,
    };
    let content = if i.is_multiple_of(3) {
        "#!/bin/bash\\nset -euo pipefail\\ncd /opt/app/{{version}}\\n./ctl.sh deploy \\\"$@\\\"\\necho \\\"<BATON_VAR>tag:{{version}}-$HOSTNAME</BATON_VAR>\\\"\\n"
    } else {
        "#!/bin/bash\\nset -euo pipefail\\nsystemctl restart app\\ncurl -fsS http://127.0.0.1:8080/health\\n"
    };
    let _ = writeln!(
        out,
        "    script:\n      language: shell\n      content: \"{content}\"\n      params: \"{params}\"\n    timeout: {}m",
        5 + i % 10
    );
    if declares_outputs(i) {
        out.push_str("    outputs: [tag]\n");
    }
    if i % 10 == 2 {
        out.push_str("    rolling: { expression: \"25%\", mode: pause }\n");
    }
}
