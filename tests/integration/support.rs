//! What the end-to-end tests share: an emulator in the test process (so its request
//! log, instances and holds outlive the `baton` processes a test starts and kills) and
//! a `baton` command with a clean environment.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

pub(crate) const BATON: &str = env!("CARGO_BIN_EXE_baton");

/// `baton` for a test whose scratch folder is `dir`: nothing inherited from `BATON_*`
/// or `BK_*` variables, state in `dir/state`, config in `dir/config`, no colour, and
/// stdin closed.
pub(crate) fn baton(dir: &Path) -> Command {
    let mut cmd = Command::new(BATON);
    for (name, _) in std::env::vars_os() {
        if name
            .to_str()
            .is_some_and(|n| n.starts_with("BATON_") || n.starts_with("BK_"))
        {
            cmd.env_remove(name);
        }
    }
    cmd.env("BATON_STATE_DIR", dir.join("state"))
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    cmd
}

/// Adds app credentials for app `baton`, user `admin`, with `secret`.
pub(crate) fn app_credentials<'a>(cmd: &'a mut Command, secret: &str) -> &'a mut Command {
    cmd.env("BK_APP_CODE", "baton")
        .env("BK_APP_SECRET", secret)
        .env("BK_USERNAME", "admin")
}

/// Where the emulator rooted at `root` keeps `path` of `host` (`cloud:ip`).
pub(crate) fn sandbox_file(root: &Path, host: &str, path: &str) -> PathBuf {
    root.join("hosts")
        .join(host.replace(':', "_"))
        .join(path.trim_start_matches('/'))
}

/// A client without pooling: after a 413 the receiver closes the connection, and a
/// restarted emulator listens where a dead one did; a pooled client could hand either
/// dead connection to the next request.
pub(crate) fn control_client() -> reqwest::Client {
    baton::job_api::client::install_crypto_provider();
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

/// An emulator in this test process, serving `world` with host sandboxes under `root`.
pub(crate) struct Emulator {
    runtime: tokio::runtime::Runtime,
    handle: Option<baton::emulator::EmulatorHandle>,
    client: reqwest::Client,
    root: PathBuf,
}

impl Emulator {
    pub(crate) fn start(world: &str, root: &Path) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let world = baton::emulator::World::parse(world).expect("world parses");
        let config = baton::emulator::EmulatorConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            world,
            root: Some(root.to_path_buf()),
            isolation: baton::emulator::Isolation::Namespace {
                helper: PathBuf::from(BATON),
            },
        };
        let handle = runtime
            .block_on(baton::emulator::start(config))
            .expect("emulator starts");
        Emulator {
            runtime,
            handle: Some(handle),
            client: control_client(),
            root: root.to_path_buf(),
        }
    }

    pub(crate) fn url(&self) -> String {
        self.handle
            .as_ref()
            .map(|h| h.base_url())
            .unwrap_or_default()
    }

    /// `GET <url><path>` as JSON.
    pub(crate) fn get(&self, path: &str) -> Value {
        let url = format!("{}{path}", self.url());
        self.runtime.block_on(async {
            self.client
                .get(&url)
                .send()
                .await
                .expect("GET")
                .json()
                .await
                .expect("json")
        })
    }

    /// `POST <url><path>` with a JSON body, which must succeed; its JSON answer.
    pub(crate) fn post(&self, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.url());
        self.runtime.block_on(async {
            let answer = self
                .client
                .post(&url)
                .json(&body)
                .send()
                .await
                .expect("POST");
            assert!(answer.status().is_success(), "{path}: {}", answer.status());
            answer.json().await.unwrap_or(Value::Null)
        })
    }

    /// Posts raw bytes anywhere on loopback (forged callbacks); the HTTP status, 0 when
    /// there was no answer.
    pub(crate) fn send_raw(&self, url: &str, content_type: &str, body: Vec<u8>) -> u16 {
        self.runtime.block_on(async {
            self.client
                .post(url)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        })
    }

    fn list(&self, path: &str) -> Vec<Value> {
        self.get(path).as_array().cloned().unwrap_or_default()
    }

    /// Every recorded API request.
    pub(crate) fn all_requests(&self) -> Vec<Value> {
        self.list("/_emulator/requests")
    }

    /// Every recorded request to `api`.
    pub(crate) fn requests(&self, api: &str) -> Vec<Value> {
        self.list(&format!("/_emulator/requests?api={api}"))
    }

    /// Every job instance the emulator created.
    pub(crate) fn instances(&self) -> Vec<Value> {
        self.list("/_emulator/instances")
    }

    /// Every callback the emulator delivered.
    pub(crate) fn callbacks(&self) -> Vec<Value> {
        self.list("/_emulator/callbacks")
    }

    pub(crate) fn hold_host(&self, host: &str) {
        self.post("/_emulator/hold", json!({ "host": host }));
    }

    pub(crate) fn release_host(&self, host: &str) {
        self.post("/_emulator/release", json!({ "host": host }));
    }

    /// Where `path` of `host` lives in this emulator's sandbox.
    pub(crate) fn host_path(&self, host: &str, path: &str) -> PathBuf {
        sandbox_file(&self.root, host, path)
    }

    /// The runtime, for tests that fire many requests at once.
    pub(crate) fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            // Bounded: a request held by a latency fault would keep a graceful
            // shutdown waiting for as long as the fault says.
            let _ = self.runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(5), handle.shutdown()).await
            });
        }
    }
}

/// A finished command's output, labelled, for assertion messages.
pub(crate) fn text(output: &Output) -> String {
    format!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The report's entry for step `id`; a missing step fails the test.
pub(crate) fn step<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["id"] == id))
        .unwrap_or_else(|| panic!("no step {id} in {report}"))
}
