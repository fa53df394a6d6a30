//! The callback receiver as an attack surface: it listens on loopback unless told
//! otherwise, its URL carries a per-run unguessable token, it refuses wrong tokens,
//! oversized bodies and unexpected content types, it never trusts a payload's status,
//! and a flood of valid callbacks neither starves the run nor multiplies status reads.
//!
//! Every run here holds a host in the emulator so that a step stays running while the
//! test talks to the receiver; nothing waits on a clock.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::Arc;

use serde_json::{Value, json};

use crate::faults::{
    baton_run, collect, eventually, instance_of, read_report, report_step, submitted_callback_url,
    text,
};
use crate::support::{Emulator, baton};

const HELD: &str = "0:10.0.0.1";

fn plan() -> String {
    format!(
        r#"version: 1
name: surface
api: v3
scope: {{ type: biz, id: 2 }}
defaults: {{ account: root, timeout: 120 }}
hosts:
  web: {{ ips: ["{HELD}"] }}
steps:
  - id: work
    targets: web
    script: {{ language: shell, content: "echo working" }}
  - id: after
    needs: [work]
    targets: web
    script: {{ language: shell, content: "echo after" }}
"#
    )
}

fn held_world() -> String {
    format!(
        "credentials:\n  apps: [{{ code: baton, secret: {} }}]\n  users: [admin]\nfaults:\n  hosts:\n    - {{ host: \"{HELD}\", hold: true }}\n",
        crate::faults::APP_SECRET
    )
}

/// `work` instances in the emulator, oldest first.
fn work_instances(emu: &Emulator) -> Vec<Value> {
    let mut list: Vec<Value> = emu
        .instances()
        .into_iter()
        .filter(|i| i["name"].as_str().is_some_and(|n| n.contains(" work#1]")))
        .collect();
    list.sort_by_key(|i| i["job_instance_id"].as_u64());
    list
}

fn job_status(emu: &Emulator, job: u64) -> Value {
    emu.instances()
        .into_iter()
        .find(|i| i["job_instance_id"] == job)
        .map(|i| i["status"].clone())
        .unwrap_or(Value::Null)
}

/// A run against `emu` whose `work` step is held running; returns it with the
/// callback URL it submitted and the job id. `earlier` runs already hold theirs.
fn held_run(emu: &Emulator, dir: &Path, earlier: usize) -> (Child, String, u64) {
    std::fs::write(dir.join("plan.yaml"), plan()).expect("plan");
    let child = baton_run(dir, &emu.url(), &[]).spawn().expect("spawn");
    let work = eventually("work to run", || {
        work_instances(emu)
            .get(earlier)
            .filter(|i| i["status"] == 2)
            .cloned()
    });
    let job = work["job_instance_id"].as_u64().expect("job id");
    let name = work["name"].as_str().unwrap_or_default().to_owned();
    let url = emu
        .all_requests()
        .iter()
        .filter(|r| r["body"]["task_name"] == name.as_str())
        .find_map(|r| r["body"]["callback_url"].as_str().map(str::to_owned))
        .expect("the submitted callback URL");
    (child, url, job)
}

fn finish(emu: &Emulator, child: Child, dir: &Path) -> Value {
    emu.release_host(HELD);
    let output = collect(child).join().expect("baton ran");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let report = read_report(dir);
    for id in ["work", "after"] {
        assert_eq!(report_step(&report, id)["status"], "succeeded", "{report}");
        assert_eq!(report_step(&report, id)["attempts"], 1, "{report}");
    }
    report
}

fn finish_body(job: u64) -> Vec<u8> {
    json!({"job_instance_id": job, "status": 3, "step_instances": [{"step_instance_id": 1, "status": 3}]})
        .to_string()
        .into_bytes()
}

fn status_reads(emu: &Emulator) -> usize {
    emu.all_requests()
        .iter()
        .filter(|r| r["api"] == "get_job_instance_status")
        .count()
}

