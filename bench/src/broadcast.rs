//! The broadcast measurement: rooms of chat connections, a few senders per
//! room on an open-model timetable, every copy timed against its scheduled
//! send time. The clients are the load generator's own (`loadgen::engine`
//! with its chat workload), so the bench and loadgen measure the same way;
//! this module adds what a server benchmark needs around them: a fixed
//! room shape, the server's CPU and memory, and the accounting of every
//! copy the server owed.
//!
//! Open model: a sender's k-th message is due at a fixed time whatever
//! happened to the previous ones, and its latency counts from that due
//! time. A server (or a bench) that stalls therefore shows up as latency
//! instead of silently lowering the offered load (coordinated omission).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use loadgen::engine::{self, Plan};
use loadgen::opts::{Cli, RunOpts};
use loadgen::proc_stats::{CpuMeter, Memory};
use loadgen::stats::{Latency, LatencyHistogram, Totals};
use protocol::Proto;
use serde::Serialize;
use tokio::sync::watch;

use crate::server_proc::{ServerConfig, ServerProcess};

#[derive(Debug, Clone)]
pub struct BroadcastConfig {
    pub rooms: usize,
    pub members: usize,
    /// Senders per room.
    pub senders: usize,
    /// Messages per second per sender.
    pub rate: f64,
    /// Payload bytes per message.
    pub size: usize,
    /// Time allowed for connecting: sending starts once every member is
    /// connected and ends `warmup + duration` after the start.
    pub warmup: Duration,
    pub duration: Duration,
    /// How long to wait after the last send for copies still in flight.
    pub drain: Duration,
    pub proto: Proto,
    /// Empty: the kernel picks the source address.
    pub source_ips: Vec<IpAddr>,
    pub connect_timeout: Duration,
    /// Upgrades in flight while connecting.
    pub concurrency: usize,
}

impl BroadcastConfig {
    pub fn connections(&self) -> usize {
        self.rooms * self.members
    }

    /// The run as `loadgen run` options: `members` connections in each of
    /// `rooms` rooms, `senders` of each room sending. Parsed by loadgen's
    /// own command line, so its checks and defaults apply.
    pub fn run_opts(&self, server: SocketAddr) -> anyhow::Result<RunOpts> {
        if self.rooms == 0 || self.members == 0 {
            bail!("--rooms and --members must be at least 1");
        }
        if self.senders > self.members {
            bail!(
                "--senders ({}) exceeds --members ({})",
                self.senders,
                self.members
            );
        }
        if self.duration.is_zero() {
            bail!("--duration must be above zero");
        }
        let sources: Vec<String> = self.source_ips.iter().map(IpAddr::to_string).collect();
        let mut args: Vec<String> = [
            "loadgen",
            "run",
            &format!("ws://{server}/"),
            "--workload",
            match self.proto {
                Proto::Binary => "chat-binary",
                Proto::Json => "chat-json",
            },
            "--connections",
            &self.connections().to_string(),
            "--rooms",
            &self.rooms.to_string(),
            // Each room's share of senders is exact when it is whole:
            // members × (senders / members) = senders.
            "--chatters",
            &(self.senders as f64 / self.members as f64).to_string(),
            "--rate",
            &self.rate.to_string(),
            "--size",
            &self.size.to_string(),
            "--duration",
            &humantime::format_duration(self.warmup + self.duration).to_string(),
            "--drain",
            &humantime::format_duration(self.drain).to_string(),
            "--connect-timeout",
            &humantime::format_duration(self.connect_timeout).to_string(),
            "--ramp",
            "0",
            "--max-inflight",
            &self.concurrency.max(1).to_string(),
            "--processes",
            "1",
            "--progress",
            "never",
            "--room-prefix",
            "bench-",
            // The room in the upgrade URL, as the server (and the mock of
            // the bench's tests) read it: no join message to time around.
            "--join",
            "url",
        ]
        .map(String::from)
        .to_vec();
        if !sources.is_empty() {
            args.push("--source-ips".into());
            args.push(sources.join(","));
        }
        let cli = Cli::try_parse_from(&args).context("building the load generator's options")?;
        cli.into_run().map_err(|e| anyhow::anyhow!("{e}"))
    }
}

