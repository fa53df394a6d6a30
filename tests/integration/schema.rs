//! The committed plan schema stays in step with the model, and every example plan in
//! `plans/` passes both the schema and `baton validate` (with `plans/<name>.vars.yaml`
//! as its `--vars-file` when that exists).

use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn schema_path() -> PathBuf {
    root().join("schemas/plan.schema.json")
}

fn example_plans() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root().join("plans")) else {
        return Vec::new();
    };
    let mut plans: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .filter(|p| !p.to_string_lossy().ends_with(".vars.yaml"))
        .collect();
    plans.sort();
    plans
}

#[test]
fn schema_file_matches_baton_schema() {
    let output = assert_cmd::cargo::cargo_bin_cmd!("baton")
        .arg("schema")
        .output()
        .expect("baton runs");
    assert_eq!(output.status.code(), Some(0));
    let fresh = String::from_utf8(output.stdout).expect("UTF-8");
    let path = schema_path();
    if std::env::var_os("UPDATE_SCHEMAS").is_some() {
        std::fs::create_dir_all(root().join("schemas")).expect("schemas folder");
        std::fs::write(&path, &fresh).expect("write schema");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "schemas/plan.schema.json is stale: run `UPDATE_SCHEMAS=1 cargo test schema`"
    );
}

#[test]
fn example_plans_match_the_schema_and_validate() {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path()).expect("committed schema"))
            .expect("schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    for plan in example_plans() {
        let text = std::fs::read_to_string(&plan).expect("read plan");
        let instance: serde_json::Value = serde_yaml::from_str(&text).expect("plan is YAML");
        let problems: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        assert!(
            problems.is_empty(),
            "{} does not match the schema:\n{}",
            plan.display(),
            problems.join("\n")
        );

        // A plan with required variables keeps example values beside it.
        let vars_file = plan.with_extension("vars.yaml");
        let mut cmd = assert_cmd::cargo::cargo_bin_cmd!("baton");
        cmd.current_dir(root()).arg("validate").arg(&plan);
        if vars_file.exists() {
            cmd.arg("--vars-file").arg(&vars_file);
        }
        let output = cmd.output().expect("baton runs");
        assert_eq!(
            output.status.code(),
            Some(0),
            "baton validate {}:\n{}",
            plan.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn the_schema_rejects_what_baton_rejects() {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path()).expect("committed schema"))
            .expect("schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let typo: serde_json::Value = serde_yaml::from_str(
        "version: 1\nname: x\nsteps:\n  - id: a\n    scirpt: { content: echo }\n",
    )
    .expect("YAML");
    assert!(!validator.is_valid(&typo), "unknown fields are refused");
}
