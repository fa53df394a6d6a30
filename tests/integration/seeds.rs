//! Seed fidelity: every seed page's request example, written as a plan under
//! `tests/fixtures/`, builds exactly the page's body (auth fields removed) on the page's
//! path — end to end through `baton plan FIXTURE --api vN --format json`, and directly
//! through compile's `encode_step`. A plan that expresses a seed must send that seed.
//!
//! The shipped runbooks under `plans/` are checked here too: every step builds on the
//! runbook's protocol.

use std::path::PathBuf;
use std::process::Command;

use baton::compile::request::encode_step;
use baton::compile::settings::StepSettings;
use baton::job_api::build::{ApiCall, BuildError};
use baton::job_api::types::Protocol;
use baton::plan::model::Plan;

/// (fixture stem, protocol, expected path)
const SEEDS: &[(&str, Protocol, &str)] = &[
    (
        "seed_000_fast_push_file",
        Protocol::V2,
        "/api/c/compapi/v2/job/fast_push_file/",
    ),
    (
        "seed_001_fast_execute_script",
        Protocol::V2,
        "/api/c/compapi/v2/job/fast_execute_script/",
    ),
    (
        "seed_002_execute_job",
        Protocol::V2,
        "/api/c/compapi/v2/job/execute_job/",
    ),
    (
        "seed_003_fast_execute_script_v4",
        Protocol::V4,
        "/api/v4/fast_execute_script",
    ),
    (
        "seed_004_execute_platform_job",
        Protocol::V2,
        "/api/c/compapi/v2/job/execute_platform_job/",
    ),
];

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn expected_body(stem: &str) -> serde_json::Value {
    let path = fixture(&format!("{stem}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn load_plan(stem: &str) -> Plan {
    let path = fixture(&format!("{stem}.yaml"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The auth fields `baton plan` adds to a v2 body (masked); the seed examples minus
/// their auth fields are what remains.
const V2_AUTH_FIELDS: &[&str] = &["bk_app_code", "bk_app_secret", "bk_username", "bk_token"];

fn protocol_flag(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::V2 => "v2",
        Protocol::V3 => "v3",
        Protocol::V4 => "v4",
    }
}

#[test]
fn baton_plan_prints_each_seed_body_on_the_seed_path() {
    for (stem, protocol, path) in SEEDS {
        let fixture_path = fixture(&format!("{stem}.yaml"));
        let output = Command::new(env!("CARGO_BIN_EXE_baton"))
            .arg("plan")
            .arg(&fixture_path)
            .args(["--api", protocol_flag(*protocol), "--format", "json"])
            // Fixed credentials so the printed auth fields do not depend on the caller.
            .env("BK_APP_CODE", "seed-test")
            .env("BK_USERNAME", "seed-user")
            .env_remove("BK_TOKEN")
            .output()
            .expect("run baton plan");
        assert!(
            output.status.success(),
            "{stem}: baton plan failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let document: serde_json::Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("{stem}: baton plan printed no JSON ({e})"));
        assert_eq!(document["protocol"], protocol_flag(*protocol), "{stem}");
        let steps = document["steps"].as_array().expect("steps");
        assert_eq!(steps.len(), 1, "{stem}: one step per seed");
        assert_eq!(steps[0]["method"], "POST", "{stem}");
        assert_eq!(steps[0]["path"], *path, "{stem}: path");
        let mut body = steps[0]["body"].clone();
        if *protocol == Protocol::V2 {
            let object = body.as_object_mut().expect("a JSON object body");
            assert_eq!(
                object.get("bk_app_code"),
                Some(&serde_json::json!("seed-test"))
            );
            assert_eq!(
                object.get("bk_app_secret"),
                Some(&serde_json::json!("******"))
            );
            for field in V2_AUTH_FIELDS {
                object.remove(*field);
            }
        } else {
            assert!(
                V2_AUTH_FIELDS.iter().all(|f| body.get(f).is_none()),
                "{stem}: gateway auth never goes in the body"
            );
        }
        let expected = expected_body(stem);
        assert_eq!(
            body,
            expected,
            "{stem}: baton plan body differs\n got: {}\nwant: {}",
            serde_json::to_string_pretty(&body).unwrap_or_default(),
            serde_json::to_string_pretty(&expected).unwrap_or_default()
        );
    }
}

#[test]
fn each_seed_plan_builds_the_seed_body_on_the_seed_path() {
    for (stem, protocol, path) in SEEDS {
        let plan = load_plan(stem);
        assert_eq!(
            plan.api.map(Protocol::from),
            Some(*protocol),
            "{stem}: the plan names its protocol"
        );
        assert_eq!(plan.steps.len(), 1, "{stem}: one step per seed");
        let call = build(*protocol, &plan, &plan.steps[0])
            .unwrap_or_else(|errors| panic!("{stem}: {errors:?}"));
        assert_eq!(call.path, *path, "{stem}: path");
        let expected = expected_body(stem);
        assert_eq!(
            call.body,
            expected,
            "{stem}: body differs\n got: {}\nwant: {}",
            serde_json::to_string_pretty(&call.body).unwrap_or_default(),
            serde_json::to_string_pretty(&expected).unwrap_or_default()
        );
        assert!(
            call.sensitive_pointers.is_empty(),
            "{stem}: no seed marks its params sensitive"
        );
    }
}

#[test]
fn seed_003_on_v3_uses_the_v3_field_names() {
    // The same plan sent to v3 keeps every value but in v3's shape: target_server and
    // a 0/1 is_param_sensitive. Guards against v4-only names leaking into v3.
    let plan = load_plan("seed_003_fast_execute_script_v4");
    let call = build(Protocol::V3, &plan, &plan.steps[0]).expect("v3 can carry seed 003");
    assert_eq!(call.path, "/api/v3/fast_execute_script");
    assert_eq!(call.body["is_param_sensitive"], 0);
    assert!(call.body.get("param_sensitive").is_none());
    assert!(call.body.get("execute_target").is_none());
    assert_eq!(
        call.body["target_server"],
        serde_json::json!({
            "ip_list": [{"bk_cloud_id": 0, "ip": "10.0.0.1"}, {"bk_cloud_id": 0, "ip": "10.0.0.2"}],
            "dynamic_group_list": [{"id": "blo8gojho0skft7pr5q0"}],
            "topo_node_list": [{"id": 1000, "node_type": "module"}]
        })
    );
}

#[test]
fn seed_plans_name_what_other_protocols_cannot_carry() {
    // Seed 002's overrides exist only on v2; seed 004's businesses only on v2.
    for (stem, field) in [
        ("seed_002_execute_job", "job.overrides"),
        ("seed_004_execute_platform_job", "job.source_biz"),
    ] {
        let plan = load_plan(stem);
        let errors = build(Protocol::V3, &plan, &plan.steps[0]).expect_err(stem);
        let error = errors
            .iter()
            .find(|e| e.field == field)
            .unwrap_or_else(|| panic!("{stem}: no error for {field} in {errors:?}"));
        assert!(
            error.message.contains("cannot be sent with protocol v3"),
            "{}",
            error.message
        );
    }
}

/// Reads every `script.file` of `plan` (relative to `dir`) into `content`, as the plan
/// loader does before requests are built.
fn inline_script_files(plan: &mut Plan, dir: &std::path::Path) {
    for step in &mut plan.steps {
        if let Some(script) = &mut step.script
            && let Some(file) = script.file.take()
        {
            let path = dir.join(&file);
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            script.content = Some(text);
        }
    }
}

#[test]
fn shipped_runbooks_build_every_step_on_their_protocol() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("plans");
    let mut seen = Vec::new();
    for name in [
        "release-web.yaml",
        "collect-logs.yaml",
        "cross-business-copy.yaml",
    ] {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        assert!(
            text.starts_with("# yaml-language-server: $schema=../schemas/plan.schema.json"),
            "{name}: schema modeline first"
        );
        let mut plan: Plan = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        inline_script_files(&mut plan, &dir);
        let protocol = plan.api.map(Protocol::from).unwrap_or(Protocol::V3);
        for step in &plan.steps {
            let call = build(protocol, &plan, step)
                .unwrap_or_else(|errors| panic!("{name} step {}: {errors:?}", step.id));
            seen.push((name, step.id.clone(), call.api));
        }
    }
    let apis: Vec<&str> = seen.iter().map(|(_, _, api)| *api).collect();
    for api in [
        "fast_execute_script",
        "fast_transfer_file",
        "execute_job_plan",
        "fast_push_file",
        "execute_platform_job",
    ] {
        assert!(apis.contains(&api), "no runbook exercises {api}: {seen:?}");
    }
}

#[test]
fn release_web_rolls_stop_and_start_by_a_quarter() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("plans");
    let text = std::fs::read_to_string(dir.join("release-web.yaml")).expect("release-web.yaml");
    let mut plan: Plan = serde_yaml::from_str(&text).expect("release-web parses");
    inline_script_files(&mut plan, &dir);
    for id in ["stop-web", "start-web"] {
        let step = plan.steps.iter().find(|s| s.id == id).expect(id);
        let call = build(Protocol::V3, &plan, step).expect(id);
        assert_eq!(
            call.body["rolling_config"],
            serde_json::json!({"expression": "25%", "mode": 1}),
            "{id}"
        );
        assert_eq!(
            call.body["target_server"]["ip_list"]
                .as_array()
                .map(Vec::len),
            Some(4)
        );
    }
    let build = plan.steps.iter().find(|s| s.id == "build").expect("build");
    assert_eq!(build.outputs, ["sha256", "package"]);
    let start = plan
        .steps
        .iter()
        .find(|s| s.id == "start-web")
        .expect("start-web");
    assert_eq!(
        start.script.as_ref().and_then(|s| s.params.as_deref()),
        Some("{{version}} {{steps.build.outputs.sha256}}")
    );
}

/// Encodes the rendered `step` of `plan` for `protocol`, its settings resolved as
/// compile resolves them.
fn build(
    protocol: Protocol,
    plan: &Plan,
    step: &baton::plan::model::Step,
) -> Result<ApiCall, Vec<BuildError>> {
    encode_step(plan, step, &StepSettings::resolve(plan, step), protocol)
}