/// Everything the report needs.
#[derive(Debug, Clone, Serialize)]
pub struct BroadcastResult {
    pub connections: usize,
    /// Connections open when every member had connected.
    pub held: u64,
    pub senders_total: usize,
    /// How long the ramp took, every member connected and in its room.
    pub connect_secs: f64,
    /// How long senders sent; every rate is per second of this.
    pub sending_secs: f64,
    pub sent: u64,
    pub sent_per_sec: f64,
    /// Offered: senders × rate.
    pub offered_per_sec: f64,
    /// Copies the server owed: every message to every member of its room,
    /// the sender included.
    pub expected_deliveries: u64,
    /// Copies received by the end of the drain.
    pub received_deliveries: u64,
    pub lost: i64,
    pub delivered_per_sec: f64,
    /// Percentiles in ms, with the HDR histogram (base64), mergeable.
    pub round_trip: LatencyHistogram,
    pub fanout: LatencyHistogram,
    /// The bench's and the server's CPU over the seconds of sending, in
    /// percent of one core.
    pub bench_cpu_percent: f64,
    pub server_cpu_percent: f64,
    /// The bench's busiest second reached 90 % of its cores: its latencies
    /// are partly its own.
    pub bench_saturated: bool,
    pub server_rss_start: Memory,
    pub server_rss_end: Memory,
    pub connect_errors: u64,
    pub unexpected_closes: u64,
}

/// Starts a server, measures it, stops it.
pub async fn run(cfg: &BroadcastConfig, server: &ServerConfig) -> anyhow::Result<BroadcastResult> {
    let server = ServerProcess::start(server)
        .await
        .context("starting the server")?;
    tracing::info!(pid = server.pid(), ws = %server.ready.ws, "server ready");
    let pid = server.pid();
    let result = measure(cfg, server.ready.ws, pid).await;
    if let Err(e) = server.stop(Duration::from_secs(15)).await {
        tracing::warn!(pid, "{e}");
    }
    result
}

/// One second of the run: when it ended (seconds since the start) and the
/// bench's and the server's CPU in it.
#[derive(Debug, Clone, Copy)]
struct CpuSecond {
    at_secs: f64,
    secs: f64,
    bench: f64,
    server: f64,
}

/// Runs the measurement against a server already listening on `ws`, whose
/// process `pid` is measured for CPU and memory.
pub async fn measure(
    cfg: &BroadcastConfig,
    ws: SocketAddr,
    pid: u32,
) -> anyhow::Result<BroadcastResult> {
    let opts = cfg.run_opts(ws)?;
    let total = cfg.connections() as u64;
    let plan = Plan::new(&opts, total, 1)?;
    let server_rss_start = Memory::of_pid(pid)?;
    let seconds = Arc::new(Mutex::new(Vec::new()));
    let mut server_cpu = CpuMeter::of_pid(pid);
    let record = seconds.clone();
    // The bench stops by itself at the end of the run.
    let (_stop_tx, stop) = watch::channel(false);
    let outcome = engine::run(&opts, plan, 0..total, None, stop, move |iv, _| {
        let server = server_cpu.percent_since_last().unwrap_or(0.0);
        if let Ok(mut s) = record.lock() {
            s.push(CpuSecond {
                at_secs: iv.at_secs,
                secs: iv.secs,
                bench: iv.cpu_percent,
                server,
            });
        }
    })
    .await?;
    let server_rss_end = Memory::of_pid(pid)?;
    if !outcome.failures.is_empty() {
        bail!("the load generator failed: {}", outcome.failures.join("; "));
    }
    let seconds = seconds.lock().map(|s| s.clone()).unwrap_or_default();
    let window = (outcome.ramp_secs, outcome.ramp_secs + outcome.sending_secs);
    let (bench_cpu_percent, server_cpu_percent) = cpu_over(&seconds, window);
    Ok(result(
        cfg,
        &outcome.totals,
        outcome.held_after_ramp,
        outcome.ramp_secs,
        outcome.sending_secs,
        (bench_cpu_percent, server_cpu_percent),
        outcome.saturation.loadgen(),
        (server_rss_start, server_rss_end),
    ))
}

/// The mean CPU of the seconds that lie wholly inside `window` (seconds
/// since the start), or of those that overlap it when none does.
fn cpu_over(seconds: &[CpuSecond], window: (f64, f64)) -> (f64, f64) {
    let inside: Vec<&CpuSecond> = seconds
        .iter()
        .filter(|s| s.at_secs - s.secs >= window.0 && s.at_secs <= window.1)
        .collect();
    let chosen: Vec<&CpuSecond> = if inside.is_empty() {
        seconds
            .iter()
            .filter(|s| s.at_secs > window.0 && s.at_secs - s.secs < window.1)
            .collect()
    } else {
        inside
    };
    if chosen.is_empty() {
        return (0.0, 0.0);
    }
    let n = chosen.len() as f64;
    (
        chosen.iter().map(|s| s.bench).sum::<f64>() / n,
        chosen.iter().map(|s| s.server).sum::<f64>() / n,
    )
}

