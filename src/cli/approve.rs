//! `baton approve RUN GATE [--reject] [--by NAME]`: answers an approval gate from
//! another terminal. The answer is an approval record in the run's folder, written
//! whole and renamed into place; a run waiting at the gate picks it up within a
//! moment, and a run that timed out there finds it when resumed.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::error::{Error, UsageError};
use crate::executor::events::{self, GateDecision};
use crate::executor::gate::{self, Approval};
use crate::plan::model::Plan;
use crate::state::runs::{self, StateDir};

/// `baton approve`.
#[derive(Debug, clap::Args)]
pub struct ApproveArgs {
    /// The run: its id, a unique prefix of it, or `last`.
    pub run: String,
    /// The gate: the id of an `approve` step of the run's plan.
    pub gate: String,
    /// Refuse instead: the gate fails, and the handlers its failure triggers run.
    #[arg(long)]
    pub reject: bool,
    /// Who answers, for the journal and the report [default: $USER].
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,
    /// Folder of run records [default: $XDG_STATE_HOME/baton, else ~/.local/state/baton].
    #[arg(long, value_name = "DIR", env = "BATON_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

/// Runs `baton approve`.
pub fn approve(args: ApproveArgs) -> Result<ExitCode, Error> {
    let state = StateDir::resolve(args.state_dir.clone())?;
    let dir = runs::find(&state, &args.run)?;
    // The plan as it was run says which steps are gates.
    let gates: Vec<String> = std::fs::read_to_string(dir.plan_copy_path())
        .ok()
        .and_then(|text| serde_yaml::from_str::<Plan>(&text).ok())
        .map(|plan| {
            plan.steps
                .into_iter()
                .filter(|s| s.approve.is_some())
                .map(|s| s.id)
                .collect()
        })
        .unwrap_or_default();
    if !gates.contains(&args.gate) {
        let known = if gates.is_empty() {
            "its plan has no gates".to_owned()
        } else {
            format!("its gates: {}", gates.join(", "))
        };
        return Err(Error::Usage(UsageError::NoSuchGate {
            run: format!("run {}", dir.id()),
            step: args.gate,
            known,
        }));
    }
    let approval = Approval {
        decision: if args.reject {
            GateDecision::Rejected
        } else {
            GateDecision::Approved
        },
        by: args.by.clone().unwrap_or_else(gate::current_user),
        at: events::format_time(&events::now()),
    };
    let path = gate::approval_path(dir.path(), &args.gate);
    let folder = dir.path().join(gate::APPROVALS_DIR);
    std::fs::create_dir_all(&folder).map_err(|source| Error::Io {
        context: format!("cannot create {}", folder.display()),
        source,
    })?;
    let text = serde_json::to_string_pretty(&approval).unwrap_or_default();
    runs::write_atomic(&path, text.as_bytes())?;
    let live = dir.is_live();
    println!(
        "baton: gate {} of run {} {} by {}{}",
        args.gate,
        dir.id(),
        approval.decision.word(),
        approval.by,
        if live {
            String::new()
        } else {
            format!(
                "; the run is not running: `baton resume {}` continues from the gate",
                dir.id()
            )
        }
    );
    Ok(ExitCode::SUCCESS)
}
