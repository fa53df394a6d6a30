//! `validate`, `plan`, `graph` and `schema`: everything that looks at a plan without
//! running it. None of them contacts JOB.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{Value, json};

use crate::compile::graph::{self, PlanGraph};
use crate::compile::request::encode_step;
use crate::compile::{self, CompileOptions, CompiledPlan, RenderContext};
use crate::error::{Error, UsageError, exit};
use crate::job_api::build::{ApiCall, HttpMethod};
use crate::job_api::types::Protocol;
use crate::plan::vars::{MASK, VarInputs};

/// The plan and the inputs that complete it.
#[derive(Debug, clap::Args)]
pub struct PlanInputArgs {
    /// The plan file.
    pub plan: PathBuf,
    /// JOB protocol to encode for (default: the plan's `api`, else v3).
    #[arg(long, value_name = "v2|v3|v4", value_parser = parse_protocol)]
    pub api: Option<Protocol>,
    /// Set a variable (repeatable); wins over --vars-file and BATON_VAR_<name>.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// A YAML file mapping variable names to values.
    #[arg(long, value_name = "FILE")]
    pub vars_file: Option<PathBuf>,
}

impl PlanInputArgs {
    /// Validation options from the flags and the process environment.
    pub fn options(&self) -> CompileOptions {
        CompileOptions {
            api: self.api,
            vars: VarInputs {
                flags: self.vars.clone(),
                file: self.vars_file.clone(),
                env: Vec::new(),
            }
            .with_process_env(),
        }
    }
}

/// `--api` names no protocol baton speaks.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a JOB protocol; use v2, v3 or v4")]
pub struct ProtocolError(String);

/// Parses `--api`.
pub fn parse_protocol(text: &str) -> Result<Protocol, ProtocolError> {
    match text.to_ascii_lowercase().as_str() {
        "v2" => Ok(Protocol::V2),
        "v3" => Ok(Protocol::V3),
        "v4" => Ok(Protocol::V4),
        _ => Err(ProtocolError(text.to_owned())),
    }
}

/// `baton validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The plan and its inputs.
    #[command(flatten)]
    pub input: PlanInputArgs,
    /// Also ask JOB: job plans and their variables, accounts, scripts, the scope.
    #[arg(long)]
    pub online: bool,
    /// With --online: JOB base URL (else $BATON_ENDPOINT or the profile).
    #[arg(long, value_name = "URL", requires = "online")]
    pub endpoint: Option<String>,
    /// With --online: profile name.
    #[arg(long, value_name = "NAME", requires = "online")]
    pub profile: Option<String>,
}

/// Output of `baton plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    /// Readable text.
    Text,
    /// One JSON document.
    Json,
}

/// `baton plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The plan and its inputs.
    #[command(flatten)]
    pub input: PlanInputArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: PlanFormat,
}

/// Output of `baton graph`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    /// Graphviz DOT.
    Dot,
    /// A Mermaid flowchart.
    Mermaid,
}

/// `baton graph`.
#[derive(Debug, clap::Args)]
pub struct GraphArgs {
    /// The plan file.
    pub plan: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "dot")]
    pub format: GraphFormat,
}

/// Loads and validates, printing warnings on the way.
fn checked_plan(input: &PlanInputArgs) -> Result<CompiledPlan, Error> {
    let validated = compile::load_and_compile(&input.plan, &input.options())?;
    super::warnings::print_plan_warnings(&validated, None);
    Ok(validated)
}

