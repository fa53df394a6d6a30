//! Integration tests: the emulator over real HTTP. Each test starts an emulator
//! in-process on `127.0.0.1:0` (or the `baton emulator` binary) and talks to it with
//! reqwest exactly as a JOB client would: the seed pages' example requests, auth
//! failures per protocol, validation codes, the state machine and operations, rolling,
//! callbacks, faults, the controls, and scale. Timing is driven by holds and polling
//! with generous deadlines, never by sleeps.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use baton::emulator::{self, EmulatorConfig, EmulatorHandle, Isolation, World};
use baton::job_api::types::HostAddr;
use reqwest::StatusCode;
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(60);
const FULL_WORLD: &str = include_str!("../fixtures/worlds/full.yaml");
const GATEWAY_AUTH: &str =
    r#"{"bk_app_code":"baton","bk_app_secret":"s3cret","bk_username":"admin"}"#;

struct Emu {
    handle: EmulatorHandle,
    http: reqwest::Client,
}

async fn start(world_yaml: &str) -> Emu {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let world = World::parse(world_yaml).expect("test world parses");
    let config = EmulatorConfig {
        world,
        isolation: Isolation::Namespace {
            helper: env!("CARGO_BIN_EXE_baton").into(),
        },
        ..EmulatorConfig::local(env!("CARGO_BIN_EXE_baton").into())
    };
    let handle = emulator::start(config).await.expect("emulator starts");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    Emu { handle, http }
}

async fn full() -> Emu {
    start(FULL_WORLD).await
}

/// A Python-style example body from a seed page (trailing commas allowed) as JSON.
fn seed_body(text: &str) -> Value {
    let cleaned = regex::Regex::new(r",(\s*[}\]])")
        .unwrap()
        .replace_all(text, "$1")
        .into_owned();
    serde_json::from_str(&cleaned).expect("seed example is JSON once trailing commas go")
}

