//! Host sandboxes: the host folders and the mapping of host paths into them
//! (`host_paths`, [`HostSandboxes`]), how scripts are isolated (`isolation`,
//! [`Isolation`]), the command line that starts a program inside a sandbox (`launch`),
//! the `__sandbox-exec` helper's namespace set-up (`namespace`) and its mounts
//! (`mounts`), the hosts' long-lived executors (`agents` on the emulator's side,
//! `executor` inside the namespaces, `wire` between them), and what can go wrong
//! (`error`, [`SandboxError`]).

pub mod agents;
pub mod error;
mod executor;
pub mod host_paths;
pub mod isolation;
pub mod launch;
mod mounts;
pub mod namespace;
pub mod wire;

pub use error::{SandboxError, SetupError};
pub use host_paths::HostSandboxes;
pub use isolation::Isolation;
pub use launch::{HELPER_COMMAND, SANDBOX_PATH, executor_command, helper_command};
pub use namespace::exec_main;
