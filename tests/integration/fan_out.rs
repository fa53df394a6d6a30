//! Fan-out: a step declared once runs per item of a literal list or a list variable,
//! as `<id>[<key>]`, with `{{item}}` / `{{item.<key>}}` filled in its templates and
//! targets; `needs` on the group waits for every instance; `baton plan` shows the
//! instances; a bad `for_each` is reported at its line.

use crate::support::{baton, sandbox_file, text};

const PLAN: &str = r#"version: 1
name: rollout
api: v3
vars:
  version: { default: "1.0" }
  regions: { default: "sh,gz" }
scope: { type: biz, id: 2 }
defaults: { account: root }
steps:
  - id: deploy
    for_each:
      items:
        - { name: sh, ip: "10.0.1.1" }
        - { name: gz, ip: "10.0.2.1" }
      max_parallel: 1
    targets: { ips: ["0:{{item.ip}}"] }
    script:
      language: shell
      content: "mkdir -p /opt && echo {{item.name}} {{version}} > /opt/region.txt"
  - id: check
    for_each: { var: regions, fail_fast: false }
    needs: ["deploy[{{item}}]"]
    targets: { ips: ["0:10.0.9.9"] }
    script:
      language: shell
      content: "mkdir -p /opt && echo checked >> /opt/{{item}}.txt"
  - id: done
    needs: [check]
    targets: { ips: ["0:10.0.9.9"] }
    script:
      language: shell
      content: |
        ls /opt > /opt/done.txt
        echo "{{#each steps.check.all}}{{this.key}}={{this.status}} {{/each}}" > /opt/all.txt
        echo "{{steps.deploy.items.gz.status}}" > /opt/gz.status
"#;

