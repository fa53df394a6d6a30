//! What Linux's `/proc` says about flocks and processes: which pid holds a flock on an
//! inode (`/proc/locks`) and when a pid's process started (`/proc/<pid>/stat`), so a
//! plan lock's holder can be named from the kernel rather than from a file's content.
//!
//! Everything here answers `None` (or nothing) where `/proc` is absent or unreadable;
//! callers say so instead of guessing.

use std::path::Path;

/// One flock in the kernel's lock table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlockEntry {
    /// The process that took it.
    pub pid: u32,
    /// The device of the locked inode's filesystem, as the kernel numbers it.
    pub major: u64,
    /// Same, minor number.
    pub minor: u64,
    /// The locked inode.
    pub inode: u64,
}

/// The flocks currently held (not waited for) in `/proc/locks`; `None` when it cannot
/// be read.
pub fn held_flocks() -> Option<Vec<FlockEntry>> {
    std::fs::read_to_string("/proc/locks")
        .ok()
        .map(|text| parse_locks(&text))
}

/// The held flocks in a `/proc/locks` text. Lines are
/// `1: FLOCK  ADVISORY  WRITE 4242 fe:00:5447773 0 EOF`, waiters carry `->` after the
/// id, and the device is `major:minor` in hex (the kernel prints `%02x:%02x:%lu`).
/// Anything else (POSIX and OFD locks, leases, waiters, malformed lines) is skipped.
pub fn parse_locks(text: &str) -> Vec<FlockEntry> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<FlockEntry> {
    let mut words = line.split_whitespace();
    words.next().filter(|id| id.ends_with(':'))?;
    if words.next()? != "FLOCK" {
        // Also rejects "->": a process waiting for the lock does not hold it.
        return None;
    }
    let _advisory = words.next()?;
    let mode = words.next()?;
    if mode != "WRITE" && mode != "READ" {
        return None;
    }
    let pid: u32 = words.next()?.parse().ok().filter(|p| *p > 0)?;
    let mut device = words.next()?.split(':');
    let major = u64::from_str_radix(device.next()?, 16).ok()?;
    let minor = u64::from_str_radix(device.next()?, 16).ok()?;
    let inode = device.next()?.parse().ok()?;
    if device.next().is_some() {
        return None;
    }
    Some(FlockEntry {
        pid,
        major,
        minor,
        inode,
    })
}

/// A live process as `/proc/<pid>/stat` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessStat {
    /// Field 22: when it started, in clock ticks since boot. Together with the pid it
    /// names one process for the life of the machine, where a pid alone is reused.
    pub start: u64,
    /// Field 3 is `Z` or `X`: it has exited and only waits to be reaped.
    pub exited: bool,
}

/// Whether this system has a `/proc` to ask.
pub fn available() -> bool {
    Path::new("/proc/self/stat").exists()
}

/// `/proc/<pid>/stat` of `pid`, if there is such a process.
pub fn process(pid: u32) -> Option<ProcessStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// The state and start time in a `/proc/<pid>/stat` line. The command name (field 2)
/// is in parentheses and may itself hold spaces and parentheses, so fields are counted
/// from the last `)`.
pub fn parse_stat(text: &str) -> Option<ProcessStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    // Fields 4..=21 lie between the state (3) and the start time (22).
    let start = fields.nth(22 - 4)?.parse().ok()?;
    Some(ProcessStat {
        start,
        exited: state == "Z" || state == "X",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_flocks_are_read_from_the_lock_table_and_the_rest_skipped() {
        let table = "\
1: FLOCK  ADVISORY  WRITE 12390 fe:00:5447773 0 EOF
2: POSIX  ADVISORY  WRITE 11375 fe:00:5357647 0 EOF
3: FLOCK  ADVISORY  READ 11376 103:1a:10133507 0 EOF
4: -> FLOCK  ADVISORY  WRITE 555 fe:00:5447773 0 EOF
5: OFDLCK ADVISORY  WRITE -1 00:2f:77 0 EOF
6: LEASE  ACTIVE    READ 700 00:2f:78 0 EOF
7: FLOCK  ADVISORY  WRITE 0 fe:00:1 0 EOF
8: FLOCK  ADVISORY  WRITE 800 <none>:0 0 EOF
9: FLOCK  ADVISORY  WRITE 801 zz:00:5 0 EOF
garbage
10: FLOCK
";
        assert_eq!(
            parse_locks(table),
            vec![
                FlockEntry {
                    pid: 12390,
                    major: 0xfe,
                    minor: 0,
                    inode: 5_447_773
                },
                FlockEntry {
                    pid: 11376,
                    major: 0x103,
                    minor: 0x1a,
                    inode: 10_133_507
                },
            ]
        );
    }

    #[test]
    fn a_process_start_time_is_read_past_a_command_name_with_spaces_and_parens() {
        let line = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    1 2 0 0 20 0 1 0 987654 1000 200 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(ProcessStat {
                start: 987_654,
                exited: false
            })
        );
        let zombie = "77 (baton) Z 1 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0";
        assert_eq!(parse_stat(zombie).map(|s| s.exited), Some(true));
        assert_eq!(parse_stat("77 (baton) S 1 2"), None);
    }

    #[test]
    fn this_process_is_found_and_its_lock_is_in_the_table() {
        if !available() {
            return;
        }
        let me = process(std::process::id()).expect("this process");
        assert!(!me.exited);
        assert_eq!(process(std::process::id()), Some(me), "stable start time");

        let dir = tempfile::tempdir().expect("tempdir");
        let file = std::fs::File::create(dir.path().join("x.lock")).expect("create");
        file.lock().expect("flock");
        let meta = file.metadata().expect("metadata");
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        let flocks = held_flocks().expect("readable lock table");
        assert!(
            flocks
                .iter()
                .any(|f| f.inode == inode && f.pid == std::process::id()),
            "{flocks:?}"
        );
    }
}
