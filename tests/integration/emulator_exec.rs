//! Integration tests: emulator_exec. Real scripts in real host sandboxes (mount and PID
//! namespaces through the built `baton` helper), and real file pushes between them.

use std::path::Path;
use std::time::Duration;

use baton::emulator::exec::sandbox::{HostSandboxes, Isolation};
use baton::emulator::exec::script::{ScriptRun, run_script};
use baton::job_api::types::{HostAddr, host_status};
use tokio_util::sync::CancellationToken;

fn namespaced(dir: &Path) -> HostSandboxes {
    HostSandboxes::new(
        dir,
        Isolation::Namespace {
            helper: env!("CARGO_BIN_EXE_baton").into(),
        },
    )
    .expect("mount namespaces are available on the test machine")
}

fn host(text: &str) -> HostAddr {
    HostAddr::parse(text).unwrap()
}

fn script(language: u8, content: &str) -> ScriptRun {
    ScriptRun {
        language,
        content: content.as_bytes().to_vec(),
        params: String::new(),
        timeout: Duration::from_secs(60),
        env: Vec::new(),
        account: "root".into(),
        capture: Vec::new(),
    }
}

async fn run(sandboxes: &HostSandboxes, run: &ScriptRun) -> HostResult {
    run_script(
        sandboxes,
        &host("0:10.0.0.1"),
        run,
        CancellationToken::new(),
    )
    .await
}

/// The log's lines without their `[yyyy-MM-dd HH:mm:ss] ` prefixes, which every line
/// must have.
fn lines(log: &str) -> Vec<String> {
    let prefix = regex::Regex::new(r"^\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\] ").unwrap();
    log.lines()
        .map(|line| {
            assert!(prefix.is_match(line), "no JOB timestamp on {line:?}");
            prefix.replace(line, "").into_owned()
        })
        .collect()
}

#[tokio::test]
async fn shell_script_runs_with_params_env_and_both_streams() {
    let dir = tempfile::tempdir().unwrap();
    let sb = namespaced(dir.path());
    let mut job = script(
        1,
        "echo \"args=$# first=$1 second=$2\"\necho to-stderr >&2\necho \"home=$HOME path=$PATH lang=$LANG v=$JOB_VAR\"\necho \"cwd=$(pwd)\"\n",
    );
    job.params = "one 'two words'".into();
    job.env = vec![("JOB_VAR".into(), "42".into())];
    let result = run(&sb, &job).await;
    assert_eq!(result.status, host_status::SUCCESS, "{}", result.log);
    assert_eq!(result.exit_code, Some(0));
    assert_eq!(result.tag, "");
    assert!(result.end_ms >= result.start_ms);
    let lines = lines(&result.log);
    assert!(lines.contains(&"args=2 first=one second=two words".to_string()));
    assert!(lines.contains(&"to-stderr".to_string()));
    assert!(lines.contains(
        &"home=/root path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin lang=C.UTF-8 v=42"
            .to_string()
    ));
    assert!(lines.contains(&"cwd=/".to_string()));
}

#[tokio::test]
async fn scripts_write_only_inside_their_host_folder() {
    let dir = tempfile::tempdir().unwrap();
    let sb = namespaced(dir.path());
    let result = run(
        &sb,
        &script(
            1,
            "mkdir -p /opt/app && echo hi > /opt/app/x && touch /etc/should-fail; echo $?",
        ),
    )
    .await;
    assert_eq!(result.status, host_status::SUCCESS, "{}", result.log);
    let lines = lines(&result.log);
    assert_eq!(lines.last().map(String::as_str), Some("1"), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.contains("Read-only file system")),
        "{lines:?}"
    );
    let host_dir = sb.host_dir(&host("0:10.0.0.1")).unwrap();
    assert_eq!(
        std::fs::read_to_string(host_dir.join("opt/app/x")).unwrap(),
        "hi\n"
    );
    assert!(!Path::new("/opt/app/x").exists());
    assert!(!Path::new("/etc/should-fail").exists());
    // The bind-mount point stays behind as an empty folder.
    assert!(!host_dir.join("etc/should-fail").exists());
    // The script file itself is cleaned up.
    assert_eq!(
        std::fs::read_dir(host_dir.join("tmp/bk_job"))
            .unwrap()
            .count(),
        0
    );
}

