//! The emulator as clients that baton's authors did not write see it: ESB credentials in
//! the `X-Bkapi-Authorization` header, ESB jobv3's envelope, Python's `True` in query
//! strings, the gateway's error headers and its `/api/bk-job/<stage>/` URL form,
//! third-party file sources and containers declared in the world.

use std::time::{Duration, Instant};

use baton::emulator::{self, EmulatorConfig, EmulatorHandle, Isolation, World};
use baton::job_api::types::HostAddr;
use serde_json::{Value, json};

const WORLD: &str = include_str!("../fixtures/worlds/apidoc.yaml");
const HEADER: &str = r#"{"bk_app_code":"esb_test","bk_app_secret":"xxx","bk_username":"admin"}"#;
const GATEWAY: &str = r#"{"bk_app_code":"baton","bk_app_secret":"s3cret","bk_username":"admin"}"#;
const DEADLINE: Duration = Duration::from_secs(60);

struct Emu {
    handle: EmulatorHandle,
    http: reqwest::Client,
}

async fn start() -> Emu {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = EmulatorConfig {
        world: World::parse(WORLD).expect("world parses"),
        isolation: Isolation::Namespace {
            helper: env!("CARGO_BIN_EXE_baton").into(),
        },
        ..EmulatorConfig::local(env!("CARGO_BIN_EXE_baton").into())
    };
    let handle = emulator::start(config).await.expect("emulator starts");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    Emu { handle, http }
}

