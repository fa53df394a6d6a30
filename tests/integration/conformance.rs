//! JOB's own API docs as a test suite. `tests/fixtures/apidoc/<family>/<api>.json` hold
//! the request and response examples of bk-job's gateway v3 / v4 and ESB jobv3 pages
//! and legacy-bk-paas' ESB v2 `job` pages (each with its source repository, path and
//! commit; `extract.py` beside them regenerates them). For every API the emulator
//! serves, each request example is sent as written to the world of
//! `tests/fixtures/worlds/apidoc.yaml`; only the ids the emulator mints
//! (`job_instance_id`, `step_instance_id`) are replaced by those of jobs it ran. Jobs
//! are followed to their end, and the answer must hold every key path of the response
//! example with the same JSON type. The documented error examples (v4's 400 and 403)
//! are provoked and must answer with the documented status, code and message.
//!
//! Where a doc contradicts itself or bk-job's Java, the Java wins; each such place is in
//! `DOC_VS_JAVA` (conformance_docs.rs). APIs with fixtures that the emulator does not
//! serve yet are in `NOT_SERVED_YET`: the test fails when one of them starts being
//! served (switch it on there) and when a documented API that the emulator serves has
//! no fixture.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use baton::emulator::{self, EmulatorConfig, EmulatorHandle, Isolation, World};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::conformance_docs::{
    FIXTURES, Family, Fixture, Request, UNPARSABLE, conforms, index, load, minted, not_served_yet,
    substitute,
};

const WORLD: &str = include_str!("../fixtures/worlds/apidoc.yaml");
const GATEWAY_AUTH: &str =
    r#"{"bk_app_code":"baton","bk_app_secret":"s3cret","bk_username":"admin"}"#;
const DEADLINE: Duration = Duration::from_secs(60);

struct Emu {
    handle: EmulatorHandle,
    http: reqwest::Client,
}

impl Emu {
    async fn start() -> Emu {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = EmulatorConfig {
            world: World::parse(WORLD).expect("apidoc world parses"),
            isolation: Isolation::Namespace {
                helper: env!("CARGO_BIN_EXE_baton").into(),
            },
            ..EmulatorConfig::local(env!("CARGO_BIN_EXE_baton").into())
        };
        let handle = emulator::start(config).await.expect("emulator starts");
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        Emu { handle, http }
    }

    /// Sends one request as a client of `family` would; the status and JSON answer.
    async fn send(&self, family: Family, api: &str, request: &Request) -> (u16, Value) {
        let url = format!("{}{}", self.handle.base_url(), family.path(api));
        let builder = match request {
            Request::Get(query) => self.http.get(format!("{url}?{query}")),
            Request::Post(body) => self.http.post(url).json(body),
        };
        let builder = if family.is_esb() {
            builder
        } else {
            builder.header("X-Bkapi-Authorization", GATEWAY_AUTH)
        };
        let response = builder.send().await.expect("request sent");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// v3 status of a job, through the gateway.
    async fn status(&self, job: u64) -> Value {
        let query = format!("bk_scope_type=biz&bk_scope_id=1&job_instance_id={job}");
        let (_, v) = self
            .send(
                Family::GatewayV3,
                "get_job_instance_status",
                &Request::Get(query),
            )
            .await;
        v["data"].clone()
    }

    /// Waits until the job is no longer running or waiting to start.
    async fn settle(&self, job: u64, done: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let data = self.status(job).await;
            if done(&data) {
                return data;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "job {job} did not settle: {data}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn finish(&self, job: u64) -> Value {
        self.settle(job, |d| d["finished"] == true).await
    }
}

/// The minted ids each follow-up example refers to, by what its answer shows.
#[derive(Default)]
struct Jobs {
    script: BTreeMap<&'static str, (u64, u64)>,
    file: BTreeMap<&'static str, (u64, u64)>,
    container: Option<(u64, u64)>,
}

struct Run<'a> {
    emu: &'a Emu,
    family: Family,
    problems: Vec<String>,
    checked: usize,
}

impl Run<'_> {
    fn check(&mut self, fixture: &Fixture, title: &str, doc: &Value, got: &Value) {
        let mut out = Vec::new();
        conforms(
            &format!("{}/{}", self.family.name(), fixture.api),
            doc,
            got,
            "",
            &mut out,
        );
        self.checked += 1;
        if !out.is_empty() && std::env::var_os("CONFORMANCE_DUMP").is_some() {
            eprintln!("{} {} answered: {got}", self.family.name(), fixture.api);
        }
        for problem in out {
            self.problems.push(format!(
                "{} {} [{title}]: {problem}",
                self.family.name(),
                fixture.api
            ));
        }
    }