#[tokio::test]
async fn scripts_see_only_their_own_processes() {
    let dir = tempfile::tempdir().unwrap();
    let sb = namespaced(dir.path());
    let result = run(
        &sb,
        &script(1, "echo pid=$$; ls /proc | grep -c '^[0-9]*$'"),
    )
    .await;
    assert_eq!(result.status, host_status::SUCCESS, "{}", result.log);
    let lines = lines(&result.log);
    assert_eq!(lines[0], "pid=1");
    let count: u32 = lines[1].parse().unwrap();
    assert!(count <= 4, "the sandbox sees {count} processes");
}

#[tokio::test]
async fn perl_and_python_run_under_their_interpreters() {
    let dir = tempfile::tempdir().unwrap();
    let sb = namespaced(dir.path());
    let mut perl = script(3, "print \"perl says $ARGV[0]\\n\"; exit 0;");
    perl.params = "hello".into();
    let result = run(&sb, &perl).await;
    assert_eq!(result.status, host_status::SUCCESS, "{}", result.log);
    assert_eq!(lines(&result.log), vec!["perl says hello"]);

    let mut python = script(
        4,
        "import sys, os\nprint('python says', sys.argv[1], os.getcwd())\n",
    );
    python.params = "hi".into();
    let result = run(&sb, &python).await;
    assert_eq!(result.status, host_status::SUCCESS, "{}", result.log);
    assert_eq!(lines(&result.log), vec!["python says hi /"]);
}

#[tokio::test]
async fn non_zero_exit_is_104_with_the_code() {
    let dir = tempfile::tempdir().unwrap();
    let sb = namespaced(dir.path());
    let result = run(&sb, &script(1, "echo failing\nexit 3")).await;
    assert_eq!(result.status, host_status::SCRIPT_NON_ZERO_EXIT);
    assert_eq!(result.exit_code, Some(3));
    assert_eq!(lines(&result.log), vec!["failing"]);
}

#[tokio::test]
async fn timeout_kills_the_group_with_102() {
    let dir = tempfile::tempdir().unwrap();
    let sb = namespaced(dir.path());
    let mut job = script(1, "echo started\nsleep 30 &\nsleep 30\necho never");
    job.timeout = Duration::from_secs(1);
    let result = run(&sb, &job).await;
    assert_eq!(result.status, host_status::SCRIPT_TIMEOUT, "{}", result.log);
    assert_eq!(result.exit_code, None);
    let lines = lines(&result.log);
    assert_eq!(lines[0], "started");
    assert!(lines.last().unwrap().contains("timed out after 1 s"));
    assert!(!lines.iter().any(|l| l == "never"));
}

#[tokio::test]
async fn cancel_terminates_with_403() {
    let dir = tempfile::tempdir().unwrap();
    let sb = namespaced(dir.path());
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        trigger.cancel();
    });
    let result = run_script(&sb, &host("0:10.0.0.1"), &script(1, "sleep 30"), cancel).await;
    assert_eq!(
        result.status,
        host_status::TERMINATE_SUCCESS,
        "{}",
        result.log
    );
    assert!(result.log.contains("terminated"));
}

#[tokio::test]
async fn windows_and_sql_scripts_fail_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let sb = namespaced(dir.path());
    for (language, reason) in [(2, "Windows"), (5, "Windows"), (6, "SQL is not emulated")] {
        let result = run(&sb, &script(language, "echo hi")).await;
        assert_eq!(result.status, host_status::SCRIPT_FAILED);
        assert_eq!(result.exit_code, None);
        assert!(result.log.contains(reason), "{}", result.log);
    }
}

#[tokio::test]
async fn unbalanced_params_fail_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let sb = namespaced(dir.path());
    let mut job = script(1, "echo $1");
    job.params = "'unterminated".into();
    let result = run(&sb, &job).await;
    assert_eq!(result.status, host_status::SCRIPT_FAILED);
    assert!(result.log.contains("parameters"), "{}", result.log);
}

