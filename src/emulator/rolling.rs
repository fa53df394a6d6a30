//! Rolling batches: target hosts split by a rolling expression, and source-file
//! batches by JOB's file-source rules.

use crate::job_api::rules::{RollingError, RollingExpr};
use crate::job_api::types::HostAddr;

/// Splits `hosts` (in order) into batches by `expr`.
pub fn target_batches(
    expr: &RollingExpr,
    hosts: &[HostAddr],
) -> Result<Vec<Vec<HostAddr>>, RollingError> {
    let sizes = expr.batch_sizes(hosts.len())?;
    let mut batches = Vec::with_capacity(sizes.len());
    let mut rest = hosts;
    for size in sizes {
        let (batch, tail) = rest.split_at(size);
        batches.push(batch.to_vec());
        rest = tail;
    }
    Ok(batches)
}

/// A source-file group: files on a set of source hosts.
#[derive(Debug, Clone, PartialEq)]
pub struct FileGroup {
    /// Source hosts.
    pub hosts: Vec<HostAddr>,
    /// Files on each of them.
    pub files: Vec<String>,
}

/// One source-file rolling batch: pieces transferred in parallel.
#[derive(Debug, Clone, PartialEq)]
pub struct FileBatch {
    /// Each piece: some hosts × some files of one group.
    pub pieces: Vec<FileGroup>,
}

/// JOB's source-file batching (seed 003): groups within limits merge into one batch;
/// a group over a limit is split host-chunk by host-chunk, file-chunk by file-chunk.
pub fn file_source_batches(
    _groups: &[FileGroup],
    _max_hosts: Option<usize>,
    _max_files: Option<usize>,
) -> Vec<FileBatch> {
    unimplemented!("source-file rolling")
}