#[allow(clippy::too_many_arguments)]
fn result(
    cfg: &BroadcastConfig,
    t: &Totals,
    held: u64,
    connect_secs: f64,
    sending_secs: f64,
    (bench_cpu_percent, server_cpu_percent): (f64, f64),
    bench_saturated: bool,
    (server_rss_start, server_rss_end): (Memory, Memory),
) -> BroadcastResult {
    let per_sec = |n: u64| {
        if sending_secs > 0.0 {
            n as f64 / sending_secs
        } else {
            0.0
        }
    };
    let expected = t.messages_sent * cfg.members as u64;
    let summary = |kind: Latency| t.latency(kind).cloned().unwrap_or_default();
    BroadcastResult {
        connections: cfg.connections(),
        held,
        senders_total: cfg.rooms * cfg.senders,
        connect_secs,
        sending_secs,
        sent: t.messages_sent,
        sent_per_sec: per_sec(t.messages_sent),
        offered_per_sec: (cfg.rooms * cfg.senders) as f64 * cfg.rate,
        expected_deliveries: expected,
        received_deliveries: t.copies_received,
        lost: expected as i64 - t.copies_received as i64,
        delivered_per_sec: per_sec(t.copies_received),
        round_trip: summary(Latency::RoundTrip),
        fanout: summary(Latency::Fanout),
        bench_cpu_percent,
        server_cpu_percent,
        bench_saturated,
        server_rss_start,
        server_rss_end,
        connect_errors: t.connect_errors_total(),
        unexpected_closes: t.closes_unexpected_total(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BroadcastConfig {
        BroadcastConfig {
            rooms: 10,
            members: 100,
            senders: 5,
            rate: 20.0,
            size: 64,
            warmup: Duration::from_secs(2),
            duration: Duration::from_secs(10),
            drain: Duration::from_secs(2),
            proto: Proto::Json,
            source_ips: vec!["127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap()],
            connect_timeout: Duration::from_secs(10),
            concurrency: 128,
        }
    }

    #[test]
    fn the_room_shape_becomes_loadgen_options() {
        let opts = cfg().run_opts("127.0.0.1:9".parse().unwrap()).unwrap();
        assert_eq!(opts.connections, 1000);
        assert_eq!(opts.rooms, Some(10));
        assert_eq!(opts.chatters, 0.05);
        assert_eq!(opts.duration, Duration::from_secs(12));
        assert_eq!(opts.source_ips.as_deref(), Some("127.0.0.2,127.0.0.3"));
        assert_eq!(opts.workload.name(), "chat-json");
        // 5 senders in each room of 100, as the bench promises
        let w = loadgen::workload::Workload::from_opts(&opts).unwrap();
        let mut per_room = [0; 10];
        for i in (0..1000).filter(|&i| w.role(i).sends) {
            per_room[w.room_of(i) as usize] += 1;
        }
        assert_eq!(per_room, [5; 10]);
    }

    #[test]
    fn impossible_shapes_are_refused() {
        let addr = "127.0.0.1:9".parse().unwrap();
        let mut c = cfg();
        c.senders = 101;
        assert!(c
            .run_opts(addr)
            .unwrap_err()
            .to_string()
            .contains("exceeds --members"));
        let mut c = cfg();
        c.size = 4;
        assert!(c.run_opts(addr).unwrap_err().to_string().contains("--size"));
        let mut c = cfg();
        c.rooms = 0;
        assert!(c.run_opts(addr).is_err());
    }

    #[test]
    fn cpu_is_averaged_over_the_seconds_of_sending() {
        let s = |at: f64, bench: f64, server: f64| CpuSecond {
            at_secs: at,
            secs: 1.0,
            bench,
            server,
        };
        let seconds = [
            s(1.0, 90.0, 10.0),
            s(2.0, 80.0, 20.0),
            s(3.0, 40.0, 60.0),
            s(4.0, 50.0, 70.0),
            s(5.0, 5.0, 5.0),
        ];
        assert_eq!(cpu_over(&seconds, (1.5, 4.5)), (45.0, 65.0));
        // a window shorter than a second takes the seconds it touches
        assert_eq!(cpu_over(&seconds, (2.2, 2.8)), (40.0, 60.0));
        assert_eq!(cpu_over(&[], (0.0, 1.0)), (0.0, 0.0));
    }
}