    fn success_docs(fixture: &Fixture) -> Vec<(String, Value)> {
        fixture
            .responses
            .iter()
            .filter(|(_, status, body)| *status == 200 && body.get("error").is_none())
            .map(|(t, _, b)| (t.clone(), b.clone()))
            .collect()
    }

    /// Sends a submit example, checks its answer, follows the job to its end.
    async fn submit(&mut self, fixture: &Fixture, index: usize) -> (u64, u64) {
        let (title, request) = &fixture.requests[index];
        let (status, answer) = self.emu.send(self.family, &fixture.api, request).await;
        assert_eq!(
            status,
            200,
            "{} {} [{title}]: {answer}",
            self.family.name(),
            fixture.api
        );
        for (doc_title, doc) in Self::success_docs(fixture) {
            self.check(fixture, &doc_title, &doc, &answer);
        }
        let (job, step) = minted(&answer);
        let end = self.emu.finish(job).await;
        // v2 answers name no step; the status does.
        let step = match step {
            0 => end["step_instance_list"][0]["step_instance_id"]
                .as_u64()
                .unwrap_or(0),
            step => step,
        };
        let ids = (job, step);
        assert_eq!(
            end["job_instance"]["status"],
            3,
            "{} {} [{title}] ends in success: {end}",
            self.family.name(),
            fixture.api
        );
        ids
    }

    /// Sends a follow-up example about `ids` and checks it against the doc `doc`.
    async fn follow_up(&mut self, fixture: &Fixture, ids: (u64, u64), title: &str, doc: &Value) {
        // Where a page has one request per kind (hosts, containers), each answer example
        // goes with the request of its kind.
        let container = title.contains("容器");
        let requests = fixture
            .requests
            .iter()
            .filter(|(t, _)| fixture.requests.len() == 1 || t.contains("容器") == container);
        for (_, request) in requests {
            let request = substitute(request, ids.0, ids.1);
            let (status, answer) = self.emu.send(self.family, &fixture.api, &request).await;
            if status != 200 {
                self.problems.push(format!(
                    "{} {} [{title}]: HTTP {status}: {answer}",
                    self.family.name(),
                    fixture.api
                ));
                continue;
            }
            self.check(fixture, title, doc, &answer);
        }
    }
}

/// Which generation's submit examples give the jobs the follow-ups read.
fn submit_api(family: Family, file: bool) -> &'static str {
    match (family, file) {
        (Family::EsbV2, false) => "fast_execute_script",
        (Family::EsbV2, true) => "fast_push_file",
        (_, false) => "fast_execute_script",
        (_, true) => "fast_transfer_file",
    }
}

async fn run_family(emu: &Emu, family: Family, jobs: &mut Jobs) -> (Vec<String>, usize) {
    let mut run = Run {
        emu,
        family,
        problems: Vec::new(),
        checked: 0,
    };
    let fixture = |api: &str| load(family, api).unwrap_or_else(|| panic!("{api} fixture"));

    // Submits, as written.
    let script = fixture(submit_api(family, false));
    for i in 0..script.requests.len() {
        let ids = run.submit(&script, i).await;
        if script.requests[i].0.contains("容器") {
            jobs.container = Some(ids);
        } else {
            jobs.script.entry(family.name()).or_insert(ids);
        }
    }
    if family != Family::GatewayV4 {
        let file = fixture(submit_api(family, true));
        for i in 0..file.requests.len() {
            let ids = run.submit(&file, i).await;
            jobs.file.entry(family.name()).or_insert(ids);
        }
    }
    let plan_api = match family {
        Family::EsbV2 => vec!["execute_job", "execute_platform_job"],
        Family::GatewayV4 => vec![],
        _ => vec!["execute_job_plan"],
    };
    for api in plan_api {
        let f = fixture(api);
        for i in 0..f.requests.len() {
            run.submit(&f, i).await;
        }
    }

    // Reads of those jobs: each documented answer against the job it describes.
    let reads: &[&str] = match family {
        Family::EsbV2 => &["get_job_instance_status", "get_job_instance_log"],
        Family::GatewayV4 => &[
            "get_job_instance_status",
            "batch_get_job_instance_execute_object_log",
        ],
        _ => &[
            "get_job_instance_status",
            "get_job_instance_ip_log",
            "batch_get_job_instance_ip_log",
        ],
    };
    for api in reads {
        let f = fixture(api);
        for (title, doc) in Run::success_docs(&f) {
            let ids = if title.contains("容器") {
                jobs.container.expect("a container job")
            } else if title.contains("文件") {
                // v4 has no file API; its example reads hosts 1 and 2, which v2's push uses.
                let by = if family == Family::GatewayV4 {
                    Family::EsbV2
                } else {
                    family
                };
                jobs.file[by.name()]
            } else {
                jobs.script[family.name()]
            };
            run.follow_up(&f, ids, &title, &doc).await;
        }
    }

    // Lists and details, as written (plans exist in the world; jobs ran above).
    let lists: &[&str] = match family {
        Family::EsbV2 => &["get_job_list", "get_job_detail"],
        Family::GatewayV4 => &["get_job_instance_list"],
        _ => &[
            "get_job_plan_list",
            "get_job_plan_detail",
            "get_job_instance_list",
        ],
    };
    for api in lists {
        let f = fixture(api);
        for (title, doc) in Run::success_docs(&f) {
            run.follow_up(&f, (0, 0), &title, &doc).await;
        }
    }

    if family != Family::GatewayV4 {
        operations(
            &mut run,
            &fixture("operate_job_instance"),
            &fixture("operate_step_instance"),
        )
        .await;
    } else {
        documented_errors(&mut run).await;
    }
    (run.problems, run.checked)
}

