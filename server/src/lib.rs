//! A WebSocket chat server built to hold a million connections on one node.
//!
//! Layout: `listener` binds one SO_REUSEPORT socket per `worker`; a worker
//! accepts, runs the `upgrade`, then `session` drives the connection (the
//! hot path) and `chat` gives messages their meaning; `rooms` and
//! `broadcast` fan messages out through each recipient's `conn` outbox;
//! `control` sweeps idle connections, serves `metrics` and drains at
//! shutdown. With `--echo`, an upgrade to `/echo` is served by `echo`
//! instead of `session` (for the Autobahn conformance test).
//!
//! The server is a library so tests and benchmarks can run it in-process on
//! an ephemeral port: [`Server::bind`] then [`Server::start`].

mod broadcast;
mod chat;
pub mod config;
mod conn;
mod control;
mod echo;
pub mod health;
pub mod limits;
mod listener;
pub mod metrics;
pub mod ready;
mod rooms;
mod session;
mod shared;
mod upgrade;
mod worker;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::watch;
use tracing::info;

pub use config::Opts;
pub use ready::ReadyLine;
use shared::{Limits, Shared};

/// Where the server is in its life. Workers accept while `Running`, serve
/// existing connections while `Draining`, and exit at `Stopped`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Running,
    Draining,
    Stopped,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("invalid options: {0}")]
    Config(#[from] config::ConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("cannot start worker threads: {0}")]
    Spawn(io::Error),
}

/// A server with its sockets bound, not yet serving.
pub struct Server {
    opts: Opts,
    listeners: Vec<std::net::TcpListener>,
    metrics_listener: Option<std::net::TcpListener>,
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
}

impl Server {
    /// Validates the options, raises the open-file limit and binds the
    /// listeners (port 0 picks a free port).
    pub fn bind(opts: Opts) -> Result<Server, ServerError> {
        opts.validate()?;
        let workers = opts.worker_count();
        let bind_err = |addr| move |source| ServerError::Bind { addr, source };
        let listeners = listener::bind_reuseport(opts.listen, workers, opts.backlog)
            .map_err(bind_err(opts.listen))?;
        let local_addr = listeners[0].local_addr().map_err(bind_err(opts.listen))?;
        let metrics_listener = if opts.no_metrics {
            None
        } else {
            Some(listener::bind_plain(opts.metrics_listen).map_err(bind_err(opts.metrics_listen))?)
        };
        let metrics_addr = metrics_listener
            .as_ref()
            .map(|l| l.local_addr())
            .transpose()
            .map_err(bind_err(opts.metrics_listen))?;
        Ok(Server {
            opts,
            listeners,
            metrics_listener,
            local_addr,
            metrics_addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The line announcing the bound addresses.
    pub fn ready_line(&self) -> ReadyLine {
        ReadyLine {
            ws: self.local_addr,
            metrics: self.metrics_addr,
        }
    }

    /// Starts the workers and the control thread.
    pub fn start(self) -> Result<ServerHandle, ServerError> {
        let nofile = limits::raise_nofile();
        let max_connections = limits::effective_max_connections(self.opts.max_connections, nofile);
        let workers = self.listeners.len();
        let shards = self
            .opts
            .room_shards
            .unwrap_or(workers * 4)
            .max(2)
            .next_power_of_two();
        let shared = Arc::new(Shared::new(
            Limits::from_opts(&self.opts, max_connections),
            shards,
        ));
        let (phase_tx, phase_rx) = watch::channel(Phase::Running);
        let cores = if self.opts.pin_cores {
            core_affinity::get_core_ids().unwrap_or_default()
        } else {
            Vec::new()
        };

        let mut threads = Vec::with_capacity(workers + 1);
        for (index, listener) in self.listeners.into_iter().enumerate() {
            let core = (!cores.is_empty()).then(|| cores[index % cores.len()]);
            threads.push(
                worker::spawn(index, listener, shared.clone(), phase_rx.clone(), core)
                    .map_err(ServerError::Spawn)?,
            );
        }
        let control_rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ServerError::Spawn)?;
        let control_shared = shared.clone();
        let control_tx = phase_tx.clone();
        let metrics_listener = self.metrics_listener;
        threads.push(
            std::thread::Builder::new()
                .name("control".into())
                .spawn(move || {
                    control_rt.block_on(control::run(control_shared, control_tx, metrics_listener))
                })
                .map_err(ServerError::Spawn)?,
        );
        info!(
            addr = %self.local_addr,
            metrics = ?self.metrics_addr,
            workers,
            pinned = !cores.is_empty(),
            max_connections,
            "serving"
        );
        Ok(ServerHandle {
            phase: phase_tx,
            threads,
            shared,
            local_addr: self.local_addr,
            metrics_addr: self.metrics_addr,
        })
    }
}

/// A running server. Dropping it stops the server without a drain.
pub struct ServerHandle {
    phase: watch::Sender<Phase>,
    threads: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
}

impl ServerHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    pub fn open_connections(&self) -> usize {
        self.shared.conns.len()
    }

    /// Begins the graceful shutdown: stop accepting, close every connection
    /// with 1001, stop when they are gone or the drain timeout passes.
    pub fn shutdown(&self) {
        self.phase.send_if_modified(|p| {
            if *p == Phase::Running {
                *p = Phase::Draining;
                true
            } else {
                false
            }
        });
    }

    /// Waits (blocking) until every thread has exited.
    pub fn wait(mut self) {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    /// Waits until the server has stopped, from async code.
    pub async fn stopped(&self) {
        let mut rx = self.phase.subscribe();
        let _ = rx.wait_for(|p| *p == Phase::Stopped).await;
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.phase.send_replace(Phase::Stopped);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
