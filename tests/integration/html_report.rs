//! The HTML report of a real rehearsal: its structure (parsed as HTML), its masking,
//! the same page from `baton runs show`, links into JOB's web UI, and a real browser
//! opening it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use scraper::{Html, Selector};

use crate::support::{baton, text};

const SECRET: &str = "hunter2-very-secret";

/// A rehearsal in its own folder: a secret-using step that fails on one host (its log
/// holds the secret and a recognisable line), a step after it that never runs, and an
/// independent step (the same host fails it too).
struct Failed {
    dir: tempfile::TempDir,
}

impl Failed {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("plan.yaml"),
            r#"version: 1
name: web-release
scope: { type: biz, id: 2 }
defaults: { account: root, timeout: 120 }
vars:
  db_password: { secret: true }
hosts:
  web: { ips: ["0:10.0.0.1", "0:10.0.0.2"] }
steps:
  - id: migrate
    targets: web
    script:
      language: shell
      content: |
        echo "connecting with {{db_password}}"
        echo "host-log-line-from-migrate"
  - id: restart
    needs: [migrate]
    targets: web
    script: { language: shell, content: "echo restart" }
  - id: warm-cache
    targets: web
    script: { language: shell, content: "echo warm" }
"#,
        )
        .expect("plan");
        std::fs::write(
            dir.path().join("world.yaml"),
            "faults:\n  hosts:\n    - { host: \"0:10.0.0.2\", status: 104, exit_code: 3, log: \"connecting with hunter2-very-secret\\nboom: disk full on 10.0.0.2\\n\" }\n",
        )
        .expect("world");
        Failed { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn cmd(&self) -> Command {
        let mut cmd = baton(self.dir.path());
        cmd.env("BATON_VAR_db_password", SECRET);
        cmd
    }

    fn run(&self) -> Output {
        let out = self
            .cmd()
            .env("BATON_JOB_WEB_URL", "https://job.example.com")
            .arg("run")
            .arg(self.path("plan.yaml"))
            .arg("--sandbox")
            .arg(self.path("sandbox"))
            .arg("--report")
            .arg(self.path("report.json"))
            .arg("--html")
            .arg(self.path("report.html"))
            .output()
            .expect("baton run");
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        out
    }
}

fn select<'a>(page: &'a Html, css: &str) -> Vec<scraper::ElementRef<'a>> {
    let selector = Selector::parse(css).expect("selector");
    page.select(&selector).collect()
}

fn inner_text(element: &scraper::ElementRef<'_>) -> String {
    element.text().collect::<String>()
}

fn check_structure(html: &str) {
    assert!(!html.contains(SECRET), "the secret leaked into the page");
    let page = Html::parse_document(html);
    assert!(
        page.errors.is_empty(),
        "HTML parse errors: {:?}",
        page.errors
    );
    let title = inner_text(&select(&page, "title")[0]);
    assert!(title.contains("web-release"), "{title}");
    let header = inner_text(&select(&page, "header")[0]);
    for needle in [
        "web-release",
        "v3",
        "local emulator",
        "exit code",
        "a step failed",
    ] {
        assert!(header.contains(needle), "header lacks {needle}: {header}");
    }
    let failures = inner_text(&select(&page, "#failures")[0]);
    assert!(failures.contains("migrate"), "{failures}");
    assert!(failures.contains("0:10.0.0.2"), "{failures}");
    assert!(
        failures.contains("boom: disk full on 10.0.0.2"),
        "{failures}"
    );
    let steps = select(&page, "details.step");
    assert_eq!(steps.len(), 3);
    assert!(
        steps.iter().all(|d| d.value().attr("open").is_none()),
        "steps are collapsed"
    );
    let migrate = select(&page, "details#step-migrate")[0];
    let hosts = inner_text(&migrate);
    assert!(
        hosts.contains("0:10.0.0.1") && hosts.contains("0:10.0.0.2"),
        "{hosts}"
    );
    assert!(hosts.contains("[baton "), "task name shown: {hosts}");
    assert_eq!(
        select(&page, "details#step-migrate tr.host-failed").len(),
        1
    );
    let link = select(&page, "details#step-migrate a.job");
    assert!(
        link[0]
            .value()
            .attr("href")
            .is_some_and(|h| h.starts_with("https://job.example.com/biz/2/execute/task/")),
        "JOB link"
    );
    assert_eq!(select(&page, "svg.gantt g.row").len(), 3);
    assert!(select(&page, "#graph svg").len() == 1);
    assert_eq!(select(&page, "#graph .edge-needs").len(), 1);
    assert_eq!(select(&page, "#graph g.node").len(), 3);
    assert!(
        select(&page, "script, link, img, iframe").is_empty(),
        "self-contained"
    );
}

