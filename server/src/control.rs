//! The control thread: closes idle connections, serves metrics, and runs
//! the shutdown drain. Idle timeouts live here, not in each connection, so
//! a connection carries no timer.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::{info, warn};

use crate::metrics::{self, CloseReason};
use crate::shared::Shared;
use crate::Phase;

pub async fn run(
    shared: Arc<Shared>,
    phase_tx: watch::Sender<Phase>,
    metrics_listener: Option<std::net::TcpListener>,
) {
    let mut phase = phase_tx.subscribe();
    let (stop_metrics, metrics_stop) = watch::channel(false);
    if let Some(listener) = metrics_listener {
        match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => {
                tokio::spawn(metrics::serve(listener, metrics_stop));
            }
            Err(e) => warn!("metrics listener unusable: {e}"),
        }
    }

    // Sweeping every quarter of the timeout closes an idle connection
    // between 1× and 1.25× the timeout.
    let idle = shared.limits.idle_timeout;
    let every = (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                sweep_idle(&shared, idle);
                metrics::upkeep();
            }
            _ = phase.wait_for(|p| *p != Phase::Running) => break,
        }
    }

    if *phase.borrow() == Phase::Draining {
        drain(&shared).await;
    }
    let _ = stop_metrics.send(true);
    let _ = phase_tx.send(Phase::Stopped);
}

fn sweep_idle(shared: &Shared, idle: Duration) {
    let now = shared.now_ms();
    let idle_ms = idle.as_millis() as u64;
    for conn in shared.conns.iter() {
        if now.saturating_sub(conn.last_seen()) > idle_ms {
            conn.close(CloseReason::IdleTimeout);
        }
    }
}

/// Sends close 1001 to every connection and waits for them to go, up to the
/// drain timeout. Repeated, because an upgrade may finish during the drain.
async fn drain(shared: &Shared) {
    shared.draining.store(true, Ordering::Relaxed);
    let open = shared.conns.len();
    info!(open, timeout = ?shared.limits.drain_timeout, "draining connections");
    let deadline = Instant::now() + shared.limits.drain_timeout;
    while Instant::now() < deadline {
        for conn in shared.conns.iter() {
            conn.close(CloseReason::Shutdown);
        }
        if shared.conns.is_empty() {
            info!("all connections closed");
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    warn!(
        left = shared.conns.len(),
        "drain timeout: dropping the connections still open"
    );
}
