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
///
/// In order, each group is judged alone: when its hosts exceed `max_hosts` or its files
/// exceed `max_files`, it becomes one batch per (host chunk × file chunk), host chunks
/// outermost, so one set of hosts finishes all its files before the next starts.
/// Otherwise it opens a batch that also takes the following groups for as long as the
/// running totals of hosts and of files stay within the limits (JOB sums files across
/// groups too). `None` or 0 means unlimited, as in JOB.
pub fn file_source_batches(
    groups: &[FileGroup],
    max_hosts: Option<usize>,
    max_files: Option<usize>,
) -> Vec<FileBatch> {
    let limit = |max: Option<usize>| max.filter(|n| *n > 0).unwrap_or(usize::MAX);
    let (max_hosts, max_files) = (limit(max_hosts), limit(max_files));
    let mut batches = Vec::new();
    let mut i = 0;
    while i < groups.len() {
        let group = &groups[i];
        if group.hosts.len() > max_hosts || group.files.len() > max_files {
            for hosts in chunks(&group.hosts, max_hosts) {
                for files in chunks(&group.files, max_files) {
                    batches.push(FileBatch {
                        pieces: vec![FileGroup {
                            hosts: hosts.to_vec(),
                            files: files.to_vec(),
                        }],
                    });
                }
            }
            i += 1;
            continue;
        }
        let (mut hosts, mut files) = (group.hosts.len(), group.files.len());
        let mut end = i + 1;
        while let Some(next) = groups.get(end) {
            hosts += next.hosts.len();
            files += next.files.len();
            if hosts > max_hosts || files > max_files {
                break;
            }
            end += 1;
        }
        batches.push(FileBatch {
            pieces: groups[i..end].to_vec(),
        });
        i = end;
    }
    batches
}

/// `items` in chunks of at most `size`; an empty list still makes one (empty) chunk,
/// as JOB's do-while loop does.
fn chunks<T>(items: &[T], size: usize) -> Vec<&[T]> {
    if items.is_empty() {
        return vec![items];
    }
    items.chunks(size).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(n: u8) -> HostAddr {
        HostAddr {
            cloud_id: 0,
            ip: format!("10.0.0.{n}"),
        }
    }

    fn file(n: u8) -> String {
        format!("/data/file{n}")
    }

    fn group(hosts: &[u8], files: &[u8]) -> FileGroup {
        FileGroup {
            hosts: hosts.iter().copied().map(host).collect(),
            files: files.iter().copied().map(file).collect(),
        }
    }

    fn batch(pieces: &[(&[u8], &[u8])]) -> FileBatch {
        FileBatch {
            pieces: pieces.iter().map(|(h, f)| group(h, f)).collect(),
        }
    }

    #[test]
    fn seed_003_example_1_host_by_file_serial() {
        let groups = [group(&[1, 2, 3], &[1, 2])];
        let batches = file_source_batches(&groups, Some(1), Some(1));
        assert_eq!(
            batches,
            vec![
                batch(&[(&[1], &[1])]),
                batch(&[(&[1], &[2])]),
                batch(&[(&[2], &[1])]),
                batch(&[(&[2], &[2])]),
                batch(&[(&[3], &[1])]),
                batch(&[(&[3], &[2])]),
            ]
        );
    }

    #[test]
    fn seed_003_example_2_one_group_split_into_batches() {
        let groups = [group(&[1, 2, 3], &[1, 2, 3]), group(&[4], &[4])];
        let batches = file_source_batches(&groups, Some(2), Some(2));
        assert_eq!(
            batches,
            vec![
                batch(&[(&[1, 2], &[1, 2])]),
                batch(&[(&[1, 2], &[3])]),
                batch(&[(&[3], &[1, 2])]),
                batch(&[(&[3], &[3])]),
                batch(&[(&[4], &[4])]),
            ]
        );
    }

    #[test]
    fn seed_003_example_3_groups_merge_into_one_batch() {
        let groups = [group(&[1, 2, 3], &[1, 2, 3]), group(&[4], &[4])];
        let batches = file_source_batches(&groups, Some(4), Some(4));
        assert_eq!(
            batches,
            vec![batch(&[(&[1, 2, 3], &[1, 2, 3]), (&[4], &[4])])]
        );
    }

    #[test]
    fn merging_stops_when_running_totals_exceed_a_limit() {
        let groups = [
            group(&[1], &[1]),
            group(&[2], &[2]),
            group(&[3], &[3]),
            group(&[4, 5, 6], &[4]),
        ];
        // Hosts 1+1 fit in 2, the third group would make 3.
        let batches = file_source_batches(&groups, Some(2), None);
        assert_eq!(
            batches,
            vec![
                batch(&[(&[1], &[1]), (&[2], &[2])]),
                batch(&[(&[3], &[3])]),
                batch(&[(&[4, 5], &[4])]),
                batch(&[(&[6], &[4])]),
            ]
        );
        // Files are summed across groups as well.
        let batches = file_source_batches(&groups[..3], None, Some(2));
        assert_eq!(
            batches,
            vec![batch(&[(&[1], &[1]), (&[2], &[2])]), batch(&[(&[3], &[3])]),]
        );
    }

    #[test]
    fn no_limits_make_one_batch_and_no_groups_none() {
        let groups = [group(&[1, 2], &[1, 2, 3]), group(&[3], &[4])];
        assert_eq!(file_source_batches(&groups, None, Some(0)).len(), 1);
        assert!(file_source_batches(&[], Some(1), Some(1)).is_empty());
    }

    fn hosts(n: u8) -> Vec<HostAddr> {
        (1..=n).map(host).collect()
    }

    fn sizes(expr: &str, n: u8) -> Vec<usize> {
        let expr = RollingExpr::parse(expr).unwrap();
        target_batches(&expr, &hosts(n))
            .unwrap()
            .iter()
            .map(Vec::len)
            .collect()
    }

    #[test]
    fn target_batches_keep_host_order() {
        let expr = RollingExpr::parse("2").unwrap();
        let batches = target_batches(&expr, &hosts(5)).unwrap();
        assert_eq!(
            batches,
            vec![
                hosts(5)[0..2].to_vec(),
                hosts(5)[2..4].to_vec(),
                hosts(5)[4..].to_vec()
            ]
        );
    }

    #[test]
    fn target_batches_follow_the_expression() {
        assert_eq!(sizes("30%", 10), vec![3, 3, 3, 1]);
        assert_eq!(sizes("1 *2", 10), vec![1, 2, 4, 3]);
        assert_eq!(sizes("1 +2", 10), vec![1, 3, 5, 1]);
        assert_eq!(sizes("1 2 100%", 10), vec![1, 2, 7]);
        assert_eq!(sizes("50", 3), vec![3]);
        assert!(sizes("1", 0).is_empty());
    }

    #[test]
    fn target_batches_refuse_more_than_500() {
        let expr = RollingExpr::parse("1").unwrap();
        let many: Vec<HostAddr> = (0..501)
            .map(|i| HostAddr {
                cloud_id: 0,
                ip: format!("10.0.{}.{}", i / 256, i % 256),
            })
            .collect();
        assert!(matches!(
            target_batches(&expr, &many),
            Err(RollingError::TooManyBatches { .. })
        ));
    }
}
