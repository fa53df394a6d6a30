//! The API docs' examples as data: the fixtures under `tests/fixtures/apidoc/` (see
//! conformance.rs), the lists of what the emulator does not serve yet and of where the
//! docs and bk-job's Java disagree, and the key-path comparison of a documented answer
//! with the emulator's.

use serde_json::{Value, json};

pub(crate) const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/apidoc");

/// Documented APIs with fixtures that the emulator does not answer yet. When one is
/// added to the emulator, move it out of this list so that its examples are checked.
pub(crate) const NOT_SERVED_YET: &[(&str, &str)] = &[
    ("*", "get_script_list"),
    // The page describes what JOB posts to a callback URL (checked by
    // `callbacks_have_the_documented_keys`); ESB has no such component.
    ("esb_v2", "callback_protocol"),
];

/// Examples that are not JSON even when read leniently (comments, trailing commas):
/// (family, api, example title, what is wrong). Nothing of them is checked.
pub(crate) const UNPARSABLE: &[(&str, &str, &str, &str)] = &[(
    "gateway_v4",
    "get_job_instance_list",
    "成功示例",
    "the `job_instance_list` array is never closed",
)];

/// Key paths of a documented answer that bk-job's Java does not produce as documented
/// (`[]` is any element): the emulator follows the Java.
pub(crate) const DOC_VS_JAVA: &[(&str, &str, &str, &str)] = &[
    (
        "*",
        "get_job_plan_detail",
        "data.step_list[].file_info.file_source",
        "the example names the list `file_source`; EsbFileStepV3DTO and the page's own \
         table name it `file_source_list`",
    ),
    (
        "*",
        "get_job_plan_detail",
        "data.step_list[].script_info.account",
        "the example gives a string; EsbScriptStepV3DTO.account is EsbAccountV3BasicDTO \
         ({id, name, alias}), as the page's table says (object)",
    ),
    (
        "*",
        "get_job_plan_detail",
        "data.step_list[].file_info.upload_speed_limit",
        "EsbFileStepV3DTO sends `source_speed_limit`",
    ),
    (
        "*",
        "get_job_plan_detail",
        "data.step_list[].file_info.download_speed_limit",
        "EsbFileStepV3DTO sends `destination_speed_limit`",
    ),
    (
        "*",
        "get_job_instance_list",
        "data.data[].task_status",
        "EsbTaskInstanceV3DTO sends `status` (also in the example)",
    ),
    (
        "*",
        "get_job_instance_list",
        "data.data[].task_type",
        "EsbTaskInstanceV3DTO sends `type` (also in the example)",
    ),
    (
        "*",
        "get_job_instance_ip_log",
        "data.file_logs[].src_ip.host_id",
        "EsbIpDTO names it `bk_host_id`",
    ),
    (
        "gateway_v3",
        "get_job_instance_ip_log",
        "message",
        "EsbResp is NON_NULL and a success has no message, as the page's script example shows",
    ),
    (
        "esb_jobv3",
        "get_job_instance_status",
        "data.step_instance_list[].step_ip_result_list",
        "the request example omits `return_ip_result`, which defaults to false \
         (EsbGetJobInstanceStatusV3Request); the answer example shows the hosts anyway",
    ),
    (
        "gateway_v4",
        "get_job_instance_status",
        "data.step_instance_list[].step_execute_object_result_list",
        "the request example asks `return_ip_result` only; the execute objects come with \
         `return_execute_object_result`, as the page's parameter table says",
    ),
    (
        "esb_v2",
        "get_job_instance_status",
        "data.blocks[].step_instances[].retry_count",
        "EsbJobInstanceStatusDTO.StepInst sends `execute_count`",
    ),
    (
        "esb_v2",
        "get_job_instance_log",
        "data[].step_results[].ip_logs[].retry_count",
        "EsbGseAgentTaskDTO sends `execute_count`",
    ),
    (
        "*",
        "callback_protocol",
        "step_instance_list",
        "the page names the step list `step_instance_list`; JobCallbackDTO sends \
         `step_instances`",
    ),
];

/// Request fields that are not ids but cannot match a job run today: JOB's list
/// examples ask for 2019's jobs. They are widened to "any time", the rest is as written.
pub(crate) const TIME_WINDOWS: &[&str] = &["create_time_start", "create_time_end"];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Family {
    GatewayV3,
    GatewayV4,
    EsbJobV3,
    EsbV2,
}

impl Family {
    /// ESB v2 first: v4's file log example reads hosts 1 and 2, which v2's push uses.
    pub(crate) const ALL: [Family; 4] = [
        Family::EsbV2,
        Family::GatewayV3,
        Family::EsbJobV3,
        Family::GatewayV4,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Family::GatewayV3 => "gateway_v3",
            Family::GatewayV4 => "gateway_v4",
            Family::EsbJobV3 => "esb_jobv3",
            Family::EsbV2 => "esb_v2",
        }
    }

    pub(crate) fn path(self, api: &str) -> String {
        match self {
            Family::GatewayV3 => format!("/api/v3/{api}"),
            Family::GatewayV4 => format!("/api/v4/{api}"),
            Family::EsbJobV3 => format!("/api/c/compapi/v2/jobv3/{api}/"),
            Family::EsbV2 => format!("/api/c/compapi/v2/job/{api}/"),
        }
    }

    pub(crate) fn is_esb(self) -> bool {
        matches!(self, Family::EsbJobV3 | Family::EsbV2)
    }
}

