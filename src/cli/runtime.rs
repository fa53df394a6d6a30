//! The async runtime a command starts when it serves the emulator or runs a plan:
//! [`start`], multi-threaded with timers and I/O, its failure reported as an I/O error.

use crate::error::Error;

/// A multi-threaded runtime with timers and I/O enabled.
pub fn start() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            context: "cannot start the async runtime".into(),
            source,
        })
}