/// A forged "finished" callback (right token, status 3) for a job the emulator still
/// runs only triggers a status read: the step stays running until the emulator says
/// otherwise. A wrong token is refused and triggers nothing. Two runs get different
/// tokens, and one run's token is refused by the other.
#[test]
fn a_forged_finish_or_a_wrong_token_changes_nothing() {
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    let emu = Emulator::start(&held_world(), &a.path().join("sandbox"));
    let (child_a, url_a, job_a) = held_run(&emu, a.path(), 0);
    let (child_b, url_b, _) = held_run(&emu, b.path(), 1);

    let token = |url: &str| url.rsplit('/').next().unwrap_or_default().to_owned();
    assert_ne!(token(&url_a), token(&url_b), "tokens are per run");
    assert!(
        token(&url_a).len() >= 32 && token(&url_a).chars().all(|c| c.is_ascii_hexdigit()),
        "128 random bits: {url_a}"
    );

    // Wrong token: run B's token on run A's receiver, and a guessed one.
    let (base_a, _) = url_a.rsplit_once('/').expect("token in URL");
    let reads = status_reads(&emu);
    for wrong in [
        format!("{base_a}/{}", token(&url_b)),
        format!("{base_a}/{}", "0".repeat(32)),
    ] {
        let status = emu.send_raw(&wrong, "application/json", finish_body(job_a));
        assert!(matches!(status, 403 | 404), "wrong token answered {status}");
    }

    // The forged finish is taken as a hint: it causes a read, which says "running".
    let status = emu.send_raw(&url_a, "application/json", finish_body(job_a));
    assert_eq!(status, 200);
    eventually("a status read after the forged callback", || {
        (status_reads(&emu) > reads).then_some(())
    });
    // Once more, so that the read triggered by the first has certainly been answered
    // before we look.
    let reads = status_reads(&emu);
    emu.send_raw(&url_a, "application/json", finish_body(job_a));
    eventually("a second status read", || {
        (status_reads(&emu) > reads).then_some(())
    });
    assert_eq!(job_status(&emu, job_a), 2, "still running in JOB");
    assert!(
        instance_of(&emu, "after").is_none(),
        "the dependent step was not started by a forged callback"
    );
    let ids: Vec<u64> = work_instances(&emu)
        .iter()
        .filter_map(|i| i["job_instance_id"].as_u64())
        .collect();
    assert_eq!(ids.len(), 2, "one instance per run, nothing resubmitted");
    assert!(
        !a.path().join("report.json").exists(),
        "run A has not ended"
    );

    finish(&emu, child_a, a.path());
    finish(&emu, child_b, b.path());
}

/// Bodies over 64 KiB get 413; `text/plain` and `application/xml` get 415; JSON and
/// JOB's form-encoded retry are accepted.
#[test]
fn size_and_content_type_are_enforced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let emu = Emulator::start(&held_world(), &dir.path().join("sandbox"));
    let (child, url, job) = held_run(&emu, dir.path(), 0);

    let mut big = format!(r#"{{"job_instance_id": {job}, "status": 2, "pad": ""#).into_bytes();
    big.extend(std::iter::repeat_n(b'x', 64 * 1024));
    big.extend(br#""}"#);
    assert_eq!(emu.send_raw(&url, "application/json", big), 413);
    for refused in [
        "text/plain",
        "application/xml",
        "multipart/form-data; boundary=x",
    ] {
        assert_eq!(
            emu.send_raw(&url, refused, finish_body(job)),
            415,
            "{refused} must be refused"
        );
    }
    for accepted in [
        "application/json",
        "application/json; charset=utf-8",
        "application/x-www-form-urlencoded",
    ] {
        assert_eq!(
            emu.send_raw(&url, accepted, finish_body(job)),
            200,
            "{accepted} must be accepted"
        );
    }
    assert_eq!(job_status(&emu, job), 2);
    finish(&emu, child, dir.path());
}

/// 2,000 valid callbacks for the running job, 100 at a time: the run still finishes
/// correctly once the emulator lets it, and the status reads they trigger are
/// coalesced — far fewer than the callbacks.
#[test]
fn a_callback_flood_is_coalesced_and_cannot_starve_the_run() {
    const FLOOD: usize = 2000;
    let dir = tempfile::tempdir().expect("tempdir");
    let emu = Emulator::start(&held_world(), &dir.path().join("sandbox"));
    let (child, url, job) = held_run(&emu, dir.path(), 0);
    let reads_before = status_reads(&emu);

    let client = reqwest::Client::new();
    let limit = Arc::new(tokio::sync::Semaphore::new(100));
    let statuses: Vec<u16> = emu.runtime().block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..FLOOD {
            let (client, url, limit) = (client.clone(), url.clone(), Arc::clone(&limit));
            let body = finish_body(job);
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await.ok();
                client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            });
        }
        tasks.join_all().await
    });
    let accepted = statuses.iter().filter(|s| **s == 200).count();
    assert!(
        statuses.iter().all(|s| matches!(s, 200 | 429 | 503)),
        "every callback got an answer: {:?}",
        statuses.iter().collect::<BTreeSet<_>>()
    );
    assert!(accepted > 0);
    let reads = status_reads(&emu) - reads_before;
    eprintln!("{accepted} callbacks accepted, {reads} status reads");
    assert!(
        reads < FLOOD / 20,
        "{reads} status reads for {FLOOD} callbacks: not coalesced"
    );
    assert_eq!(job_status(&emu, job), 2);
    finish(&emu, child, dir.path());
}

