//! Workers: one OS thread per core, each with its own single-threaded
//! runtime and its own listener. A connection lives on the worker that
//! accepted it; only the room registry and the outboxes are shared.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::warn;

use crate::shared::Shared;
use crate::{session, Phase};

pub fn spawn(
    index: usize,
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    phase: watch::Receiver<Phase>,
    core: Option<core_affinity::CoreId>,
) -> io::Result<std::thread::JoinHandle<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name(format!("worker-{index}"))
        .spawn(move || {
            if let Some(core) = core {
                if !core_affinity::set_for_current(core) {
                    warn!(
                        worker = index,
                        core = core.id,
                        "could not pin worker to core"
                    );
                }
            }
            runtime.block_on(async move {
                match TcpListener::from_std(listener) {
                    Ok(listener) => accept_loop(listener, shared, phase.clone()).await,
                    Err(e) => warn!(worker = index, "listener unusable: {e}"),
                }
                // Existing connections drain until the control thread says stop.
                let mut phase = phase;
                let _ = phase.wait_for(|p| *p == Phase::Stopped).await;
            });
            // Dropping the runtime cancels whatever connections remain.
        })
}

/// Per-socket options; failures only cost performance, so they are logged.
fn tune(stream: &tokio::net::TcpStream, shared: &Shared) {
    let sock = socket2::SockRef::from(stream);
    let mut result = sock.set_tcp_nodelay(true);
    if let Some(bytes) = shared.limits.socket_send_buffer {
        result = result.and(sock.set_send_buffer_size(bytes));
    }
    if let Some(bytes) = shared.limits.socket_recv_buffer {
        result = result.and(sock.set_recv_buffer_size(bytes));
    }
    if let Err(e) = result {
        tracing::debug!("socket options: {e}");
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
) {
    let mut last_warning: Option<Instant> = None;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tune(&stream, &shared);
                    tokio::spawn(session::serve(stream, shared.clone()));
                }
                Err(e) => {
                    // Out of file descriptors: back off instead of spinning.
                    if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(5)) {
                        warn!("accept failed: {e} ({} connections open)", shared.open_connections());
                        last_warning = Some(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            _ = phase.wait_for(|p| *p != Phase::Running) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::Limits;

    /// `accept_loop` runs `tune` on every accepted socket: Nagle's delay
    /// would hold back the small frames of a chat by up to 40 ms (delayed
    /// ACK), so TCP_NODELAY is part of the latency design.
    #[tokio::test]
    async fn tune_sets_tcp_nodelay_and_the_configured_buffer() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) =
            tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        let (_client, (stream, _)) = (client.unwrap(), accepted.unwrap());
        let sock = socket2::SockRef::from(&stream);
        assert!(!sock.tcp_nodelay().unwrap(), "the kernel default is off");

        let mut opts = crate::Opts::defaults();
        opts.socket_send_buffer = Some(48 * 1024);
        tune(&stream, &Shared::new(Limits::from_opts(&opts, 10), 2));
        assert!(sock.tcp_nodelay().unwrap(), "TCP_NODELAY not set");
        // Linux doubles the value asked for (bookkeeping overhead).
        assert!(sock.send_buffer_size().unwrap() >= 48 * 1024);
    }
}
