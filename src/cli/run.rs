//! `baton run`: resolve configuration, load and validate the plan (exit 2 before
//! anything is sent), start the local emulator when no endpoint is configured, start
//! the callback receiver, run the step graph, watch it, report, and map the outcome to
//! an exit code. Ctrl-C / SIGTERM once: terminate running instances (or leave them with
//! `--detach`) and exit 130; twice: exit at once.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::backend::{self, Rehearsal};
use super::inspect::PlanInputArgs;
use super::launch::{self, StateArgs};
use super::notices;
use super::outputs::OutputPaths;
use super::{runtime, warnings};
use crate::compile::{self, CompiledPlan};
use crate::config::{self, ConfigFlags};
use crate::emulator::World;
use crate::error::{Error, UsageError, exit};
use crate::executor::events::{EventSink, RunTarget};
use crate::executor::gate::GatePolicy;
use crate::executor::prompt::{DrawControl, Prompter, TerminalPrompter};
use crate::executor::run::{Run, RunOutcome};
use crate::executor::scheduler::ScheduleOptions;
use crate::executor::step::{ConfirmPolicy, Masker, StepRunnerSetup};
use crate::executor::wait::{CallbackHub, WaitMode, WaitOptions, callback};
use crate::job_api::client::{self, HttpJobApi, JobCodec, RetryPolicy, Timeouts, Transport};
use crate::notify;
use crate::report::html;
use crate::report::links::JobWeb;
use crate::report::plain::PlainReporter;
use crate::report::progress::{DrawPause, ProgressReporter};
use crate::report::summary::RunRecord;
use crate::report::watch::{self, Watcher};
use crate::state::pending::{self, Pending, Prepared, ResumeRequest};

/// `baton run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The plan and its inputs.
    #[command(flatten)]
    pub input: PlanInputArgs,
    /// JOB base URL (else $BATON_ENDPOINT, the profile, or the local emulator).
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Profile name: $XDG_CONFIG_HOME/baton/profiles/NAME.yaml.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Profile file path.
    #[arg(long, value_name = "FILE", conflicts_with = "profile")]
    pub profile_file: Option<PathBuf>,
    /// Most steps running at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_parallel: u16,
    /// How to learn that a job finished (default: both; poll for a remote JOB without
    /// a public callback URL).
    #[arg(long, value_enum)]
    pub wait: Option<WaitMode>,
    /// Callback receiver listen address (default 127.0.0.1:0).
    #[arg(long, value_name = "ADDR")]
    pub callback_listen: Option<String>,
    /// Public base URL JOB posts callbacks to.
    #[arg(long, value_name = "URL")]
    pub callback_url: Option<String>,
    /// Emulator only: the folder holding host sandboxes (default: a new temporary folder, kept).
    #[arg(long, value_name = "DIR")]
    pub sandbox: Option<PathBuf>,
    /// Emulator only: the world file (default: world.yaml beside the plan, if present).
    #[arg(long, value_name = "FILE")]
    pub world: Option<PathBuf>,
    /// Emulator only: run scripts without a mount namespace.
    #[arg(long)]
    pub unisolated: bool,
    /// Confirm manual steps and rolling batches without asking (approval gates are
    /// not passed by it: see --approve).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Pass the approval gate with this step id without asking (repeatable), for
    /// unattended runs.
    #[arg(long = "approve", value_name = "GATE")]
    pub approve: Vec<String>,
    /// After a failure with `on_failure: stop`, terminate running steps too.
    #[arg(long)]
    pub abort_running: bool,
    /// On Ctrl-C, leave running JOB instances running.
    #[arg(long)]
    pub detach: bool,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Write a JUnit XML report here.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write a self-contained HTML report here (timeline, step graph, hosts and logs).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Only the final report and errors.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Log what baton does to stderr (-vv for more).
    #[arg(long, short = 'v', action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Against a real JOB, do not ask it about the plan's job plans, accounts and
    /// scripts before the first submission (for emergencies).
    #[arg(long)]
    pub skip_preflight: bool,
    /// Run records, locks, skip-if-successful and the log file.
    #[command(flatten)]
    pub state: StateArgs,
}

impl RunArgs {
    /// The paths this run writes to.
    pub fn output_paths(&self) -> OutputPaths<'_> {
        OutputPaths {
            report: &self.report,
            junit: &self.junit,
            html: &self.html,
            log_file: &self.state.log_file,
            state_dir: &self.state.state_dir,
            sandbox: &self.sandbox,
        }
    }
}

/// Runs `baton run`.
pub fn run(args: RunArgs) -> Result<ExitCode, Error> {
    super::outputs::check(args.output_paths())?;
    run_with(args, None)
}

