//! `baton run`: resolve configuration, load and validate the plan (exit 2 before
//! anything is sent), start the local emulator when no endpoint is configured, start
//! the callback receiver, run the step graph, watch it, report, and map the outcome to
//! an exit code. Ctrl-C / SIGTERM once: terminate running instances (or leave them with
//! `--detach`) and exit 130; twice: exit at once.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use miette::Severity;
use tokio_util::sync::CancellationToken;

use super::inspect::PlanInputArgs;
use super::resume::{Pending, Prepared, ResumeRequest};
use crate::config::{self, ConfigFlags, Credentials, WaitMode};
use crate::emulator::{EmulatorConfig, EmulatorHandle, World};
use crate::error::{Error, exit, render_issues};
use crate::executor::events::{self, EventSink, RunEvent, RunTarget, StepInfo, StepRef};
use crate::executor::prompt::{DrawControl, TerminalPrompter};
use crate::executor::scheduler::{self, Final, ScheduleOptions, StepNode};
use crate::executor::step::{ConfirmPolicy, JobStepRunner, Masker, StepRunnerSetup};
use crate::executor::wait::{CallbackHub, WaitOptions, callback};
use crate::job_api::client::{self, HttpJobApi, JobCodec, RetryPolicy, Timeouts, Transport};
use crate::plan::model::OnFailure;
use crate::plan::validate::{self, ValidatedPlan};
use crate::report::plain::PlainReporter;
use crate::report::progress::{DrawPause, ProgressReporter};
use crate::report::summary::RunRecord;
use crate::report::watch::{self, Watcher};

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
    /// Confirm manual steps and rolling batches without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,
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
    /// Only the final report and errors.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Log what baton does to stderr (-vv for more).
    #[arg(long, short = 'v', action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Run records, locks, skip-if-successful and the log file.
    #[command(flatten)]
    pub state: super::resume::StateArgs,
}

/// Runs `baton run`.
pub fn run(args: RunArgs) -> Result<ExitCode, Error> {
    super::outputs::check(&args)?;
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
    super::resume::init_log_file(&args.state, args.verbose, &masker)?;
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
    let config = config::resolve(&flags, &|name| std::env::var(name).ok())
        .map_err(|e| Error::Usage(e.to_string()))?;
    if let Some(credentials) = &config.credentials {
        masker.learn(config::credential_secrets(credentials));
    }
    if config.endpoint.is_some()
        && (args.sandbox.is_some() || args.world.is_some() || args.unisolated)
    {
        return Err(Error::Usage(
            "--sandbox, --world and --unisolated apply to the local emulator only; drop them or the endpoint".into(),
        ));
    }
    let mut options = args.input.options();
    options.api = config.protocol;
    let loaded = crate::plan::load(&args.input.plan)?;
    let fingerprint =
        crate::state::fingerprint(&loaded.source.text, &loaded.plan, &loaded.script_files);
    let validated = validate::validate(loaded, &options)?;
    masker.learn_plan(&validated);
    if !validated.warnings.is_empty() {
        eprint!(
            "{}",
            masker.mask(&render_issues(
                &validated.source.name,
                &validated.source.text,
                &validated.warnings,
                Severity::Warning
            ))
        );
    }
    if validated.plan.scope.is_none() {
        return Err(Error::Usage(format!(
            "{}: the plan has no `scope`; JOB needs the business to run in",
            args.input.plan.display()
        )));
    }
    // Read before the lock is taken, so that a bad world is refused like a bad plan.
    let world = match (&config.endpoint, &config.credentials) {
        (Some(_), Some(_)) => World::default(),
        _ => match world_path(&args) {
            Some(path) => super::emulator::load_world(&path)?,
            None => World::default(),
        },
    };
    let pending = match super::resume::prepare(&args.state, fingerprint, &validated, resume)? {
        Prepared::Skip(message) => {
            println!("{message}");
            return Ok(ExitCode::SUCCESS);
        }
        Prepared::Go(pending) => pending,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            context: "cannot start the async runtime".into(),
            source,
        })?;
    let result = runtime.block_on(run_async(args, config, validated, *pending, world, masker));
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

/// Where the run goes.
struct Backend {
    endpoint: String,
    credentials: Credentials,
    target: RunTarget,
    emulator: Option<EmulatorHandle>,
}

