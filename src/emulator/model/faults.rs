//! Faults on demand, deterministic under a seed: API answers replaced by 5xx or 429,
//! added latency, connections dropped after the request took effect, callbacks lost or
//! sent twice, and hosts that fail with a chosen status / exit code / log or hold until
//! released. Switched on by the world file or `POST /_emulator/faults` (same JSON shape).
//!
//! ```yaml
//! faults:
//!   seed: 7
//!   api:        # kind: error | rate_limit | latency | drop
//!     - { api: fast_execute_script, protocol: v3, kind: error, status: 503, fraction: 0.5, count: 2 }
//!     - { kind: rate_limit, reset_secs: 1 }
//!     - { kind: latency, latency_ms: 300 }
//!     - { api: execute_job_plan, kind: drop }    # submit happens, the connection is cut
//!   callbacks:  # kind: lost | twice
//!     - { kind: lost, count: 1 }
//!   hosts:      # status/exit_code/log replace the run; hold waits for /_emulator/release
//!     - { host: "0:10.0.0.2", status: 104, exit_code: 3, log: "boom" }
//!     - { host: "0:10.0.0.3", hold: true }
//! ```

use std::sync::Mutex;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::job_api::types::HostAddr;

/// All faults in force.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultSet {
    /// Seed of the fault dice.
    pub seed: u64,
    /// Faults on API answers.
    pub api: Vec<ApiFault>,
    /// Faults on callbacks.
    pub callbacks: Vec<CallbackFault>,
    /// Faults on hosts.
    pub hosts: Vec<HostFault>,
}

/// What happens to an API answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiFaultKind {
    /// Answer with an HTTP error status instead (the request is not processed).
    Error,
    /// Answer 429 (gateway) / 1306429 (ESB) instead (not processed).
    RateLimit,
    /// Process normally after a delay.
    Latency,
    /// Process the request, then cut the connection instead of answering.
    Drop,
}

/// A fault on API answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiFault {
    /// API name (`fast_execute_script`); absent: every API.
    #[serde(default)]
    pub api: Option<String>,
    /// `v2`, `v3` or `v4`; absent: every protocol.
    #[serde(default)]
    pub protocol: Option<String>,
    /// What happens.
    pub kind: ApiFaultKind,
    /// HTTP status for `error` (default 503).
    #[serde(default)]
    pub status: Option<u16>,
    /// Delay for `latency`, ms.
    #[serde(default)]
    pub latency_ms: u64,
    /// `X-Bkapi-RateLimit-Reset` seconds for `rate_limit`.
    #[serde(default = "one")]
    pub reset_secs: u64,
    /// Share of matching requests hit (0..=1, default 1).
    #[serde(default = "all")]
    pub fraction: f64,
    /// Stop after this many hits.
    #[serde(default)]
    pub count: Option<u64>,
}

/// What happens to a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackFaultKind {
    /// Never sent.
    Lost,
    /// Sent twice.
    Twice,
}

/// A fault on callbacks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackFault {
    /// What happens.
    pub kind: CallbackFaultKind,
    /// Share of callbacks hit.
    #[serde(default = "all")]
    pub fraction: f64,
    /// Stop after this many hits.
    #[serde(default)]
    pub count: Option<u64>,
}

/// A fault on one host.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostFault {
    /// `cloud:ip`.
    pub host: String,
    /// Host status to report instead of running (e.g. 104).
    #[serde(default)]
    pub status: Option<u16>,
    /// Exit code reported with `status`.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Log reported with `status`.
    #[serde(default)]
    pub log: String,
    /// Hold the host in RUNNING until `POST /_emulator/release {"host": ...}`.
    #[serde(default)]
    pub hold: bool,
    /// Stop after this many hits.
    #[serde(default)]
    pub count: Option<u64>,
}

fn one() -> u64 {
    1
}

fn all() -> f64 {
    1.0
}

/// The decision for one API request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiDecision {
    /// Answer with this status instead.
    pub error_status: Option<u16>,
    /// Answer rate-limited with this reset.
    pub rate_limit_reset: Option<u64>,
    /// Sleep this long first.
    pub latency_ms: u64,
    /// Cut the connection after processing.
    pub drop: bool,
}

/// The outcome forced on a host.
#[derive(Debug, Clone, PartialEq)]
pub struct ForcedOutcome {
    /// Host status.
    pub status: u16,
    /// Exit code.
    pub exit_code: Option<i32>,
    /// Log text.
    pub log: String,
}

struct State {
    set: FaultSet,
    rng: StdRng,
    api_hits: Vec<u64>,
    callback_hits: Vec<u64>,
    host_hits: Vec<u64>,
}

/// The faults in force and their dice.
pub struct Faults {
    state: Mutex<State>,
}

impl Faults {
    /// Faults from a set.
    pub fn new(set: FaultSet) -> Self {
        Faults {
            state: Mutex::new(Self::fresh(set)),
        }
    }

