//! The idle-memory measurement for one connection count: servers started,
//! RSS read, holders fill them with idle connections, RSS read again.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::holder::{HoldArgs, HolderEvent};
use crate::holder_proc::HolderProcess;
use crate::server_proc::{ServerConfig, ServerProcess};
use loadgen::plan;
use loadgen::proc_stats::Memory;

#[derive(Debug, Clone)]
pub struct IdleConfig {
    pub server: ServerConfig,
    /// Connections per server process at most.
    pub per_server: usize,
    /// Connections per holder process at most.
    pub per_holder: usize,
    /// Handshakes in flight per holder.
    pub concurrency: usize,
    pub connect_timeout: Duration,
    /// Wait between the last connection and the second RSS reading.
    pub settle: Duration,
    /// All holders must have finished connecting within this.
    pub establish_timeout: Duration,
    /// Hard bound on a holder's life.
    pub hold_deadline: Duration,
    /// `--source-ips` as given, passed on to the holders.
    pub source_ips: String,
    pub path: String,
    /// This bench's own executable, re-run as holders.
    pub holder_exe: PathBuf,
    /// Grace for servers to exit after SIGTERM.
    pub stop_timeout: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerSample {
    pub pid: u32,
    pub ws: SocketAddr,
    pub connections_assigned: usize,
    pub before: Memory,
    pub after: Memory,
}

/// The figures for one connection count.
#[derive(Debug, Clone, Serialize)]
pub struct CountResult {
    pub connections_requested: usize,
    pub connections_held: usize,
    pub connections_failed: usize,
    /// `chat_connections_open` summed over the servers after settling,
    /// when their metrics endpoints answered.
    pub server_reported_open: Option<u64>,
    pub servers: usize,
    pub holders: usize,
    pub server_rss_before_kb: u64,
    pub server_rss_after_kb: u64,
    pub server_anon_before_kb: u64,
    pub server_anon_after_kb: u64,
    /// (after − before) / held, VmRSS.
    pub server_bytes_per_conn_rss: f64,
    /// (after − before) / held, RssAnon.
    pub server_bytes_per_conn_anon: f64,
    pub holder_rss_start_kb: u64,
    pub holder_rss_after_kb: u64,
    pub holder_bytes_per_conn_rss: f64,
    pub holder_bytes_per_conn_anon: f64,
    /// From starting the holders until the last one had tried every
    /// connection.
    pub establish_secs: f64,
    pub connections_per_sec: f64,
    pub failures: BTreeMap<String, usize>,
    pub first_error: Option<String>,
    pub per_server: Vec<ServerSample>,
}

/// Bytes per connection from two kB readings; 0 without connections.
pub fn per_conn_bytes(before_kb: u64, after_kb: u64, conns: usize) -> f64 {
    if conns == 0 {
        return 0.0;
    }
    (after_kb as f64 - before_kb as f64) * 1024.0 / conns as f64
}

/// Measures `n` idle connections; every process it started is stopped
/// before it returns, whatever happened. A shortfall of connections is not
/// an error here: the result says how many were held and why not more.
pub async fn run_count(cfg: &IdleConfig, n: usize) -> anyhow::Result<CountResult> {
    let mut servers = Vec::new();
    let mut holders = Vec::new();
    let result = measure(cfg, n, &mut servers, &mut holders).await;
    for h in holders {
        h.stop(Duration::from_secs(10)).await;
    }
    for s in servers {
        let pid = s.pid();
        match s.stop(cfg.stop_timeout).await {
            Ok(status) if !status.success() => {
                tracing::warn!(pid, %status, "server exited unsuccessfully after SIGTERM")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(pid, "{e}"),
        }
    }
    result
}

async fn measure(
    cfg: &IdleConfig,
    n: usize,
    servers: &mut Vec<ServerProcess>,
    holders: &mut Vec<HolderProcess>,
) -> anyhow::Result<CountResult> {
    let n_servers = plan::processes_needed(n, cfg.per_server);
    for i in 0..n_servers {
        let s = ServerProcess::start(&cfg.server)
            .await
            .with_context(|| format!("starting server {} of {n_servers}", i + 1))?;
        tracing::info!(pid = s.pid(), ws = %s.ready.ws, "server ready");
        servers.push(s);
    }
    // let start-up allocations (worker threads, listeners) finish
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before: Vec<Memory> = servers
        .iter()
        .map(ServerProcess::memory)
        .collect::<Result<_, _>>()
        .context("reading server RSS before")?;
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.ready.ws).collect();

    let shares = plan::split(n, plan::processes_needed(n, cfg.per_holder));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let started = Instant::now();
    for (index, slice) in plan::slices(&shares).into_iter().enumerate() {
        let args = HoldArgs {
            servers: addrs.clone(),
            source_ips: cfg.source_ips.clone(),
            first: slice.first,
            count: slice.count,
            concurrency: cfg.concurrency,
            connect_timeout: cfg.connect_timeout,
            deadline: cfg.hold_deadline,
            path: cfg.path.clone(),
        };
        let h = HolderProcess::spawn(&cfg.holder_exe, &args, index, tx.clone())
            .with_context(|| format!("starting holder {index}"))?;
        holders.push(h);
    }
    drop(tx);

    let mut start_mem = vec![None; holders.len()];
    let mut held = vec![0usize; holders.len()];
    let mut failed = vec![0usize; holders.len()];
    let mut done = vec![false; holders.len()];
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    let mut first_error = None;
    let deadline = tokio::time::Instant::now() + cfg.establish_timeout;
    let mut last_log = Instant::now();
    while done.iter().any(|d| !d) {
        let msg = tokio::time::timeout_at(deadline, rx.recv()).await;
        let Ok(msg) = msg else {
            bail!(
                "connections not established within {:?}: {} held so far",
                cfg.establish_timeout,
                held.iter().sum::<usize>()
            );
        };
        let Some((i, event)) = msg else {
            bail!("every holder's output closed before it finished");
        };
        match event {
            None if !done[i] => {
                bail!("holder {i} exited before reporting (see its messages above)")
            }
            None => {}
            Some(HolderEvent::Started { memory }) => start_mem[i] = Some(memory),
            Some(HolderEvent::Progress {
                held: h, failed: f, ..
            }) => {
                held[i] = h;
                failed[i] = f;
            }
            Some(HolderEvent::Done {
                held: h,
                failed: f,
                errors,
                first_error: fe,
                ..
            }) => {
                held[i] = h;
                failed[i] = f;
                done[i] = true;
                for (kind, count) in errors {
                    *failures.entry(kind).or_default() += count;
                }
                if first_error.is_none() {
                    first_error = fe;
                }
            }
        }
        if last_log.elapsed() >= Duration::from_secs(2) {
            last_log = Instant::now();
            tracing::info!(
                held = held.iter().sum::<usize>(),
                failed = failed.iter().sum::<usize>(),
                of = n,
                "connecting"
            );
        }
    }
    let establish = started.elapsed();
    let total_held: usize = held.iter().sum();
    let total_failed: usize = failed.iter().sum();
    tracing::info!(
        held = total_held,
        failed = total_failed,
        secs = establish.as_secs_f64(),
        "established; settling for {:?}",
        cfg.settle
    );

    tokio::time::sleep(cfg.settle).await;
    if let Some(i) = holders.iter_mut().position(HolderProcess::has_exited) {
        bail!("holder {i} exited while holding its connections");
    }
    let after: Vec<Memory> = servers
        .iter()
        .map(ServerProcess::memory)
        .collect::<Result<_, _>>()
        .context("reading server RSS after")?;
    let holder_after: Vec<Memory> = holders
        .iter()
        .map(HolderProcess::memory)
        .collect::<Result<_, _>>()
        .context("reading holder RSS")?;
    // after the RSS readings: rendering metrics allocates in the server
    let mut server_reported_open = Some(0u64);
    for s in servers.iter() {
        let open = match s.ready.metrics {
            Some(addr) => crate::metrics_probe::fetch_value(
                addr,
                "chat_connections_open",
                Duration::from_secs(5),
            )
            .await
            .ok()
            .flatten(),
            None => None,
        };
        server_reported_open = server_reported_open.zip(open).map(|(a, b)| a + b as u64);
    }

    let sum = |m: &[Memory], f: fn(&Memory) -> u64| m.iter().map(f).sum::<u64>();
    let holder_start: Vec<Memory> = start_mem
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect();
    let per_server = servers
        .iter()
        .zip(before.iter().zip(&after))
        .enumerate()
        .map(|(i, (s, (b, a)))| ServerSample {
            pid: s.pid(),
            ws: s.ready.ws,
            connections_assigned: plan::round_robin_share(n, servers.len(), i),
            before: *b,
            after: *a,
        })
        .collect();
    Ok(CountResult {
        connections_requested: n,
        connections_held: total_held,
        connections_failed: total_failed,
        server_reported_open,
        servers: servers.len(),
        holders: holders.len(),
        server_rss_before_kb: sum(&before, rss),
        server_rss_after_kb: sum(&after, rss),
        server_anon_before_kb: sum(&before, anon),
        server_anon_after_kb: sum(&after, anon),
        server_bytes_per_conn_rss: per_conn_bytes(sum(&before, rss), sum(&after, rss), total_held),
        server_bytes_per_conn_anon: per_conn_bytes(
            sum(&before, anon),
            sum(&after, anon),
            total_held,
        ),
        holder_rss_start_kb: sum(&holder_start, rss),
        holder_rss_after_kb: sum(&holder_after, rss),
        holder_bytes_per_conn_rss: per_conn_bytes(
            sum(&holder_start, rss),
            sum(&holder_after, rss),
            total_held,
        ),
        holder_bytes_per_conn_anon: per_conn_bytes(
            sum(&holder_start, anon),
            sum(&holder_after, anon),
            total_held,
        ),
        establish_secs: establish.as_secs_f64(),
        connections_per_sec: if establish.is_zero() {
            0.0
        } else {
            total_held as f64 / establish.as_secs_f64()
        },
        failures,
        first_error,
        per_server,
    })
}

fn rss(m: &Memory) -> u64 {
    m.vm_rss_kb
}

fn anon(m: &Memory) -> u64 {
    m.rss_anon_kb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_conn_bytes_handles_growth_shrink_and_zero() {
        assert_eq!(per_conn_bytes(1000, 2000, 1024), 1000.0);
        assert_eq!(per_conn_bytes(2000, 1000, 1024), -1000.0);
        assert_eq!(per_conn_bytes(1000, 2000, 0), 0.0);
    }
}