impl Emu {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.handle.base_url())
    }

    async fn post_raw(&self, path: &str, body: &Value, auth: Option<&str>) -> (StatusCode, Value) {
        let mut request = self.http.post(self.url(path)).json(body);
        if let Some(auth) = auth {
            request = request.header("X-Bkapi-Authorization", auth);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// ESB v2 with the seed credentials added.
    async fn v2(&self, api: &str, mut body: Value) -> Value {
        for (k, v) in [
            ("bk_app_code", "esb_test"),
            ("bk_app_secret", "xxx"),
            ("bk_token", "xxx"),
        ] {
            if body.get(k).is_none() {
                body[k] = json!(v);
            }
        }
        let (status, value) = self
            .post_raw(&format!("/api/c/compapi/v2/job/{api}/"), &body, None)
            .await;
        assert_eq!(status, StatusCode::OK, "{value}");
        value
    }

    async fn v3(&self, api: &str, body: Value) -> Value {
        let (status, value) = self
            .post_raw(&format!("/api/v3/{api}"), &body, Some(GATEWAY_AUTH))
            .await;
        assert_eq!(status, StatusCode::OK, "{value}");
        value
    }

    async fn v3_get(&self, api: &str, query: &[(&str, String)]) -> Value {
        let response = self
            .http
            .get(self.url(&format!("/api/v3/{api}")))
            .query(query)
            .header("X-Bkapi-Authorization", GATEWAY_AUTH)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    async fn v4(&self, api: &str, body: &Value) -> (StatusCode, Value) {
        self.post_raw(&format!("/api/v4/{api}"), body, Some(GATEWAY_AUTH))
            .await
    }

    async fn status(&self, job: u64) -> Value {
        let v = self
            .v3_get(
                "get_job_instance_status",
                &[
                    ("bk_scope_type", "biz".into()),
                    ("bk_scope_id", "1".into()),
                    ("job_instance_id", job.to_string()),
                    ("return_ip_result", "true".into()),
                ],
            )
            .await;
        assert_eq!(v["code"], 0, "{v}");
        v["data"].clone()
    }

    /// Polls v3 status until `done` holds.
    async fn wait_until(&self, job: u64, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let data = self.status(job).await;
            if done(&data) {
                return data;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "timed out waiting for {what}: {data}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_finished(&self, job: u64) -> Value {
        self.wait_until(job, "finished", |d| d["finished"] == true)
            .await
    }

    async fn wait_job_status(&self, job: u64, status: u64) -> Value {
        self.wait_until(job, &format!("job status {status}"), |d| {
            d["job_instance"]["status"] == status
        })
        .await
    }

    async fn control(&self, path: &str, body: Value) -> Value {
        self.http
            .post(self.url(&format!("/_emulator/{path}")))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn control_get(&self, path: &str) -> Value {
        self.http
            .get(self.url(&format!("/_emulator/{path}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    fn host_file(&self, host: &str, path: &str) -> Option<String> {
        let dir = self.handle.host_dir(&HostAddr::parse(host).unwrap());
        std::fs::read_to_string(dir.join(path.trim_start_matches('/'))).ok()
    }

    /// A v3 fast script on `hosts` (ips), returning the job id.
    async fn script(&self, content: &str, hosts: &[&str], extra: Value) -> u64 {
        use base64::Engine as _;
        let mut body = json!({
            "bk_scope_type": "biz", "bk_scope_id": "1", "account_alias": "root",
            "script_language": 1,
            "script_content": base64::engine::general_purpose::STANDARD.encode(content),
            "target_server": {"ip_list": hosts.iter().map(|ip| json!({"bk_cloud_id": 0, "ip": ip})).collect::<Vec<_>>()},
        });
        if let Value::Object(map) = extra {
            for (k, v) in map {
                body[k] = v;
            }
        }
        let v = self.v3("fast_execute_script", body).await;
        assert_eq!(v["code"], 0, "{v}");
        v["data"]["job_instance_id"].as_u64().unwrap()
    }

    async fn host_log(&self, job: u64, step: u64, host_id: u64) -> String {
        let v = self
            .v3_get(
                "get_job_instance_ip_log",
                &[
                    ("bk_scope_type", "biz".into()),
                    ("bk_scope_id", "1".into()),
                    ("job_instance_id", job.to_string()),
                    ("step_instance_id", step.to_string()),
                    ("bk_host_id", host_id.to_string()),
                ],
            )
            .await;
        assert_eq!(v["code"], 0, "{v}");
        v["data"]["log_content"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn step_op(&self, job: u64, step: u64, code: u64) -> Value {
        self.v3(
            "operate_step_instance",
            json!({"bk_scope_type": "biz", "bk_scope_id": "1", "job_instance_id": job,
                   "step_instance_id": step, "operation_code": code}),
        )
        .await
    }

    async fn job_op(&self, job: u64, code: u64) -> Value {
        self.v3(
            "operate_job_instance",
            json!({"bk_scope_type": "biz", "bk_scope_id": "1", "job_instance_id": job, "operation_code": code}),
        )
        .await
    }
}

fn step_id(data: &Value, index: usize) -> u64 {
    data["step_instance_list"][index]["step_instance_id"]
        .as_u64()
        .unwrap()
}

// ---------------------------------------------------------------- seed pages

const SEED_000: &str = r#"{
    "bk_app_code": "esb_test",
    "bk_app_secret": "xxx",
    "bk_token": "xxx",
    "bk_biz_id": 1,
    "file_target_path": "/tmp/[FILESRCIP]/",
    "file_source": [
        {
            "files": [
                "/tmp/REGEX:[a-z]*.txt"
            ],
            "account": "root",
            "ip_list": [
                {
                    "bk_cloud_id": 0,
                    "ip": "10.0.0.1"
                },
                {
                    "bk_cloud_id": 0,
                    "ip": "10.0.0.2"
                }
            ],
            "custom_query_id": [
                "3"
            ]
        }
    ],
    "ip_list": [
        {
            "bk_cloud_id": 0,
            "ip": "10.0.0.1"
        },
        {
            "bk_cloud_id": 0,
            "ip": "10.0.0.2"
        }
    ],
    "custom_query_id": [
        "3"
    ],
    "account": "root",
}"#;

#[tokio::test]
async fn seed_000_fast_push_file_copies_regex_matches_into_filesrcip_folders() {
    let emu = full().await;
    let v = emu.v2("fast_push_file", seed_body(SEED_000)).await;
    assert_eq!(v["result"], true, "{v}");
    assert_eq!(v["code"], 0);
    assert!(v["request_id"].is_string());
    let job = v["data"]["job_instance_id"].as_u64().unwrap();
    assert!(v["data"]["job_instance_name"].is_string());
    let data = emu.wait_finished(job).await;
    assert_eq!(data["job_instance"]["status"], 3, "{data}");
    for target in ["0:10.0.0.1", "0:10.0.0.2"] {
        assert_eq!(
            emu.host_file(target, "/tmp/0_10.0.0.1/alpha.txt")
                .as_deref(),
            Some("alpha from 10.0.0.1\n")
        );
        assert_eq!(
            emu.host_file(target, "/tmp/0_10.0.0.1/beta.txt").as_deref(),
            Some("beta from 10.0.0.1\n")
        );
        assert_eq!(
            emu.host_file(target, "/tmp/0_10.0.0.2/gamma.txt")
                .as_deref(),
            Some("gamma from 10.0.0.2\n")
        );
        assert!(
            emu.host_file(target, "/tmp/0_10.0.0.1/NOT-MATCHED.TXT")
                .is_none()
        );
    }
    // v2 status: string times, float seconds, one block per step.
    let status = emu
        .v2(
            "get_job_instance_status",
            json!({"bk_biz_id": 1, "job_instance_id": job}),
        )
        .await;
    let instance = &status["data"]["job_instance"];
    assert_eq!(status["data"]["is_finished"], true);
    assert!(
        instance["create_time"].as_str().unwrap().len() == 19,
        "{instance}"
    );
    assert!(instance["total_time"].is_f64() || instance["total_time"].is_u64());
    let hosts = &status["data"]["blocks"][0]["step_instances"][0]["step_ip_status"];
    assert_eq!(hosts.as_array().unwrap().len(), 2, "{status}");
}

const SEED_001: &str = r#"{
    "bk_app_code": "esb_test",
    "bk_app_secret": "xxx",
    "bk_token": "xxx",
    "bk_biz_id": 1,
    "script_id": 1,
    "script_content": "ZWNobyAkMQ==",
    "script_param": "aGVsbG8=",
    "script_timeout": 1000,
    "account": "root",
    "is_param_sensitive": 0,
    "script_type": 1,
    "ip_list": [
        {
            "bk_cloud_id": 0,
            "ip": "10.0.0.1"
        },
        {
            "bk_cloud_id": 0,
            "ip": "10.0.0.2"
        }
    ],
    "custom_query_id": [
        "3"
    ]
}"#;

#[tokio::test]
async fn seed_001_fast_execute_script_logs_hello() {
    let emu = full().await;
    let v = emu.v2("fast_execute_script", seed_body(SEED_001)).await;
    assert_eq!(v["code"], 0, "{v}");
    assert_eq!(v["message"], "success");
    let job = v["data"]["job_instance_id"].as_u64().unwrap();
    let data = emu.wait_finished(job).await;
    assert_eq!(data["job_instance"]["status"], 3, "{data}");
    let log = emu
        .v2(
            "get_job_instance_log",
            json!({"bk_biz_id": 1, "job_instance_id": job}),
        )
        .await;
    let steps = log["data"].as_array().unwrap();
    assert_eq!(steps.len(), 1);
    let group = &steps[0]["step_results"][0];
    assert_eq!(group["ip_status"], 9);
    let logs = group["ip_logs"].as_array().unwrap();
    assert_eq!(
        logs.len(),
        2,
        "ip_list and group 3 name the same two hosts: {log}"
    );
    for entry in logs {
        assert!(
            entry["log_content"].as_str().unwrap().contains("hello"),
            "{entry}"
        );
    }
}

const SEED_002: &str = r#"{
    "bk_app_code": "esb_test",
    "bk_app_secret": "xxx",
    "bk_token": "xxx",
    "bk_biz_id": 1,
    "bk_job_id": 100,
    "global_vars": [
        {
            "id": 436,
            "custom_query_id": [
                "3",
                "5",
                "7"
            ],
            "ip_list": [
                {
                    "bk_cloud_id": 0,
                    "ip": "10.0.0.1"
                },
                {
                    "bk_cloud_id": 0,
                    "ip": "10.0.0.2"
                }
            ]
        },
        {
            "id": 437,
            "value": "new String value"
        }
    ],
    "steps": [{
        "script_timeout": 1000,
        "script_param": "aGVsbG8=",
        "ip_list": [
            {
                "bk_cloud_id": 0,
                "ip": "10.0.0.1"
            },
            {
                "bk_cloud_id": 0,
                "ip": "10.0.0.2"
            }
        ],
        "custom_query_id": [
            "3"
        ],
        "script_id": 1,
        "script_content": "ZWNobyAkMQ==",
        "step_id": 200,
        "account": "root",
        "script_type": 1
    },
    {
        "script_timeout": 1003,
        "ip_list": [
            {
                "bk_cloud_id": 0,
                "ip": "10.0.0.1"
            },
            {
                "bk_cloud_id": 0,
                "ip": "10.0.0.2"
            }
        ],
        "custom_query_id": [
            "3"
        ],
        "script_id": 1,
        "script_content": "ZWNobyAkMQ==",
        "step_id": 1,
        "db_account_id": 31
    },
    {
        "file_target_path": "/tmp/[FILESRCIP]/",
        "file_source": [
            {
                "files": [
                    "/tmp/REGEX:[a-z]*.txt"
                ],
                "account": "root",
                "ip_list": [
                    {
                        "bk_cloud_id": 0,
                        "ip": "10.0.0.1"
                    },
                    {
                        "bk_cloud_id": 0,
                        "ip": "10.0.0.2"
                    }
                ],
                "custom_query_id": [
                    "3"
                ]
            }
        ],
        "ip_list": [
            {
                "bk_cloud_id": 0,
                "ip": "10.0.0.1"
            },
            {
                "bk_cloud_id": 0,
                "ip": "10.0.0.2"
            }
        ],
        "custom_query_id": [
            "3"
        ],
        "step_id": 2,
        "account": "root"
    }]
}"#;

#[tokio::test]
async fn seed_002_execute_job_runs_plan_100_with_overrides() {
    let emu = full().await;
    let v = emu.v2("execute_job", seed_body(SEED_002)).await;
    assert_eq!(v["code"], 0, "{v}");
    assert_eq!(v["data"]["job_instance_name"], "Test");
    let job = v["data"]["job_instance_id"].as_u64().unwrap();
    let data = emu.wait_finished(job).await;
    assert_eq!(data["job_instance"]["status"], 3, "{data}");
    let steps = data["step_instance_list"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    assert!(steps.iter().all(|s| s["status"] == 3), "{data}");
    // Step 200 runs stored script 1 (`echo $1`) with the overridden parameter.
    let log = emu.host_log(job, step_id(&data, 0), 101).await;
    assert!(log.contains("hello"), "{log}");
    // Step 2 pushed with the overridden paths.
    assert!(
        emu.host_file("0:10.0.0.2", "/tmp/0_10.0.0.1/alpha.txt")
            .is_some()
    );
}

const SEED_003: &str = r#"{
    "bk_scope_type": "biz",
    "bk_scope_id": "1",
    "script_version_id": 1,
    "script_content": "ZWNobyAkMQ==",
    "script_param": "aGVsbG8=",
    "timeout": 1000,
    "account_id": 1000,
    "param_sensitive": false,
    "script_language": 1,
    "execute_target": {
        "dynamic_group_list": [
            {
                "id": "blo8gojho0skft7pr5q0"
            }
        ],
        "host_list": [
            {
                "ip": "10.0.0.1",
                "bk_cloud_id": 0
            },
            {
                "ip": "10.0.0.2",
                "bk_cloud_id": 0
            }
        ],
        "topo_node_list": [
            {
                "id": 1000,
                "node_type": "module"
            }
        ]
    }
}"#;

#[tokio::test]
async fn seed_003_v4_fast_execute_script_and_its_error_shapes() {
    let emu = full().await;
    let (status, v) = emu.v4("fast_execute_script", &seed_body(SEED_003)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(v.get("result").is_none() && v.get("code").is_none(), "{v}");
    let job = v["data"]["job_instance_id"].as_u64().unwrap();
    assert!(v["data"]["step_instance_id"].is_u64());
    let data = emu.wait_finished(job).await;
    assert_eq!(data["job_instance"]["status"], 3, "{data}");
    let response = emu
        .http
        .get(emu.url("/api/v4/get_job_instance_status"))
        .query(&[
            ("bk_scope_type", "biz"),
            ("bk_scope_id", "1"),
            ("job_instance_id", &job.to_string()),
            ("return_execute_object_result", "true"),
        ])
        .header("X-Bkapi-Authorization", GATEWAY_AUTH)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let v4: Value = response.json().await.unwrap();
    let rows = v4["data"]["step_instance_list"][0]["step_execute_object_result_list"]
        .as_array()
        .unwrap()
        .clone();
    // Two static hosts, the dynamic group's host 103 and module 1000's host 104.
    assert_eq!(rows.len(), 4, "{v4}");
    assert!(
        rows.iter()
            .all(|r| r["execute_object"]["type"] == 1 && r["status"] == 9)
    );
    let step = v4["data"]["step_instance_list"][0]["step_instance_id"]
        .as_u64()
        .unwrap();
    let (status, logs) = emu
        .v4(
            "batch_get_job_instance_execute_object_log",
            &json!({"bk_scope_type": "biz", "bk_scope_id": "1", "job_instance_id": job,
                    "step_instance_id": step, "host_id_list": [103, 104]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{logs}");
    for log in logs["data"]["script_step_execute_object_logs"]
        .as_array()
        .unwrap()
    {
        assert!(
            log["log_content"].as_str().unwrap().contains("hello"),
            "{log}"
        );
    }

    // 400: a scope type JOB does not know.
    let mut bad = seed_body(SEED_003);
    bad["bk_scope_type"] = json!("team");
    let (status, v) = emu.v4("fast_execute_script", &bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        v,
        json!({"error": {"code": "INVALID_ARGUMENT", "message": "请求参数[bk_scope_type]不合法"}})
    );

    // 403: business 3 admits only alice.
    let mut forbidden = seed_body(SEED_003);
    forbidden["bk_scope_id"] = json!("3");
    let (status, v) = emu.v4("fast_execute_script", &forbidden).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(v["error"]["code"], "NO_PERMISSION");
    let action = &v["error"]["data"]["actions"][0];
    assert_eq!(v["error"]["data"]["system_id"], "bk_job");
    assert_eq!(action["id"], "access_business");
    assert_eq!(
        action["related_resource_types"][0]["instances"][0][0]["id"],
        "3"
    );
}

const SEED_004: &str = r#"{
    "bk_app_code": "esb_test",
    "bk_app_secret": "xxx",
    "bk_token": "xxx",
    "source_bk_biz_id": 1,
    "target_bk_biz_id": 2,
    "bk_job_id": 1,
    "steps": [
        {
            "script_timeout": 1000,
            "script_param": "aGVsbG8=",
            "custom_query_id": [
                "3"
            ],
            "ip_list": [
                {
                    "bk_cloud_id": 0,
                    "ip": "10.0.0.1"
                },
                {
                    "bk_cloud_id": 0,
                    "ip": "10.0.0.2"
                }
            ],
            "script_id": 1,
            "script_content": "ZWNobyAkMQ==",
            "step_id": 1,
            "account": "root",
            "script_type": 1
        },
        {
            "file_target_path": "/tmp/[FILESRCIP]/",
            "file_source": [
                {
                    "files": [
                        "/tmp/REGEX:[a-z]*.txt"
                    ],
                    "account": "root",
                    "ip_list": [
                        {
                            "bk_cloud_id": 0,
                            "ip": "10.0.0.1"
                        },
                        {
                            "bk_cloud_id": 0,
                            "ip": "10.0.0.2"
                        }
                    ],
                    "custom_query_id": [
                        "3"
                    ]
                }
            ],
            "ip_list": [
                {
                    "bk_cloud_id": 0,
                    "ip": "10.0.0.1"
                },
                {
                    "bk_cloud_id": 0,
                    "ip": "10.0.0.2"
                }
            ],
            "custom_query_id": [
                "3"
            ],
            "step_id": 2,
            "account": "root"
        }
    ]
}"#;

#[tokio::test]
async fn seed_004_execute_platform_job_across_businesses() {
    let emu = full().await;
    let v = emu.v2("execute_platform_job", seed_body(SEED_004)).await;
    assert_eq!(v["code"], 0, "{v}");
    let job = v["data"]["job_instance_id"].as_u64().unwrap();
    // Visible from the target business (and the source one).
    let start = Instant::now();
    loop {
        let s = emu
            .v2(
                "get_job_instance_status",
                json!({"bk_biz_id": 2, "job_instance_id": job}),
            )
            .await;
        assert_eq!(s["code"], 0, "{s}");
        if s["data"]["is_finished"] == true {
            assert_eq!(s["data"]["job_instance"]["status"], 3, "{s}");
            break;
        }
        assert!(start.elapsed() < DEADLINE);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        emu.host_file("0:10.0.0.1", "/tmp/0_10.0.0.2/gamma.txt")
            .is_some()
    );
    let log = emu
        .v2(
            "get_job_instance_log",
            json!({"bk_biz_id": 1, "job_instance_id": job}),
        )
        .await;
    let first = log["data"][0]["step_results"][0]["ip_logs"][0]["log_content"]
        .as_str()
        .unwrap();
    assert!(first.contains("hello"), "{log}");
}

// ---------------------------------------------------------------- auth and envelopes

#[tokio::test]
async fn auth_failures_per_protocol() {
    let emu = full().await;
    // ESB: HTTP 200, 1306000, data null, request_id.
    let (status, v) = emu
        .post_raw(
            "/api/c/compapi/v2/job/get_job_list/",
            &json!({"bk_app_code": "esb_test", "bk_app_secret": "wrong", "bk_token": "xxx", "bk_biz_id": 1}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["result"], false);
    assert_eq!(v["code"], 1_306_000);
    assert!(v["data"].is_null());
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("APP Secret verification failed")
    );
    assert!(v["request_id"].is_string());
    let (_, v) = emu
        .post_raw(
            "/api/c/compapi/v2/job/get_job_list/",
            &json!({"bk_app_code": "esb_test", "bk_token": "xxx", "bk_biz_id": 1}),
            None,
        )
        .await;
    assert_eq!(v["code"], 1_306_000);

    // Gateway v3 and v4: HTTP 400 INVALID_ARGS without or with a bad header.
    for path in ["/api/v3/fast_execute_script", "/api/v4/fast_execute_script"] {
        for auth in [
            None,
            Some(r#"{"bk_app_code":"baton","bk_app_secret":"nope","bk_username":"admin"}"#),
            Some("not json"),
        ] {
            let (status, v) = emu.post_raw(path, &json!({}), auth).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {auth:?}");
            assert_eq!(v["code"], 1_640_001);
            assert_eq!(v["code_name"], "INVALID_ARGS");
            assert_eq!(v["result"], false);
            assert!(v["data"].is_null());
        }
    }
    // Body credentials mean nothing to the gateway.
    let (status, _) = emu
        .post_raw(
            "/api/v3/get_job_plan_list",
            &json!({"bk_app_code": "baton", "bk_app_secret": "s3cret", "bk_username": "admin"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // callback_protocol needs no auth.
    let r = emu
        .http
        .get(emu.url("/api/v3/callback_protocol"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Unknown paths.
    let r = emu
        .http
        .get(emu.url("/api/v3/no_such_api"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], 1_640_401);
    let v = emu.v2("no_such_component", json!({})).await;
    assert_eq!(v["code"], 1_306_404);

    // v3 success omits `message`; permission denial is 9900403 with `permission`.
    let v = emu
        .v3_get(
            "get_job_plan_list",
            &[("bk_scope_type", "biz".into()), ("bk_scope_id", "1".into())],
        )
        .await;
    assert_eq!(v["result"], true);
    assert!(v.get("message").is_none(), "{v}");
    assert!(v["job_request_id"].is_string());
    let v = emu
        .v3_get(
            "get_job_plan_list",
            &[("bk_scope_type", "biz".into()), ("bk_scope_id", "3".into())],
        )
        .await;
    assert_eq!(v["code"], 9_900_403);
    assert_eq!(v["permission"]["actions"][0]["id"], "access_business");
    let v = emu.v2("get_job_list", json!({"bk_biz_id": 3})).await;
    assert_eq!(v["code"], 9_900_403);
    assert!(v["permission"].is_object());
}

#[tokio::test]
async fn an_empty_world_accepts_any_credentials_and_has_no_plans() {
    let emu = start("").await;
    let auth = r#"{"bk_app_code":"anything","bk_app_secret":"goes","bk_username":"someone"}"#;
    let (status, v) = emu
        .post_raw(
            "/api/v3/execute_job_plan",
            &json!({"bk_scope_type": "biz", "bk_scope_id": "77", "job_plan_id": 1}),
            Some(auth),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["code"], 1_243_009, "{v}");
    // Any account alias and unknown hosts (created on the fly) are accepted.
    let (_, v) = emu
        .post_raw(
            "/api/v3/fast_execute_script",
            &json!({"bk_scope_type": "biz", "bk_scope_id": "77", "account_alias": "deploy",
                    "script_language": 1, "script_content": "ZWNobyBvaw==",
                    "target_server": {"host_id_list": [258]}}),
            Some(auth),
        )
        .await;
    assert_eq!(v["code"], 0, "{v}");
}

// ---------------------------------------------------------------- validation

#[tokio::test]
async fn validation_answers_with_job_codes() {
    let emu = full().await;
    let base = json!({
        "bk_scope_type": "biz", "bk_scope_id": "1", "account_alias": "root",
        "script_language": 1, "script_content": "ZWNobyBvaw==",
        "target_server": {"ip_list": [{"bk_cloud_id": 0, "ip": "10.0.0.1"}]},
    });
    let with = |patch: Value| {
        let mut body = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        body
    };
    let cases: Vec<(Value, i64, Option<&str>)> = vec![
        (
            json!({"bk_scope_type": null, "bk_scope_id": null}),
            1_241_004,
            None,
        ),
        (json!({"target_server": {}}), 1_244_001, None),
        (
            json!({"target_server": null}),
            1_241_004,
            Some("[target_server]"),
        ),
        (json!({"account_alias": "nobody"}), 1_244_003, None),
        (
            json!({"account_alias": null}),
            1_241_004,
            Some("[account_id|account_alias]"),
        ),
        (
            json!({"script_content": null}),
            1_241_004,
            Some("[script_version_id|script_id|script_content]"),
        ),
        (
            json!({"script_language": 9}),
            1_241_005,
            Some("[script_language]"),
        ),
        (json!({"timeout": 0}), 1_241_005, Some("[timeout]")),
        (json!({"timeout": 259_201}), 1_241_005, Some("[timeout]")),
        (
            json!({"rolling_config": {"expression": "10%%", "mode": 1}}),
            1_244_026,
            None,
        ),
        (
            json!({"callback_url": "ftp://example.com/x"}),
            1_241_005,
            Some("[callback_url]"),
        ),
    ];
    for (patch, code, message) in cases {
        let v = emu.v3("fast_execute_script", with(patch.clone())).await;
        assert_eq!(v["code"], code, "{patch}: {v}");
        assert_eq!(v["result"], false);
        if let Some(part) = message {
            assert!(v["message"].as_str().unwrap().contains(part), "{v}");
        }
    }
    // Parameter length limits count decoded bytes.
    use base64::Engine as _;
    let long = base64::engine::general_purpose::STANDARD.encode(vec![b'a'; 65_536]);
    let v = emu
        .v3("fast_execute_script", with(json!({"script_param": long})))
        .await;
    assert_eq!(v["code"], 1_241_005);
    let sensitive = base64::engine::general_purpose::STANDARD.encode(vec![b'a'; 48_129]);
    let v = emu
        .v3(
            "fast_execute_script",
            with(json!({"script_param": sensitive, "is_param_sensitive": 1})),
        )
        .await;
    assert_eq!(v["code"], 1_241_005);
    // More than 500 rolling batches.
    let hosts: Vec<Value> = (1..=501)
        .map(|i| json!({"bk_cloud_id": 0, "ip": format!("10.9.{}.{}", i / 256, i % 256)}))
        .collect();
    let v = emu
        .v3(
            "fast_execute_script",
            with(json!({"target_server": {"ip_list": hosts}, "rolling_config": {"expression": "1", "mode": 2}})),
        )
        .await;
    assert_eq!(v["code"], 1_244_027, "{v}");
    // Bad file target path.
    let v = emu
        .v3(
            "fast_transfer_file",
            json!({"bk_scope_type": "biz", "bk_scope_id": "1", "account_alias": "root",
                   "file_target_path": "tmp/relative",
                   "file_source_list": [{"file_list": ["/tmp/a"], "account": {"alias": "root"},
                                         "server": {"host_id_list": [101]}}],
                   "target_server": {"host_id_list": [102]}}),
        )
        .await;
    assert_eq!(v["code"], 1_241_007, "{v}");
    // Unknown job instance, unknown plan, too many hosts in a log batch.
    let v = emu
        .v3_get(
            "get_job_instance_status",
            &[
                ("bk_scope_type", "biz".into()),
                ("bk_scope_id", "1".into()),
                ("job_instance_id", "999999".into()),
            ],
        )
        .await;
    assert_eq!(v["code"], 1_244_006);
    let v = emu
        .v3(
            "execute_job_plan",
            json!({"bk_scope_type": "biz", "bk_scope_id": "1", "job_plan_id": 4242}),
        )
        .await;
    assert_eq!(v["code"], 1_243_009);
    let ids: Vec<u64> = (1..=501).collect();
    let v = emu
        .v3(
            "batch_get_job_instance_ip_log",
            json!({"bk_scope_type": "biz", "bk_scope_id": "1", "job_instance_id": 999999,
                   "step_instance_id": 1, "host_id_list": ids}),
        )
        .await;
    assert_eq!(v["code"], 1_244_006, "the job is looked up first: {v}");
    // A malformed body is JOB's error, not a crash.
    let r = emu
        .http
        .post(emu.url("/api/v3/fast_execute_script"))
        .header("X-Bkapi-Authorization", GATEWAY_AUTH)
        .body("{not json")
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], 1_241_022);
    // Wrong types too.
    let v = emu
        .v3("fast_execute_script", with(json!({"timeout": {"x": 1}})))
        .await;
    assert_eq!(v["code"], 1_241_005);
    // Strict worlds refuse unknown hosts.
    let strict = start("settings: {strict_hosts: true}\nhosts: [{host_id: 1, ip: 10.0.0.1}]").await;
    let v = strict
        .v3(
            "fast_execute_script",
            with(json!({"target_server": {"ip_list": [{"bk_cloud_id": 0, "ip": "10.0.0.99"}]}})),
        )
        .await;
    assert_eq!(v["code"], 1_244_002, "{v}");
}

#[tokio::test]
async fn batch_log_refuses_more_than_500_hosts() {
    let emu = full().await;
    let job = emu.script("echo hi", &["10.0.0.1"], json!({})).await;
    let data = emu.wait_finished(job).await;
    let step = step_id(&data, 0);
    let ids: Vec<u64> = (1..=501).collect();
    let v = emu
        .v3(
            "batch_get_job_instance_ip_log",
            json!({"bk_scope_type": "biz", "bk_scope_id": "1", "job_instance_id": job,
                   "step_instance_id": step, "host_id_list": ids}),
        )
        .await;
    assert_eq!(v["code"], 1_241_007, "{v}");
    let v = emu
        .v3(
            "batch_get_job_instance_ip_log",
            json!({"bk_scope_type": "biz", "bk_scope_id": "1", "job_instance_id": job,
                   "step_instance_id": step, "ip_list": [{"bk_cloud_id": 0, "ip": "10.0.0.1"}]}),
        )
        .await;
    assert_eq!(v["data"]["log_type"], 1);
    assert!(
        v["data"]["script_task_logs"][0]["log_content"]
            .as_str()
            .unwrap()
            .contains("hi")
    );
}

// ---------------------------------------------------------------- state machine, operations

#[tokio::test]
async fn a_held_host_keeps_the_job_running_until_terminated() {
    let emu = full().await;
    emu.control("hold", json!({"host": "0:10.0.0.1"})).await;
    let job = emu.script("echo never", &["10.0.0.1"], json!({})).await;
    let data = emu
        .wait_until(job, "host running", |d| {
            d["step_instance_list"][0]["step_ip_result_list"][0]["status"] == 7
        })
        .await;
    assert_eq!(data["job_instance"]["status"], 2);
    assert_eq!(data["finished"], false);
    assert_eq!(data["step_instance_list"][0]["status"], 2);
    assert_eq!(
        data["job_instance"]["current_step_instance_id"],
        step_id(&data, 0)
    );
    // Step ops on a running step are refused.
    let v = emu.step_op(job, step_id(&data, 0), 2).await;
    assert_eq!(v["code"], 1_241_003);
    let v = emu.step_op(job, step_id(&data, 0), 4).await;
    assert_eq!(v["code"], 1_241_002);
    let v = emu.job_op(job, 1).await;
    assert_eq!(v["code"], 0, "{v}");
    let data = emu.wait_job_status(job, 11).await;
    assert_eq!(data["step_instance_list"][0]["status"], 11);
    assert_eq!(
        data["step_instance_list"][0]["step_ip_result_list"][0]["status"],
        403
    );
    let v = emu.job_op(job, 1).await;
    assert_eq!(v["code"], 1_241_003);
    let v = emu.job_op(job, 9).await;
    assert_eq!(v["code"], 1_241_002);
    // Retry after the stop runs again (execute_count 1) once released.
    emu.control("release", json!({"host": "0:10.0.0.1"})).await;
    let v = emu.step_op(job, step_id(&data, 0), 8).await;
    assert_eq!(v["code"], 0, "{v}");
    let data = emu.wait_finished(job).await;
    assert_eq!(data["job_instance"]["status"], 3, "{data}");
    assert_eq!(data["step_instance_list"][0]["execute_count"], 1);
}

#[tokio::test]
async fn terminating_kills_a_running_script() {
    let emu = full().await;
    let job = emu
        .script(
            "touch /tmp/started; sleep 300; echo never",
            &["10.0.0.2"],
            json!({}),
        )
        .await;
    let start = Instant::now();
    while emu.host_file("0:10.0.0.2", "/tmp/started").is_none() {
        assert!(start.elapsed() < DEADLINE, "script never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(emu.job_op(job, 1).await["code"], 0);
    let data = emu.wait_job_status(job, 11).await;
    assert_eq!(
        data["step_instance_list"][0]["step_ip_result_list"][0]["status"],
        403
    );
    assert!(start.elapsed() < Duration::from_secs(120));
}

#[tokio::test]
async fn start_task_false_waits_for_operation_2() {
    let emu = full().await;
    let job = emu
        .script("echo later", &["10.0.0.1"], json!({"start_task": false}))
        .await;
    let data = emu.status(job).await;
    assert_eq!(data["job_instance"]["status"], 1);
    assert_eq!(data["step_instance_list"][0]["status"], 1);
    assert_eq!(emu.job_op(job, 1).await["code"], 1_241_003);
    assert_eq!(emu.job_op(job, 2).await["code"], 0);
    let data = emu.wait_finished(job).await;
    assert_eq!(data["job_instance"]["status"], 3);
    assert_eq!(emu.job_op(job, 2).await["code"], 1_241_015);
}

#[tokio::test]
async fn failures_retries_and_ignored_errors() {
    let emu = full().await;
    let faults = json!({"hosts": [{"host": "0:10.0.0.2", "status": 104, "exit_code": 3, "log": "boom", "count": 1}]});
    assert_eq!(emu.control("faults", faults).await["ok"], true);
    let job = emu
        .script("echo fine", &["10.0.0.1", "10.0.0.2"], json!({}))
        .await;
    let data = emu.wait_finished(job).await;
    assert_eq!(data["job_instance"]["status"], 4, "{data}");
    let step = &data["step_instance_list"][0];
    assert_eq!(step["status"], 4);
    let hosts = step["step_ip_result_list"].as_array().unwrap();
    let failed = hosts.iter().find(|h| h["ip"] == "10.0.0.2").unwrap();
    assert_eq!(failed["status"], 104);
    assert_eq!(failed["exit_code"], 3);
    assert!(
        emu.host_log(job, step_id(&data, 0), 102)
            .await
            .contains("boom")
    );
    // Retry the failed host: the fault was one-shot, so it succeeds now.
    assert_eq!(emu.step_op(job, step_id(&data, 0), 2).await["code"], 0);
    let data = emu.wait_finished(job).await;
    assert_eq!(data["job_instance"]["status"], 3, "{data}");
    let step = &data["step_instance_list"][0];
    assert_eq!(step["execute_count"], 1);
    let ok = step["step_ip_result_list"].as_array().unwrap();
    assert!(
        ok.iter().any(|h| h["ip"] == "10.0.0.1" && h["status"] == 3),
        "succeeded last time: {step}"
    );
    assert!(ok.iter().any(|h| h["ip"] == "10.0.0.2" && h["status"] == 9));

    // Ignore error on a failing first step lets the plan go on.
    let faults =
        json!({"hosts": [{"host": "0:10.0.0.1", "status": 104, "exit_code": 1, "count": 1}]});
    emu.control("faults", faults).await;
    let v = emu
        .v3(
            "execute_job_plan",
            json!({"bk_scope_type": "biz", "bk_scope_id": "1", "job_plan_id": 100}),
        )
        .await;
    let job = v["data"]["job_instance_id"].as_u64().unwrap();
    assert!(v["data"].get("step_instance_id").is_none());
    let data = emu.wait_job_status(job, 4).await;
    assert_eq!(data["step_instance_list"][0]["status"], 4);
    assert_eq!(data["step_instance_list"][1]["status"], 1);
    assert_eq!(emu.step_op(job, step_id(&data, 0), 3).await["code"], 0);
    let data = emu.wait_finished(job).await;
    assert_eq!(data["job_instance"]["status"], 3, "{data}");
    assert_eq!(data["step_instance_list"][0]["status"], 6);
    // Global string variables reach scripts (plan 100 step 1 echoes $message).
    let log = emu.host_log(job, step_id(&data, 1), 101).await;
    assert!(log.contains("message=default String value"), "{log}");
    // A finished step cannot be ignored twice.
    assert_eq!(
        emu.step_op(job, step_id(&data, 0), 3).await["code"],
        1_241_003
    );
}

#[tokio::test]
async fn plan_with_confirmation_and_rolling_confirm_mode() {
    let emu = full().await;
    let v = emu
        .v3(
            "execute_job_plan",
            json!({"bk_scope_type": "biz", "bk_scope_id": "1", "job_plan_id": 300,
                   "global_var_list": [{"name": "version", "value": "2.5.0"}]}),
        )
        .await;
    assert_eq!(v["code"], 0, "{v}");
    let job = v["data"]["job_instance_id"].as_u64().unwrap();
    let data = emu.wait_job_status(job, 7).await;
    assert_eq!(data["step_instance_list"][0]["status"], 3);
    assert_eq!(data["step_instance_list"][1]["status"], 7);
    assert_eq!(
        data["job_instance"]["current_step_instance_id"],
        step_id(&data, 1)
    );
    let log = emu.host_log(job, step_id(&data, 0), 101).await;
    assert!(log.contains("version=2.5.0"), "{log}");
    // Refuse, restart, then confirm.
    let confirm = step_id(&data, 1);
    assert_eq!(emu.step_op(job, confirm, 13).await["code"], 1_241_003);
    assert_eq!(emu.step_op(job, confirm, 9).await["code"], 0);
    let data = emu.wait_job_status(job, 13).await;
    assert_eq!(data["finished"], true);
    assert_eq!(emu.step_op(job, confirm, 10).await["code"], 0);
    emu.wait_job_status(job, 7).await;
    assert_eq!(emu.step_op(job, confirm, 6).await["code"], 0);

    // Rolling "1 +1" over four hosts: batches 1, 2, 1, each later one confirmed by op 13.
    let rolling = step_id(&data, 2);
    for batch in 1..=2 {
        let data = emu
            .wait_until(job, "rolling step waiting", |d| {
                d["step_instance_list"][2]["status"] == 7
                    && d["step_instance_list"][2]["rolling_batch"]["current"] == batch
            })
            .await;
        assert_eq!(data["job_instance"]["status"], 7);
        assert_eq!(data["step_instance_list"][2]["rolling_batch"]["total"], 3);
        let done = data["step_instance_list"][2]["step_ip_result_list"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["status"] == 9)
            .count();
        assert_eq!(done, [1, 3][batch - 1], "{data}");
        assert_eq!(emu.step_op(job, rolling, 13).await["code"], 0);
    }
    let data = emu.wait_finished(job).await;
    assert_eq!(data["job_instance"]["status"], 3, "{data}");
    let log = emu.host_log(job, rolling, 104).await;
    assert!(log.contains("rolling 2.5.0"), "{log}");
}

#[tokio::test]
async fn rolling_shows_15_between_batches_and_pause_mode_stops_at_a_failure() {
    let emu = full().await;
    emu.control("hold", json!({"host": "0:10.0.0.1"})).await;
    let job = emu
        .script(
            "echo batch",
            &["10.0.0.1", "10.0.0.2"],
            json!({"rolling_config": {"expression": "1", "mode": 2}}),
        )
        .await;
    emu.wait_until(job, "first batch running", |d| {
        d["step_instance_list"][0]["step_ip_result_list"][0]["status"] == 7
    })
    .await;
    emu.control("hold", json!({"job_instance_id": job})).await;
    emu.control("release", json!({"host": "0:10.0.0.1"})).await;
    let data = emu
        .wait_until(job, "rolling wait", |d| {
            d["step_instance_list"][0]["status"] == 15
        })
        .await;
    assert_eq!(data["job_instance"]["status"], 2);
    assert_eq!(data["step_instance_list"][0]["rolling_batch"]["current"], 1);
    emu.control("release", json!({"job_instance_id": job}))
        .await;
    let data = emu.wait_finished(job).await;
    assert_eq!(data["job_instance"]["status"], 3);

    // Pause mode: the first batch fails, the second never runs.
    emu.control(
        "faults",
        json!({"hosts": [{"host": "0:10.0.0.1", "status": 104, "exit_code": 1}]}),
    )
    .await;
    let job = emu
        .script(
            "echo batch",
            &["10.0.0.1", "10.0.0.2"],
            json!({"rolling_config": {"expression": "1", "mode": 1}}),
        )
        .await;
    let data = emu.wait_finished(job).await;
    assert_eq!(data["job_instance"]["status"], 4);
    let hosts = data["step_instance_list"][0]["step_ip_result_list"]
        .as_array()
        .unwrap();
    assert!(
        hosts
            .iter()
            .any(|h| h["ip"] == "10.0.0.2" && h["status"] == 5),
        "{data}"
    );
}

// ---------------------------------------------------------------- callbacks

#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(String, String)>>>);

/// A callback receiver answering 500 to the first `fail_first` deliveries.
async fn receiver(fail_first: usize) -> (String, Received) {
    use axum::http::HeaderMap;
    let received = Received::default();
    let store = received.clone();
    let app = axum::Router::new().route(
        "/cb",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let store = store.clone();
            async move {
                let content_type = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let mut list = store.0.lock().unwrap();
                list.push((content_type, body));
                if list.len() <= fail_first {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/cb"), received)
}

async fn wait_for_callbacks(received: &Received, n: usize) -> Vec<(String, String)> {
    let start = Instant::now();
    loop {
        let list = received.0.lock().unwrap().clone();
        if list.len() >= n {
            return list;
        }
        assert!(start.elapsed() < DEADLINE, "only {} callbacks", list.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn callbacks_json_then_form_retry_and_again_after_a_retry() {
    let emu = full().await;
    let (url, received) = receiver(1).await;
    emu.control(
        "faults",
        json!({"hosts": [{"host": "0:10.0.0.1", "status": 104, "exit_code": 1, "count": 1}]}),
    )
    .await;
    let job = emu
        .script("echo cb", &["10.0.0.1"], json!({"callback_url": url}))
        .await;
    let list = wait_for_callbacks(&received, 2).await;
    assert_eq!(list[0].0, "application/json");
    assert_eq!(list[1].0, "application/x-www-form-urlencoded");
    assert_eq!(list[0].1, list[1].1, "the retry resends the same JSON text");
    let body: Value = serde_json::from_str(&list[0].1).unwrap();
    assert_eq!(body["job_instance_id"], job);
    assert_eq!(body["status"], 4);
    assert_eq!(body["step_instances"][0]["status"], 4);
    assert!(body.get("step_instance_list").is_none());
    // A retry re-finishes the job: another callback (answered 200 the first time).
    let data = emu.status(job).await;
    emu.step_op(job, step_id(&data, 0), 2).await;
    let list = wait_for_callbacks(&received, 3).await;
    let body: Value = serde_json::from_str(&list[2].1).unwrap();
    assert_eq!(body["status"], 3);
    assert_eq!(list[2].0, "application/json");
    let attempts = emu.control_get("callbacks").await;
    assert_eq!(attempts.as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn callback_field_switch_and_callback_faults() {
    let emu = start("settings: {callback_field: step_instance_list}").await;
    let (url, received) = receiver(0).await;
    let auth = Some(GATEWAY_AUTH);
    let body = json!({"bk_scope_type": "biz", "bk_scope_id": "1", "account_alias": "root",
                      "script_language": 1, "script_content": "ZWNobyBvaw==", "callback_url": url,
                      "target_server": {"ip_list": [{"bk_cloud_id": 0, "ip": "10.0.0.1"}]}});
    let (_, v) = emu
        .post_raw("/api/v3/fast_execute_script", &body, auth)
        .await;
    assert_eq!(v["code"], 0, "{v}");
    let list = wait_for_callbacks(&received, 1).await;
    let sent: Value = serde_json::from_str(&list[0].1).unwrap();
    assert!(sent["step_instance_list"].is_array(), "{sent}");
    assert!(sent.get("step_instances").is_none());

    // Sent twice.
    emu.control("faults", json!({"callbacks": [{"kind": "twice"}]}))
        .await;
    let (_, v) = emu
        .post_raw("/api/v3/fast_execute_script", &body, auth)
        .await;
    let job = v["data"]["job_instance_id"].as_u64().unwrap();
    let list = wait_for_callbacks(&received, 3).await;
    assert_eq!(list[1].1, list[2].1);
    assert!(list[1].1.contains(&job.to_string()));

    // Lost: the job finishes, nothing arrives, the attempt log stays empty for it.
    emu.control("faults", json!({"callbacks": [{"kind": "lost"}]}))
        .await;
    let (_, v) = emu
        .post_raw("/api/v3/fast_execute_script", &body, auth)
        .await;
    let job = v["data"]["job_instance_id"].as_u64().unwrap();
    emu.wait_finished(job).await;
    let attempts = emu.control_get("callbacks").await;
    assert!(
        !attempts
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["job_instance_id"] == job)
    );
}

// ---------------------------------------------------------------- faults and controls

#[tokio::test]
async fn api_faults_errors_rate_limits_and_dropped_connections() {
    let emu = full().await;
    emu.control(
        "faults",
        json!({"api": [{"api": "get_job_plan_list", "kind": "error", "status": 502, "count": 1},
                       {"api": "get_job_plan_detail", "kind": "rate_limit", "reset_secs": 3, "count": 1}]}),
    )
    .await;
    let get = |api: &str, extra: &str| {
        emu.http
            .get(emu.url(&format!(
                "/api/v3/{api}?bk_scope_type=biz&bk_scope_id=1{extra}"
            )))
            .header("X-Bkapi-Authorization", GATEWAY_AUTH)
            .send()
    };
    assert_eq!(
        get("get_job_plan_list", "").await.unwrap().status(),
        StatusCode::BAD_GATEWAY
    );
    assert_eq!(
        get("get_job_plan_list", "").await.unwrap().status(),
        StatusCode::OK
    );
    let limited = get("get_job_plan_detail", "&job_plan_id=100")
        .await
        .unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers()["X-Bkapi-RateLimit-Reset"], "3");
    let ok: Value = get("get_job_plan_detail", "&job_plan_id=100")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ok["data"]["job_plan_id"], 100);
    assert_eq!(ok["data"]["step_list"].as_array().unwrap().len(), 3);

    // Dropped: the submit takes effect, the client sees a broken connection.
    emu.control(
        "faults",
        json!({"api": [{"api": "fast_execute_script", "kind": "drop", "count": 1}]}),
    )
    .await;
    let body = json!({"bk_scope_type": "biz", "bk_scope_id": "1", "account_alias": "root",
                      "script_language": 1, "script_content": "ZWNobyBvaw==",
                      "task_name": "reconcile-me-7f3a",
                      "target_server": {"ip_list": [{"bk_cloud_id": 0, "ip": "10.0.0.1"}]}});
    let outcome = emu
        .http
        .post(emu.url("/api/v3/fast_execute_script"))
        .header("X-Bkapi-Authorization", GATEWAY_AUTH)
        .json(&body)
        .send()
        .await;
    let failed = match outcome {
        Err(_) => true,
        Ok(response) => response.json::<Value>().await.is_err(),
    };
    assert!(failed, "the client must not get an answer");
    // Reconcile by task name, as a client would.
    let list = emu
        .v3_get(
            "get_job_instance_list",
            &[
                ("bk_scope_type", "biz".into()),
                ("bk_scope_id", "1".into()),
                ("name", "reconcile-me-7f3a".into()),
                ("create_time_start", "0".into()),
                ("create_time_end", "99999999999999".into()),
            ],
        )
        .await;
    assert_eq!(list["data"]["total"], 1, "{list}");
    assert_eq!(list["data"]["data"][0]["name"], "reconcile-me-7f3a");

    // Latency is added, not an error.
    emu.control(
        "faults",
        json!({"api": [{"kind": "latency", "latency_ms": 50}]}),
    )
    .await;
    let v = emu
        .v3_get(
            "get_job_plan_list",
            &[
                ("bk_scope_type", "biz".into()),
                ("bk_scope_id", "1".into()),
                ("name", "release".into()),
            ],
        )
        .await;
    assert_eq!(v["data"]["total"], 1, "{v}");
    assert_eq!(v["data"]["data"][0]["id"], 300);
    emu.http
        .delete(emu.url("/_emulator/faults"))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn requests_are_recorded_as_received() {
    let emu = full().await;
    let requests = emu.control_get("requests?api=fast_execute_script").await;
    assert_eq!(requests.as_array().unwrap().len(), 0, "zero submissions");
    let body = seed_body(SEED_001);
    emu.v2("fast_execute_script", body.clone()).await;
    emu.v3_get(
        "get_job_plan_list",
        &[("bk_scope_type", "biz".into()), ("bk_scope_id", "1".into())],
    )
    .await;
    let requests = emu.control_get("requests?api=fast_execute_script").await;
    let list = requests.as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["protocol"], "v2");
    assert_eq!(list[0]["body"], body);
    let gets = emu.control_get("requests?protocol=v3").await;
    assert_eq!(gets[0]["method"], "GET");
    assert_eq!(gets[0]["query_params"]["bk_scope_id"], "1");
    let instances = emu.control_get("instances").await;
    assert_eq!(instances.as_array().unwrap().len(), 1);
    assert!(instances[0]["job_instance_id"].as_u64().unwrap() >= 10_000);
}

#[tokio::test]
async fn plan_lookup_v2_and_v3() {
    let emu = full().await;
    let v = emu
        .v2("get_job_list", json!({"bk_biz_id": 1, "name": "Test"}))
        .await;
    assert_eq!(v["data"][0]["bk_job_id"], 100, "{v}");
    let v = emu
        .v2("get_job_detail", json!({"bk_biz_id": 1, "bk_job_id": 100}))
        .await;
    let vars = v["data"]["global_vars"].as_array().unwrap();
    assert!(vars.iter().any(|g| g["id"] == 436 && g["category"] == 3));
    assert!(
        vars.iter()
            .any(|g| g["id"] == 438 && g["value"] == "******")
    );
    assert_eq!(v["data"]["steps"].as_array().unwrap().len(), 3);
    let v = emu
        .v3_get(
            "get_job_plan_detail",
            &[
                ("bk_scope_type", "biz".into()),
                ("bk_scope_id", "1".into()),
                ("job_plan_id", "300".into()),
            ],
        )
        .await;
    assert_eq!(v["data"]["step_list"][1]["type"], 3);
    assert_eq!(v["data"]["global_var_list"][0]["name"], "version");
    // Plans scoped to business 1 are invisible from business 2.
    let v = emu
        .v3(
            "execute_job_plan",
            json!({"bk_scope_type": "biz", "bk_scope_id": "2", "job_plan_id": 100}),
        )
        .await;
    assert_eq!(v["code"], 1_243_009);
}

#[tokio::test]
async fn job_instance_ids_increase_and_belong_to_their_scope() {
    let emu = full().await;
    let a = emu.script("true", &["10.0.0.1"], json!({})).await;
    let b = emu.script("true", &["10.0.0.1"], json!({})).await;
    assert!(b > a && a >= 10_000);
    let v = emu
        .v3_get(
            "get_job_instance_status",
            &[
                ("bk_scope_type", "biz".into()),
                ("bk_scope_id", "2".into()),
                ("job_instance_id", a.to_string()),
            ],
        )
        .await;
    assert_eq!(v["code"], 1_244_006, "another business cannot see it");
}

// ---------------------------------------------------------------- scale

#[tokio::test]
async fn a_thousand_instances_alive_at_once() {
    let emu = start("settings: {simulate: true}").await;
    emu.control("hold", json!({})).await;
    let body = json!({"bk_scope_type": "biz", "bk_scope_id": "1", "account_alias": "root",
                      "script_language": 1, "script_content": "ZWNobyBvaw==",
                      "target_server": {"host_id_list": [1, 2, 3]}});
    let mut ids = Vec::new();
    let mut pending = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let (http, url, body) = (
            emu.http.clone(),
            emu.url("/api/v3/fast_execute_script"),
            body.clone(),
        );
        pending.spawn(async move {
            let v: Value = http
                .post(url)
                .header("X-Bkapi-Authorization", GATEWAY_AUTH)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["data"]["job_instance_id"].as_u64().unwrap()
        });
        if pending.len() >= 32 {
            ids.push(pending.join_next().await.unwrap().unwrap());
        }
    }
    while let Some(id) = pending.join_next().await {
        ids.push(id.unwrap());
    }
    assert_eq!(ids.len(), 1000);
    let start = Instant::now();
    loop {
        let all = emu.control_get("instances").await;
        let running = all
            .as_array()
            .unwrap()
            .iter()
            .filter(|j| j["status"] == 2)
            .count();
        if running == 1000 {
            break;
        }
        assert!(start.elapsed() < DEADLINE, "{running} running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    emu.control("release", json!({"all": true})).await;
    loop {
        let all = emu.control_get("instances").await;
        let done = all
            .as_array()
            .unwrap()
            .iter()
            .filter(|j| j["status"] == 3)
            .count();
        if done == 1000 {
            break;
        }
        assert!(start.elapsed() < DEADLINE * 2, "{done} done");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------- the binary

#[test]
fn baton_emulator_starts_prints_its_url_and_stops_on_sigterm() {
    use std::io::BufRead as _;
    use std::process::{Command, Stdio};
    let world = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/worlds/full.yaml"
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["emulator", "--listen", "127.0.0.1:0", "--world", world])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("baton emulator listening on ")
        .unwrap_or_else(|| panic!("first line: {line:?}"))
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let health: Value = runtime.block_on(async {
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!("{url}/_emulator/health"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert_eq!(health["ok"], true);
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(start.elapsed() < DEADLINE, "emulator ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}
