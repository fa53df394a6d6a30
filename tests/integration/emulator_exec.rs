//! Integration tests: emulator_exec. Real scripts in real host sandboxes (mount and PID
//! namespaces through the built `baton` helper), and real file pushes between them.

use std::path::Path;
use std::time::Duration;

use baton::emulator::exec::{HostResult, ScriptRun, run_script};
use baton::emulator::sandbox::{HostSandboxes, Isolation};
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
        baton::emulator::sandbox::SandboxError::NoIsolation(_)
    ));
}
