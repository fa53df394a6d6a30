//! The runbooks in `plans/` rehearse cleanly on the embedded emulator (the README's
//! first command), and leave the effects their comment headers promise in the host
//! sandboxes.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `plans/<name>.yaml` with its example variables in a fresh sandbox and returns
/// the sandbox folder and the combined output.
fn rehearse(name: &str) -> (tempfile::TempDir, String) {
    let sandbox = tempfile::tempdir().expect("temp sandbox");
    let plans = repo().join("plans");
    let output = Command::new(env!("CARGO_BIN_EXE_baton"))
        .arg("run")
        .arg(plans.join(format!("{name}.yaml")))
        .arg("--vars-file")
        .arg(plans.join(format!("{name}.vars.yaml")))
        .arg("--sandbox")
        .arg(sandbox.path())
        .env_remove("BATON_ENDPOINT")
        .env("BATON_STATE_DIR", sandbox.path().join("state"))
        .output()
        .expect("baton runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(0), "{name} failed:\n{text}");
    assert!(
        text.lines()
            .next()
            .unwrap_or("")
            .contains("local JOB emulator"),
        "the first line must say this is a rehearsal:\n{text}"
    );
    (sandbox, text)
}

fn host(sandbox: &Path, ip: &str) -> PathBuf {
    sandbox.join("hosts").join(format!("0_{ip}"))
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn release_web_rolls_the_release_onto_every_web_host() {
    let (sandbox, _) = rehearse("release-web");
    let version = "2.4.1";
    for ip in ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"] {
        let web = host(sandbox.path(), ip);
        assert_eq!(
            read(web.join("opt/app/state")).trim(),
            format!("running {version}")
        );
        assert!(
            web.join(format!("opt/app/releases/app-{version}.tar.gz"))
                .is_file()
        );
    }
    let db = host(sandbox.path(), "10.0.0.20");
    assert_eq!(
        read(db.join("var/lib/appdb/schema_version")).trim(),
        version
    );
}

#[test]
fn collect_logs_lands_one_folder_per_app_host_on_the_collector() {
    let (sandbox, text) = rehearse("collect-logs");
    let collected = host(sandbox.path(), "10.0.0.50").join("data/collected/INC-1042");
    for ip in ["10.0.0.1", "10.0.0.2", "10.0.0.3"] {
        let folder = collected.join(format!("0_{ip}"));
        assert!(
            folder.join("applogs.tar.gz").is_file(),
            "{}",
            folder.display()
        );
        assert!(read(folder.join("manifest.txt")).contains("app.log"));
    }
    assert!(text.contains("verify"), "{text}");
}

#[test]
fn cross_business_copy_delivers_both_reports_and_a_receipt() {
    let (sandbox, _) = rehearse("cross-business-copy");
    let import = host(sandbox.path(), "10.0.0.31").join("data/import/20261123");
    for ip in ["10.0.1.1", "10.0.1.2"] {
        let report = import.join(format!("0_{ip}/report-20261123.csv"));
        assert!(read(report).starts_with("file,bytes"));
    }
    assert!(read(import.join("RECEIPT")).contains("reports=2"));
}

#[test]
fn regional_rollout_configures_migrates_and_reports_every_region() {
    let (sandbox, _) = rehearse("regional-rollout");
    for (region, web, db) in [
        ("sh", "10.0.2.1", "10.0.2.20"),
        ("gz", "10.0.3.1", "10.0.3.20"),
    ] {
        let web = host(sandbox.path(), web);
        assert_eq!(
            read(web.join("opt/app/conf/app.conf")),
            format!("region={region}\nversion=2.5.0\ndatabase={db}:5432\n")
        );
        // The schema the region's migration job plan set, read back from JOB.
        assert_eq!(
            read(web.join("opt/app/state")).trim(),
            "running 2.5.0 schema 41"
        );
        assert_eq!(
            read(host(sandbox.path(), db).join("var/lib/appdb/schema")).trim(),
            "41"
        );
    }
    assert_eq!(
        read(host(sandbox.path(), "10.0.0.10").join("data/rollout/2.5.0.txt")),
        "sh 41\ngz 41\n"
    );
}
