//! A job as asked for, before it has an instance ([`NewJob`]): what a fast script, a fast
//! file push or a job plan's run describes, with targets resolved and rolling parsed,
//! independent of the protocol that asked.

use crate::emulator::model::inventory::Host;
use crate::emulator::model::jobs::{RollingMode, StepKind};
use crate::emulator::model::protocol::Protocol;
use crate::emulator::model::scope::Scope;
use crate::job_api::rules::RollingExpr;

/// How a step rolls.
#[derive(Debug, Clone)]
pub struct RollingSpec {
    /// Mode.
    pub mode: RollingMode,
    /// Over what.
    pub by: RollingBy,
}

/// What a rolling step splits.
#[derive(Debug, Clone)]
pub enum RollingBy {
    /// Target hosts, by expression (type 1).
    Targets(RollingExpr),
    /// Source files (type 2, file steps only).
    Sources {
        /// Source hosts per batch.
        max_hosts: Option<usize>,
        /// Files per source host.
        max_files: Option<usize>,
    },
}

/// A step to create.
#[derive(Debug, Clone)]
pub struct NewStep {
    /// Plan step id (-1 for fast tasks).
    pub step_id: i64,
    /// Name.
    pub name: String,
    /// What it does.
    pub kind: StepKind,
    /// Resolved targets.
    pub targets: Vec<Host>,
    /// Rolling.
    pub rolling: Option<RollingSpec>,
}

/// A job to create.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Name.
    pub name: String,
    /// Scopes that see it (first: its own).
    pub scopes: Vec<Scope>,
    /// Operator (the caller).
    pub operator: String,
    /// Plan id, -1 for fast tasks.
    pub plan_id: i64,
    /// 0 plan, 1 fast script, 2 fast file.
    pub task_type: u8,
    /// Callback URL.
    pub callback_url: Option<String>,
    /// Protocol of the submit.
    pub protocol: Protocol,
    /// `start_task`.
    pub start: bool,
    /// Steps.
    pub steps: Vec<NewStep>,
    /// A job plan's global variables with the values it starts with.
    pub vars: Vec<crate::emulator::model::job_vars::JobVar>,
}
