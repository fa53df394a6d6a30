//! Ctrl-C and SIGTERM during a run: the first cancels the run's interrupt token (steps
//! terminate their instances, or leave them with `--detach`), the second exits at once.
//! [`watch`] is the one watcher; [`next_signal`] waits for either signal.

use tokio_util::sync::CancellationToken;

use super::events::{EventSink, RunEvent};

/// First Ctrl-C / SIGTERM: cancel (steps terminate or leave their instances); second:
/// exit at once with `exit_code`.
pub async fn watch(interrupt: CancellationToken, sink: EventSink, detach: bool, exit_code: u8) {
    let mut received = 0u32;
    loop {
        if !next_signal().await {
            return;
        }
        received += 1;
        if received == 1 {
            let action = if detach {
                "leaving running JOB instances running (--detach); stopping"
            } else {
                "terminating running JOB instances (press Ctrl-C again to exit at once)"
            };
            eprintln!("baton: interrupted: {action}");
            sink.emit(RunEvent::Interrupted {
                action: action.into(),
            });
            interrupt.cancel();
        } else {
            eprintln!(
                "baton: interrupted again: exiting now; running instances may be left running"
            );
            std::process::exit(i32::from(exit_code));
        }
    }
}

/// Waits for SIGINT or SIGTERM; `false` if signals cannot be watched.
pub async fn next_signal() -> bool {
    #[cfg(unix)]
    {
        use std::sync::OnceLock;
        use tokio::signal::unix::{SignalKind, signal};
        // Registered once: re-registering per wait could miss a signal in between.
        static STREAMS: OnceLock<
            tokio::sync::Mutex<Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>>,
        > = OnceLock::new();
        let streams = STREAMS.get_or_init(|| {
            let pair = match (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) {
                (Ok(a), Ok(b)) => Some((a, b)),
                _ => None,
            };
            tokio::sync::Mutex::new(pair)
        });
        let mut guard = streams.lock().await;
        let Some((int, term)) = guard.as_mut() else {
            return false;
        };
        tokio::select! {
            s = int.recv() => s.is_some(),
            s = term.recv() => s.is_some(),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.is_ok()
    }
}
