//! Seed fidelity: every seed page's request example, written as a plan under
//! `tests/fixtures/`, builds exactly the page's body (auth fields removed) on the page's
//! path. A plan that expresses a seed must send that seed.

use std::path::PathBuf;

use baton::job_api::build::{BuildContext, build_request};
use baton::plan::model::{Plan, Protocol};

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

#[test]
fn each_seed_plan_builds_the_seed_body_on_the_seed_path() {
    for (stem, protocol, path) in SEEDS {
        let plan = load_plan(stem);
        assert_eq!(
            plan.api,
            Some(*protocol),
            "{stem}: the plan names its protocol"
        );
        assert_eq!(plan.steps.len(), 1, "{stem}: one step per seed");
        let ctx = BuildContext {
            protocol: *protocol,
            plan: &plan,
        };
        let call = build_request(&ctx, &plan.steps[0])
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
    let ctx = BuildContext {
        protocol: Protocol::V3,
        plan: &plan,
    };
    let call = build_request(&ctx, &plan.steps[0]).expect("v3 can carry seed 003");
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
        let ctx = BuildContext {
            protocol: Protocol::V3,
            plan: &plan,
        };
        let errors = build_request(&ctx, &plan.steps[0]).expect_err(stem);
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
