//! The paths a run writes to (`--report`, `--junit`, `--html`, `--log-file`, `--state-dir`,
//! `--sandbox`), checked before anything is sent: a typo in a report path must not
//! surface only after the release ran, nor with the code that says JOB is unreachable.
//! Checks touch nothing on disk: an existing report is kept as it is until the run
//! writes its own, and no probe file is left behind by a refused run.

use std::path::{Path, PathBuf};

use nix::unistd::AccessFlags;

use crate::error::{Error, OutputProblem, UsageError};
use crate::state::runs::StateDir;

/// The paths a run writes to, as the flags gave them.
#[derive(Debug, Clone, Copy)]
pub struct OutputPaths<'a> {
    /// `--report`.
    pub report: &'a Option<PathBuf>,
    /// `--junit`.
    pub junit: &'a Option<PathBuf>,
    /// `--html`.
    pub html: &'a Option<PathBuf>,
    /// `--log-file`.
    pub log_file: &'a Option<PathBuf>,
    /// `--state-dir`.
    pub state_dir: &'a Option<PathBuf>,
    /// `--sandbox`.
    pub sandbox: &'a Option<PathBuf>,
}

/// Checks every output path of a `baton run` or `baton resume`; the first unusable one
/// is a usage error (exit 2) naming the flag, the path and why.
pub fn check(args: OutputPaths<'_>) -> Result<(), Error> {
    let files = [
        ("--report", args.report),
        ("--junit", args.junit),
        ("--html", args.html),
        ("--log-file", args.log_file),
    ];
    for (flag, path) in files {
        if let Some(path) = path {
            check_file(path).map_err(|why| refused(flag, path, why))?;
        }
    }
    match args.state_dir {
        Some(dir) if !dir.as_os_str().is_empty() => {
            check_folder(dir).map_err(|why| refused("--state-dir", dir, why))?;
        }
        _ => {
            // The default folder is only resolvable when HOME or XDG_STATE_HOME is set;
            // that refusal is the state module's to make, with its own message.
            if let Ok(state) = StateDir::resolve(None) {
                check_folder(state.root()).map_err(|why| UsageError::StateFolder {
                    path: state.root().to_path_buf(),
                    why,
                })?;
            }
        }
    }
    if let Some(dir) = args.sandbox {
        check_folder(dir).map_err(|why| refused("--sandbox", dir, why))?;
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

fn refused(flag: &'static str, path: &Path, why: OutputProblem) -> Error {
    UsageError::Output {
        flag,
        path: path.to_path_buf(),
        why,
    }
    .into()
}

/// A file baton will create or replace (or append to): not a folder, in a folder that
/// exists, writable.
fn check_file(path: &Path) -> Result<(), OutputProblem> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => return Err(OutputProblem::IsFolder),
        Ok(_) => return writable(path, AccessFlags::W_OK),
        Err(e) if absent(&e) => {}
        Err(e) => return Err(OutputProblem::Unusable(e)),
    }
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    match std::fs::metadata(parent) {
        Ok(meta) if meta.is_dir() => writable(parent, AccessFlags::W_OK | AccessFlags::X_OK)
            .map_err(|why| OutputProblem::Folder {
                folder: parent.to_path_buf(),
                why: Box::new(why),
            }),
        Ok(_) => Err(OutputProblem::ParentNotFolder(parent.to_path_buf())),
        Err(e) if absent(&e) => Err(OutputProblem::NoFolder(parent.to_path_buf())),
        Err(error) => Err(OutputProblem::FolderUnusable {
            folder: parent.to_path_buf(),
            error,
        }),
    }
}

/// A folder baton will create if needed and write into: the folder, or the nearest
/// existing folder above it, is a writable folder.
fn check_folder(dir: &Path) -> Result<(), OutputProblem> {
    let mut candidate: PathBuf = dir.to_path_buf();
    loop {
        match std::fs::metadata(&candidate) {
            Ok(meta) if meta.is_dir() => {
                let writable = writable(&candidate, AccessFlags::W_OK | AccessFlags::X_OK);
                return if candidate == dir {
                    writable
                } else {
                    writable.map_err(|why| OutputProblem::CannotCreate {
                        at: candidate.clone(),
                        why: Box::new(why),
                    })
                };
            }
            Ok(_) if candidate == dir => return Err(OutputProblem::IsFile),
            Ok(_) => return Err(OutputProblem::FileInTheWay(candidate)),
            Err(e) if absent(&e) => {}
            Err(e) => return Err(OutputProblem::Unusable(e)),
        }
        let next = match candidate.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            // A relative path whose first component is missing is created in the
            // working folder.
            _ => PathBuf::from("."),
        };
        if next == candidate {
            return Err(OutputProblem::NoFolderAbove);
        }
        candidate = next;
    }
}

/// Asks the kernel whether this process may write `path`, without opening it (opening a
/// FIFO would block, and creating a probe would leave a trace if the run is killed).
fn writable(path: &Path, mode: AccessFlags) -> Result<(), OutputProblem> {
    nix::unistd::access(path, mode).map_err(|errno| match errno {
        nix::errno::Errno::EACCES | nix::errno::Errno::EPERM => OutputProblem::NotWritable,
        nix::errno::Errno::EROFS => OutputProblem::ReadOnly,
        other => OutputProblem::Refused(other.desc()),
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
