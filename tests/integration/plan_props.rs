//! Property tests of plan loading and validation through the library:
//!
//! - arbitrary bytes and near-YAML text (plan-like fragments, randomly mutated) never
//!   panic, and every refusal is located inside the text;
//! - generated valid plans (random DAGs of 1–60 steps over random host sets, written
//!   in shuffled order) always validate, and the graph's waves contain every step once
//!   and put each step after everything it needs.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use baton::compile::{CompileOptions as ValidateOptions, compile as validate};
use baton::plan::PlanErrors;
use baton::plan::load::{self, LoadedPlan};
use proptest::prelude::*;

/// `n` cases, or `PROPTEST_CASES` when set (for a longer local hunt).
fn cases(n: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(n)
}

/// Every issue of a refusal has a location inside the text, on a character boundary,
/// with a line and column that exist.
fn assert_located(text: &str, errors: &PlanErrors) -> Result<(), TestCaseError> {
    prop_assert!(!errors.issues.is_empty(), "a refusal names a problem");
    let lines = text.split('\n').count();
    for issue in &errors.issues {
        let Some(loc) = issue.location else {
            return Err(TestCaseError::fail(format!(
                "unlocated issue {}: {}",
                issue.field, issue.message
            )));
        };
        prop_assert!(loc.offset <= text.len(), "{issue:?}");
        prop_assert!(text.is_char_boundary(loc.offset), "{issue:?}");
        prop_assert!(loc.offset + loc.len <= text.len(), "{issue:?}");
        prop_assert!(loc.line >= 1 && loc.line <= lines, "{issue:?}");
        prop_assert!(loc.column >= 1, "{issue:?}");
        prop_assert!(!issue.field.is_empty(), "{issue:?}");
    }
    Ok(())
}

/// Parses and validates `text`; Ok or a located refusal, never a panic.
fn load_and_check(text: &str, dir: &Path) -> Result<(), TestCaseError> {
    let loaded: LoadedPlan = match load::parse("plan.yaml", Arc::from(text), dir) {
        Ok(loaded) => loaded,
        Err(errors) => return assert_located(text, &errors),
    };
    match validate(loaded, &ValidateOptions::default()) {
        Ok(_) => Ok(()),
        Err(errors) => assert_located(text, &errors),
    }
}

/// Lines a plan is made of, valid and broken, for the near-YAML generator.
const FRAGMENTS: &[&str] = &[
    "version: 1",
    "version: 2",
    "version: one",
    "name: release",
    "name:",
    "api: v2",
    "api: v4",
    "scope: { type: biz, id: 2 }",
    "scope: { type: biz_set, id: -1 }",
    "defaults: { account: root, timeout: 10m }",
    "vars:",
    "  version: { default: 1.2.3, pattern: '^\\d+' }",
    "  token: { secret: true, required: true }",
    "hosts:",
    "  web: { ips: [\"0:10.0.0.1\", \"10.0.0.2\"] }",
    "  db: { host_ids: [1, 2], topo_nodes: [{ node_type: module, id: 3 }] }",
    "  bad: { ips: [\"0:10.0.0.256\", abc] }",
    "  empty: {}",
    "steps:",
    "  - id: a",
    "  - id: b",
    "  - id: a.b",
    "    needs: [a]",
    "    needs: [b, c]",
    "    needs: a",
    "    targets: web",
    "    targets: [web, db]",
    "    targets: { ips: [\"0:10.0.0.9\"] }",
    "    script: { language: shell, content: \"echo {{version}}\" }",
    "    script: { language: python, content: \"{{steps.a.outputs.x}}\" }",
    "    script: { file: missing.sh, language: shell }",
    "    script:",
    "      language: powershell",
    "      windows_interpreter: C:\\x.exe",
    "      params: \"{{verison}} {{#if}}\"",
    "    push_file:",
    "      sources: [{ files: [/data/a], from: web }]",
    "      target_path: \"[FILESRCIP]/x\"",
    "    job: { plan_id: 1, vars: { v: { hosts: db } } }",
    "    rolling: { expression: \"5 +10\", mode: pause }",
    "    rolling: { expression: \"0  101%\" }",
    "    timeout: 259201",
    "    timeout: 1h30m",
    "    outputs: [x, \"y z\"]",
    "    task_name: \"{{run.id}}-{{plan.name}}\"",
    "    when: \"{{#if version}}yes{{/if}}\"",
    "&anchor [1, 2]",
    "*anchor",
    "<<: *anchor",
    "---",
    "...",
    "# 中文注释 ✓",
    "\t- tab",
    "\"unclosed",
    "'single",
    "key: [unclosed",
    "? complex key",
    ": value",
    "!!binary aGVsbG8=",
    "!custom tag",
    "%YAML 1.2",
    "- - - nested",
    "{ a: { b: { c: [ [ [ ] ] ] } } }",
];