/// Loopback addresses `pid` listens on (from /proc: its socket inodes, matched
/// against the kernel's TCP table).
fn listeners(pid: u32) -> Vec<SocketAddrV4> {
    let mut inodes = BTreeSet::new();
    if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for fd in fds.flatten() {
            if let Ok(link) = std::fs::read_link(fd.path()) {
                let link = link.display().to_string();
                if let Some(inode) = link
                    .strip_prefix("socket:[")
                    .and_then(|s| s.strip_suffix(']'))
                {
                    inodes.insert(inode.to_owned());
                }
            }
        }
    }
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let mut out = Vec::new();
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
        if fields.len() < 10 || fields[3] != "0A" || !inodes.contains(fields[9]) {
            continue;
        }
        let Some((ip, port)) = fields[1].split_once(':') else {
            continue;
        };
        let (Ok(ip), Ok(port)) = (u32::from_str_radix(ip, 16), u16::from_str_radix(port, 16))
        else {
            continue;
        };
        // The kernel prints the address in host byte order of a network-order u32.
        out.push(SocketAddrV4::new(Ipv4Addr::from(ip.swap_bytes()), port));
    }
    // IPv6 listeners would show in tcp6; baton must have none reachable from outside.
    let table6 = std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default();
    for line in table6.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() >= 10 && fields[3] == "0A" && inodes.contains(fields[9]) {
            out.push(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
        }
    }
    out
}

/// With the embedded emulator and no `--callback-listen`, everything baton listens on
/// is 127.0.0.1, and the callback URL it submits points there; `--callback-listen`
/// moves the receiver (and the URL) to the address given.
#[test]
fn the_receiver_binds_loopback_unless_told_otherwise() {
    for listen in [None, Some("127.0.0.3:0")] {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("plan.yaml"), plan()).expect("plan");
        std::fs::write(dir.path().join("world.yaml"), held_world()).expect("world");
        let mut cmd = baton(dir.path());
        cmd.arg("run")
            .arg(dir.path().join("plan.yaml"))
            .arg("--sandbox")
            .arg(dir.path().join("sandbox"))
            .arg("--report")
            .arg(dir.path().join("report.json"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(listen) = listen {
            cmd.arg("--callback-listen").arg(listen);
        }
        let child = cmd.spawn().expect("spawn");
        let pid = child.id();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let client = crate::support::control_client();
        let get = |url: String| -> Value {
            rt.block_on(async {
                match client.get(&url).send().await {
                    Ok(r) => r.json().await.unwrap_or(Value::Null),
                    Err(_) => Value::Null,
                }
            })
        };
        // Both the emulator and the receiver listen once the held step is submitted.
        let (listening, emulator, callback) = eventually("the held step's callback URL", || {
            let listening = listeners(pid);
            listening.iter().find_map(|addr| {
                let requests = get(format!("http://{addr}/_emulator/requests"));
                let url = submitted_callback_url(requests.as_array()?)?;
                Some((listening.clone(), *addr, url))
            })
        });
        let expected_host = match listen {
            None => "127.0.0.1",
            Some(_) => "127.0.0.3",
        };
        let parsed = reqwest::Url::parse(&callback).expect("callback URL");
        assert_eq!(parsed.host_str(), Some(expected_host), "{callback}");
        let port = parsed.port().expect("a port");
        assert!(
            listening
                .iter()
                .any(|a| a.port() == port && a.ip().to_string() == expected_host),
            "the receiver listens where the URL says: {listening:?} {callback}"
        );
        for addr in &listening {
            assert!(
                addr.ip().is_loopback(),
                "baton listens off loopback: {addr}"
            );
        }
        rt.block_on(async {
            let _ = client
                .post(format!("http://{emulator}/_emulator/release"))
                .json(&json!({"host": HELD}))
                .send()
                .await;
        });
        let output = collect(child).join().expect("baton ran");
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    }
}