#[test]
fn every_item_runs_and_the_group_is_awaited() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plan.yaml"), PLAN).unwrap();
    let sandbox = dir.path().join("sandbox");
    let out = baton(dir.path())
        .arg("run")
        .arg(dir.path().join("plan.yaml"))
        .arg("--sandbox")
        .arg(&sandbox)
        .arg("--report")
        .arg(dir.path().join("report.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let read =
        |host: &str, path: &str| std::fs::read_to_string(sandbox_file(&sandbox, host, path)).ok();
    assert_eq!(
        read("0:10.0.1.1", "/opt/region.txt").as_deref(),
        Some("sh 1.0\n")
    );
    assert_eq!(
        read("0:10.0.2.1", "/opt/region.txt").as_deref(),
        Some("gz 1.0\n")
    );
    // `done` needs the whole `check` group: both files existed when it listed /opt.
    assert_eq!(
        read("0:10.0.9.9", "/opt/done.txt").as_deref(),
        Some("done.txt\ngz.txt\nsh.txt\n")
    );
    // The list of all instances, in plan order, and one instance by its key.
    assert_eq!(
        read("0:10.0.9.9", "/opt/all.txt").as_deref(),
        Some("sh=success gz=success \n")
    );
    assert_eq!(
        read("0:10.0.9.9", "/opt/gz.status").as_deref(),
        Some("success\n")
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    let ids: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        ["deploy[sh]", "deploy[gz]", "check[sh]", "check[gz]", "done"]
    );
}

#[test]
fn plan_shows_the_instances_and_a_list_variable_sets_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plan.yaml"), PLAN).unwrap();
    let out = baton(dir.path())
        .arg("plan")
        .arg(dir.path().join("plan.yaml"))
        .args(["--format", "json", "--var", "regions=[sh, gz, bj]"])
        .output()
        .unwrap();
    // `check[bj]` needs `deploy[bj]`, which no item declares.
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("deploy[bj]"), "{}", text(&out));

    let out = baton(dir.path())
        .arg("plan")
        .arg(dir.path().join("plan.yaml"))
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let steps = doc["steps"].as_array().unwrap();
    let deploy_sh = steps.iter().find(|s| s["id"] == "deploy[sh]").unwrap();
    assert_eq!(
        deploy_sh["body"]["target_server"]["ip_list"][0]["ip"],
        "10.0.1.1"
    );
    assert!(steps.iter().any(|s| s["id"] == "check[gz]"));

    let out = baton(dir.path())
        .arg("graph")
        .arg(dir.path().join("plan.yaml"))
        .args(["--format", "mermaid"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mermaid = String::from_utf8_lossy(&out.stdout);
    for node in [
        "s0[\"deploy[sh]\"]",
        "s3[\"check[gz]\"]",
        "s1 --> s3",
        "s3 --> s4",
    ] {
        assert!(mermaid.contains(node), "{node} missing in\n{mermaid}");
    }
}

#[test]
fn reading_every_instance_needs_the_whole_group() {
    let dir = tempfile::tempdir().unwrap();
    let bad = PLAN.replace("    needs: [check]\n", "    needs: [\"check[sh]\"]\n");
    std::fs::write(dir.path().join("plan.yaml"), bad).unwrap();
    let out = baton(dir.path())
        .arg("validate")
        .arg(dir.path().join("plan.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("`steps.check.all` reads every instance of `check`, but check[gz] not upstream of `done`"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_bad_for_each_is_reported_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = PLAN.replace(
        "for_each: { var: regions, fail_fast: false }",
        "for_each: { var: regionz }",
    );
    std::fs::write(dir.path().join("plan.yaml"), bad).unwrap();
    let out = baton(dir.path())
        .arg("validate")
        .arg(dir.path().join("plan.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(
            "plan.yaml:21:22: steps[1].for_each.var: `regionz` is not a declared variable"
        ),
        "{}",
        text(&out)
    );
}

const FROM_PLAN: &str = r#"version: 1
name: discovered
api: v3
scope: { type: biz, id: 2 }
defaults: { account: root }
steps:
  - id: discover
    targets: { ips: ["0:10.0.9.9"] }
    outputs: [regions]
    script:
      language: shell
      content: "echo '<BATON_VAR>regions:[\"sh\",\"gz\"]</BATON_VAR>'"
  - id: deploy
    needs: [discover]
    for_each: { from: discover, output: regions }
    targets: { ips: ["0:10.0.9.9"] }
    script:
      language: shell
      content: "mkdir -p /opt && echo {{item}} > /opt/{{item}}.txt"
"#;

/// `baton validate PLAN` on `plan`: its exit code and what it printed.
fn validate(plan: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plan.yaml"), plan).unwrap();
    let out = baton(dir.path())
        .arg("validate")
        .arg(dir.path().join("plan.yaml"))
        .output()
        .unwrap();
    (out.status.code(), text(&out))
}

#[test]
fn a_list_from_a_step_output_is_checked_at_its_line() {
    // Not upstream: `deploy` does not need `discover`.
    let (code, out) = validate(&FROM_PLAN.replace("    needs: [discover]\n", ""));
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains(
            "plan.yaml:14:23: steps[1].for_each.from: step `discover` is not upstream of `deploy`"
        ),
        "{out}"
    );
    // The output is not declared by the step.
    let (code, out) = validate(&FROM_PLAN.replace("output: regions }", "output: zones }"));
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains(
            "steps[1].for_each.output: step `discover` does not declare the output `zones`"
        ),
        "{out}"
    );
    // `from` without `output`, and `output` without `from`.
    let (code, out) = validate(&FROM_PLAN.replace(", output: regions }", " }"));
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("steps[1].for_each: `from: discover` needs `output:`"),
        "{out}"
    );
    let (code, out) = validate(&FROM_PLAN.replace(
        "{ from: discover, output: regions }",
        "{ items: [sh], output: regions }",
    ));
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("steps[1].for_each.output: `output` names an output of the step in `from`"),
        "{out}"
    );
    // Two sources at once.
    let (code, out) = validate(&FROM_PLAN.replace(
        "{ from: discover, output: regions }",
        "{ items: [sh], from: discover, output: regions }",
    ));
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("steps[1].for_each: `for_each` takes one of `items`, `var` or `from`"),
        "{out}"
    );
    // Well-formed, but expanded only at run time, which is refused before any request.
    let (code, out) = validate(FROM_PLAN);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("plan.yaml:15:23: steps[1].for_each.from: the items of `deploy` come from `discover`'s output `regions`, known only at run time"),
        "{out}"
    );
}
