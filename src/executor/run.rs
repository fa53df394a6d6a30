//! A run from its first event to its last: [`Run`] announces the run, shows again what
//! an earlier session settled, schedules the step graph while watching for Ctrl-C and
//! SIGTERM, classifies how it ended as a [`RunOutcome`], and announces the end. Which
//! exit code an outcome means is the caller's to say.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::events::{self, RunEvent, RunTarget, StepInfo, StepRef};
use super::scheduler::{self, Final, Handles, Initial, ScheduleOptions, StepNode};
use super::signals;
use super::step::{JobStepRunner, ResumeFrom, StepOutput, StepRecord, StepRunnerSetup};
use crate::compile::CompiledPlan;
use crate::compile::OnFailure;
use crate::job_api::client::{ClientError, JobApi};

/// How a run ended, most serious first.
#[derive(Debug, Clone)]
pub enum RunOutcome {
    /// Ctrl-C or SIGTERM stopped it; JOB may have failed the runner before that.
    Interrupted {
        /// The infrastructure error seen before the interrupt, if any.
        fatal: Option<ClientError>,
    },
    /// JOB could not be reached or refused the runner.
    Infrastructure(ClientError),
    /// A step's submission may or may not have started a job, and JOB could not tell.
    InDoubt,
    /// A step failed (or was cut short).
    StepFailed,
    /// An approval gate was rejected or timed out, and nothing else failed.
    GateStopped,
    /// Every step succeeded or was skipped.
    Succeeded,
}

/// Where an earlier session of the run left off; empty for a fresh run.
#[derive(Debug, Default)]
pub struct Resumed {
    /// The scheduler's pre-set step states, in plan order.
    pub initial: Vec<Initial<StepOutput>>,
    /// Where resumed steps pick up.
    pub from: BTreeMap<usize, ResumeFrom>,
    /// Events shown again right after the run starts: how kept steps ended, and what
    /// resuming decided.
    pub restored: Vec<RunEvent>,
    /// Whether resuming already left a step in doubt.
    pub in_doubt: bool,
    /// How the kept steps ended, for conditions and drawn targets.
    pub records: BTreeMap<usize, StepRecord>,
}

/// Everything a run needs once the settings are resolved and JOB is chosen.
pub struct Run<A: JobApi> {
    /// The client, the plan, the event sink and the step settings.
    pub setup: StepRunnerSetup<A, CompiledPlan>,
    /// The plan file as given, for `RunStarted`.
    pub plan_path: String,
    /// Where the run goes.
    pub target: RunTarget,
    /// Parallelism, `--abort-running`, `--detach`.
    pub schedule: ScheduleOptions,
    /// Where an earlier session left off.
    pub resumed: Resumed,
    /// Cancelled to interrupt the run.
    pub interrupt: CancellationToken,
    /// Whether SIGINT and SIGTERM cancel `interrupt`.
    pub watch_signals: bool,
}

impl<A: JobApi> Run<A> {
    /// Runs the plan to its end. `exit_code` names the code each outcome means, for
    /// `RunFinished` and for a second signal, which exits at once.
    pub async fn execute(self, exit_code: fn(&RunOutcome) -> u8) -> RunOutcome {
        let Run {
            setup,
            plan_path,
            target,
            schedule,
            resumed,
            interrupt,
            watch_signals,
        } = self;
        let sink = setup.events.clone();
        let validated = Arc::clone(&setup.source);
        let outlines = validated.outlines();
        let steps: Vec<StepInfo> = outlines
            .iter()
            .enumerate()
            .map(|(index, s)| StepInfo {
                step: StepRef {
                    index,
                    id: s.id.clone(),
                },
                name: s.name.clone(),
                needs: s.needs.clone(),
                handler: validated.condition(index).is_some_and(|c| c.handler),
            })
            .collect();
        sink.emit(RunEvent::RunStarted {
            run_id: setup.run_id.clone(),
            plan: validated.name().to_owned(),
            plan_path,
            protocol: validated.protocol.to_string(),
            target,
            steps,
            at: events::now(),
        });
        for event in resumed.restored {
            sink.emit(event);
        }

        let nodes: Vec<StepNode> = outlines
            .iter()
            .enumerate()
            .map(|(i, s)| StepNode {
                id: s.id.clone(),
                needs: validated.graph.dependencies(i),
                on_failure: validated
                    .settings(i)
                    .map_or(OnFailure::Stop, |settings| settings.on_failure),
                handles: match validated.condition(i) {
                    Some(c) if c.after_interrupt => Handles::Interrupt,
                    Some(c) if c.handler => Handles::Failure,
                    _ => Handles::Nothing,
                },
                group: validated
                    .fan_out
                    .get(i)
                    .copied()
                    .flatten()
                    .map(|g| (g.group, g.max_parallel)),
            })
            .collect();
        let runner = Arc::new(
            JobStepRunner::new(setup)
                .with_resume(resumed.from)
                .with_records(resumed.records),
        );

        let signals = watch_signals.then(|| {
            tokio::spawn(signals::watch(
                interrupt.clone(),
                sink.clone(),
                schedule.detach,
                exit_code(&RunOutcome::Interrupted { fatal: None }),
            ))
        });
        let finals = scheduler::run_graph_from(
            &nodes,
            Arc::clone(&runner),
            &schedule,
            interrupt.clone(),
            &sink,
            resumed.initial,
        )
        .await;
        if let Some(signals) = signals {
            signals.abort();
        }

        let fatal = runner.fatal_error();
        let outcome = if interrupt.is_cancelled() {
            RunOutcome::Interrupted { fatal }
        } else if let Some(error) = fatal {
            RunOutcome::Infrastructure(error)
        } else if runner.has_steps_in_doubt() || resumed.in_doubt {
            RunOutcome::InDoubt
        } else if runner.has_gates_stopped()
            && finals
                .iter()
                .filter(|f| matches!(f, Final::Failed | Final::Interrupted))
                .count()
                == 1
        {
            RunOutcome::GateStopped
        } else if finals
            .iter()
            .any(|f| matches!(f, Final::Failed | Final::Interrupted))
        {
            RunOutcome::StepFailed
        } else {
            RunOutcome::Succeeded
        };
        sink.emit(RunEvent::RunFinished {
            exit_code: exit_code(&outcome),
            at: events::now(),
        });
        outcome
    }
}

impl RunOutcome {
    /// The infrastructure error that ended the run, or that came before an interrupt.
    pub fn fatal(&self) -> Option<&ClientError> {
        match self {
            RunOutcome::Interrupted { fatal } => fatal.as_ref(),
            RunOutcome::Infrastructure(error) => Some(error),
            _ => None,
        }
    }
}