#[tokio::test]
async fn hosts_run_in_parallel_in_separate_folders() {
    let dir = tempfile::tempdir().unwrap();
    let sb = namespaced(dir.path());
    let job = script(1, "echo $0 > /tmp/me; sleep 1; cat /tmp/me | wc -l");
    let hosts: Vec<HostAddr> = (1..=4).map(|i| host(&format!("0:10.0.1.{i}"))).collect();
    let started = std::time::Instant::now();
    let results = futures_join(&sb, &hosts, &job).await;
    for result in &results {
        assert_eq!(result.status, host_status::SUCCESS, "{}", result.log);
        assert_eq!(lines(&result.log), vec!["1"]);
    }
    for h in &hosts {
        assert!(sb.host_dir(h).unwrap().join("tmp/me").is_file());
    }
    // Sequential runs would take at least 4 s.
    assert!(started.elapsed() < Duration::from_secs(4));
}

async fn futures_join(sb: &HostSandboxes, hosts: &[HostAddr], job: &ScriptRun) -> Vec<HostResult> {
    let mut set = tokio::task::JoinSet::new();
    for (i, h) in hosts.iter().enumerate() {
        let (sb, h, job) = (sb.clone(), h.clone(), job.clone());
        set.spawn(async move { (i, run_script(&sb, &h, &job, CancellationToken::new()).await) });
    }
    let mut out = Vec::new();
    while let Some(done) = set.join_next().await {
        out.push(done.unwrap());
    }
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

#[tokio::test]
async fn unisolated_runs_in_the_host_folder() {
    let dir = tempfile::tempdir().unwrap();
    let sb = HostSandboxes::new(dir.path(), Isolation::Unisolated).unwrap();
    let result = run(&sb, &script(1, "pwd; echo x > relative.txt; echo $HOME")).await;
    assert_eq!(result.status, host_status::SUCCESS, "{}", result.log);
    let host_dir = sb.host_dir(&host("0:10.0.0.1")).unwrap();
    let lines = lines(&result.log);
    assert_eq!(lines[0], host_dir.display().to_string());
    assert_eq!(lines[1], host_dir.join("root").display().to_string());
    assert!(host_dir.join("relative.txt").is_file());
}

#[test]
fn a_broken_helper_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let err = HostSandboxes::new(
        dir.path(),
        Isolation::Namespace {
            helper: "/bin/false".into(),
        },
    )
    .unwrap_err();
    assert!(matches!(
        err,
        baton::emulator::exec::sandbox::SandboxError::NoIsolation(_)
    ));
}

// ---- file pushes ----------------------------------------------------------------

use baton::emulator::exec::files::{SourceFiles, TransferSpec, transfer_to_host};
use baton::emulator::model::host_result::{FileLogEntry, HostResult};

fn write(sb: &HostSandboxes, h: &HostAddr, path: &str, content: &str) {
    let real = sb.resolve(h, path).unwrap();
    std::fs::create_dir_all(real.parent().unwrap()).unwrap();
    std::fs::write(real, content).unwrap();
}

fn read(sb: &HostSandboxes, h: &HostAddr, path: &str) -> Option<String> {
    std::fs::read_to_string(sb.resolve(h, path).unwrap()).ok()
}

fn push(sources: &[(&str, &[&str])], target_path: &str) -> TransferSpec {
    TransferSpec {
        sources: sources
            .iter()
            .map(|(h, files)| SourceFiles {
                host: host(h),
                files: files.iter().map(|f| f.to_string()).collect(),
            })
            .collect(),
        target_path: target_path.into(),
        target_name: None,
        strict: false,
        now_ms: chrono::Utc::now().timestamp_millis(),
    }
}

fn file_sandboxes() -> (tempfile::TempDir, HostSandboxes) {
    let dir = tempfile::tempdir().unwrap();
    let sb = HostSandboxes::new(dir.path(), Isolation::Unisolated).unwrap();
    (dir, sb)
}

fn downloads(entries: &[FileLogEntry]) -> Vec<&FileLogEntry> {
    entries.iter().filter(|e| e.mode == 1).collect()
}

