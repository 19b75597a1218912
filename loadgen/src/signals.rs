//! Stopping on a signal. SIGINT (Ctrl-C) and SIGTERM (`docker stop`,
//! systemd, `timeout`, Kubernetes) mean the same here: stop now and keep
//! what was measured, so connections close politely, the summary and the
//! reports are written and the exit status says the run was cut short.
//! It lives in one place so that `loadgen run`, its worker processes,
//! `loadgen agent` and the coordinator treat both signals alike.
//!
//! Only the first signal counts. Once [`StopSignals::listen`] has installed
//! the handlers, neither signal kills the process any more (tokio never
//! uninstalls a handler): a second one is logged and changes nothing,
//! because the wind-down has its own deadlines and cutting it short would
//! lose the results it exists to save. SIGKILL still ends a process at once.

use std::fmt;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;
use tracing::info;

/// The signal that asked for the stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGINT: Ctrl-C in a terminal.
    Interrupt,
    /// SIGTERM: `kill`, `docker stop`, systemd, `timeout`.
    Terminate,
}

impl StopSignal {
    /// The name users know it by ("SIGTERM"), for messages.
    pub fn name(self) -> &'static str {
        match self {
            StopSignal::Interrupt => "SIGINT",
            StopSignal::Terminate => "SIGTERM",
        }
    }
}

impl fmt::Display for StopSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The first SIGINT or SIGTERM since [`StopSignals::listen`], seen two
/// ways: as a flag for code that only needs to know whether to stop (the
/// engine), and as the signal itself for code that says which one came.
#[derive(Debug, Clone)]
pub struct StopSignals {
    which: watch::Receiver<Option<StopSignal>>,
    flag: watch::Receiver<bool>,
}

impl StopSignals {
    /// Installs the SIGINT and SIGTERM handlers now, before returning, so
    /// that a signal arriving right after (say, just after an agent's ready
    /// line) is caught rather than killing the process. Must be called
    /// inside a tokio runtime.
    pub fn listen() -> std::io::Result<StopSignals> {
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let (which_tx, which) = watch::channel(None);
        let (flag_tx, flag) = watch::channel(false);
        tokio::spawn(async move {
            if let Some(first) = next(&mut interrupt, &mut terminate).await {
                info!(signal = %first, "stopping: what was measured so far is kept");
                // The signal first, so whoever wakes on the flag can name it.
                let _ = which_tx.send(Some(first));
                let _ = flag_tx.send(true);
                while let Some(again) = next(&mut interrupt, &mut terminate).await {
                    info!(signal = %again, "already stopping: the wind-down has its own deadlines (SIGKILL ends it now)");
                }
            }
            // Keep the senders: a dropped one makes every `changed()`
            // resolve at once, which the engine would take for a stop.
            let _keep = (which_tx, flag_tx);
            std::future::pending::<()>().await;
        });
        Ok(StopSignals { which, flag })
    }

    /// Turns true at the first signal (what `engine::run` takes as `stop`).
    pub fn flag(&self) -> watch::Receiver<bool> {
        self.flag.clone()
    }

    /// Turns from `None` to the first signal when it comes.
    pub fn watch(&self) -> watch::Receiver<Option<StopSignal>> {
        self.which.clone()
    }

    /// The signal that came, if one has.
    pub fn received(&self) -> Option<StopSignal> {
        *self.which.borrow()
    }
}

/// The next SIGINT or SIGTERM; `None` once the runtime's signal driver is
/// gone (the runtime is shutting down).
async fn next(interrupt: &mut Signal, terminate: &mut Signal) -> Option<StopSignal> {
    tokio::select! {
        Some(()) = interrupt.recv() => Some(StopSignal::Interrupt),
        Some(()) = terminate.recv() => Some(StopSignal::Terminate),
        else => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_named_as_users_know_them() {
        assert_eq!(StopSignal::Interrupt.to_string(), "SIGINT");
        assert_eq!(StopSignal::Terminate.to_string(), "SIGTERM");
    }

    /// SIGTERM sent to this very test process: caught, named, and a second
    /// one changes nothing (the process lives on to finish the test).
    #[tokio::test]
    async fn sigterm_is_caught_and_named() {
        let signals = StopSignals::listen().expect("installing the handlers");
        let mut flag = signals.flag();
        assert_eq!(signals.received(), None);
        for _ in 0..2 {
            // SAFETY: kill(2) on this process, whose SIGTERM handler is
            // installed above.
            unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
        }
        tokio::time::timeout(std::time::Duration::from_secs(5), flag.wait_for(|&s| s))
            .await
            .expect("the flag turns within 5 s")
            .expect("the sender lives");
        assert_eq!(signals.received(), Some(StopSignal::Terminate));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(signals.received(), Some(StopSignal::Terminate));
        assert!(flag.has_changed().is_ok(), "the senders are kept");
    }
}
