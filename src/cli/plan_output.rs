//! What `baton plan` prints, written wave by wave: each step's request is rendered,
//! encoded, masked, printed and dropped before the next, so a 50,000-step plan never
//! holds more than one request (text, or JSON in the same document shape as one
//! `serde_json` pretty print of the whole).

use std::io::Write;

use serde_json::{Value, json};

use super::inspect::PlanFormat;
use crate::compile::request::encode_step;
use crate::compile::{CompiledPlan, RenderContext};
use crate::error::{Error, UsageError};
use crate::job_api::build::{ApiCall, HttpMethod};
use crate::job_api::types::Protocol;
use crate::mask::Masker;
use crate::plan::handlers::DEFAULT_GATE_TIMEOUT_SECS;
use crate::plan::model::Targets;
use crate::plan::vars::MASK;

/// Why printing the plan stopped.
#[derive(Debug, thiserror::Error)]
pub enum PlanOutputError {
    /// A step could not be rendered or encoded.
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// Writing to stdout failed.
    #[error("cannot write to stdout: {0}")]
    Io(#[from] std::io::Error),
}

impl PlanOutputError {
    /// `baton plan | head`: the reader left, which is not an error.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, PlanOutputError::Io(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

impl From<PlanOutputError> for Error {
    fn from(error: PlanOutputError) -> Self {
        match error {
            PlanOutputError::Usage(usage) => usage.into(),
            PlanOutputError::Io(source) => Error::Io {
                context: "cannot write to stdout".into(),
                source,
            },
        }
    }
}

/// One step's request, ready to print.
struct PlannedStep {
    id: String,
    wave: usize,
    when: Option<String>,
    /// Absent for an approval gate, which sends nothing.
    call: Option<ApiCall>,
    /// The step's `if`, and whether it makes the step a handler.
    condition: Option<(String, bool)>,
    /// An approval gate's message and timeout in seconds.
    gate: Option<(String, u64)>,
    /// Targets drawn from an upstream step: its id and which hosts.
    drawn: Option<(String, &'static str)>,
}

/// Prints the plan's requests in `format` to `out`, one step at a time.
pub fn write_plan(
    validated: &CompiledPlan,
    format: PlanFormat,
    out: &mut impl Write,
) -> Result<(), PlanOutputError> {
    let auth = Auth::from_env();
    // Masking already happened at render time; this second pass catches a secret that
    // reached the output some other way. A secret never spans two steps' text.
    let masker = Masker::for_plan(validated);
    let mut emit = |text: &str| out.write_all(masker.mask(text).as_bytes());
    let (head, tail) = match format {
        PlanFormat::Text => (text_head(validated, &auth), text_tail()),
        PlanFormat::Json => json_frame(validated, &auth),
    };
    emit(&head)?;
    let ctx = RenderContext::preview();
    let mut first = true;
    for (wave_number, wave) in validated.graph.waves().iter().enumerate() {
        for &index in wave {
            let step = planned_step(validated, index, wave_number + 1, &ctx, &auth)?;
            let text = match format {
                PlanFormat::Text => text_step(&step, wave_number + 1, wave.first() == Some(&index)),
                PlanFormat::Json => json_step(validated, &step, &auth, first),
            };
            first = false;
            emit(&text)?;
        }
    }
    emit(&tail)?;
    Ok(())
}

fn planned_step(
    validated: &CompiledPlan,
    index: usize,
    wave: usize,
    ctx: &RenderContext,
    auth: &Auth,
) -> Result<PlannedStep, UsageError> {
    let resolved = validated
        .resolve_step(index, ctx)
        .map_err(UsageError::Render)?;
    let step = &resolved.step;
    let condition = validated
        .condition(index)
        .map(|c| (c.text.clone(), c.handler));
    let drawn = match &validated.plan.steps[index].targets {
        Some(Targets::From(from)) => Some((from.from.clone(), from.hosts.name())),
        _ => None,
    };
    if let Some(approve) = &step.approve {
        return Ok(PlannedStep {
            id: step.id.clone(),
            wave,
            when: step.when.clone(),
            call: None,
            condition,
            gate: Some((
                approve.message.clone(),
                approve.timeout.map_or(DEFAULT_GATE_TIMEOUT_SECS, |t| t.0),
            )),
            drawn,
        });
    }
    let mut call = encode_step(
        &validated.plan,
        step,
        &resolved.settings,
        validated.protocol,
    )
    .map_err(|problems| UsageError::Request {
        step: step.id.clone(),
        problems,
    })?;
    for pointer in &call.sensitive_pointers {
        if let Some(value) = call.body.pointer_mut(pointer) {
            *value = Value::String(MASK.to_owned());
        }
    }
    if validated.protocol == Protocol::V2
        && let Value::Object(body) = &mut call.body
    {
        for (key, value) in auth.fields() {
            body.insert(key.to_owned(), Value::String(value));
        }
    }
    Ok(PlannedStep {
        id: step.id.clone(),
        wave,
        when: step.when.clone(),
        call: Some(call),
        condition,
        gate: None,
        drawn,
    })
}

const RUN_TIME_NOTE: &str = "at run time baton adds a unique `task_name` (carrying the run id) where the API takes one, and the callback URL, to every request";

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn text_head(validated: &CompiledPlan, auth: &Auth) -> String {
    let waves = validated.graph.waves().len();
    let steps = validated.plan.steps.len();
    let mut out = format!(
        "plan {} ({}): {steps} step{} in {waves} wave{}, protocol {}\n",
        validated.plan.name,
        validated.source.name,
        plural(steps),
        plural(waves),
        validated.protocol
    );
    if let Some(description) = validated.render_description() {
        out.push_str(&format!("{description}\n"));
    }
    match validated.protocol {
        Protocol::V2 => out.push_str(
            "auth: in each request body (bk_app_code, bk_app_secret, bk_username or bk_token)\n",
        ),
        _ => out.push_str(&format!("auth: X-Bkapi-Authorization: {}\n", auth.header())),
    }
    out
}

/// One step as text; `new_wave` when it is the first of its wave.
fn text_step(step: &PlannedStep, wave: usize, new_wave: bool) -> String {
    let mut out = String::new();
    if new_wave {
        out.push_str(&format!("\nwave {wave}\n"));
    }
    out.push_str(&format!("  step {}\n", step.id));
    if let Some(when) = &step.when {
        out.push_str(&format!("    when: {when}\n"));
    }
    if let Some((condition, handler)) = &step.condition {
        let role = if *handler {
            " (handler: considered once its needs have ended, however they ended)"
        } else {
            ""
        };
        out.push_str(&format!("    if: {condition}{role}\n"));
    }
    if let Some((from, hosts)) = &step.drawn {
        out.push_str(&format!(
            "    targets: the {hosts} hosts of `{from}` at run time (shown: the most they can be)\n"
        ));
    }
    if let Some((message, timeout)) = &step.gate {
        out.push_str(&format!(
            "    approval gate, up to {}: {message}\n    sends nothing; passed by `baton approve RUN {}`, a yes on a terminal, or `--approve {}`\n",
            humantime::format_duration(std::time::Duration::from_secs(*timeout)),
            step.id,
            step.id
        ));
    }
    let Some(call) = &step.call else {
        return out;
    };
    out.push_str(&format!("    {} {}\n", method_name(call.method), call.path));
    let body = serde_json::to_string_pretty(&call.body).unwrap_or_default();
    for line in body.lines() {
        out.push_str(&format!("    {line}\n"));
    }
    out
}

fn text_tail() -> String {
    format!("\nnote: {RUN_TIME_NOTE}\n")
}

/// Where the step list goes in the pretty-printed document.
const STEPS_SLOT: &str = "\"steps\": []";

/// The JSON document around its step list: everything up to the opening `[` and
/// from the closing `]` on, cut out of the pretty print of the document with no steps,
/// so keys keep the order and indentation of one print of the whole.
fn json_frame(validated: &CompiledPlan, _auth: &Auth) -> (String, String) {
    let waves: Vec<Vec<&str>> = validated
        .graph
        .waves()
        .iter()
        .map(|wave| {
            wave.iter()
                .map(|&i| validated.plan.steps[i].id.as_str())
                .collect()
        })
        .collect();
    let document = json!({
        "plan": validated.plan.name,
        "file": validated.source.name,
        "protocol": validated.protocol.to_string(),
        "waves": waves,
        "steps": [],
        "note": RUN_TIME_NOTE,
    });
    let mut text = serde_json::to_string_pretty(&document).unwrap_or_default();
    text.push('\n');
    match text.split_once(STEPS_SLOT) {
        Some((head, tail)) if validated.plan.steps.is_empty() => {
            (format!("{head}{STEPS_SLOT}"), tail.to_owned())
        }
        Some((head, tail)) => (format!("{head}\"steps\": ["), format!("\n  ]{tail}")),
        None => (text, String::new()),
    }
}

/// One step as an element of the document's step list.
fn json_step(validated: &CompiledPlan, step: &PlannedStep, auth: &Auth, first: bool) -> String {
    let mut entry = json!({
        "id": step.id,
        "wave": step.wave,
    });
    if let Some(call) = &step.call {
        entry["api"] = json!(call.api);
        entry["method"] = json!(method_name(call.method));
        entry["path"] = json!(call.path);
        entry["body"] = call.body.clone();
        if validated.protocol != Protocol::V2 {
            entry["headers"] = json!({ "X-Bkapi-Authorization": auth.header() });
        }
    }
    if let Some((condition, handler)) = &step.condition {
        entry["if"] = json!(condition);
        entry["handler"] = json!(handler);
    }
    if let Some((from, hosts)) = &step.drawn {
        entry["targets_from"] = json!({ "from": from, "hosts": hosts });
    }
    if let Some((message, timeout)) = &step.gate {
        entry["gate"] = json!({ "message": message, "timeout_secs": timeout });
    }
    if let Some(when) = &step.when {
        entry["when"] = json!(when);
    }
    let pretty = serde_json::to_string_pretty(&entry).unwrap_or_default();
    let mut out = String::from(if first { "\n" } else { ",\n" });
    for (i, line) in pretty.lines().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str("    ");
        out.push_str(line);
    }
    out
}

fn method_name(method: HttpMethod) -> &'static str {
    match method {
        HttpMethod::Get => "GET",
        HttpMethod::Post => "POST",
    }
}

/// Credentials as `baton plan` shows them: the app code and user name, never a secret.
struct Auth {
    app_code: String,
    user: AuthUser,
}

enum AuthUser {
    Name(String),
    Token,
}

impl Auth {
    fn from_env() -> Self {
        let nonempty = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
        let user = match (nonempty("BK_USERNAME"), nonempty("BK_TOKEN")) {
            (Some(name), _) => AuthUser::Name(name),
            (None, Some(_)) => AuthUser::Token,
            (None, None) => AuthUser::Name("<BK_USERNAME>".into()),
        };
        Auth {
            app_code: nonempty("BK_APP_CODE").unwrap_or_else(|| "<BK_APP_CODE>".into()),
            user,
        }
    }

    fn fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![
            ("bk_app_code", self.app_code.clone()),
            ("bk_app_secret", MASK.to_owned()),
        ];
        fields.push(match &self.user {
            AuthUser::Name(name) => ("bk_username", name.clone()),
            AuthUser::Token => ("bk_token", MASK.to_owned()),
        });
        fields
    }

    fn header(&self) -> String {
        let object: serde_json::Map<String, Value> = self
            .fields()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Value::String(v)))
            .collect();
        Value::Object(object).to_string()
    }
}