/// A text from fragments with random indentation, then random byte-level mutations.
fn near_yaml() -> impl Strategy<Value = String> {
    let line = (0usize..FRAGMENTS.len(), 0usize..4)
        .prop_map(|(i, indent)| format!("{}{}", "  ".repeat(indent / 3), FRAGMENTS[i]));
    let lines = prop::collection::vec(line, 1..40).prop_map(|l| l.join("\n") + "\n");
    let mutation = (
        0usize..4,
        any::<prop::sample::Index>(),
        prop::sample::select(vec![
            ":", "-", "[", "]", "{", "}", "\"", "'", "\t", "\n", "&a ", "*a", "#", "{{", "}}", " ",
            "é", "界", "\u{feff}", "\r\n", "|", ">",
        ]),
    );
    (lines, prop::collection::vec(mutation, 0..8)).prop_map(|(mut text, mutations)| {
        for (kind, at, piece) in mutations {
            let mut at = at.index(text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            match kind {
                0 | 1 => text.insert_str(at, piece),
                2 => {
                    let mut end = (at + 7).min(text.len());
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    text.replace_range(at..end, "");
                }
                _ => {
                    let copy = text[at..].to_owned();
                    text.push_str(&copy);
                }
            }
        }
        text
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(256), ..ProptestConfig::default() })]

    #[test]
    fn near_yaml_never_panics_and_refusals_are_located(text in near_yaml()) {
        let dir = tempfile::tempdir().expect("temp dir");
        load_and_check(&text, dir.path())?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(128), ..ProptestConfig::default() })]

    /// Through the file path too: size and encoding checks, NUL bytes, invalid UTF-8.
    #[test]
    fn arbitrary_bytes_never_panic_and_refusals_are_located(
        bytes in prop::collection::vec(any::<u8>(), 0..2048),
    ) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("plan.yaml");
        std::fs::write(&path, &bytes).expect("write");
        match load::load(&path) {
            Ok(loaded) => {
                let text = loaded.source.text.clone();
                if let Err(errors) = validate(loaded, &ValidateOptions::default()) {
                    assert_located(&text, &errors)?;
                }
            }
            Err(errors) => {
                // Undecodable files keep a lossy text (or none, for binary data); the
                // location is checked against what the issue was placed in.
                let lossy = String::from_utf8_lossy(&bytes).into_owned();
                let text = if errors.text.is_empty() { lossy.as_str() } else { &errors.text };
                assert_located(text, &errors)?;
            }
        }
    }
}

/// A plan shape whose slots are filled with valid and invalid values, so most cases get
/// past the YAML parse and exercise the semantic checks, rendering and locations.
const SLOTTED: &str = "version: 1
name: N0
api: N1
vars:
  version: { default: N2 }
scope: { type: biz, id: 2 }
defaults: { account: root }
hosts:
  web: { ips: [N3] }
  db: { N4 }