/// Runs `baton resume` once its arguments are turned into a run of the recorded plan.
pub fn run_resumed(args: RunArgs, request: ResumeRequest) -> Result<ExitCode, Error> {
    run_with(args, Some(request))
}

fn run_with(args: RunArgs, resume: Option<ResumeRequest>) -> Result<ExitCode, Error> {
    // One masker for the whole process: the log writers get it before the values it
    // will hide are known.
    let masker = Masker::default();
    launch::init_log_file(&args.state, args.verbose, &masker)?;
    init_tracing(args.verbose, &masker);
    let flags = ConfigFlags {
        endpoint: args.endpoint.clone(),
        api: args.input.api,
        profile: args.profile.clone(),
        profile_file: args.profile_file.clone(),
        callback_listen: args.callback_listen.clone(),
        callback_url: args.callback_url.clone(),
        wait: args.wait,
    };
    let config = config::resolve(&flags, &|name| std::env::var(name).ok())?;
    if let Some(credentials) = &config.credentials {
        masker.learn(config::credential_secrets(credentials));
    }
    if config.endpoint.is_some()
        && (args.sandbox.is_some() || args.world.is_some() || args.unisolated)
    {
        return Err(UsageError::EmulatorOnlyFlags.into());
    }
    let mut options = args.input.options();
    options.api = config.protocol;
    let loaded = compile::load(&args.input.plan)?;
    let fingerprint = launch::fingerprint(&loaded);
    let validated = compile::compile(loaded, &options)?;
    masker.learn_plan(&validated);
    warnings::print_plan_warnings(&validated, Some(&masker));
    let channels = notices::channels(&args.input.plan, &validated.plan.notify, &config.notify)?;
    masker.learn(channels.iter().flat_map(notify::Channel::secrets));
    if validated.plan.scope.is_none() {
        return Err(UsageError::NoScope {
            plan: args.input.plan.clone(),
        }
        .into());
    }
    // A misspelt `--approve` would leave an unattended run waiting at the real gate.
    let gates: Vec<&str> = validated
        .plan
        .steps
        .iter()
        .filter(|s| s.approve.is_some())
        .map(|s| s.id.as_str())
        .collect();
    if let Some(unknown) = args.approve.iter().find(|g| !gates.contains(&g.as_str())) {
        return Err(UsageError::NoSuchGate {
            run: format!("plan {}", validated.plan.name),
            step: unknown.clone(),
            known: if gates.is_empty() {
                "it has no gates".into()
            } else {
                format!("its gates: {}", gates.join(", "))
            },
        }
        .into());
    }
    // Read before the lock is taken, so that a bad world is refused like a bad plan.
    let world = match (&config.endpoint, &config.credentials) {
        (Some(_), Some(_)) => World::default(),
        _ => match backend::world_path(&args.input.plan, args.world.as_ref()) {
            Some(path) => super::emulator::load_world(&path)?,
            None => World::default(),
        },
    };
    let pending = match pending::prepare(
        &args.state.session(),
        fingerprint,
        &launch::plan_record(&validated),
        resume,
    )? {
        Prepared::Skip(message) => {
            println!("{message}");
            return Ok(ExitCode::SUCCESS);
        }
        Prepared::Go(pending) => pending,
    };
    let runtime = runtime::start()?;
    let (plan_name, run_id) = (validated.plan.name.clone(), pending.run_id().to_owned());
    let result = runtime.block_on(async {
        let told = (channels.clone(), masker.clone());
        let result = run_async(args, config, validated, *pending, world, masker, channels).await;
        if let Err(error) = &result
            && error.exit_code() == exit::INFRASTRUCTURE
        {
            notices::at_error(&told.0, &plan_name, &run_id, error, &told.1).await;
        }
        result
    });
    // A confirmation prompt abandoned by Ctrl-C still blocks a thread on stdin;
    // dropping the runtime would wait for it forever.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    result
}

