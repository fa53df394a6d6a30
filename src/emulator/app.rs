//! The emulator's shared state: the inventory, the job store, the host sandboxes, the
//! faults and job holds, the callback log, the concurrency limits and the HTTP
//! client that delivers callbacks. One `Arc<App>` per running emulator.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::Semaphore;

use crate::emulator::exec::sandbox::host_paths::HostSandboxes;
use crate::emulator::model::clock::{Gates, HoldKey};
use crate::emulator::model::faults::Faults;
use crate::emulator::model::inventory::Inventory;
use crate::emulator::model::jobs::JobStore;
use crate::emulator::model::world::Settings;

/// One callback delivery attempt (for `GET /_emulator/callbacks`).
#[derive(Debug, Clone, Serialize)]
pub struct CallbackRecord {
    /// Job instance.
    pub job_instance_id: u64,
    /// Target URL.
    pub url: String,
    /// Content type sent.
    pub content_type: String,
    /// Body sent.
    pub body: String,
    /// HTTP status received, if any.
    pub http_status: Option<u16>,
    /// Transport error, if any.
    pub error: Option<String>,
}

/// A bounded log.
pub struct Log<T> {
    items: Mutex<VecDeque<T>>,
    cap: usize,
}

impl<T: Clone> Log<T> {
    /// A log keeping the last `cap` items.
    pub fn new(cap: usize) -> Self {
        Log {
            items: Mutex::new(VecDeque::new()),
            cap: cap.max(1),
        }
    }

    fn items(&self) -> std::sync::MutexGuard<'_, VecDeque<T>> {
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends, dropping the oldest past the cap.
    pub fn push(&self, item: T) {
        let mut items = self.items();
        if items.len() == self.cap {
            items.pop_front();
        }
        items.push_back(item);
    }

    /// Everything kept.
    pub fn all(&self) -> Vec<T> {
        self.items().iter().cloned().collect()
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.items().clear();
    }
}

/// The emulator's shared state.
pub struct App {
    /// Hosts, groups, accounts, scripts, plans.
    pub inventory: Inventory,
    /// Job instances.
    pub store: JobStore,
    /// Host sandboxes.
    pub sandboxes: HostSandboxes,
    /// Faults in force.
    pub faults: Faults,
    /// Holds in force.
    pub gates: Gates,
    /// Callback attempts.
    pub callbacks: Log<CallbackRecord>,
    /// Hosts executing at once, emulator-wide.
    pub global_parallel: Arc<Semaphore>,
    /// Callback client.
    pub http: reqwest::Client,
    /// Settings (from the world).
    pub settings: Settings,
    /// Start, epoch ms.
    pub started_ms: i64,
}

impl App {
    /// Builds the state; hosts held by world faults start held.
    pub fn new(inventory: Inventory, sandboxes: HostSandboxes, http: reqwest::Client) -> Self {
        let settings = inventory.world().settings.clone();
        let faults = Faults::new(inventory.world().faults.clone());
        let gates = Gates::default();
        for host in faults.held_hosts() {
            gates.hold(HoldKey::Host(host));
        }
        App {
            store: crate::emulator::model::jobs::JobStore::new(
                settings.first_id,
                settings.max_instances,
            ),
            callbacks: Log::new(10_000),
            global_parallel: Arc::new(Semaphore::new(settings.global_parallel_limit.max(1))),
            started_ms: crate::emulator::model::jobs::now_ms(),
            inventory,
            sandboxes,
            faults,
            gates,
            http,
            settings,
        }
    }
}