steps:
  - id: N5
    script: { language: shell, content: N6, params: N7 }
    targets: N8
    rolling: { expression: N9 }
    timeout: N10
    outputs: [N11]
  - id: N12
    needs: [N13]
    push_file:
      sources: [{ files: [N14], from: N15 }]
      target_path: N16
    targets: N17
  - id: c
    needs: [N18]
    job: { plan_id: 1, vars: { x: N19 } }
    task_name: N20
";

const SLOT_VALUES: &[&str] = &[
    "a",
    "b",
    "c",
    "web",
    "db",
    "[web, db]",
    "\"\"",
    "''",
    "~",
    "null",
    "{}",
    "[]",
    "0",
    "-1",
    "259201",
    "1h",
    "10 parsecs",
    "v2",
    "v3",
    "v4",
    "v5",
    "\"0:10.0.0.1\"",
    "\"10.0.0.256\"",
    "abc",
    "\"-1:10.0.0.1\"",
    "host_ids: [1]",
    "topo_nodes: [{ node_type: set, id: 1 }]",
    "dynamic_groups: [g]",
    "ips: []",
    "\"{{version}}\"",
    "\"{{verison}}\"",
    "\"{{steps.a.status}}\"",
    "\"{{steps.b.outputs.x}}\"",
    "\"{{steps.zz.status}}\"",
    "\"{{#if version}}x{{/if}}\"",
    "\"{{\"",
    "\"}}{{\"",
    "\"{{run.id}}\"",
    "\"{{plan.name}}\"",
    "\"5 +10\"",
    "\"0\"",
    "\"5  10\"",
    "\"101%\"",
    "\"100%\"",
    "/opt/app/",
    "tmp/x",
    "\"[FILESRCIP]/x\"",
    "\"C:\\\\x\"",
    "\"/tmp/REGEX:a.*\"",
    "\"${x}\"",
    "x",
    "\"y z\"",
    "{ hosts: web }",
    "{ hosts: nope }",
    "{ value: 1, hosts: web }",
    "&anchor a",
    "*anchor",
    "\"发布 ✓\"",
    "\"\\t\"",
    "[a, a]",
];

fn slotted_plan() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(SLOT_VALUES), 21).prop_map(|values| {
        // Highest slot first, so `N1` does not eat the `N1` of `N10`.
        let mut text = SLOTTED.to_owned();
        for (slot, value) in values.iter().enumerate().rev() {
            text = text.replace(&format!("N{slot}"), value);
        }
        text
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(256), ..ProptestConfig::default() })]

    #[test]
    fn slotted_plans_never_panic_and_refusals_are_located(text in slotted_plan()) {
        let dir = tempfile::tempdir().expect("temp dir");
        load_and_check(&text, dir.path())?;
    }
}

/// A generated valid plan and the edges it was built from (file positions).
#[derive(Debug, Clone)]
struct DagPlan {
    text: String,
    /// `edges[i]`: the file positions step `i` needs.
    edges: Vec<BTreeSet<usize>>,
}

