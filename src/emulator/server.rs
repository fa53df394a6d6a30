//! Starting and stopping an emulator: `serve(listener, app, shutdown)` runs the HTTP
//! server until the injected shutdown future completes (mini-redis style), and
//! `start(config)` builds the state, binds (port 0 picks one), seeds the world's files
//! into the host sandboxes, and returns a handle with the address and `shutdown()`.
//! In-process use (`baton run` with no endpoint, tests) and `baton emulator` share it.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::emulator::app::App;
use crate::emulator::error::EmulatorError;
use crate::emulator::exec::sandbox::host_paths::HostSandboxes;
use crate::emulator::exec::sandbox::isolation::Isolation;
use crate::emulator::http::router;
use crate::emulator::model::inventory::Inventory;
use crate::emulator::model::world::World;
use crate::job_api::types::HostAddr;

/// How to start an emulator.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Address to bind (`127.0.0.1:0` picks a port).
    pub listen: SocketAddr,
    /// The world.
    pub world: World,
    /// Sandbox root; `None` creates a temporary folder removed at shutdown.
    pub root: Option<PathBuf>,
    /// How scripts are isolated.
    pub isolation: Isolation,
}

impl EmulatorConfig {
    /// Loopback on a free port, an empty world, a temporary root, namespaces through
    /// `helper` (the baton binary).
    pub fn local(helper: PathBuf) -> Self {
        EmulatorConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            world: World::default(),
            root: None,
            isolation: Isolation::Namespace { helper },
        }
    }
}

/// A running emulator.
pub struct EmulatorHandle {
    addr: SocketAddr,
    root: PathBuf,
    app: Arc<App>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    // Removed when the handle is dropped.
    _temp: Option<tempfile::TempDir>,
}

impl EmulatorHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ip:port`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The sandbox root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the root is a temporary folder.
    pub fn root_is_temporary(&self) -> bool {
        self._temp.is_some()
    }

    /// The sandbox folder of a host (for tests checking effects on disk).
    pub fn host_dir(&self, host: &HostAddr) -> PathBuf {
        self.root.join("hosts").join(host.folder_name())
    }

    /// Stops serving, kills running scripts, and waits for the server to end.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        self.stop_now();
        match self.task.take() {
            Some(task) => task.await.unwrap_or_else(|e| Err(std::io::Error::other(e))),
            None => Ok(()),
        }
    }

    fn stop_now(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        for job in self.app.store.all() {
            job.lock().cancel.cancel();
        }
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Serves the emulator API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router::router(app))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Builds the emulator state for `world` with sandboxes under `root`.
pub fn build_app(
    world: World,
    root: &Path,
    isolation: Isolation,
) -> Result<Arc<App>, EmulatorError> {
    let sandboxes = HostSandboxes::new(root, isolation)?;
    let inventory = Inventory::new(world)?;
    // Callbacks may go to https receivers; reqwest is built without a default crypto
    // provider, so make sure one is installed (a second install is a harmless no-op).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(EmulatorError::Http)?;
    seed_files(&inventory, &sandboxes)?;
    Ok(Arc::new(App::new(inventory, sandboxes, http)))
}

/// Writes the world's per-host files into the sandboxes.
fn seed_files(inventory: &Inventory, sandboxes: &HostSandboxes) -> Result<(), EmulatorError> {
    for host in &inventory.world().hosts {
        let Some(addr) = HostAddr::parse(&format!("{}:{}", host.cloud, host.ip)) else {
            continue;
        };
        for (path, content) in &host.files {
            let seed_error = |reason: String| EmulatorError::Seed {
                host: addr.to_string(),
                path: path.clone(),
                reason,
            };
            let resolved = sandboxes
                .resolve(&addr, path)
                .map_err(|e| seed_error(e.to_string()))?;
            if let Some(parent) = resolved.parent() {
                std::fs::create_dir_all(parent).map_err(|e| seed_error(e.to_string()))?;
            }
            std::fs::write(&resolved, content).map_err(|e| seed_error(e.to_string()))?;
        }
    }
    Ok(())
}

/// Starts an emulator on its own tokio task.
pub async fn start(config: EmulatorConfig) -> Result<EmulatorHandle, EmulatorError> {
    let (root, temp) = match config.root {
        Some(root) => {
            std::fs::create_dir_all(&root).map_err(EmulatorError::TempDir)?;
            (root, None)
        }
        None => {
            let temp = tempfile::Builder::new()
                .prefix("baton-emulator-")
                .tempdir()
                .map_err(EmulatorError::TempDir)?;
            (temp.path().to_path_buf(), Some(temp))
        }
    };
    let app = build_app(config.world, &root, config.isolation)?;
    // The sandboxes canonicalise the root; report the folder they really use.
    let root = app.sandboxes.root().to_path_buf();
    let listener =
        TcpListener::bind(config.listen)
            .await
            .map_err(|source| EmulatorError::Bind {
                addr: config.listen.to_string(),
                source,
            })?;
    let addr = listener
        .local_addr()
        .map_err(|source| EmulatorError::Bind {
            addr: config.listen.to_string(),
            source,
        })?;
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, app.clone(), async move {
        let _ = rx.await;
    }));
    Ok(EmulatorHandle {
        addr,
        root,
        app,
        shutdown: Some(tx),
        task: Some(task),
        _temp: temp,
    })
}