/// One request example.
#[derive(Clone, Debug)]
pub(crate) enum Request {
    Get(String),
    Post(Value),
}

pub(crate) struct Fixture {
    pub(crate) api: String,
    pub(crate) requests: Vec<(String, Request)>,
    pub(crate) responses: Vec<(String, u16, Value)>,
}

pub(crate) fn load(family: Family, api: &str) -> Option<Fixture> {
    let path = format!("{FIXTURES}/{}/{api}.json", family.name());
    let text = std::fs::read_to_string(path).ok()?;
    let v: Value = serde_json::from_str(&text).expect("fixture is JSON");
    assert!(
        v["source"]["commit"]
            .as_str()
            .is_some_and(|c| c.len() == 40),
        "{api}: fixture names its commit"
    );
    let requests = v["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| {
            let title = r["title"].as_str().unwrap_or_default().to_owned();
            match r["method"].as_str() {
                Some("GET") => Some((title, Request::Get(r["query"].as_str()?.to_owned()))),
                Some("POST") => Some((title, Request::Post(r["body"].clone()))),
                _ => None,
            }
        })
        .collect();
    let responses = v["responses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r.get("body").is_some())
        .map(|r| {
            (
                r["title"].as_str().unwrap_or_default().to_owned(),
                r["http_status"].as_u64().unwrap_or(200) as u16,
                r["body"].clone(),
            )
        })
        .collect();
    Some(Fixture {
        api: api.to_owned(),
        requests,
        responses,
    })
}

pub(crate) fn index() -> Value {
    serde_json::from_str(&std::fs::read_to_string(format!("{FIXTURES}/index.json")).unwrap())
        .unwrap()
}

pub(crate) fn not_served_yet(family: Family, api: &str) -> bool {
    NOT_SERVED_YET
        .iter()
        .any(|(f, a)| (*f == "*" || *f == family.name()) && *a == api)
}

/// Whether `path` of `family/api`'s answer is a documented contradiction.
pub(crate) fn skipped(family_api: &str, path: &str) -> bool {
    let (family, api) = family_api.split_once('/').unwrap_or(("*", family_api));
    DOC_VS_JAVA
        .iter()
        .any(|(f, a, p, _)| (*f == "*" || *f == family) && *a == api && *p == path)
}

/// The job and first step ids in a submit answer of any generation.
pub(crate) fn minted(answer: &Value) -> (u64, u64) {
    let data = &answer["data"];
    let job = data["job_instance_id"].as_u64().expect("a job instance id");
    (job, data["step_instance_id"].as_u64().unwrap_or(0))
}

/// The request with the emulator's ids (and [`TIME_WINDOWS`]) put in.
pub(crate) fn substitute(request: &Request, job: u64, step: u64) -> Request {
    match request {
        Request::Get(query) => Request::Get(
            query
                .split('&')
                .filter(|pair| {
                    !TIME_WINDOWS
                        .iter()
                        .any(|k| pair.starts_with(&format!("{k}=")))
                })
                .map(|pair| match pair.split_once('=') {
                    Some(("job_instance_id", _)) => format!("job_instance_id={job}"),
                    Some(("step_instance_id", _)) => format!("step_instance_id={step}"),
                    _ => pair.to_owned(),
                })
                .collect::<Vec<_>>()
                .join("&"),
        ),
        Request::Post(body) => {
            let mut body = body.clone();
            if let Some(map) = body.as_object_mut() {
                if map.contains_key("job_instance_id") {
                    map.insert("job_instance_id".into(), json!(job));
                }
                if map.contains_key("step_instance_id") {
                    map.insert("step_instance_id".into(), json!(step));
                }
                for key in TIME_WINDOWS {
                    map.remove(*key);
                }
            }
            Request::Post(body)
        }
    }
}

pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every key path of `doc` must be in `got` with the same JSON type (a `null` in the
/// doc says nothing about the type). `api` is `family/api`, for [`DOC_VS_JAVA`].
pub(crate) fn conforms(api: &str, doc: &Value, got: &Value, path: &str, out: &mut Vec<String>) {
    if doc.is_null() || skipped(api, path) {
        return;
    }
    if kind(doc) != kind(got) {
        out.push(format!("{path}: documented {} but got {got}", kind(doc)));
        return;
    }
    match (doc, got) {
        (Value::Object(d), Value::Object(g)) => {
            for (key, value) in d {
                let sub = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                if skipped(api, &sub) {
                    continue;
                }
                match g.get(key) {
                    Some(answered) => conforms(api, value, answered, &sub, out),
                    None if value.is_null() => {}
                    None => out.push(format!("{sub}: missing")),
                }
            }
        }
        (Value::Array(d), Value::Array(g)) => {
            let sub = format!("{path}[]");
            if !d.is_empty() && g.is_empty() {
                out.push(format!("{sub}: documented elements, answered none"));
                return;
            }
            // Each documented element against the answered element it fits best: the
            // docs' lists mix kinds (string and host variables, script and file steps).
            for element in d {
                let best = g
                    .iter()
                    .map(|answered| {
                        let mut found = Vec::new();
                        conforms(api, element, answered, &sub, &mut found);
                        found
                    })
                    .min_by_key(Vec::len)
                    .unwrap_or_default();
                out.extend(best);
            }
        }
        _ => {}
    }
}
