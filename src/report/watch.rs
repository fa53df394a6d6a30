//! The fan-out of `RunEvent`s to watchers: one task reads the engine's channel and
//! hands each event to every watcher in turn, then to the run record.

use tokio::sync::mpsc::UnboundedReceiver;

use crate::executor::events::RunEvent;

use super::summary::RunRecord;

/// Something that watches a run.
pub trait Watcher: Send {
    /// Sees one event.
    fn on_event(&mut self, event: &RunEvent);
    /// The run is over; release the terminal.
    fn finish(&mut self) {}
}

/// Feeds every event to `watchers` until the engine drops its sinks, and returns the
/// assembled record.
pub async fn watch(
    mut events: UnboundedReceiver<RunEvent>,
    mut watchers: Vec<Box<dyn Watcher>>,
) -> RunRecord {
    let mut record = RunRecord::default();
    while let Some(event) = events.recv().await {
        for watcher in watchers.iter_mut() {
            watcher.on_event(&event);
        }
        record.apply(&event);
    }
    for watcher in watchers.iter_mut() {
        watcher.finish();
    }
    record
}
