//! `validate`, `plan`, `graph` and `schema`: everything that looks at a plan without
//! running it. None of them contacts JOB.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::compile::graph::{self, PlanGraph};
use crate::compile::{self, CompileOptions, CompiledPlan};
use crate::error::{Error, exit};
use crate::job_api::types::Protocol;
use crate::plan::condition::{self, StatusFn};
use crate::plan::vars::VarInputs;

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

/// Runs `baton plan`: validates, then prints each step's request wave by wave
/// (`plan_output`).
pub fn plan(args: PlanArgs) -> Result<ExitCode, Error> {
    let validated = checked_plan(&args.input)?;
    let mut stdout = std::io::stdout().lock();
    match super::plan_output::write_plan(&validated, args.format, &mut stdout)
        .and_then(|()| stdout.flush().map_err(Into::into))
    {
        Ok(()) => Ok(ExitCode::from(exit::SUCCESS)),
        Err(e) if e.is_broken_pipe() => Ok(ExitCode::from(exit::SUCCESS)),
        Err(e) => Err(e.into()),
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
    // A condition that does not parse draws as an ordinary step; `baton validate`
    // names the mistake.
    let drawing = graph::Drawing {
        handlers: loaded
            .plan
            .steps
            .iter()
            .map(|s| {
                s.condition
                    .as_deref()
                    .and_then(|c| condition::parse(c).ok())
                    .is_some_and(|e| {
                        e.status_calls()
                            .iter()
                            .any(|(f, _)| *f != StatusFn::Success)
                    })
            })
            .collect(),
        gates: loaded
            .plan
            .steps
            .iter()
            .map(|s| s.approve.is_some())
            .collect(),
    };
    let text = match args.format {
        GraphFormat::Dot => graph.to_dot_with(&drawing),
        GraphFormat::Mermaid => graph.to_mermaid_with(&drawing),
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
