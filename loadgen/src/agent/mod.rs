//! `loadgen agent`: the same load generator, driven by a coordinator over
//! the control channel (`crate::control`) instead of the command line.
//!
//! Security: every control connection must present the token
//! (`Authorization: Bearer TOKEN`, compared in constant time) or it gets
//! 401 before any order is read; targets are checked against
//! `--allow-target` (loopback by default) after name resolution; options
//! that would touch the agent's own files or ports (`json`,
//! `metrics_listen`) are ignored. One coordinator at a time: a second
//! control connection gets 409 while a session is open.

mod allow;
mod session;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
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

    /// Worker threads per process [default: one per core].
    #[arg(long, env = "LOADGEN_THREADS")]
    pub threads: Option<usize>,
}

/// What every session needs to know.
pub(crate) struct Shared {
    token: String,
    allow: Vec<Allowed>,
    info: AgentInfo,
    threads: Option<usize>,
    busy: AtomicBool,
}

/// The line the agent prints on stdout once it listens.
pub fn ready_line(addr: SocketAddr) -> String {
    format!("agent listening control={addr}")
}

/// Parses [`ready_line`] back (for whoever started the agent on port 0).
pub fn parse_ready_line(line: &str) -> Option<SocketAddr> {
    line.trim()
        .strip_prefix("agent listening control=")?
        .parse()
        .ok()
}

/// Serves control sessions on `listener` until `shutdown` turns true; a
/// running phase is stopped and reported before a session ends.
pub async fn serve(
    listener: TcpListener,
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
        },
        allow,
        threads: opts.threads,
        busy: AtomicBool::new(false),
    });
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(parse_ready_line(&ready_line(addr)), Some(addr));
        assert_eq!(parse_ready_line("listening ws=1"), None);
    }
}