/// Credentials the emulator accepts: the world's first app and user when it declares
/// them, else freshly generated ones (an empty world accepts any non-empty pair).
fn emulator_credentials(world: &World) -> Credentials {
    use rand::Rng;
    let random = |prefix: &str| {
        let n: u64 = rand::rng().random();
        format!("{prefix}-{n:016x}")
    };
    let (app_code, app_secret) = match world.credentials.apps.first() {
        Some(app) => (app.code.clone(), app.secret.clone()),
        None => (random("baton-rehearsal"), random("secret")),
    };
    let user = world
        .credentials
        .users
        .first()
        .cloned()
        .unwrap_or_else(|| "baton".to_owned());
    Credentials::App {
        app_code,
        app_secret: config::Secret::new(app_secret),
        user: config::User::Username(user),
    }
}

async fn run_async(
    args: RunArgs,
    config: config::Config,
    validated: ValidatedPlan,
    pending: Pending,
    world: World,
    masker: Masker,
) -> Result<ExitCode, Error> {
    let protocol = validated.protocol;
    let plan_path = args.input.plan.clone();

    // The backend: a real JOB, or the emulator on loopback. The first line says which.
    let backend = match (&config.endpoint, &config.credentials) {
        (Some(endpoint), Some(credentials)) => {
            println!("baton: running against JOB at {endpoint} ({protocol})");
            Backend {
                endpoint: endpoint.clone(),
                credentials: credentials.clone(),
                target: RunTarget::Remote {
                    endpoint: endpoint.clone(),
                },
                emulator: None,
            }
        }
        _ => start_emulator(&args, world).await?,
    };

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
            .map_err(|e| {
                Error::Infrastructure(format!(
                    "cannot listen for callbacks on {}: {e}",
                    config.callback_listen
                ))
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
            return Err(Error::Usage(
                "--wait callback needs a public callback URL (--callback-url or BATON_CALLBACK_URL) for a remote JOB".into(),
            ));
        }
        wait_mode = WaitMode::Poll;
    }

    let http = client::build_http_client(&Timeouts::default())
        .map_err(|e| Error::Infrastructure(e.to_string()))?;
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
        .ok_or_else(|| Error::Usage("the plan has no scope".into()))?;
    let api = Arc::new(HttpJobApi::new(transport, JobCodec::new(protocol, scope)));

    let (mut watchers, display) = watchers_for(&args);
    watchers.extend(super::resume::log_watchers(&args.state)?);
    let session = pending
        .start(api.as_ref(), &backend.target, &validated)
        .await?;
    let (sink, rx) = EventSink::channel();
    let sink = sink
        .with_recorder(session.recorder())
        .with_masker(masker.clone());
    let watch_task = tokio::spawn(watch::watch(rx, watchers));

    let steps: Vec<StepInfo> = validated
        .plan
        .steps
        .iter()
        .enumerate()
        .map(|(index, s)| StepInfo {
            step: StepRef {
                index,
                id: s.id.clone(),
            },
            name: s.name.clone().unwrap_or_else(|| s.id.clone()),
            needs: s.needs.clone(),
        })
        .collect();
    sink.emit(RunEvent::RunStarted {
        run_id: run_id.clone(),
        plan: validated.plan.name.clone(),
        plan_path: plan_path.display().to_string(),
        protocol: protocol.to_string(),
        target: backend.target.clone(),
        steps,
        at: events::now(),
    });
    session.restore(&sink);

    let default_on_failure = validated
        .plan
        .defaults
        .as_ref()
        .and_then(|d| d.on_failure)
        .unwrap_or(OnFailure::Stop);
    let nodes: Vec<StepNode> = validated
        .plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| StepNode {
            id: s.id.clone(),
            needs: validated.graph.dependencies(i),
            on_failure: s.on_failure.unwrap_or(default_on_failure),
        })
        .collect();

    let confirm = if args.yes {
        ConfirmPolicy::Yes
    } else if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        ConfirmPolicy::Ask(Arc::new(TerminalPrompter::new(display)))
    } else {
        ConfirmPolicy::Refuse
    };
    let runner = Arc::new(
        JobStepRunner::new(StepRunnerSetup {
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
        })
        .with_resume(session.resume_from()),
    );

    let interrupt = CancellationToken::new();
    let signals = tokio::spawn(watch_signals(interrupt.clone(), sink.clone(), args.detach));

    let schedule = ScheduleOptions {
        max_parallel: usize::from(args.max_parallel),
        abort_running: args.abort_running,
        detach: args.detach,
    };
    let finals = scheduler::run_graph_from(
        &nodes,
        Arc::clone(&runner),
        &schedule,
        interrupt.clone(),
        &sink,
        session.initial(),
    )
    .await;
    signals.abort();

    let fatal = runner.fatal_error();
    let code = if interrupt.is_cancelled() {
        exit::INTERRUPTED
    } else if fatal.is_some() {
        exit::INFRASTRUCTURE
    } else if runner.has_steps_in_doubt() || session.has_steps_in_doubt() {
        exit::IN_DOUBT
    } else if finals
        .iter()
        .any(|f| matches!(f, Final::Failed | Final::Interrupted))
    {
        exit::STEP_FAILED
    } else {
        exit::SUCCESS
    };
    sink.emit(RunEvent::RunFinished {
        exit_code: code,
        at: events::now(),
    });
    if let Some(warning) = session.finish(code) {
        eprintln!("{warning}");
    }
    drop(sink);
    drop(runner);
    let record = watch_task.await.unwrap_or_default();

    print!("{}", record.table());
    if args.detach && interrupt.is_cancelled() {
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
    if let Some(error) = &fatal {
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
    Ok(())
}

/// First Ctrl-C / SIGTERM: cancel (steps terminate or leave their instances); second:
/// exit at once.
async fn watch_signals(interrupt: CancellationToken, sink: EventSink, detach: bool) {
    let mut received = 0u32;
    loop {
        if !next_signal().await {
            return;
        }
        received += 1;
        if received == 1 {
            let action = if detach {
                "leaving running JOB instances running (--detach); stopping"
            } else {
                "terminating running JOB instances (press Ctrl-C again to exit at once)"
            };
            eprintln!("baton: interrupted: {action}");
            sink.emit(RunEvent::Interrupted {
                action: action.into(),
            });
            interrupt.cancel();
        } else {
            eprintln!(
                "baton: interrupted again: exiting now; running instances may be left running"
            );
            std::process::exit(i32::from(exit::INTERRUPTED));
        }
    }
}

/// Waits for SIGINT or SIGTERM; `false` if signals cannot be watched.
async fn next_signal() -> bool {
    #[cfg(unix)]
    {
        use std::sync::OnceLock;
        use tokio::signal::unix::{SignalKind, signal};
        // Registered once: re-registering per wait could miss a signal in between.
        static STREAMS: OnceLock<
            tokio::sync::Mutex<Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>>,
        > = OnceLock::new();
        let streams = STREAMS.get_or_init(|| {
            let pair = match (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) {
                (Ok(a), Ok(b)) => Some((a, b)),
                _ => None,
            };
            tokio::sync::Mutex::new(pair)
        });
        let mut guard = streams.lock().await;
        let Some((int, term)) = guard.as_mut() else {
            return false;
        };
        tokio::select! {
            s = int.recv() => s.is_some(),
            s = term.recv() => s.is_some(),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.is_ok()
    }
}

/// The emulator's world file: `--world`, else `world.yaml` beside the plan if present.
fn world_path(args: &RunArgs) -> Option<PathBuf> {
    args.world.clone().or_else(|| {
        let beside = args
            .input
            .plan
            .parent()
            .unwrap_or(Path::new("."))
            .join("world.yaml");
        beside.is_file().then_some(beside)
    })
}

/// Starts the in-process emulator with a sandbox and the plan's world, and prints the
/// first line of output saying so.
async fn start_emulator(args: &RunArgs, world: World) -> Result<Backend, Error> {
    let sandbox = match &args.sandbox {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                context: format!("cannot create the sandbox folder {}", dir.display()),
                source,
            })?;
            dir.clone()
        }
        None => tempfile::Builder::new()
            .prefix("baton-rehearsal-")
            .tempdir()
            .map_err(|source| Error::Io {
                context: "cannot create a temporary sandbox folder".into(),
                source,
            })?
            .keep(),
    };
    let sandbox = sandbox.canonicalize().unwrap_or(sandbox);
    println!(
        "baton: rehearsal on the local JOB emulator (not production); host sandboxes in {}",
        sandbox.display()
    );
    let credentials = emulator_credentials(&world);
    let isolation = super::emulator::isolation(args.unisolated)?;
    let handle = crate::emulator::start(EmulatorConfig {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        world,
        root: Some(sandbox.clone()),
        isolation,
    })
    .await
    .map_err(|e| Error::Infrastructure(format!("cannot start the local JOB emulator: {e}")))?;
    let endpoint = handle.base_url();
    Ok(Backend {
        endpoint: endpoint.clone(),
        credentials,
        target: RunTarget::Emulator {
            endpoint,
            sandbox: sandbox.display().to_string(),
        },
        emulator: Some(handle),
    })
}