#[test]
fn the_html_report_of_a_failed_rehearsal_has_its_parts_and_no_secret() {
    let r = Failed::new();
    let out = r.run();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("https://job.example.com/biz/2/execute/task/"),
        "the table links the job: {stdout}"
    );
    let html = std::fs::read_to_string(r.path("report.html")).expect("html written");
    check_structure(&html);
    let json = std::fs::read_to_string(r.path("report.json")).expect("json written");
    assert!(!json.contains(SECRET));
    assert!(json.contains("\"job_url\": \"https://job.example.com/biz/2/execute/task/"));
    // The secret is masked the same way in both reports.
    assert!(json.contains("connecting with ******"), "{json}");
    assert!(html.contains("connecting with ******"));

    // The same page again from the journal.
    let again = r
        .cmd()
        .env("BATON_JOB_WEB_URL", "https://job.example.com")
        .args(["runs", "show", "last", "--html"])
        .arg(r.path("again.html"))
        .output()
        .expect("runs show");
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    check_structure(&std::fs::read_to_string(r.path("again.html")).expect("written"));
}

#[test]
fn resume_writes_the_html_report_of_the_continued_run() {
    let r = Failed::new();
    r.run();
    let out = r
        .cmd()
        .args(["resume", "last", "--html"])
        .arg(r.path("resumed.html"))
        .output()
        .expect("baton resume");
    // The host still fails, so the run fails again: and says so in the page.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let html = std::fs::read_to_string(r.path("resumed.html")).expect("html written");
    assert!(!html.contains(SECRET));
    let page = Html::parse_document(&html);
    assert_eq!(select(&page, "details.step").len(), 3);
    let failures = inner_text(&select(&page, "#failures")[0]);
    assert!(
        failures.contains("boom: disk full on 10.0.0.2"),
        "{failures}"
    );
}

#[test]
fn an_unwritable_html_path_is_refused_before_anything_runs() {
    let r = Failed::new();
    let out = r
        .cmd()
        .arg("run")
        .arg(r.path("plan.yaml"))
        .arg("--html")
        .arg(r.path("no/such/folder/report.html"))
        .output()
        .expect("baton run");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--html"));
}

/// Where Chromium is, if installed.
fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| {
            std::env::var_os("PATH")
                .map(|p| {
                    std::env::split_paths(&p)
                        .map(|d| d.join(name))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
        .find(|p| p.is_file())
}

fn headless(browser: &Path, profile: &Path) -> Command {
    let mut cmd = Command::new(browser);
    cmd.args([
        "--headless",
        "--disable-gpu",
        "--no-sandbox",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .env("HOME", profile);
    cmd
}

/// Opens the report of a real rehearsal with a failed host in headless Chromium: the
/// page loads, the browser's DOM holds the failed host's log, and a screenshot is kept
/// under the target folder. Skipped (saying why) only when no Chromium is installed
/// and `BATON_REQUIRE_CHROMIUM` is unset; CI sets it.
#[test]
fn the_html_report_opens_in_headless_chromium() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("BATON_REQUIRE_CHROMIUM").is_none(),
            "BATON_REQUIRE_CHROMIUM is set but no chromium is on PATH"
        );
        eprintln!(
            "SKIPPED the_html_report_opens_in_headless_chromium: no chromium on PATH (apt-get install chromium)"
        );
        return;
    };
    let r = Failed::new();
    r.run();
    let report = r.path("report.html");
    let url = format!("file://{}", report.display());
    let profile = r.path("chromium-profile");
    std::fs::create_dir_all(&profile).expect("profile folder");

    let dom = headless(&browser, &profile)
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .expect("run chromium");
    assert!(dom.status.success(), "chromium failed: {}", text(&dom));
    let dom_text = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom_text.contains("boom: disk full on 10.0.0.2"),
        "the browser shows the failed host's log: {dom_text}"
    );
    assert!(
        dom_text.contains("<svg class=\"gantt\""),
        "timeline rendered"
    );
    // A page that failed to load dumps Chromium's own error page instead.
    assert!(!dom_text.contains("neterror") && dom_text.contains("web-release"));

    let artefacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("html-report");
    std::fs::create_dir_all(&artefacts).expect("artefact folder");
    let shot = artefacts.join("failed-rehearsal.png");
    let _ = std::fs::remove_file(&shot);
    let screenshot = headless(&browser, &profile)
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1400,1000")
        .arg(&url)
        .output()
        .expect("run chromium");
    assert!(screenshot.status.success(), "{}", text(&screenshot));
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    std::fs::copy(&report, artefacts.join("failed-rehearsal.html")).expect("keep the page");
    eprintln!("screenshot: {}", shot.display());
}