fn init_tracing(verbose: u8, masker: &Masker) {
    if verbose == 0 {
        return;
    }
    let filter = if verbose == 1 {
        "baton=debug"
    } else {
        "baton=trace,info"
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(masker.make_writer(std::io::stderr))
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .try_init();
}

async fn run_async(
    args: RunArgs,
    config: config::Config,
    validated: CompiledPlan,
    pending: Pending,
    world: World,
    masker: Masker,
    channels: Vec<notify::Channel>,
) -> Result<ExitCode, Error> {
    let protocol = validated.protocol;
    let job_web = config
        .job_web_url
        .as_deref()
        .zip(validated.plan.scope)
        .map(|(url, scope)| job_web(url, scope));
    let plan_path = args.input.plan.clone();

    // The backend: a real JOB, or the emulator on loopback. The first line says which.
    let backend = backend::connect(
        &config,
        protocol,
        Rehearsal {
            sandbox: args.sandbox.clone(),
            unisolated: args.unisolated,
            world,
        },
    )
    .await?;

    let run_id = pending.run_id().to_owned();
    let hub = CallbackHub::new(&run_id);
    masker.learn(config::credential_secrets(&backend.credentials));
    masker.learn([hub.token().to_owned()]);

    // Callbacks: a remote JOB needs a public URL; the emulator reaches loopback.
    let mut wait_mode = config.wait;
    let receiver = if wait_mode == WaitMode::Poll {
        None
    } else {
        let receiver = callback::start(config.callback_listen, Arc::clone(&hub))
            .await
            .map_err(|error| Error::Callback {
                listen: config.callback_listen,
                error,
            })?;
        Some(receiver)
    };
    let callback_base = match (&config.callback_url, &receiver, &backend.emulator) {
        (Some(url), _, _) => Some(url.clone()),
        (None, Some(r), Some(_)) => Some(format!("http://{}", r.local_addr)),
        (None, Some(r), None)
            if !r.local_addr.ip().is_loopback() && !r.local_addr.ip().is_unspecified() =>
        {
            Some(format!("http://{}", r.local_addr))
        }
        _ => None,
    };
    if callback_base.is_none() && wait_mode != WaitMode::Poll {
        if wait_mode == WaitMode::Callback {
            return Err(UsageError::CallbackNeedsUrl.into());
        }
        wait_mode = WaitMode::Poll;
    }

    let http = client::build_http_client(&Timeouts::default())?;
    let transport = Transport::new(
        http,
        &backend.endpoint,
        backend.credentials.clone(),
        RetryPolicy::default(),
        Timeouts::default(),
    );
    let scope = validated
        .plan
        .scope
        .map(Into::into)
        .ok_or_else(|| UsageError::NoScope {
            plan: plan_path.clone(),
        })?;
    let api = Arc::new(HttpJobApi::new(transport, JobCodec::new(protocol, scope)));
    // The embedded emulator is built from the same world the plan rehearses in; a real
    // JOB (or an emulator served on its own) is asked before anything is sent.
    if backend.emulator.is_none() && !args.skip_preflight {
        super::preflight::check(&validated, api.as_ref(), protocol, scope).await?;
    }

    let (mut watchers, display) = watchers_for(&args);
    watchers.extend(launch::log_watchers(&args.state)?);
    let notice_client = if channels.is_empty() {
        None
    } else {
        Some(client::build_http_client(&Timeouts::default())?)
    };
    let gate_sends = notice_client.as_ref().and_then(|client| {
        let (notices, sends) =
            notices::GateNotices::new(client, &channels, &validated.plan.name, &run_id, &masker)?;
        watchers.push(Box::new(notices));
        Some(sends)
    });
    let session = launch::start_session(pending, api.as_ref(), &backend.target, &validated).await?;
    let (sink, rx) = EventSink::channel();
    let sink = sink
        .with_recorder(session.recorder())
        .with_masker(masker.clone());
    let watch_task = tokio::spawn(watch::watch(rx, watchers));

    let confirm = if args.yes {
        ConfirmPolicy::Yes
    } else if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        ConfirmPolicy::Ask(Arc::new(TerminalPrompter::new(display.clone())))
    } else {
        ConfirmPolicy::Refuse
    };
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let gates = GatePolicy {
        run_dir: Some(session.dir().to_owned()),
        pre_approved: args.approve.iter().cloned().collect(),
        prompter: interactive
            .then(|| Arc::new(TerminalPrompter::new(display.clone())) as Arc<dyn Prompter>),
        ..GatePolicy::default()
    };
    let run = Run {
        setup: StepRunnerSetup {
            api,
            source: Arc::new(validated),
            events: sink.clone(),
            run_id: run_id.clone(),
            hub: receiver.as_ref().map(|_| Arc::clone(&hub)),
            callback_base,
            wait: WaitOptions {
                mode: wait_mode,
                ..WaitOptions::default()
            },
            confirm,
            masker: masker.clone(),
            gates,
        },
        plan_path: plan_path.display().to_string(),
        target: backend.target.clone(),
        schedule: ScheduleOptions {
            max_parallel: usize::from(args.max_parallel),
            abort_running: args.abort_running,
            detach: args.detach,
        },
        resumed: launch::resumed(&session),
        interrupt: CancellationToken::new(),
        watch_signals: true,
    };
    let outcome = run.execute(exit_code).await;
    let code = exit_code(&outcome);
    drop(sink);
    let mut record = watch_task.await.unwrap_or_default();
    if let Some(web) = &job_web {
        record.link_jobs(web);
    }
    if let Some(sends) = gate_sends {
        sends.settle(&mut record, &session).await;
    }
    if let Some(client) = &notice_client {
        let report = args.html.as_deref().or(args.report.as_deref());
        let error = outcome.fatal().map(|e| masker.mask(&e.to_string()));
        notices::at_end(
            client,
            &channels,
            &mut record,
            report,
            error,
            &masker,
            &session,
        )
        .await;
    }
    if let Some(warning) = session.finish(code) {
        eprintln!("{warning}");
    }

    print!("{}", record.table());
    if args.detach && matches!(outcome, RunOutcome::Interrupted { .. }) {
        // The person who pressed Ctrl-C must be able to find what is still running.
        let left: Vec<String> = record
            .steps
            .iter()
            .filter(|s| s.status == "interrupted")
            .filter_map(|s| {
                s.job_instance_id
                    .map(|job| format!("job {job} (step {})", s.id))
            })
            .collect();
        if !left.is_empty() {
            eprintln!("baton: left running (--detach): {}", left.join(", "));
        }
    }
    if let Some(error) = outcome.fatal() {
        eprintln!("error: {}", masker.mask(&error.to_string()));
    }
    if let Some(RunTarget::Emulator { sandbox, .. }) = &record.target {
        println!("baton: host sandboxes kept in {sandbox}");
    }
    write_reports(&args, &record)?;

    if let Some(receiver) = receiver {
        receiver.shutdown().await;
    }
    if let Some(emulator) = backend.emulator
        && let Err(e) = emulator.shutdown().await
    {
        tracing::debug!("emulator shutdown: {e}");
    }
    Ok(ExitCode::from(code))
}

