//! Config files rendered from the plan and pushed with `push_config_file`: the body JOB
//! receives (the docs' shape, contents base64-encoded), the files in the targets'
//! sandboxes, and the static checks (v4 has no such API; names are names).

use crate::support::{Emulator, app_credentials, baton, text};

const WORLD: &str = "credentials:\n  apps: [{ code: baton, secret: s3cret }]\n";

fn plan(api: &str) -> String {
    format!(
        r#"version: 1
name: configure
api: {api}
vars:
  region: {{ default: sh }}
scope: {{ type: biz, id: 2 }}
defaults: {{ account: root }}
hosts: {{ web: {{ ips: ["0:10.0.0.1", "0:10.0.0.2"] }} }}
steps:
  - id: configure
    targets: web
    push_config:
      target_path: /etc/app/{{{{region}}}}/
      files:
        - name: app.conf
          content: |
            region={{{{region}}}}
            workers=4
        - name: "{{{{region}}}}.env"
          content: "REGION={{{{region}}}}\n"
"#
    )
}

fn run(api: &str) -> (tempfile::TempDir, Emulator, std::process::Output) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plan.yaml"), plan(api)).unwrap();
    let emulator = Emulator::start(WORLD, &dir.path().join("sandbox"));
    let mut cmd = baton(dir.path());
    cmd.arg("run").arg(dir.path().join("plan.yaml")).args([
        "--endpoint",
        &emulator.url(),
        "--var",
        "region=gz",
    ]);
    app_credentials(&mut cmd, "s3cret");
    let out = cmd.output().unwrap();
    (dir, emulator, out)
}

fn assert_files(emulator: &Emulator) {
    for host in ["0:10.0.0.1", "0:10.0.0.2"] {
        assert_eq!(
            std::fs::read_to_string(emulator.host_path(host, "/etc/app/gz/app.conf")).unwrap(),
            "region=gz\nworkers=4\n"
        );
        assert_eq!(
            std::fs::read_to_string(emulator.host_path(host, "/etc/app/gz/gz.env")).unwrap(),
            "REGION=gz\n"
        );
    }
}

#[test]
fn rendered_files_land_on_every_target_v3() {
    let (_dir, emulator, out) = run("v3");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_files(&emulator);
    let sent = emulator.requests("push_config_file");
    assert_eq!(sent.len(), 1);
    let body = &sent[0]["body"];
    assert_eq!(body["bk_scope_type"], "biz");
    assert_eq!(body["bk_scope_id"], "2");
    assert_eq!(body["account_alias"], "root");
    assert_eq!(body["file_target_path"], "/etc/app/gz/");
    assert_eq!(
        body["file_list"],
        serde_json::json!([
            {"file_name": "app.conf", "content": "cmVnaW9uPWd6CndvcmtlcnM9NAo="},
            {"file_name": "gz.env", "content": "UkVHSU9OPWd6Cg=="}
        ])
    );
    assert_eq!(
        body["target_server"]["ip_list"],
        serde_json::json!([{"bk_cloud_id": 0, "ip": "10.0.0.1"}, {"bk_cloud_id": 0, "ip": "10.0.0.2"}])
    );
    assert!(
        body["task_name"]
            .as_str()
            .is_some_and(|n| n.contains("[baton "))
    );
}

#[test]
fn rendered_files_land_on_every_target_v2() {
    let (_dir, emulator, out) = run("v2");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_files(&emulator);
    let body = &emulator.requests("push_config_file")[0]["body"];
    assert_eq!(body["bk_biz_id"], 2);
    assert_eq!(body["account"], "root");
    assert_eq!(body["ip_list"][1]["ip"], "10.0.0.2");
}

#[test]
fn v4_and_bad_names_are_refused_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plan.yaml"), plan("v4")).unwrap();
    let out = baton(dir.path())
        .arg("validate")
        .arg(dir.path().join("plan.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("plan.yaml:13:7: steps[0].push_config: "),
        "{all}"
    );
    assert!(
        all.contains("a config push cannot be sent with protocol v4"),
        "{all}"
    );
    let bad = plan("v3").replace("name: app.conf", "name: conf/app.conf");
    std::fs::write(dir.path().join("plan.yaml"), bad).unwrap();
    let out = baton(dir.path())
        .arg("validate")
        .arg(dir.path().join("plan.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("plan.yaml:15:17: steps[0].push_config.files[0].name: "),
        "{all}"
    );
    assert!(all.contains("`conf/app.conf` is not a file name"), "{all}");
}
