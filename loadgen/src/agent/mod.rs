//! `loadgen agent`: the same load generator, driven by a coordinator over
//! the control channel (`crate::control`) instead of the command line.
//!
//! Security: every control connection must present the token
//! (`Authorization: Bearer TOKEN`, compared in constant time) or it gets
//! 401 before any order is read; targets are checked against
//! `--allow-target` (loopback by default) after name resolution; options
//! that would touch the agent's own files or ports (`json`,
//! `metrics_listen`) are ignored, and `ca_file` never crosses at all: a
//! scenario's CA arrives as `ca_pem`, the certificates the coordinator
//! read, which only add trusted roots for this job's own connections.
//! One coordinator at a time: a second
//! control connection gets 409 while a session is open.

mod allow;
mod session;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tracing::{info, warn};

pub use allow::{refused as refused_target, AllowError, Allowed, DEFAULT as DEFAULT_ALLOW};

use crate::control::{self, AgentInfo};
use crate::prometheus::Snapshot;

#[derive(Debug, Clone, Args)]
pub struct AgentOpts {
    /// Address of the control endpoint (ws://ADDR/control). Port 0 picks a
    /// free port; the ready line on stdout says which.
    #[arg(long, env = "LOADGEN_AGENT_LISTEN", default_value = "127.0.0.1:7070")]
    pub listen: SocketAddr,

    /// Shared secret the coordinator must present on every control
    /// connection (Authorization: Bearer TOKEN).
    #[arg(long, env = "LOADGEN_AGENT_TOKEN", hide_env_values = true)]
    pub token: String,

    /// Hosts this agent may load: address blocks (10.0.0.0/8), addresses,
    /// or host names as written in target URLs; comma-separated.
    #[arg(long, env = "LOADGEN_ALLOW_TARGET", default_value = allow::DEFAULT)]
    pub allow_target: String,

    /// Name in the coordinator's reports [default: the host name].
    #[arg(long, env = "LOADGEN_AGENT_NAME")]
    pub name: Option<String>,

    /// Worker threads per process, 1 to 1024 [default: one per core].
    #[arg(long, env = "LOADGEN_THREADS", value_parser = parse_threads)]
    pub threads: Option<usize>,

    /// Serve Prometheus metrics on http://ADDR/metrics for as long as the
    /// agent lives: the running (or last) phase's figures, the agent's
    /// state and its process figures.
    #[arg(long, env = "LOADGEN_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}

/// What every session needs to know.
pub(crate) struct Shared {
    token: String,
    allow: Vec<Allowed>,
    info: AgentInfo,
    threads: Option<usize>,
    busy: AtomicBool,
    /// The running phase's number + 1; 0 when idle.
    phase: AtomicUsize,
    phases_run: AtomicUsize,
    snapshot: Snapshot,
}

/// The line the agent prints on stdout once it listens:
/// `agent listening control=ADDR metrics=ADDR|off`.
pub fn ready_line(control: SocketAddr, metrics: Option<SocketAddr>) -> String {
    match metrics {
        Some(m) => format!("agent listening control={control} metrics={m}"),
        None => format!("agent listening control={control} metrics=off"),
    }
}

/// Parses [`ready_line`] back (for whoever started the agent on port 0):
/// the control address and the metrics address, if any.
pub fn parse_ready_line(line: &str) -> Option<(SocketAddr, Option<SocketAddr>)> {
    let rest = line.trim().strip_prefix("agent listening control=")?;
    let (control, metrics) = match rest.split_once(" metrics=") {
        Some((c, "off")) => (c, None),
        Some((c, m)) => (c, Some(m.parse().ok()?)),
        None => (rest, None),
    };
    Some((control.parse().ok()?, metrics))
}

/// The agent's own figures, then the phase's and the process's.
fn render_metrics(shared: &Shared) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let name = promhttp::escape_label_value(&shared.info.name);
    let _ = write!(
        out,
        "# HELP loadgen_agent_info This agent.\n# TYPE loadgen_agent_info gauge\nloadgen_agent_info{{name=\"{name}\",version=\"{}\"}} 1\n\
         # HELP loadgen_agent_phase Number of the phase running now (1-based); 0 when idle.\n# TYPE loadgen_agent_phase gauge\nloadgen_agent_phase {}\n\
         # HELP loadgen_agent_phases_total Phases this agent has started.\n# TYPE loadgen_agent_phases_total counter\nloadgen_agent_phases_total {}\n\
         # HELP loadgen_agent_busy Whether a coordinator is connected.\n# TYPE loadgen_agent_busy gauge\nloadgen_agent_busy {}\n\
         # HELP loadgen_agent_cores CPU cores this agent may use: its CPU seconds per second above 0.9 of this mean it is saturated.\n# TYPE loadgen_agent_cores gauge\nloadgen_agent_cores {}\n",
        shared.info.build,
        shared.phase.load(Ordering::Relaxed),
        shared.phases_run.load(Ordering::Relaxed),
        u8::from(shared.busy.load(Ordering::Relaxed)),
        shared.info.cores,
    );
    shared.snapshot.render(&mut out);
    promhttp::process::render(promhttp::process::Scope::WithChildren, &mut out);
    out
}

