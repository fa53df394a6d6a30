//! The paths a run writes to (`--report`, `--junit`, `--log-file`, `--state-dir`,
//! `--sandbox`), checked before anything is sent: a typo in a report path must not
//! surface only after the release ran, nor with the code that says JOB is unreachable.
//! Checks touch nothing on disk: an existing report is kept as it is until the run
//! writes its own, and no probe file is left behind by a refused run.

use std::path::{Path, PathBuf};

use nix::unistd::AccessFlags;

use super::run::RunArgs;
use crate::error::Error;
use crate::state::runs::StateDir;

/// Checks every output path of a `baton run` or `baton resume`; the first unusable one
/// is a usage error (exit 2) naming the flag, the path and why.
pub fn check(args: &RunArgs) -> Result<(), Error> {
    let files = [
        ("--report", &args.report),
        ("--junit", &args.junit),
        ("--log-file", &args.state.log_file),
    ];
    for (flag, path) in files {
        if let Some(path) = path {
            check_file(path).map_err(|why| refused(flag, path, &why))?;
        }
    }
    match &args.state.state_dir {
        Some(dir) if !dir.as_os_str().is_empty() => {
            check_folder(dir).map_err(|why| refused("--state-dir", dir, &why))?;
        }
        _ => {
            // The default folder is only resolvable when HOME or XDG_STATE_HOME is set;
            // that refusal is the state module's to make, with its own message.
            if let Ok(state) = StateDir::resolve(None) {
                check_folder(state.root()).map_err(|why| {
                    Error::Usage(format!(
                        "the state folder {}: {why} (choose another with --state-dir)",
                        state.root().display()
                    ))
                })?;
            }
        }
    }
    if let Some(dir) = &args.sandbox {
        check_folder(dir).map_err(|why| refused("--sandbox", dir, &why))?;
    }
    Ok(())
}

/// Nothing there: not found, or a file where a folder on the way should be (which
/// [`check_file`] and [`check_folder`] then name).
fn absent(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
    )
}

fn refused(flag: &str, path: &Path, why: &str) -> Error {
    Error::Usage(format!("{flag} {}: {why}", path.display()))
}

/// A file baton will create or replace (or append to): not a folder, in a folder that
/// exists, writable.
fn check_file(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => return Err("it is a folder; give a file name".into()),
        Ok(_) => return writable(path, AccessFlags::W_OK),
        Err(e) if absent(&e) => {}
        Err(e) => return Err(format!("cannot be used: {e}")),
    }
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    match std::fs::metadata(parent) {
        Ok(meta) if meta.is_dir() => writable(parent, AccessFlags::W_OK | AccessFlags::X_OK)
            .map_err(|why| format!("the folder {}: {why}", parent.display())),
        Ok(_) => Err(format!("{} is not a folder", parent.display())),
        Err(e) if absent(&e) => Err(format!("the folder {} does not exist", parent.display())),
        Err(e) => Err(format!(
            "the folder {} cannot be used: {e}",
            parent.display()
        )),
    }
}

/// A folder baton will create if needed and write into: the folder, or the nearest
/// existing folder above it, is a writable folder.
fn check_folder(dir: &Path) -> Result<(), String> {
    let mut candidate: PathBuf = dir.to_path_buf();
    loop {
        match std::fs::metadata(&candidate) {
            Ok(meta) if meta.is_dir() => {
                let writable = writable(&candidate, AccessFlags::W_OK | AccessFlags::X_OK);
                return if candidate == dir {
                    writable
                } else {
                    writable
                        .map_err(|why| format!("cannot be created: {}: {why}", candidate.display()))
                };
            }
            Ok(_) if candidate == dir => return Err("it is a file, not a folder".into()),
            Ok(_) => {
                return Err(format!(
                    "cannot be created: {} is a file, not a folder",
                    candidate.display()
                ));
            }
            Err(e) if absent(&e) => {}
            Err(e) => return Err(format!("cannot be used: {e}")),
        }
        let next = match candidate.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            // A relative path whose first component is missing is created in the
            // working folder.
            _ => PathBuf::from("."),
        };
        if next == candidate {
            return Err("no folder above it exists".into());
        }
        candidate = next;
    }
}

/// Asks the kernel whether this process may write `path`, without opening it (opening a
/// FIFO would block, and creating a probe would leave a trace if the run is killed).
fn writable(path: &Path, mode: AccessFlags) -> Result<(), String> {
    nix::unistd::access(path, mode).map_err(|errno| match errno {
        nix::errno::Errno::EACCES | nix::errno::Errno::EPERM => "it is not writable".to_owned(),
        nix::errno::Errno::EROFS => "it is on a read-only file system".to_owned(),
        other => format!("cannot be used: {}", other.desc()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_need_an_existing_folder_and_must_not_be_folders() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope/out.json");
        let why = check_file(&missing).expect_err("missing folder");
        assert!(why.contains("does not exist"), "{why}");
        assert!(why.contains(&dir.path().join("nope").display().to_string()));
        let why = check_file(dir.path()).expect_err("a folder");
        assert!(why.contains("is a folder"), "{why}");
        let file = dir.path().join("file");
        std::fs::write(&file, "kept").expect("write");
        let why = check_file(&file.join("out.json")).expect_err("under a file");
        assert!(why.contains("is not a folder"), "{why}");
        check_file(&file).expect("an existing file is fine");
        assert_eq!(std::fs::read_to_string(&file).expect("read"), "kept");
        check_file(&dir.path().join("new.json")).expect("a new file is fine");
        assert!(
            !dir.path().join("new.json").exists(),
            "the check creates nothing"
        );
    }

    #[test]
    fn folders_may_be_created_but_not_under_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        check_folder(&dir.path().join("a/b/c")).expect("creatable");
        assert!(!dir.path().join("a").exists(), "the check creates nothing");
        let file = dir.path().join("file");
        std::fs::write(&file, "").expect("write");
        let why = check_folder(&file).expect_err("a file");
        assert!(why.contains("is a file"), "{why}");
        let why = check_folder(&file.join("sub")).expect_err("under a file");
        assert!(why.contains("cannot be created"), "{why}");
    }
}
