//! Starting a program inside a host sandbox: the hidden `__sandbox-exec` command line
//! of the baton binary ([`helper_command`], [`executor_command`]) and the `PATH` a script sees there.

use std::path::Path;

/// The hidden command of the baton binary that enters a sandbox.
pub const HELPER_COMMAND: &str = "__sandbox-exec";

/// `<helper> __sandbox-exec --root <root> --`: append the program and its arguments.
pub fn helper_command(helper: &Path, root: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(helper);
    command
        .arg(HELPER_COMMAND)
        .arg("--root")
        .arg(root)
        .arg("--");
    command
}

/// `<helper> __sandbox-exec --root <root> --executor`: the host's long-lived executor,
/// driven over the socket given as its stdin.
pub fn executor_command(helper: &Path, root: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(helper);
    command
        .arg(HELPER_COMMAND)
        .arg("--root")
        .arg(root)
        .arg("--executor");
    command
}

/// `PATH` inside a sandbox: the usual system folders, all bound from this machine.
pub const SANDBOX_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