fn dag_plan() -> impl Strategy<Value = DagPlan> {
    (1usize..=60)
        .prop_flat_map(|n| {
            (
                Just(n),
                // For each step (in generation order), which earlier steps it needs.
                prop::collection::vec(prop::collection::vec(any::<prop::sample::Index>(), 0..4), n),
                // Host sets: 1–4, each 1–5 IPs or 1–3 host ids (v3 ignores IPs given
                // beside host ids, so validation refuses the mix).
                prop::collection::vec(
                    (
                        prop::collection::vec((0u32..3, 1u8..255, 1u8..255), 1..5),
                        prop::collection::vec(1u64..100_000, 1..3),
                        any::<bool>(),
                    ),
                    1..4,
                ),
                // Per step: which host set, and whether to read an upstream status.
                prop::collection::vec((any::<prop::sample::Index>(), any::<bool>()), n),
                // Swaps of a Fisher-Yates shuffle: generation order -> file positions.
                prop::collection::vec(any::<prop::sample::Index>(), n),
            )
        })
        .prop_map(|(n, needs, sets, choices, swaps)| {
            let mut positions: Vec<usize> = (0..n).collect();
            for i in (1..n).rev() {
                positions.swap(i, swaps[i].index(i + 1));
            }
            let mut text = String::from(
                "version: 1\nname: generated\nscope: { type: biz, id: 2 }\ndefaults: { account: root }\nhosts:\n",
            );
            for (k, (ips, ids, by_id)) in sets.iter().enumerate() {
                let line = if *by_id {
                    let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
                    format!("  set{k}: {{ host_ids: [{}] }}\n", ids.join(", "))
                } else {
                    let ips: Vec<String> = ips
                        .iter()
                        .map(|(cloud, c, d)| format!("\"{cloud}:10.0.{c}.{d}\""))
                        .collect();
                    format!("  set{k}: {{ ips: [{}] }}\n", ips.join(", "))
                };
                text.push_str(&line);
            }
            // Generation index g lives at file position positions[g].
            let mut by_position: Vec<String> = vec![String::new(); n];
            let mut edges = vec![BTreeSet::new(); n];
            for g in 0..n {
                let needed: BTreeSet<usize> = if g == 0 {
                    BTreeSet::new()
                } else {
                    needs[g].iter().map(|ix| ix.index(g)).collect()
                };
                let (set_ix, read_upstream) = &choices[g];
                let set = set_ix.index(sets.len());
                let need_ids: Vec<String> = needed.iter().map(|&d| format!("s{d}")).collect();
                let content = match (needed.iter().next(), read_upstream) {
                    (Some(d), true) => format!("echo {{{{steps.s{d}.status}}}}"),
                    _ => format!("echo s{g}"),
                };
                let mut step = format!("  - id: s{g}\n");
                if !need_ids.is_empty() {
                    step.push_str(&format!("    needs: [{}]\n", need_ids.join(", ")));
                }
                step.push_str(&format!(
                    "    script: {{ language: shell, content: \"{content}\" }}\n    targets: set{set}\n"
                ));
                by_position[positions[g]] = step;
                edges[positions[g]] = needed.iter().map(|&d| positions[d]).collect();
            }
            text.push_str("steps:\n");
            for step in by_position {
                text.push_str(&step);
            }
            DagPlan { text, edges }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(96), ..ProptestConfig::default() })]

    #[test]
    fn generated_dags_validate_and_waves_respect_every_edge(plan in dag_plan()) {
        let dir = tempfile::tempdir().expect("temp dir");
        let loaded = load::parse("plan.yaml", Arc::from(plan.text.as_str()), dir.path())
            .map_err(|e| TestCaseError::fail(format!("{:?}\n{}", e.issues, plan.text)))?;
        let validated = validate(loaded, &ValidateOptions::default())
            .map_err(|e| TestCaseError::fail(format!("{:?}\n{}", e.issues, plan.text)))?;
        let graph = &validated.graph;
        let n = plan.edges.len();
        prop_assert_eq!(graph.len(), n);

        let waves = graph.waves();
        let mut seen = vec![0usize; n];
        let mut wave_of = vec![usize::MAX; n];
        for (w, wave) in waves.iter().enumerate() {
            prop_assert!(!wave.is_empty(), "wave {} is empty", w);
            for &step in wave {
                prop_assert!(step < n);
                seen[step] += 1;
                wave_of[step] = w;
            }
        }
        prop_assert!(seen.iter().all(|&c| c == 1), "each step exactly once: {:?}", seen);
        for (step, needs) in plan.edges.iter().enumerate() {
            for &need in needs {
                prop_assert!(
                    wave_of[step] > wave_of[need],
                    "step {} (wave {}) needs {} (wave {})", step, wave_of[step], need, wave_of[need]
                );
            }
            prop_assert_eq!(graph.wave_of(step), wave_of[step]);
            // Waves are as early as possible: a step with needs sits right after the
            // latest of them.
            let expected = needs.iter().map(|&d| wave_of[d] + 1).max().unwrap_or(0);
            prop_assert_eq!(wave_of[step], expected);
        }
    }
}
