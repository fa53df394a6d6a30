//! Holds on API requests themselves, for tests that must act at an exact moment of a
//! request's life: `request` holds a request before JOB looks at it (it is recorded as
//! received, nothing else happened), `answer` lets JOB process it and holds the answer
//! (the instance exists, the client has not heard of it). A test arms a hold, waits
//! until a request is caught in it, does what it came to do (kill the client, say), then
//! releases it, and waits until the API is idle again (every request it was handling
//! answered or abandoned) before looking at what JOB has. A hold may let a number of
//! requests through first (`skip`), to catch a later step's submission. Not part of
//! JOB: driven from `/_emulator/` (see [`crate::emulator::http::control`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// Where in a request's life the hold catches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Received, not yet processed.
    Request,
    /// Processed, answer not yet sent.
    Answer,
}

#[derive(Debug, Default)]
struct Gate {
    armed: bool,
    /// Requests still let through before the gate catches one.
    skip: usize,
    waiting: usize,
}

/// One armed or waiting gate, as listed by `GET /_emulator/holds`.
#[derive(Debug, Clone, Serialize)]
pub struct AnswerHold {
    /// The API name.
    pub api: String,
    /// The stage.
    pub stage: Stage,
    /// Whether new requests are caught.
    pub armed: bool,
    /// Requests still let through first.
    pub skip: usize,
    /// Requests caught now.
    pub waiting: usize,
}

/// Every request hold in force.
#[derive(Debug, Default)]
pub struct AnswerHolds {
    gates: Mutex<HashMap<(String, Stage), Gate>>,
    /// Requests being handled, per API.
    busy: Mutex<HashMap<String, usize>>,
    changed: Notify,
}

impl AnswerHolds {
    fn gates(&self) -> std::sync::MutexGuard<'_, HashMap<(String, Stage), Gate>> {
        self.gates.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn busy(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.busy.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Arms the gate of `api` at `stage`, letting `skip` requests through first.
    pub fn hold(&self, api: &str, stage: Stage, skip: usize) {
        let mut gates = self.gates();
        let gate = gates.entry((api.to_owned(), stage)).or_default();
        gate.armed = true;
        gate.skip = skip;
        drop(gates);
        self.changed.notify_waiters();
    }

    /// Marks a request to `api` as being handled until the guard is dropped.
    pub fn enter<'a>(&'a self, api: &'a str) -> Busy<'a> {
        *self.busy().entry(api.to_owned()).or_default() += 1;
        Busy { holds: self, api }
    }

    /// Waits until no request to `api` is being handled, up to `timeout`.
    pub async fn idle(&self, api: &str, timeout: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.changed.notified();
                if self.busy().get(api).copied().unwrap_or(0) == 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }

    /// Disarms it and lets every caught request go; returns how many were caught.
    pub fn release(&self, api: &str, stage: Stage) -> usize {
        let released = self
            .gates()
            .get_mut(&(api.to_owned(), stage))
            .map_or(0, |gate| {
                gate.armed = false;
                gate.waiting
            });
        self.changed.notify_waiters();
        released
    }

    /// Disarms every gate.
    pub fn release_all(&self) {
        for gate in self.gates().values_mut() {
            gate.armed = false;
        }
        self.changed.notify_waiters();
    }

    /// Armed and busy gates.
    pub fn list(&self) -> Vec<AnswerHold> {
        self.gates()
            .iter()
            .filter(|(_, gate)| gate.armed || gate.waiting > 0)
            .map(|((api, stage), gate)| AnswerHold {
                api: api.clone(),
                stage: *stage,
                armed: gate.armed,
                skip: gate.skip,
                waiting: gate.waiting,
            })
            .collect()
    }

    /// Passes at once unless the gate of `api` at `stage` is armed; then waits until it
    /// is released. If the waiting request is abandoned (its client went away and the
    /// server dropped it), the count is still put right.
    pub async fn pass(&self, api: &str, stage: Stage) {
        let key = (api.to_owned(), stage);
        {
            let mut gates = self.gates();
            match gates.get_mut(&key) {
                Some(gate) if gate.armed && gate.skip > 0 => {
                    gate.skip -= 1;
                    return;
                }
                Some(gate) if gate.armed => gate.waiting += 1,
                _ => return,
            }
        }
        self.changed.notify_waiters();
        let _caught = Caught {
            holds: self,
            key: &key,
        };
        loop {
            let notified = self.changed.notified();
            if !self.gates().get(&key).is_some_and(|gate| gate.armed) {
                return;
            }
            notified.await;
        }
    }

    /// Waits until at least `count` requests are caught at the gate, up to `timeout`.
    pub async fn caught(&self, api: &str, stage: Stage, count: usize, timeout: Duration) -> bool {
        let key = (api.to_owned(), stage);
        let wait = async {
            loop {
                let notified = self.changed.notified();
                if self.gates().get(&key).is_some_and(|g| g.waiting >= count) {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }
}

/// A request being handled; dropped when it is answered or abandoned.
pub struct Busy<'a> {
    holds: &'a AnswerHolds,
    api: &'a str,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        if let Some(count) = self.holds.busy().get_mut(self.api) {
            *count = count.saturating_sub(1);
        }
        self.holds.changed.notify_waiters();
    }
}

/// A request caught at a gate; leaving (released or dropped) takes it off the count.
struct Caught<'a> {
    holds: &'a AnswerHolds,
    key: &'a (String, Stage),
}