#[tokio::test]
async fn regex_push_with_filesrcip_copies_bytes_and_logs_both_sides() {
    let (_dir, sb) = file_sandboxes();
    let (a, b, t) = (host("0:10.0.0.1"), host("0:10.0.0.2"), host("0:10.0.0.9"));
    for h in [&a, &b] {
        write(&sb, h, "/tmp/app.txt", &format!("from {h}"));
        write(&sb, h, "/tmp/web.txt", "web");
        write(&sb, h, "/tmp/App.TXT", "no");
    }
    let spec = push(
        &[
            ("0:10.0.0.1", &["/tmp/REGEX:[a-z]*.txt"]),
            ("0:10.0.0.2", &["/tmp/REGEX:[a-z]*.txt"]),
        ],
        "/data/logs/[FILESRCIP]/",
    );
    let (result, entries) = transfer_to_host(&sb, &t, &spec).await;
    assert_eq!(result.status, host_status::SUCCESS, "{}", result.log);
    assert_eq!(
        read(&sb, &t, "/data/logs/0_10.0.0.1/app.txt").as_deref(),
        Some("from 0:10.0.0.1")
    );
    assert_eq!(
        read(&sb, &t, "/data/logs/0_10.0.0.2/app.txt").as_deref(),
        Some("from 0:10.0.0.2")
    );
    assert_eq!(
        read(&sb, &t, "/data/logs/0_10.0.0.2/web.txt").as_deref(),
        Some("web")
    );
    assert_eq!(read(&sb, &t, "/data/logs/0_10.0.0.1/App.TXT"), None);

    assert_eq!(entries.len(), 8);
    let uploads: Vec<_> = entries.iter().filter(|e| e.mode == 0).collect();
    assert_eq!(uploads.len(), 4);
    assert!(
        uploads
            .iter()
            .all(|e| e.status == 4 && e.dest_host.is_none())
    );
    let down = downloads(&entries);
    assert_eq!(down[0].src_host, a);
    assert_eq!(down[0].src_path, "/tmp/app.txt");
    assert_eq!(down[0].dest_host.as_ref(), Some(&t));
    assert_eq!(
        down[0].dest_path.as_deref(),
        Some("/data/logs/0_10.0.0.1/app.txt")
    );
    assert_eq!(down[0].size, "15.0 Bytes");
    assert_eq!(down[0].speed, "1 KB/s");
    assert_eq!(down[0].process, "100%");
    let line = regex::Regex::new(
        r"^\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\] FileName: /data/logs/0_10\.0\.0\.1/app\.txt FileSize: 15\.0 Bytes State: dest agent success download file Speed: 1 KB/s Progress: 100% StatusDesc: dest agent success download file Detail: success$",
    )
    .unwrap();
    assert!(
        line.is_match(&down[0].log_content),
        "{}",
        down[0].log_content
    );
    assert_eq!(result.log.lines().count(), 4);
    assert!(result.log.lines().all(|l| l.contains("success download")));
}

#[tokio::test]
async fn glob_push_date_folder_rename_and_folders() {
    let (_dir, sb) = file_sandboxes();
    let (s, t) = (host("0:10.0.0.1"), host("0:10.0.0.9"));
    write(&sb, &s, "/var/log/app-1.log", "1");
    write(&sb, &s, "/var/log/app-2.log", "22");
    write(&sb, &s, "/var/log/other.log", "x");
    write(&sb, &s, "/srv/pkg/bin/run.sh", "run");
    write(&sb, &s, "/srv/pkg/conf/a.conf", "conf");

    let mut spec = push(
        &[("0:10.0.0.1", &["/var/log/app-*.log"])],
        "/bak/[DATE:yyyyMMdd]",
    );
    let (result, _) = transfer_to_host(&sb, &t, &spec).await;
    assert_eq!(result.status, host_status::SUCCESS, "{}", result.log);
    let day = {
        use chrono::TimeZone;
        chrono::Local
            .timestamp_millis_opt(spec.now_ms)
            .unwrap()
            .format("%Y%m%d")
            .to_string()
    };
    assert_eq!(
        read(&sb, &t, &format!("/bak/{day}/app-1.log")).as_deref(),
        Some("1")
    );
    assert_eq!(
        read(&sb, &t, &format!("/bak/{day}/app-2.log")).as_deref(),
        Some("22")
    );
    assert_eq!(read(&sb, &t, &format!("/bak/{day}/other.log")), None);

    spec = push(&[("0:10.0.0.1", &["/var/log/other.log"])], "/etc/app");
    spec.target_name = Some("renamed.log".into());
    let (result, _) = transfer_to_host(&sb, &t, &spec).await;
    assert_eq!(result.status, host_status::SUCCESS, "{}", result.log);
    assert_eq!(read(&sb, &t, "/etc/app/renamed.log").as_deref(), Some("x"));

    spec = push(&[("0:10.0.0.1", &["/srv/pkg/"])], "/opt/");
    let (result, entries) = transfer_to_host(&sb, &t, &spec).await;
    assert_eq!(result.status, host_status::SUCCESS, "{}", result.log);
    assert_eq!(read(&sb, &t, "/opt/pkg/bin/run.sh").as_deref(), Some("run"));
    assert_eq!(
        read(&sb, &t, "/opt/pkg/conf/a.conf").as_deref(),
        Some("conf")
    );
    assert_eq!(downloads(&entries).len(), 2);
}

