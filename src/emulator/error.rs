//! Why the emulator failed as a program rather than as a JOB ([`EmulatorError`]): it
//! could not bind, read its world, set up its sandboxes, seed files, or run its sandbox
//! helper. JOB-level refusals are answers, not errors here (`model::job_error`).

use crate::emulator::exec::sandbox::error::SandboxError;
use crate::emulator::model::inventory::BadHost;
use crate::emulator::model::world_load::WorldError;

/// Why an emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The world file is unreadable or invalid.
    #[error(transparent)]
    World(#[from] WorldError),
    /// A host entry or reference in a world built in code names no host.
    #[error("invalid world file: {0}")]
    Inventory(#[from] BadHost),
    /// The host sandboxes could not be set up.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// A temporary root folder could not be created.
    #[error("cannot create a temporary sandbox root: {0}")]
    TempDir(#[source] std::io::Error),
    /// The callback HTTP client could not be built.
    #[error("cannot build the callback HTTP client: {0}")]
    Http(#[source] reqwest::Error),
    /// A world host's seeded file could not be written.
    #[error("cannot seed {path} on host {host}: {reason}")]
    Seed {
        /// Host.
        host: String,
        /// Path on the host.
        path: String,
        /// Why.
        reason: String,
    },
}
