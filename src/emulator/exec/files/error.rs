//! [`TransferError`]: why a push could not have its target folder or expand its target
//! path; its text goes into the file log of every file meant for that folder.

use crate::emulator::exec::sandbox::error::SandboxError;
use crate::job_api::types::HostAddr;

/// Why a target folder could not be had or its path expanded; the text goes into the
/// file log of every file meant for it.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The sandbox refused the path.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// Something other than a folder is in the way.
    #[error("target path `{folder}` on host {host} is not a folder")]
    NotAFolder {
        /// The folder as written on the host.
        folder: String,
        /// The target host.
        host: HostAddr,
    },
    /// Strict mode and no such folder.
    #[error("target folder `{folder}` does not exist on host {host} (strict transfer mode)")]
    NoFolder {
        /// The folder as written on the host.
        folder: String,
        /// The target host.
        host: HostAddr,
    },
    /// The target folder could not be created.
    #[error("cannot create target folder `{folder}` on host {host}: {source}")]
    CreateFolder {
        /// The folder as written on the host.
        folder: String,
        /// The target host.
        host: HostAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A folder inside a copied tree could not be created.
    #[error("cannot create `{dest}` on host {host}: {source}")]
    CreateDir {
        /// The folder as written on the host.
        dest: String,
        /// The target host.
        host: HostAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `[DATE:…]` with a time local time cannot show.
    #[error("time {0} ms cannot be shown in local time")]
    Time(i64),
    /// `[DATE:…]` / `[DATEFMT:…]` with a pattern chrono refuses.
    #[error("invalid date pattern `{0}`")]
    DatePattern(String),
}
