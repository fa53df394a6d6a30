//! A finished job plan's exported global variables (`job.exports`): read with
//! `get_job_instance_global_var_value`, each declared name's final value, secrets (a
//! declared `secret: true`, or JOB's password type) taught to the masker before any
//! event can carry them.

use std::collections::BTreeMap;

use super::{JobStepRunner, StepSource};
use crate::compile::JobExport;
use crate::job_api::client::JobApi;
use crate::job_api::decode::PASSWORD_VAR;
use crate::job_api::types::JobInstanceId;

impl<A: JobApi, S: StepSource> JobStepRunner<A, S> {
    /// The declared variables' values, or why the step cannot hand them on.
    pub(super) async fn read_job_vars(
        &self,
        job: JobInstanceId,
        exports: &[JobExport],
    ) -> Result<BTreeMap<String, String>, String> {
        let values = self.setup.api.global_vars(job).await.map_err(|e| {
            format!("job {job} succeeded, but its global variables cannot be read: {e}")
        })?;
        let mut out = BTreeMap::new();
        let mut missing = Vec::new();
        for export in exports {
            match values.iter().find(|v| v.name == export.name) {
                Some(found) => {
                    let value = found.value.clone().unwrap_or_default();
                    if (export.secret || found.kind == PASSWORD_VAR) && !value.is_empty() {
                        self.setup.masker.learn([value.clone()]);
                    }
                    out.insert(export.name.clone(), value);
                }
                None => missing.push(format!("`{}`", export.name)),
            }
        }
        if !missing.is_empty() {
            return Err(format!(
                "job {job} succeeded, but JOB returned no value for the exported variable(s) {}",
                missing.join(", ")
            ));
        }
        Ok(out)
    }
}