#[tokio::test]
async fn strict_mode_needs_the_folder_and_force_creates_it() {
    let (_dir, sb) = file_sandboxes();
    let (s, t) = (host("0:10.0.0.1"), host("0:10.0.0.9"));
    write(&sb, &s, "/tmp/a.txt", "a");
    let mut spec = push(&[("0:10.0.0.1", &["/tmp/a.txt"])], "/missing/dir/");
    spec.strict = true;
    let (result, entries) = transfer_to_host(&sb, &t, &spec).await;
    assert_eq!(result.status, host_status::FILE_TRANSFER_FAILED);
    assert!(
        result.log.contains("`/missing/dir/` does not exist"),
        "{}",
        result.log
    );
    assert!(downloads(&entries).iter().all(|e| e.status == 5));
    assert_eq!(read(&sb, &t, "/missing/dir/a.txt"), None);

    spec.strict = false;
    let (result, _) = transfer_to_host(&sb, &t, &spec).await;
    assert_eq!(result.status, host_status::SUCCESS, "{}", result.log);
    assert_eq!(read(&sb, &t, "/missing/dir/a.txt").as_deref(), Some("a"));

    // Strict succeeds once the folder is there.
    spec.strict = true;
    let (result, _) = transfer_to_host(&sb, &t, &spec).await;
    assert_eq!(result.status, host_status::SUCCESS, "{}", result.log);
}

#[tokio::test]
async fn missing_sources_fail_with_203_naming_file_and_host() {
    let (_dir, sb) = file_sandboxes();
    let t = host("0:10.0.0.9");
    write(&sb, &host("0:10.0.0.1"), "/tmp/a.txt", "a");
    for pattern in ["/tmp/none.txt", "/tmp/*.gz", "/tmp/REGEX:z.*"] {
        let spec = push(&[("0:10.0.0.1", &[pattern, "/tmp/a.txt"])], "/in/");
        let (result, entries) = transfer_to_host(&sb, &t, &spec).await;
        assert_eq!(
            result.status,
            host_status::SOURCE_FILE_NOT_EXIST,
            "{pattern}"
        );
        assert!(
            result.log.contains(&format!(
                "source file `{pattern}` does not exist on host 0:10.0.0.1"
            )),
            "{}",
            result.log
        );
        let failed_upload = entries
            .iter()
            .find(|e| e.mode == 0 && e.status == 5)
            .expect("an upload entry for the missing file");
        assert_eq!(failed_upload.src_path, pattern);
        // The files that do exist are still delivered.
        assert_eq!(read(&sb, &t, "/in/a.txt").as_deref(), Some("a"));
    }
}

