//! `baton runs` (recent runs, newest first), `baton runs show <id|last>` (the final
//! report again, rebuilt from the run's journal by the same record and table as `baton
//! run`) and `baton runs --keep N` (prune old runs, never a live one).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::{self, ConfigFlags};
use crate::error::Error;
use crate::report::html;
use crate::report::links::JobWeb;
use crate::report::summary::{RunRecord, human};
use crate::state::journal::{self, JournalLine};
use crate::state::runs::{self, RunState, RunSummary, StateDir};

/// `baton runs`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RunsArgs {
    /// `show`.
    #[command(subcommand)]
    pub command: Option<RunsCommand>,
    /// Folder of run records [default: $XDG_STATE_HOME/baton, else ~/.local/state/baton].
    #[arg(long, value_name = "DIR", env = "BATON_STATE_DIR", global = true)]
    pub state_dir: Option<PathBuf>,
    /// Only runs of the plan with this name.
    #[arg(long, value_name = "NAME")]
    pub plan: Option<String>,
    /// Show at most this many runs.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: usize,
    /// Delete all but the newest N runs (a run that is still running is never deleted).
    #[arg(long, value_name = "N")]
    pub keep: Option<usize>,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `baton runs` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum RunsCommand {
    /// Print a run's final report again, from its journal.
    Show(ShowArgs),
}

/// `baton runs show`.
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The run: its id, a unique prefix of it, or `last`.
    pub run: String,
    /// Print the JSON report (`baton.run-report` v1) instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also write the self-contained HTML report here.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

/// Runs `baton runs`.
pub fn runs(args: RunsArgs) -> Result<ExitCode, Error> {
    let state = StateDir::resolve(args.state_dir.clone())?;
    if let Some(RunsCommand::Show(show_args)) = &args.command {
        return show(&state, show_args);
    }
    if let Some(keep) = args.keep {
        let pruned = runs::prune(&state, keep)?;
        println!(
            "baton: removed {} run{}, kept the newest {keep}",
            pruned.removed.len(),
            if pruned.removed.len() == 1 { "" } else { "s" }
        );
        for id in &pruned.kept_live {
            println!("baton: kept {id}: it is still running");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let list: Vec<RunSummary> = runs::list(&state)
        .into_iter()
        .filter(|r| args.plan.as_ref().is_none_or(|p| &r.plan == p))
        .take(args.limit)
        .collect();
    if args.json {
        for run in &list {
            println!("{}", serde_json::to_string(run).unwrap_or_default());
        }
    } else if list.is_empty() {
        println!("baton: no runs recorded in {}", state.runs_dir().display());
    } else {
        print!("{}", table(&list));
    }
    Ok(ExitCode::SUCCESS)
}

/// The history table.
fn table(list: &[RunSummary]) -> String {
    let headers = ["RUN", "PLAN", "STARTED", "DURATION", "STATUS", "EXIT"];
    let rows: Vec<[String; 6]> = list
        .iter()
        .map(|r| {
            let status = if r.resumes > 0 {
                format!("{} (resumed {}x)", r.state.label(), r.resumes)
            } else {
                r.state.label().to_owned()
            };
            [
                r.run_id.clone(),
                r.plan.clone(),
                r.started_at.clone(),
                r.duration_secs.map_or_else(
                    || "-".to_owned(),
                    // Run records keep whole seconds, so a quick run is "<1s", not "0ms".
                    |s| match s {
                        0 => "<1s".to_owned(),
                        s => human(std::time::Duration::from_secs(s.unsigned_abs())),
                    },
                ),
                status,
                r.exit_code
                    .map_or_else(|| "-".to_owned(), |c| c.to_string()),
            ]
        })
        .collect();
    let mut widths = headers.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<w$}  ");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&headers);
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        line(&cells);
    }
    out
}

/// `baton runs show`.
fn show(state: &StateDir, args: &ShowArgs) -> Result<ExitCode, Error> {
    let dir = runs::find(state, &args.run)?;
    let replay = journal::read(&dir.journal_path())?;
    let mut record = RunRecord::default();
    for line in &replay.lines {
        match line {
            JournalLine::Event(event) => record.apply(event),
            JournalLine::Marker(marker) => {
                record
                    .warnings
                    .extend(super::notices::replayed_warning(marker));
            }
        }
    }
    if let Some(web) = job_web(&dir) {
        record.link_jobs(&web);
    }
    let summary = runs::list(state).into_iter().find(|r| r.run_id == dir.id());
    let state_now = summary.as_ref().map(|s| s.state);
    if state_now == Some(RunState::Abandoned) {
        record.close_abandoned();
    }
    if let Some(path) = &args.html {
        std::fs::write(path, html::render(&record)).map_err(|source| Error::Io {
            context: format!("cannot write {}", path.display()),
            source,
        })?;
    }
    if args.json {
        println!("{}", record.to_json());
        return Ok(ExitCode::SUCCESS);
    }
    match state_now {
        Some(RunState::Running) => {
            println!(
                "baton: run {} is still running; the report so far:",
                dir.id()
            );
        }
        Some(RunState::Abandoned) => println!(
            "baton: run {} did not finish (its process ended without recording an end); `baton resume {}` continues it",
            dir.id(),
            dir.id()
        ),
        _ => {}
    }
    if replay.torn_tail {
        println!(
            "baton: the journal's last line was cut short (the process died while writing it); shown up to the last whole event"
        );
    }
    print!("{}", record.table());
    Ok(ExitCode::SUCCESS)
}

/// Links into JOB's web UI for a recorded run: the JOB web address from the
/// environment or `BATON_PROFILE`'s profile, the scope from the run's plan copy.
fn job_web(dir: &runs::RunDir) -> Option<JobWeb> {
    let config = config::resolve(&ConfigFlags::default(), &|name| std::env::var(name).ok()).ok()?;
    let url = config.job_web_url?;
    let plan = crate::plan::load(&dir.plan_copy_path()).ok()?;
    Some(super::run::job_web(&url, plan.plan.scope?))
}