/// The exit code of each way a run ends: the one place outcomes become codes.
fn exit_code(outcome: &RunOutcome) -> u8 {
    match outcome {
        RunOutcome::Interrupted { .. } => exit::INTERRUPTED,
        RunOutcome::Infrastructure(_) => exit::INFRASTRUCTURE,
        RunOutcome::InDoubt => exit::IN_DOUBT,
        RunOutcome::StepFailed => exit::STEP_FAILED,
        RunOutcome::GateStopped => exit::GATE_STOPPED,
        RunOutcome::Succeeded => exit::SUCCESS,
    }
}

/// The watchers of a run, and the progress display a prompt must pause, if any.
type Watchers = (Vec<Box<dyn Watcher>>, Option<Arc<dyn DrawControl>>);

/// The watchers for this run, and the progress display a prompt must pause, if any.
fn watchers_for(args: &RunArgs) -> Watchers {
    if args.quiet {
        return (Vec::new(), None);
    }
    if std::io::stderr().is_terminal()
        && std::env::var("TERM").map(|t| t != "dumb").unwrap_or(false)
    {
        let reporter = ProgressReporter::new();
        let display: Arc<dyn DrawControl> = Arc::new(reporter.pause_handle());
        (vec![Box::new(reporter)], Some(display))
    } else {
        (vec![Box::new(PlainReporter::new(std::io::stdout()))], None)
    }
}

/// The progress bars stand aside while a confirmation prompt is open.
impl DrawControl for DrawPause {
    fn pause(&self) {
        DrawPause::pause(self);
    }
    fn resume(&self) {
        DrawPause::resume(self);
    }
}

fn write_reports(args: &RunArgs, record: &RunRecord) -> Result<(), Error> {
    let write = |path: &Path, text: String| {
        std::fs::write(path, text).map_err(|source| Error::Io {
            context: format!("cannot write {}", path.display()),
            source,
        })
    };
    if let Some(path) = &args.report {
        write(path, record.to_json() + "\n")?;
    }
    if let Some(path) = &args.junit {
        write(path, record.to_junit())?;
    }
    if let Some(path) = &args.html {
        write(path, html::render(record))?;
    }
    Ok(())
}

/// Links into JOB's web UI for the plan's scope.
pub fn job_web(url: &str, scope: crate::plan::model::Scope) -> JobWeb {
    let kind = match scope.scope_type {
        crate::plan::model::ScopeType::Biz => "biz",
        crate::plan::model::ScopeType::BizSet => "biz_set",
    };
    JobWeb::new(url, kind, &scope.id.to_string())
}