/// Runs `baton validate`.
pub fn validate(args: ValidateArgs) -> Result<ExitCode, Error> {
    let validated = checked_plan(&args.input)?;
    if args.online {
        super::preflight::online(&validated, &args)?;
    }
    let steps = validated.plan.steps.len();
    let waves = validated.graph.waves().len();
    print_out(&format!(
        "{}: valid ({steps} step{} in {waves} wave{}, protocol {})\n",
        args.input.plan.display(),
        plural(steps),
        plural(waves),
        validated.protocol
    ))
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// One step's request, ready to print.
struct PlannedStep {
    id: String,
    wave: usize,
    when: Option<String>,
    call: ApiCall,
}

/// Runs `baton plan`.
pub fn plan(args: PlanArgs) -> Result<ExitCode, Error> {
    let validated = checked_plan(&args.input)?;
    let ctx = RenderContext::preview();
    let auth = Auth::from_env();
    let mut planned = Vec::with_capacity(validated.plan.steps.len());
    for (wave_number, wave) in validated.graph.waves().iter().enumerate() {
        for &index in wave {
            let resolved = validated
                .resolve_step(index, &ctx)
                .map_err(UsageError::Render)?;
            let step = &resolved.step;
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
            planned.push(PlannedStep {
                id: step.id.clone(),
                wave: wave_number + 1,
                when: step.when.clone(),
                call,
            });
        }
    }
    let text = match args.format {
        PlanFormat::Text => plan_text(&validated, &planned, &auth),
        PlanFormat::Json => plan_json(&validated, &planned, &auth),
    };
    // Masking already happened at render time; this second pass catches a secret that
    // reached the output some other way.
    print_out(&crate::mask::Masker::for_plan(&validated).mask(&text))
}

const RUN_TIME_NOTE: &str = "at run time baton adds a unique `task_name` (carrying the run id) where the API takes one, and the callback URL, to every request";

fn plan_text(validated: &CompiledPlan, planned: &[PlannedStep], auth: &Auth) -> String {
    let waves = validated.graph.waves().len();
    let steps = planned.len();
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
    let mut current_wave = 0;
    for step in planned {
        if step.wave != current_wave {
            current_wave = step.wave;
            out.push_str(&format!("\nwave {current_wave}\n"));
        }
        out.push_str(&format!("  step {}\n", step.id));
        if let Some(when) = &step.when {
            out.push_str(&format!("    when: {when}\n"));
        }
        out.push_str(&format!(
            "    {} {}\n",
            method_name(step.call.method),
            step.call.path
        ));
        let body = serde_json::to_string_pretty(&step.call.body).unwrap_or_default();
        for line in body.lines() {
            out.push_str(&format!("    {line}\n"));
        }
    }
    out.push_str(&format!("\nnote: {RUN_TIME_NOTE}\n"));
    out
}

fn plan_json(validated: &CompiledPlan, planned: &[PlannedStep], auth: &Auth) -> String {
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
    let steps: Vec<Value> = planned
        .iter()
        .map(|step| {
            let mut entry = json!({
                "id": step.id,
                "wave": step.wave,
                "api": step.call.api,
                "method": method_name(step.call.method),
                "path": step.call.path,
                "body": step.call.body,
            });
            if validated.protocol != Protocol::V2 {
                entry["headers"] = json!({ "X-Bkapi-Authorization": auth.header() });
            }
            if let Some(when) = &step.when {
                entry["when"] = json!(when);
            }
            entry
        })
        .collect();
    let document = json!({
        "plan": validated.plan.name,
        "file": validated.source.name,
        "protocol": validated.protocol.to_string(),
        "waves": waves,
        "steps": steps,
        "note": RUN_TIME_NOTE,
    });
    let mut text = serde_json::to_string_pretty(&document).unwrap_or_default();
    text.push('\n');
    text
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

/// Runs `baton graph`.
pub fn graph(args: GraphArgs) -> Result<ExitCode, Error> {
    let mut loaded = crate::plan::load(&args.plan)?;
    // Fan-out instances are nodes too; list variables take their defaults (or
    // BATON_VAR_*), since the graph takes no other inputs.
    let (resolved, _, _) = crate::plan::vars::resolve(
        &loaded.source,
        &loaded.plan.vars,
        &VarInputs::default().with_process_env(),
    );
    let (expansion, issues) = crate::compile::fan_out::expand(
        &mut loaded.plan,
        &loaded.source,
        &resolved,
        &mut loaded.script_files,
    );
    if !issues.is_empty() {
        return Err(Error::Plan(loaded.source.errors(issues)));
    }
    if !expansion.origins.is_empty() {
        loaded.source.set_step_origins(expansion.origins);
    }
    let graph = PlanGraph::build(&loaded.plan.steps).map_err(|problems| {
        Error::Plan(
            loaded
                .source
                .errors(graph::graph_issues(&loaded.source, problems)),
        )
    })?;
    let text = match args.format {
        GraphFormat::Dot => graph.to_dot(),
        GraphFormat::Mermaid => graph.to_mermaid(),
    };
    print_out(&text)
}

/// Runs `baton schema`.
pub fn schema() -> Result<ExitCode, Error> {
    print_out(&crate::plan::schema::plan_schema_json())
}

/// Writes to stdout; a closed pipe (`baton plan | head`) is not an error.
fn print_out(text: &str) -> Result<ExitCode, Error> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(ExitCode::from(exit::SUCCESS)),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::from(exit::SUCCESS)),
        Err(source) => Err(Error::Io {
            context: "cannot write to stdout".into(),
            source,
        }),
    }
}
