//! `baton resume`: every `baton run` option, with the run to continue where `run`
//! takes the plan file. Turns the run id into a [`ResumeRequest`] (the recorded plan
//! and its non-secret inputs, the same JOB or sandboxes) and runs it again through
//! `baton run`; the run session replays the journal.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgMatches, Args, FromArgMatches};

use super::launch::parse_duration;
use super::run::RunArgs;
use crate::error::Error;
use crate::executor::events::RunTarget;
use crate::state::StateError;
use crate::state::journal;
use crate::state::lock;
use crate::state::pending::ResumeRequest;
use crate::state::resume::{self, Selection};
use crate::state::runs::{self, StateDir};

/// `baton resume`: every `baton run` option, with the run (id, unique prefix or
/// `last`) where `run` takes the plan file.
#[derive(Debug)]
pub struct ResumeArgs {
    /// The run options; `input.plan` holds the run id as typed.
    pub run: RunArgs,
    /// `--step ID`.
    pub step: Option<String>,
    /// `--downstream`.
    pub downstream: bool,
    /// `--force`.
    pub force: bool,
    /// `--settle-after`.
    pub settle_after: Duration,
}

/// How long after its last record a submission may still reach JOB (the submit timeout,
/// plus a gateway's own queueing): before that, "JOB has no such instance" proves
/// nothing.
const SETTLE_AFTER: Duration = Duration::from_secs(60);

// Hand-written so that `resume` accepts every `baton run` option, now and later,
// without repeating them: it is `run`'s argument set with the positional re-labelled.
impl Args for ResumeArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        RunArgs::augment_args(cmd)
            .mut_arg("plan", |arg| {
                arg.value_name("RUN")
                    .help("The run to resume: its id, a unique prefix of it, or `last`")
            })
            .mut_arg("skip_if_successful_since", |arg| arg.hide(true))
            .arg(
                clap::Arg::new("step")
                    .long("step")
                    .value_name("ID")
                    .help("Run this step again (even if it succeeded); other steps stay as they were"),
            )
            .arg(
                clap::Arg::new("downstream")
                    .long("downstream")
                    .action(clap::ArgAction::SetTrue)
                    .requires("step")
                    .help("With --step: run every step after it again too"),
            )
            .arg(
                clap::Arg::new("force")
                    .long("force")
                    .action(clap::ArgAction::SetTrue)
                    .help("Resume even though the plan file or the inputs changed; with --step, run that step even though its last submission is in doubt (check JOB first)"),
            )
            .arg(
                clap::Arg::new("settle_after")
                    .long("settle-after")
                    .value_name("DURATION")
                    .default_value("60s")
                    .value_parser(parse_duration)
                    .help("A submission in doubt is taken as never arrived only if JOB has no such instance this long after the run last wrote its journal (a request may still be on its way until then)"),
            )
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for ResumeArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        Ok(ResumeArgs {
            run: RunArgs::from_arg_matches(matches)?,
            step: matches.get_one::<String>("step").cloned(),
            downstream: matches.get_flag("downstream"),
            force: matches.get_flag("force"),
            settle_after: matches
                .get_one::<Duration>("settle_after")
                .copied()
                .unwrap_or(SETTLE_AFTER),
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

/// Runs `baton resume`.
pub fn resume(args: ResumeArgs) -> Result<ExitCode, Error> {
    let ResumeArgs {
        mut run,
        step,
        downstream,
        force,
        settle_after,
    } = args;
    super::outputs::check(run.output_paths())?;
    let state = StateDir::resolve(run.state.state_dir.clone())?;
    let which = run.input.plan.display().to_string();
    let dir = runs::find(&state, &which)?;
    let meta = dir.read_meta()?;
    let Some(run_lock) = lock::lock_run(dir.path())? else {
        return Err(StateError::Locked(format!(
            "run {} is still running (pid {}); it cannot be resumed while it lives",
            meta.run_id, meta.pid
        ))
        .into());
    };
    let journal_state = resume::replay(&journal::read(&dir.journal_path())?);
    if step.is_none() && journal_state.finished == Some(crate::error::exit::SUCCESS) {
        println!(
            "baton: run {} of {} already succeeded; nothing to resume (use --step ID to run a step again)",
            meta.run_id, meta.plan
        );
        return Ok(ExitCode::SUCCESS);
    }
    // The same plan file, and the same non-secret inputs ahead of anything given now;
    // secret inputs were never stored and must be supplied again.
    run.input.plan = PathBuf::from(&meta.plan_path);
    let declared = crate::plan::load(&run.input.plan)
        .map(|loaded| loaded.plan.vars.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    let mut vars: Vec<String> = meta
        .inputs
        .iter()
        .filter(|(name, _)| !meta.secret_inputs.contains(name) && declared.contains(name))
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    vars.append(&mut run.input.vars);
    run.input.vars = vars;
    if run.endpoint.is_none()
        && std::env::var_os("BATON_ENDPOINT").is_none()
        && let Some(RunTarget::Remote { endpoint }) = &journal_state.target
    {
        run.endpoint = Some(endpoint.clone());
    }
    // A rehearsal resumes in the same host sandboxes, where the kept steps left their
    // files.
    if run.endpoint.is_none()
        && run.sandbox.is_none()
        && run.profile.is_none()
        && run.profile_file.is_none()
        && std::env::var_os("BATON_ENDPOINT").is_none()
        && let Some(RunTarget::Emulator { sandbox, .. }) = &journal_state.target
    {
        run.sandbox = Some(PathBuf::from(sandbox));
    }
    run.state.skip_if_successful_since = None;
    let request = ResumeRequest::new(
        dir,
        meta,
        Selection {
            step,
            downstream,
            force,
        },
        run_lock,
        settle_after,
    );
    super::run::run_resumed(run, request)
}
