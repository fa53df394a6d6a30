//! The controllable clock: holds that stop jobs at well-defined points until a test
//! releases them, and the world's configurable delays. Two kinds of checkpoint:
//! progression (before a step starts and between rolling batches; stopped by an `All`
//! or a `Job` hold, so a job stays RUNNING with its step at 1, or at 15 between
//! batches) and host (after the host turned RUNNING, before it executes; stopped by an
//! `All` or a `Host` hold). Tests use them instead of sleeping. Every wait also ends
//! when the job's cancel token fires.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::job_api::types::HostAddr;

/// What a hold stops.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldKey {
    /// Every job.
    All,
    /// One job instance.
    Job(u64),
    /// One host, in every job.
    Host(HostAddr),
}

/// The holds in force.
#[derive(Default)]
pub struct Gates {
    held: Mutex<HashSet<HoldKey>>,
    changed: Notify,
}

impl Gates {
    fn held(&self) -> std::sync::MutexGuard<'_, HashSet<HoldKey>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a hold.
    pub fn hold(&self, key: HoldKey) {
        self.held().insert(key);
    }

    /// Removes a hold; waiters re-check.
    pub fn release(&self, key: &HoldKey) -> bool {
        let removed = self.held().remove(key);
        self.changed.notify_waiters();
        removed
    }

    /// Removes every hold.
    pub fn release_all(&self) {
        self.held().clear();
        self.changed.notify_waiters();
    }

    /// The holds in force.
    pub fn list(&self) -> Vec<HoldKey> {
        self.held().iter().cloned().collect()
    }

    fn blocks(&self, job: u64, host: Option<&HostAddr>) -> bool {
        let held = self.held();
        held.contains(&HoldKey::All)
            || match host {
                Some(h) => held.contains(&HoldKey::Host(h.clone())),
                None => held.contains(&HoldKey::Job(job)),
            }
    }

    /// Waits at a progression checkpoint of `job` (`host` None) or at the host
    /// checkpoint of `host`; false if cancelled first.
    pub async fn pass(
        &self,
        job: u64,
        host: Option<&HostAddr>,
        cancel: &CancellationToken,
    ) -> bool {
        loop {
            // Register interest before checking, so a release between the check and
            // the wait is not missed.
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.blocks(job, host) {
                return true;
            }
            tokio::select! {
                _ = notified => {}
                _ = cancel.cancelled() => return false,
            }
        }
    }
}

/// Sleeps `ms` (nothing for 0); false if cancelled first.
pub async fn delay(ms: u64, cancel: &CancellationToken) -> bool {
    if ms == 0 {
        return !cancel.is_cancelled();
    }
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(ms)) => true,
        _ = cancel.cancelled() => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_hold_blocks_until_released() {
        let gates = Arc::new(Gates::default());
        gates.hold(HoldKey::Job(7));
        let cancel = CancellationToken::new();
        let g = gates.clone();
        let c = cancel.clone();
        let waiter = tokio::spawn(async move { g.pass(7, None, &c).await });
        assert!(gates.pass(8, None, &cancel).await);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        gates.release(&HoldKey::Job(7));
        assert!(waiter.await.unwrap());
    }
}
