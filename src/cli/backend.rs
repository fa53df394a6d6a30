//! Where a run goes: [`Backend`] is a real JOB at the configured endpoint, or the local
//! emulator started for a rehearsal with its sandbox folder and world. The first line a
//! run prints says which.

use std::path::{Path, PathBuf};

use crate::config::{self, Config, Credentials};
use crate::emulator::{EmulatorConfig, EmulatorHandle, World};
use crate::error::Error;
use crate::executor::events::RunTarget;
use crate::job_api::types::Protocol;

/// What a rehearsal on the local emulator is given.
#[derive(Debug)]
pub struct Rehearsal {
    /// `--sandbox`: the folder holding host sandboxes (default: a new temporary one).
    pub sandbox: Option<PathBuf>,
    /// `--unisolated`.
    pub unisolated: bool,
    /// The world the emulator serves.
    pub world: World,
}

/// The backend for `config`: JOB when an endpoint and credentials are configured, else
/// the emulator on loopback.
pub async fn connect(
    config: &Config,
    protocol: Protocol,
    rehearsal: Rehearsal,
) -> Result<Backend, Error> {
    match (&config.endpoint, &config.credentials) {
        (Some(endpoint), Some(credentials)) => {
            println!("baton: running against JOB at {endpoint} ({protocol})");
            Ok(Backend {
                endpoint: endpoint.clone(),
                credentials: credentials.clone(),
                target: RunTarget::Remote {
                    endpoint: endpoint.clone(),
                },
                emulator: None,
            })
        }
        _ => start_emulator(rehearsal).await,
    }
}

/// Where the run goes.
pub struct Backend {
    /// JOB's base URL.
    pub endpoint: String,
    /// Whom to authenticate as.
    pub credentials: Credentials,
    /// What the run's record says it ran against.
    pub target: RunTarget,
    /// The local emulator, when the run rehearses on one.
    pub emulator: Option<EmulatorHandle>,
}

/// Credentials the emulator accepts: the world's first app and user when it declares
/// them, else freshly generated ones (an empty world accepts any non-empty pair).
fn emulator_credentials(world: &World) -> Credentials {
    use rand::Rng;
    let random = |prefix: &str| {
        let n: u64 = rand::rng().random();
        format!("{prefix}-{n:016x}")
    };
    let (app_code, app_secret) = match world.credentials.apps.first() {
        Some(app) => (app.code.clone(), app.secret.clone()),
        None => (random("baton-rehearsal"), random("secret")),
    };
    let user = world
        .credentials
        .users
        .first()
        .cloned()
        .unwrap_or_else(|| "baton".to_owned());
    Credentials::App {
        app_code,
        app_secret: config::Secret::new(app_secret),
        user: config::User::Username(user),
    }
}

/// The emulator's world file: `--world`, else `world.yaml` beside the plan if present.
pub fn world_path(plan: &Path, world: Option<&PathBuf>) -> Option<PathBuf> {
    world.cloned().or_else(|| {
        let beside = plan.parent().unwrap_or(Path::new(".")).join("world.yaml");
        beside.is_file().then_some(beside)
    })
}

/// Starts the in-process emulator with a sandbox and the plan's world, and prints the
/// first line of output saying so.
async fn start_emulator(rehearsal: Rehearsal) -> Result<Backend, Error> {
    let Rehearsal {
        sandbox,
        unisolated,
        world,
    } = rehearsal;
    let sandbox = match sandbox {
        Some(dir) => {
            std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
                context: format!("cannot create the sandbox folder {}", dir.display()),
                source,
            })?;
            dir
        }
        None => tempfile::Builder::new()
            .prefix("baton-rehearsal-")
            .tempdir()
            .map_err(|source| Error::Io {
                context: "cannot create a temporary sandbox folder".into(),
                source,
            })?
            .keep(),
    };
    let sandbox = sandbox.canonicalize().unwrap_or(sandbox);
    println!(
        "baton: rehearsal on the local JOB emulator (not production); host sandboxes in {}",
        sandbox.display()
    );
    let credentials = emulator_credentials(&world);
    let isolation = super::emulator::isolation(unisolated)?;
    let handle = crate::emulator::start(EmulatorConfig {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        world,
        root: Some(sandbox.clone()),
        isolation,
    })
    .await
    .map_err(Error::EmulatorStart)?;
    let endpoint = handle.base_url();
    Ok(Backend {
        endpoint: endpoint.clone(),
        credentials,
        target: RunTarget::Emulator {
            endpoint,
            sandbox: sandbox.display().to_string(),
        },
        emulator: Some(handle),
    })
}