impl Drop for Caught<'_> {
    fn drop(&mut self) {
        if let Some(gate) = self.holds.gates().get_mut(self.key) {
            gate.waiting = gate.waiting.saturating_sub(1);
        }
        self.holds.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_caught_request_waits_until_released() {
        let holds = Arc::new(AnswerHolds::default());
        holds.hold("fast_execute_script", Stage::Answer, 1);
        // The first request is let through; the second is caught.
        holds.pass("fast_execute_script", Stage::Answer).await;
        let passer = {
            let holds = Arc::clone(&holds);
            tokio::spawn(async move { holds.pass("fast_execute_script", Stage::Answer).await })
        };
        assert!(
            holds
                .caught(
                    "fast_execute_script",
                    Stage::Answer,
                    1,
                    Duration::from_secs(5)
                )
                .await
        );
        assert!(!passer.is_finished());
        assert_eq!(holds.release("fast_execute_script", Stage::Answer), 1);
        passer.await.unwrap();
        assert!(holds.list().is_empty());
        // Other APIs and stages pass freely.
        holds.hold("fast_execute_script", Stage::Request, 0);
        holds.pass("fast_execute_script", Stage::Answer).await;
        holds.pass("get_job_instance_status", Stage::Request).await;
    }

    #[tokio::test]
    async fn an_abandoned_request_leaves_the_count() {
        let holds = Arc::new(AnswerHolds::default());
        holds.hold("execute_job", Stage::Request, 0);
        let passer = {
            let holds = Arc::clone(&holds);
            tokio::spawn(async move { holds.pass("execute_job", Stage::Request).await })
        };
        assert!(
            holds
                .caught("execute_job", Stage::Request, 1, Duration::from_secs(5))
                .await
        );
        passer.abort();
        let _ = passer.await;
        assert_eq!(holds.list()[0].waiting, 0);
    }

    #[tokio::test]
    async fn idle_waits_for_requests_in_hand() {
        let holds = AnswerHolds::default();
        let busy = holds.enter("execute_job");
        assert!(!holds.idle("execute_job", Duration::from_millis(1)).await);
        assert!(
            holds
                .idle("fast_execute_script", Duration::from_millis(1))
                .await
        );
        drop(busy);
        assert!(holds.idle("execute_job", Duration::from_secs(5)).await);
    }
}