    fn fresh(set: FaultSet) -> State {
        State {
            rng: StdRng::seed_from_u64(set.seed),
            api_hits: vec![0; set.api.len()],
            callback_hits: vec![0; set.callbacks.len()],
            host_hits: vec![0; set.hosts.len()],
            set,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere; the fault table is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces every fault (and re-seeds the dice).
    pub fn replace(&self, set: FaultSet) {
        *self.lock() = Self::fresh(set);
    }

    /// The faults in force.
    pub fn current(&self) -> FaultSet {
        self.lock().set.clone()
    }

    /// Rolls the dice for one API request.
    pub fn on_api(&self, api: &str, protocol: &str) -> ApiDecision {
        let mut state = self.lock();
        let mut decision = ApiDecision::default();
        for i in 0..state.set.api.len() {
            let fault = state.set.api[i].clone();
            if fault.api.as_deref().is_some_and(|a| a != api)
                || fault.protocol.as_deref().is_some_and(|p| p != protocol)
                || fault.count.is_some_and(|c| state.api_hits[i] >= c)
            {
                continue;
            }
            if !roll(&mut state.rng, fault.fraction) {
                continue;
            }
            state.api_hits[i] += 1;
            match fault.kind {
                ApiFaultKind::Error => {
                    decision
                        .error_status
                        .get_or_insert(fault.status.unwrap_or(503));
                }
                ApiFaultKind::RateLimit => {
                    decision.rate_limit_reset.get_or_insert(fault.reset_secs);
                }
                ApiFaultKind::Latency => decision.latency_ms += fault.latency_ms,
                ApiFaultKind::Drop => decision.drop = true,
            }
        }
        decision
    }

    /// Rolls the dice for one callback: how many times to send it (0, 1 or 2).
    pub fn on_callback(&self) -> u8 {
        let mut state = self.lock();
        let mut times = 1;
        for i in 0..state.set.callbacks.len() {
            let fault = state.set.callbacks[i].clone();
            if fault.count.is_some_and(|c| state.callback_hits[i] >= c) {
                continue;
            }
            if !roll(&mut state.rng, fault.fraction) {
                continue;
            }
            state.callback_hits[i] += 1;
            times = match fault.kind {
                CallbackFaultKind::Lost => 0,
                CallbackFaultKind::Twice => 2,
            };
        }
        times
    }

    /// The forced outcome for `host`, if a fault names it with a status.
    pub fn on_host(&self, host: &HostAddr) -> Option<ForcedOutcome> {
        let mut state = self.lock();
        for i in 0..state.set.hosts.len() {
            let fault = &state.set.hosts[i];
            let Some(status) = fault.status else { continue };
            if HostAddr::parse(&fault.host).as_ref() != Some(host)
                || fault.count.is_some_and(|c| state.host_hits[i] >= c)
            {
                continue;
            }
            let outcome = ForcedOutcome {
                status,
                exit_code: fault.exit_code,
                log: fault.log.clone(),
            };
            state.host_hits[i] += 1;
            return Some(outcome);
        }
        None
    }

    /// Hosts that faults hold until released.
    pub fn held_hosts(&self) -> Vec<HostAddr> {
        self.lock()
            .set
            .hosts
            .iter()
            .filter(|f| f.hold)
            .filter_map(|f| HostAddr::parse(&f.host))
            .collect()
    }
}

fn roll(rng: &mut StdRng, fraction: f64) -> bool {
    if fraction >= 1.0 {
        return true;
    }
    if fraction <= 0.0 {
        return false;
    }
    rng.random::<f64>() < fraction
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(fraction: f64) -> FaultSet {
        FaultSet {
            seed: 42,
            api: vec![ApiFault {
                api: Some("fast_execute_script".into()),
                protocol: None,
                kind: ApiFaultKind::Error,
                status: Some(502),
                latency_ms: 0,
                reset_secs: 1,
                fraction,
                count: None,
            }],
            ..FaultSet::default()
        }
    }

    #[test]
    fn same_seed_same_dice() {
        let a = Faults::new(set(0.5));
        let b = Faults::new(set(0.5));
        let roll_a: Vec<_> = (0..32)
            .map(|_| a.on_api("fast_execute_script", "v3"))
            .collect();
        let roll_b: Vec<_> = (0..32)
            .map(|_| b.on_api("fast_execute_script", "v3"))
            .collect();
        assert_eq!(roll_a, roll_b);
        assert!(roll_a.iter().any(|d| d.error_status == Some(502)));
        assert!(roll_a.iter().any(|d| d.error_status.is_none()));
    }

    #[test]
    fn faults_target_an_api() {
        let f = Faults::new(set(1.0));
        assert_eq!(
            f.on_api("get_job_instance_status", "v3"),
            ApiDecision::default()
        );
    }
}
