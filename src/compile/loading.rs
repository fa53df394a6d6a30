//! Loading a plan to run against JOB: the plan's loader with script files capped at
//! what JOB stores ([`load_options`]), so an oversized script file is refused before
//! it is read whole.

use std::path::Path;

use crate::job_api::rules;
use crate::plan::load::{self, LoadOptions, LoadedPlan};
use crate::plan::span::PlanErrors;

/// JOB stores script content in a MEDIUMTEXT column (`rules::MAX_SCRIPT_CONTENT_BYTES`);
/// baton reads script files up to that size.
pub const MAX_SCRIPT_FILE_BYTES: u64 = rules::MAX_SCRIPT_CONTENT_BYTES as u64;

/// How script files are read for a plan that runs on JOB.
pub fn load_options() -> LoadOptions {
    LoadOptions {
        max_script_file_bytes: MAX_SCRIPT_FILE_BYTES,
    }
}

/// Reads and parses the plan at `path`, script files up to JOB's script size.
pub fn load(path: &Path) -> Result<LoadedPlan, PlanErrors> {
    load::load_with(path, &load_options())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_file_larger_than_job_stores_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let big = vec![b'x'; MAX_SCRIPT_FILE_BYTES as usize + 1];
        std::fs::write(dir.path().join("big.sh"), big).unwrap();
        let plan = dir.path().join("plan.yaml");
        std::fs::write(
            &plan,
            "version: 1\nname: p\nsteps:\n  - id: a\n    script: { file: big.sh }\n",
        )
        .unwrap();
        let loaded = load(&plan).unwrap();
        assert!(loaded.script_files.is_empty());
        let message = &loaded.file_issues[0].message;
        assert!(message.contains("larger than 15 MiB"), "{message}");
    }
}