/// Serves control sessions on `listener` until `shutdown` turns true; a
/// running phase is stopped and reported before a session ends.
pub async fn serve(
    listener: TcpListener,
    metrics: Option<TcpListener>,
    opts: &AgentOpts,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    if opts.token.is_empty() {
        anyhow::bail!("--token is empty: the agent needs a secret shared with the coordinator");
    }
    if opts.token.len() < 16 {
        warn!(
            "the agent token is shorter than 16 characters: fine on loopback, weak anywhere else"
        );
    }
    let allow = Allowed::parse_list(&opts.allow_target)?;
    let nofile = crate::capacity::raise_nofile();
    let port_range = crate::capacity::local_port_range().unwrap_or((32768, 60999));
    let shared = Arc::new(Shared {
        token: opts.token.clone(),
        info: AgentInfo {
            name: opts.name.clone().unwrap_or_else(host_name),
            version: control::VERSION,
            build: env!("CARGO_PKG_VERSION").to_string(),
            nofile,
            port_range,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            allow_target: allow.iter().map(|a| a.to_string()).collect(),
            boot_id: crate::clock::boot_id(),
        },
        allow,
        threads: opts.threads,
        busy: AtomicBool::new(false),
        phase: AtomicUsize::new(0),
        phases_run: AtomicUsize::new(0),
        snapshot: Snapshot::default(),
    });
    if let Some(listener) = metrics {
        let shared = shared.clone();
        tokio::spawn(promhttp::serve(listener, shutdown.clone(), move || {
            render_metrics(&shared)
        }));
    }
    info!(addr = %listener.local_addr()?, name = %shared.info.name, allow = %opts.allow_target, "agent ready");
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        warn!("accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let shared = shared.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    if let Err(e) = handle(stream, peer, shared, shutdown).await {
                        info!(%peer, "control connection ended: {e:#}");
                    }
                });
            }
            _ = shutdown.changed() => {
                // Sessions see the same signal and stop their phase.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                while shared.busy.load(Ordering::Acquire) {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                return Ok(());
            }
        }
    }
}

async fn handle(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut claimed = false;
    // The Err type is fixed by tungstenite's handshake callback.
    #[allow(clippy::result_large_err)]
    let check = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        if req.uri().path() != control::PATH {
            return Err(refuse(
                StatusCode::NOT_FOUND,
                "the control endpoint is /control",
            ));
        }
        let presented = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !same_secret(presented.as_bytes(), shared.token.as_bytes()) {
            warn!(%peer, "control connection refused: missing or wrong token");
            return Err(refuse(
                StatusCode::UNAUTHORIZED,
                "missing or wrong agent token",
            ));
        }
        if shared.busy.swap(true, Ordering::AcqRel) {
            return Err(refuse(
                StatusCode::CONFLICT,
                "another coordinator is driving this agent",
            ));
        }
        claimed = true;
        Ok(resp)
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(control::MAX_FRAME_BYTES))
        .max_frame_size(Some(control::MAX_FRAME_BYTES));
    let accepted = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio_tungstenite::accept_hdr_async_with_config(stream, check, Some(config)),
    )
    .await;
    let ws = match accepted {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            if claimed {
                shared.busy.store(false, Ordering::Release);
            }
            return Err(e).context("control handshake");
        }
        Err(_) => {
            if claimed {
                shared.busy.store(false, Ordering::Release);
            }
            anyhow::bail!("control handshake timed out");
        }
    };
    info!(%peer, "coordinator connected");
    let result = session::run(ws, &shared, shutdown).await;
    shared.busy.store(false, Ordering::Release);
    info!(%peer, "coordinator disconnected");
    result
}

#[allow(clippy::result_large_err)]
fn refuse(status: StatusCode, why: &str) -> ErrorResponse {
    let mut resp = ErrorResponse::new(Some(format!("{why}\n")));
    *resp.status_mut() = status;
    resp
}

/// Compares without an early exit, so timing does not reveal how much of
/// a guessed token was right.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for (i, &x) in b.iter().enumerate() {
        diff |= x ^ a.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "agent".to_string())
}

/// `--threads` within the same bounds as `loadgen run --threads`.
fn parse_threads(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) => crate::opts::limits::threads(n),
        Err(_) => Err(format!(
            "must be 1 to {}, not {s}",
            crate::opts::limits::MAX_THREADS
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_bounded_like_loadgen_run() {
        assert_eq!(parse_threads("4"), Ok(4));
        assert_eq!(parse_threads("1024"), Ok(1024));
        for bad in ["0", "100000", "-1", "many"] {
            let e = parse_threads(bad).unwrap_err();
            assert_eq!(e, format!("must be 1 to 1024, not {bad}"));
        }
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abd", b"abc"));
        assert!(!same_secret(b"ab", b"abc"));
        assert!(!same_secret(b"abcd", b"abc"));
        assert!(!same_secret(b"", b"abc"));
    }

    #[test]
    fn ready_line_round_trips() {
        let addr: SocketAddr = "127.0.0.1:4567".parse().unwrap();
        let m: SocketAddr = "127.0.0.1:9091".parse().unwrap();
        assert_eq!(
            parse_ready_line(&ready_line(addr, None)),
            Some((addr, None))
        );
        assert_eq!(
            parse_ready_line(&ready_line(addr, Some(m))),
            Some((addr, Some(m)))
        );
        assert_eq!(parse_ready_line("listening ws=1"), None);
        assert_eq!(
            parse_ready_line("agent listening control=x metrics=off"),
            None
        );
    }
}