#[tokio::test]
async fn pushes_cannot_read_or_write_outside_the_sandboxes() {
    let (dir, sb) = file_sandboxes();
    let (s, t) = (host("0:10.0.0.1"), host("0:10.0.0.9"));
    write(&sb, &s, "/tmp/ok.txt", "ok");
    let src_dir = sb.host_dir(&s).unwrap();
    let tgt_dir = sb.host_dir(&t).unwrap();

    // `..` in a source path.
    let spec = push(&[("0:10.0.0.1", &["/tmp/../../../../etc/passwd"])], "/in/");
    let (result, _) = transfer_to_host(&sb, &t, &spec).await;
    assert_eq!(result.status, host_status::FILE_TRANSFER_FAILED);
    assert!(result.log.contains("escapes the sandbox"), "{}", result.log);
    assert_eq!(read(&sb, &t, "/in/passwd"), None);

    // A source symlink to /etc/passwd means the source host's own /etc/passwd, which
    // does not exist: this machine's is never read.
    std::os::unix::fs::symlink("/etc/passwd", src_dir.join("tmp/pw")).unwrap();
    let spec = push(&[("0:10.0.0.1", &["/tmp/pw"])], "/in/");
    let (result, _) = transfer_to_host(&sb, &t, &spec).await;
    assert_eq!(
        result.status,
        host_status::SOURCE_FILE_NOT_EXIST,
        "{}",
        result.log
    );
    assert_eq!(read(&sb, &t, "/in/pw"), None);
    // Matched by a pattern, too.
    let spec = push(&[("0:10.0.0.1", &["/tmp/REGEX:p."])], "/in/");
    let (result, _) = transfer_to_host(&sb, &t, &spec).await;
    assert_ne!(result.status, host_status::SUCCESS);
    assert_eq!(read(&sb, &t, "/in/pw"), None);

    // A relative source symlink climbing out of the host is refused.
    std::os::unix::fs::symlink("../../../../../../../etc/passwd", src_dir.join("tmp/up")).unwrap();
    let spec = push(&[("0:10.0.0.1", &["/tmp/up"])], "/in/");
    let (result, _) = transfer_to_host(&sb, &t, &spec).await;
    assert_eq!(result.status, host_status::FILE_TRANSFER_FAILED);
    assert!(result.log.contains("escapes the sandbox"), "{}", result.log);
    assert_eq!(read(&sb, &t, "/in/up"), None);

    // A target folder through a symlink pointing at a real folder of this machine
    // lands inside the target host, never in that folder.
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tgt_dir.join("data")).unwrap();
    std::os::unix::fs::symlink(outside.path(), tgt_dir.join("data/out")).unwrap();
    let spec = push(&[("0:10.0.0.1", &["/tmp/ok.txt"])], "/data/out/");
    let (result, _) = transfer_to_host(&sb, &t, &spec).await;
    assert_eq!(result.status, host_status::SUCCESS, "{}", result.log);
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    let inside = tgt_dir
        .join(outside.path().strip_prefix("/").unwrap())
        .join("ok.txt");
    assert_eq!(std::fs::read_to_string(inside).unwrap(), "ok");

    // A relative target symlink climbing out is refused, and nothing is written.
    let escape_to = dir.path().join("escaped");
    std::fs::create_dir_all(&escape_to).unwrap();
    std::os::unix::fs::symlink("../../../../escaped", tgt_dir.join("data/up")).unwrap();
    let spec = push(&[("0:10.0.0.1", &["/tmp/ok.txt"])], "/data/up/");
    let (result, _) = transfer_to_host(&sb, &t, &spec).await;
    assert_eq!(
        result.status,
        host_status::FILE_TRANSFER_FAILED,
        "{}",
        result.log
    );
    assert!(result.log.contains("escapes the sandbox"), "{}", result.log);
    assert_eq!(std::fs::read_dir(&escape_to).unwrap().count(), 0);
}

#[tokio::test]
async fn pushed_files_are_what_scripts_see() {
    let dir = tempfile::tempdir().unwrap();
    let sb = namespaced(dir.path());
    let (s, t) = (host("0:10.0.0.1"), host("0:10.0.0.2"));
    write(&sb, &s, "/data/release/app-1.2.tar", "payload");
    let spec = push(&[("0:10.0.0.1", &["/data/release/app-*.tar"])], "/opt/app/");
    let (result, _) = transfer_to_host(&sb, &t, &spec).await;
    assert_eq!(result.status, host_status::SUCCESS, "{}", result.log);
    let result = run_script(
        &sb,
        &t,
        &script(
            1,
            "cat /opt/app/app-1.2.tar; echo; ln -sfn /opt/app /opt/current",
        ),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(lines(&result.log), vec!["payload"]);
    // The absolute symlink the script made is followed as a path on that host.
    assert_eq!(
        read(&sb, &t, "/opt/current/app-1.2.tar").as_deref(),
        Some("payload")
    );
}

#[tokio::test]
async fn floods_of_output_are_capped_without_blocking_the_script() {
    let dir = tempfile::tempdir().unwrap();
    let sb = namespaced(dir.path());
    let result = run(
        &sb,
        &script(
            1,
            "head -c 8000000 /dev/zero | tr '\\0' x | fold -w 100\nhead -c 300000 /dev/zero | tr '\\0' y\necho done >&2",
        ),
    )
    .await;
    assert_eq!(result.status, host_status::SUCCESS);
    assert!(result.log.len() <= 5 * 1024 * 1024 + 200);
    assert!(
        result
            .log
            .ends_with("(log truncated: more than 5 MiB of output)\n")
    );
    // The probe run by HostSandboxes::new cleans up after itself.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("hosts")]);
}
