//! Run state: run folders and ids, the append-only event journal, the per-plan and
//! per-run locks and who holds them, plan fingerprints, and the replay of a journal
//! into what a resumed run must do. Consumes `RunEvent`s; never talks to JOB itself.

pub mod error;
pub mod fingerprint;
pub mod holder;
pub mod journal;
pub mod lock;
pub mod pending;
pub mod procfs;
pub mod resume;
pub mod resuming;
pub mod runs;
pub mod session;

pub use error::StateError;
pub use fingerprint::{Fingerprint, PlanChanges};
pub use journal::{Journal, JournalLine, Marker, Replay};
pub use lock::{Held, Holder, PlanLock, RunLock};
pub use runs::{RunDir, RunMeta, RunState, RunSummary, StateDir, new_run_id};