impl Emu {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.handle.base_url())
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let response = request.send().await.expect("sent");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (
            status,
            headers,
            response.json().await.unwrap_or(Value::Null),
        )
    }

    async fn gateway(&self, api: &str, body: Value) -> Value {
        let (status, _, v) = self
            .send(
                self.http
                    .post(self.url(&format!("/api/v3/{api}")))
                    .header("X-Bkapi-Authorization", GATEWAY)
                    .json(&body),
            )
            .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["code"], 0, "{v}");
        v["data"].clone()
    }

    async fn finish(&self, job: &Value) -> Value {
        let start = Instant::now();
        loop {
            let (_, _, v) = self
                .send(
                    self.http
                        .get(self.url(&format!(
                            "/api/v3/get_job_instance_status?bk_scope_type=biz&bk_scope_id=1&job_instance_id={job}&return_ip_result=True"
                        )))
                        .header("X-Bkapi-Authorization", GATEWAY),
                )
                .await;
            assert_eq!(v["code"], 0, "{v}");
            if v["data"]["finished"] == true {
                return v["data"].clone();
            }
            assert!(start.elapsed() < DEADLINE, "{v}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn host_file(&self, host: &HostAddr, path: &str) -> Option<String> {
        let dir = self.handle.host_dir(host);
        std::fs::read_to_string(dir.join(path.trim_start_matches('/'))).ok()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn esb_reads_the_header_before_the_body() {
    let emu = start().await;
    for path in [
        "/api/c/compapi/v2/jobv3/get_job_plan_list/",
        "/api/c/compapi/v2/job/get_job_list/",
    ] {
        let body = json!({"bk_scope_type": "biz", "bk_scope_id": "1", "bk_biz_id": 1});
        let (_, _, v) = emu
            .send(
                emu.http
                    .post(emu.url(path))
                    .header("X-Bkapi-Authorization", HEADER)
                    .json(&body),
            )
            .await;
        assert_eq!(
            v["code"], 0,
            "{path}: header credentials alone are enough: {v}"
        );
        // When the header is there, ESB does not look at the body.
        let mut with_body = body.clone();
        with_body["bk_app_code"] = json!("esb_test");
        with_body["bk_app_secret"] = json!("xxx");
        with_body["bk_username"] = json!("admin");
        let bad = r#"{"bk_app_code":"esb_test","bk_app_secret":"wrong","bk_username":"admin"}"#;
        let (_, _, v) = emu
            .send(
                emu.http
                    .post(emu.url(path))
                    .header("X-Bkapi-Authorization", bad)
                    .json(&with_body),
            )
            .await;
        assert_eq!(v["code"], 1_306_000, "{v}");
        let (_, _, v) = emu
            .send(
                emu.http
                    .post(emu.url(path))
                    .header("X-Bkapi-Authorization", "{oops")
                    .json(&with_body),
            )
            .await;
        assert_eq!(v["code"], 1_306_406, "{v}");
        let (_, _, v) = emu
            .send(emu.http.post(emu.url(path)).json(&with_body))
            .await;
        assert_eq!(v["code"], 0, "body credentials still work: {v}");
    }
    // A GET with the header and Python-style booleans.
    let (_, _, v) = emu
        .send(
            emu.http
                .get(emu.url("/api/c/compapi/v2/jobv3/get_job_plan_detail/"))
                .query(&[
                    ("bk_scope_type", "biz"),
                    ("bk_scope_id", "1"),
                    ("job_plan_id", "100"),
                ])
                .header("X-Bkapi-Authorization", HEADER),
        )
        .await;
    assert_eq!(v["data"]["job_plan_id"], 100, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn esb_jobv3_answers_in_esb_envelope() {
    let emu = start().await;
    let body = json!({"bk_app_code": "esb_test", "bk_app_secret": "xxx", "bk_token": "xxx",
                      "bk_scope_type": "biz", "bk_scope_id": "1"});
    let (_, _, ok) = emu
        .send(
            emu.http
                .post(emu.url("/api/c/compapi/v2/jobv3/get_job_plan_list/"))
                .json(&body),
        )
        .await;
    assert_eq!(
        ok["message"], "",
        "ESB fills a missing message with \"\": {ok}"
    );
    let id = ok["request_id"].as_str().expect("ESB's request_id");
    assert_eq!(id.len(), 32, "{ok}");
    assert!(ok["job_request_id"].is_string(), "JOB's own id stays: {ok}");
    let mut missing = body.clone();
    missing["job_plan_id"] = json!(999_999);
    let (_, _, refused) = emu
        .send(
            emu.http
                .post(emu.url("/api/c/compapi/v2/jobv3/get_job_plan_detail/"))
                .json(&missing),
        )
        .await;
    assert_eq!(refused["result"], false);
    assert!(
        refused["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{refused}"
    );
    assert!(refused["request_id"].is_string(), "{refused}");
    // The gateway's v3 answer keeps JOB's own shape: no message on success.
    let (_, headers, v) = emu
        .send(
            emu.http
                .get(emu.url("/api/v3/get_job_plan_list?bk_scope_type=biz&bk_scope_id=1"))
                .header("X-Bkapi-Authorization", GATEWAY),
        )
        .await;
    assert!(v.get("message").is_none(), "{v}");
    assert!(headers.get("X-Bkapi-Request-Id").is_some());
    assert!(headers.get("X-Bkapi-Error-Code").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_errors_say_they_are_the_gateways() {
    let emu = start().await;
    let bad = r#"{"bk_app_code":"baton","bk_app_secret":"nope","bk_username":"admin"}"#;
    let (status, headers, v) = emu
        .send(
            emu.http
                .get(emu.url("/api/v3/get_job_plan_list?bk_scope_type=biz&bk_scope_id=1"))
                .header("X-Bkapi-Authorization", bad),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(headers["X-Bkapi-Error-Code"], "1640001");
    assert!(
        headers["X-Bkapi-Error-Message"]
            .to_str()
            .unwrap()
            .contains("bk_app_secret is incorrect"),
        "{headers:?}"
    );
    assert_eq!(headers["X-Bkapi-Request-Id"].len(), 32);
    assert_eq!(v["code"], 1_640_001);
    let (status, headers, _) = emu.send(emu.http.get(emu.url("/api/v3/no_such_api"))).await;
    assert_eq!(status, 404);
    assert_eq!(headers["X-Bkapi-Error-Code"], "1640401");
    // JOB's own refusal passes the gateway untouched: no error header.
    let (status, headers, v) = emu
        .send(
            emu.http
                .get(emu.url("/api/bk-job/prod/api/v3/get_job_plan_detail?bk_scope_type=biz&bk_scope_id=1&job_plan_id=999"))
                .header("X-Bkapi-Authorization", GATEWAY),
        )
        .await;
    assert_eq!(status, 200, "the gateway's URL form is served: {v}");
    assert_eq!(v["result"], false);
    assert!(headers.get("X-Bkapi-Error-Code").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn third_party_file_sources_land_on_the_targets() {
    let emu = start().await;
    let data = emu
        .gateway(
            "fast_transfer_file",
            json!({
                "bk_scope_type": "biz", "bk_scope_id": "1", "file_target_path": "/srv/in/",
                "account_id": 101,
                "file_source_list": [
                    {"file_list": ["testbucket/test.txt"], "file_type": 3, "file_source_id": 1},
                    {"file_list": ["testbucket/test2.txt"], "file_type": 3,
                     "file_source_code": "testInnerCOS"},
                ],
                "target_server": {"host_id_list": [103]},
            }),
        )
        .await;
    let end = emu.finish(&data["job_instance_id"]).await;
    assert_eq!(end["job_instance"]["status"], 3, "{end}");
    let host = HostAddr::parse("0:127.0.0.3").unwrap();
    assert_eq!(
        emu.host_file(&host, "/srv/in/test.txt").as_deref(),
        Some("from the bucket\n")
    );
    assert_eq!(
        emu.host_file(&host, "/srv/in/test2.txt").as_deref(),
        Some("also from the bucket\n")
    );
    // An unknown source is JOB's refusal, before anything runs.
    let (_, _, v) = emu
        .send(
            emu.http
                .post(emu.url("/api/v3/fast_transfer_file"))
                .header("X-Bkapi-Authorization", GATEWAY)
                .json(&json!({
                    "bk_scope_type": "biz", "bk_scope_id": "1", "file_target_path": "/srv/in/",
                    "account_id": 101, "target_server": {"host_id_list": [103]},
                    "file_source_list": [{"file_list": ["b/x"], "file_type": 3, "file_source_id": 9}],
                })),
        )
        .await;
    assert_eq!(v["code"], 1_241_005, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_scripts_run_in_the_worlds_containers() {
    let emu = start().await;
    let (status, _, v) = emu
        .send(
            emu.http
                .post(emu.url("/api/v4/fast_execute_script"))
                .header("X-Bkapi-Authorization", GATEWAY)
                .json(&json!({
                    "bk_scope_type": "biz", "bk_scope_id": "1", "account_id": 1000,
                    "script_language": 1,
                    "script_content": "bWtkaXIgLXAgL2FwcCAmJiBlY2hvIGluc2lkZSA+IC9hcHAvbWFyaw==",
                    "execute_target": {"kube_container_filters": [{
                        "kube_cluster_filter": {"cluster_uid_list": ["BCS-K8S-00001"]},
                        "kube_pod_filter": {"pod_name_list": ["bk-job-execute-1"]},
                    }]},
                })),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let job = v["data"]["job_instance_id"].clone();
    emu.finish(&job).await;
    let (_, _, v) = emu
        .send(
            emu.http
                .get(emu.url(&format!(
                    "/api/v4/get_job_instance_status?bk_scope_type=biz&bk_scope_id=1&job_instance_id={job}&return_execute_object_result=true"
                )))
                .header("X-Bkapi-Authorization", GATEWAY),
        )
        .await;
    let objects = &v["data"]["step_instance_list"][0]["step_execute_object_result_list"];
    assert_eq!(objects.as_array().map(Vec::len), Some(1), "{v}");
    let object = &objects[0]["execute_object"];
    assert_eq!(object["type"], 2, "{v}");
    assert_eq!(object["resource_id"], "1002");
    assert_eq!(object["container"]["name"], "job-execute");
    assert_eq!(object["container"]["node_host_id"], 104);
    assert_eq!(objects[0]["status"], 9, "{v}");
    // The script ran in container 1002's own file system, not on its node.
    // Container N stands on cloud 999902, address 10.<N>: 1002 = 10.0.3.234.
    let container_host = HostAddr::parse("999902:10.0.3.234").unwrap();
    assert_eq!(
        emu.host_file(&container_host, "/app/mark").as_deref(),
        Some("inside\n")
    );
    let node = HostAddr::parse("0:127.0.0.4").unwrap();
    assert_eq!(emu.host_file(&node, "/app/mark"), None);
    // v4's list shows the job as V4JobInstanceDTO does.
    let (status, _, v) = emu
        .send(
            emu.http
                .get(emu.url(&format!(
                    "/api/v4/get_job_instance_list?bk_scope_type=biz&bk_scope_id=1&create_time_start=0&create_time_end=99999999999999&job_instance_id={job}"
                )))
                .header("X-Bkapi-Authorization", GATEWAY),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let rows = v["data"]["job_instance_list"].as_array().expect("a list");
    assert_eq!(rows.len(), 1, "{v}");
    assert_eq!(rows[0]["job_instance_id"], job);
    assert_eq!(rows[0]["status"], 3);
    assert_eq!(rows[0]["type"], 1, "a script task: {v}");
    let (status, _, v) = emu
        .send(
            emu.http
                .get(emu.url("/api/v4/get_job_instance_list?bk_scope_type=biz&bk_scope_id=1"))
                .header("X-Bkapi-Authorization", GATEWAY),
        )
        .await;
    assert_eq!(status, 400, "both creation bounds are required: {v}");
    // Hosts and containers cannot share one task.
    let (status, _, v) = emu
        .send(
            emu.http
                .post(emu.url("/api/v4/fast_execute_script"))
                .header("X-Bkapi-Authorization", GATEWAY)
                .json(&json!({
                    "bk_scope_type": "biz", "bk_scope_id": "1", "account_id": 1000,
                    "script_language": 1, "script_content": "ZWNobw==",
                    "execute_target": {"host_list": [{"bk_host_id": 1}],
                        "kube_container_filters": [{"kube_cluster_filter": {"cluster_uid_list": ["BCS-K8S-00001"]}}]},
                })),
        )
        .await;
    assert_eq!(status, 400, "{v}");
}