/// operate_job_instance's example (1: terminate) on a job waiting for a confirmation;
/// operate_step_instance's example (2: retry the failed hosts) on a failed step.
async fn operations(run: &mut Run<'_>, job_op: &Fixture, step_op: &Fixture) {
    let emu = run.emu;
    let waiting = plan_job(emu, 300).await;
    emu.settle(waiting, |d| d["job_instance"]["status"] == 7)
        .await;
    for (title, doc) in Run::success_docs(job_op) {
        run.follow_up(job_op, (waiting, 0), &title, &doc).await;
    }
    let failed = failing_job(emu).await;
    let end = emu.finish(failed.0).await;
    assert_eq!(end["job_instance"]["status"], 4, "{end}");
    for (title, doc) in Run::success_docs(step_op) {
        run.follow_up(step_op, failed, &title, &doc).await;
    }
}

async fn plan_job(emu: &Emu, plan: u64) -> u64 {
    let (_, v) = emu
        .send(
            Family::GatewayV3,
            "execute_job_plan",
            &Request::Post(
                json!({"bk_scope_type": "biz", "bk_scope_id": "1", "job_plan_id": plan}),
            ),
        )
        .await;
    minted(&v).0
}

async fn failing_job(emu: &Emu) -> (u64, u64) {
    let (_, v) = emu
        .send(
            Family::GatewayV3,
            "fast_execute_script",
            &Request::Post(json!({
                "bk_scope_type": "biz", "bk_scope_id": "1", "account_id": 1000,
                "script_language": 1, "script_content": "ZXhpdCAx", // exit 1
                "target_server": {"host_id_list": [103]},
            })),
        )
        .await;
    minted(&v)
}

/// v4's documented failures: 400 for an illegal `bk_scope_type` (with its message),
/// 403 with the permission body for a business the user may not access.
async fn documented_errors(run: &mut Run<'_>) {
    let emu = run.emu;
    for api in [
        "fast_execute_script",
        "get_job_instance_status",
        "get_job_instance_list",
        "batch_get_job_instance_execute_object_log",
    ] {
        let fixture = load(Family::GatewayV4, api).unwrap();
        let (_, first) = &fixture.requests[0];
        for (title, status, doc) in fixture.responses.iter().filter(|(_, s, _)| *s != 200) {
            let request = match (first, status) {
                (Request::Get(q), 400) => {
                    Request::Get(q.replace("bk_scope_type=biz", "bk_scope_type=team"))
                }
                (Request::Get(q), _) => Request::Get(q.replace("bk_scope_id=1", "bk_scope_id=3")),
                (Request::Post(b), 400) => {
                    let mut b = b.clone();
                    b["bk_scope_type"] = json!("team");
                    Request::Post(b)
                }
                (Request::Post(b), _) => {
                    let mut b = b.clone();
                    b["bk_scope_id"] = json!("3");
                    Request::Post(b)
                }
            };
            let (got_status, answer) = emu.send(Family::GatewayV4, api, &request).await;
            if got_status != *status || answer["error"]["code"] != doc["error"]["code"] {
                run.problems.push(format!(
                    "gateway_v4 {api} [{title}]: documented {status} {}, got {got_status} {answer}",
                    doc["error"]["code"]
                ));
                continue;
            }
            if *status == 400 {
                assert_eq!(answer["error"]["message"], doc["error"]["message"], "{api}");
            }
            run.check(&fixture, title, doc, &answer);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_examples_conform() {
    let emu = Emu::start().await;
    let mut problems = Vec::new();
    let mut checked = 0;
    let mut jobs = Jobs::default();
    for family in Family::ALL {
        let (p, n) = run_family(&emu, family, &mut jobs).await;
        problems.extend(p);
        checked += n;
    }
    assert!(
        checked > 40,
        "only {checked} documented answers were checked"
    );
    assert!(
        problems.is_empty(),
        "{} documented answers differ:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// The callback JOB posts for a job submitted through each door, against that door's
/// callback_protocol page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_have_the_documented_keys() {
    let emu = Emu::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/cb", listener.local_addr().unwrap());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let app = axum::Router::new().route(
        "/cb",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(body);
                "ok"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let v3 = json!({
        "bk_scope_type": "biz", "bk_scope_id": "1", "account_id": 1000,
        "script_language": 1, "script_content": "ZWNobyBoaQ==",
        "target_server": {"host_id_list": [101]}, "callback_url": url,
        "bk_app_code": "esb_test", "bk_app_secret": "xxx", "bk_token": "xxx",
    });
    let v2 = json!({
        "bk_biz_id": 1, "account": "root", "script_type": 1, "script_content": "ZWNobyBoaQ==",
        "ip_list": [{"bk_cloud_id": 0, "ip": "10.0.0.1"}], "bk_callback_url": url,
        "bk_app_code": "esb_test", "bk_app_secret": "xxx", "bk_token": "xxx",
    });
    for (family, body) in [
        (Family::GatewayV3, &v3),
        (Family::EsbJobV3, &v3),
        (Family::EsbV2, &v2),
    ] {
        let fixture = load(family, "callback_protocol").unwrap();
        let Request::Post(doc) = &fixture.requests[0].1 else {
            panic!("callback example is a body")
        };
        let (_, v) = emu
            .send(family, "fast_execute_script", &Request::Post(body.clone()))
            .await;
        let (job, _) = minted(&v);
        let callback = tokio::time::timeout(DEADLINE, rx.recv())
            .await
            .expect("a callback arrives")
            .unwrap();
        assert_eq!(callback["job_instance_id"], job);
        let mut out = Vec::new();
        let api = format!("{}/callback_protocol", family.name());
        conforms(&api, doc, &callback, "", &mut out);
        assert!(out.is_empty(), "{api}: {out:?}");
        assert!(
            callback["step_instances"].is_array(),
            "JobCallbackDTO's list: {callback}"
        );
    }
}

/// Every documented API the emulator answers has fixtures, and every fixture either
/// is checked or is listed in `NOT_SERVED_YET` because the emulator does not serve it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_apis_have_fixtures_and_unserved_ones_are_listed() {
    let emu = Emu::start().await;
    let index = index();
    let mut problems = Vec::new();
    for family in Family::ALL {
        let documented = index[family.name()]["apis"].as_array().unwrap();
        for api in documented.iter().filter_map(Value::as_str) {
            let (status, answer) = emu
                .send(family, api, &Request::Post(json!({"bk_scope_type": "biz", "bk_scope_id": "1", "bk_biz_id": 1, "bk_app_code": "esb_test", "bk_app_secret": "xxx", "bk_token": "xxx"})))
                .await;
            let unknown = status == StatusCode::NOT_FOUND.as_u16()
                || answer["code"] == 1_306_404
                || answer["code"] == 1_640_401;
            let has_fixture = load(family, api).is_some();
            match (unknown, has_fixture, not_served_yet(family, api)) {
                (false, false, _) => problems.push(format!(
                    "{} {api} is served but has no fixture: add it to extract.py's APIS",
                    family.name()
                )),
                (false, true, true) => problems.push(format!(
                    "{} {api} is served now: take it out of NOT_SERVED_YET",
                    family.name()
                )),
                (true, true, false) => problems.push(format!(
                    "{} {api} has a fixture but is not served: list it in NOT_SERVED_YET",
                    family.name()
                )),
                _ => {}
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The examples that cannot be read are exactly those listed as such, so a fixed doc
/// (after `extract.py` runs again) is noticed and checked.
#[test]
fn unreadable_examples_are_the_listed_ones() {
    let mut found = Vec::new();
    for family in Family::ALL {
        let dir = format!("{FIXTURES}/{}", family.name());
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            let fixture: Value = serde_json::from_str(&text).unwrap();
            for part in ["requests", "responses"] {
                for example in fixture[part].as_array().unwrap() {
                    if example.get("unparsed").is_some() {
                        found.push(format!(
                            "{}/{}/{}",
                            family.name(),
                            fixture["api"].as_str().unwrap(),
                            example["title"].as_str().unwrap()
                        ));
                    }
                }
            }
        }
    }
    found.sort();
    let mut listed: Vec<String> = UNPARSABLE
        .iter()
        .map(|(f, a, t, _)| format!("{f}/{a}/{t}"))
        .collect();
    listed.sort();
    assert_eq!(found, listed);
}
