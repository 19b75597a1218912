//! The broadcast measurement: rooms of chat connections, a few senders per
//! room on an open-model timetable, every copy timed against its scheduled
//! send time. The clients are the load generator's own (`loadgen::engine`
//! with its chat workload), so the bench and loadgen measure the same way;
//! this module adds what a server benchmark needs around them: a fixed
//! room shape, the server's CPU and memory, and the accounting of every
//! copy the server owed.
//!
//! Every figure is printed with the shape it was measured in
//! ([`Shape`]): the same server gives 800,000 deliveries/s to 50 busy
//! senders in 10 rooms and a fifth of that to 3,600 slow ones in 180
//! rooms, so a figure without its shape says little. [`Preset`] names the
//! two shapes BENCHMARKS.md quotes.
//!
//! Open model: a sender's k-th message is due at a fixed time whatever
//! happened to the previous ones, and its latency counts from that due
//! time. A server (or a bench) that stalls therefore shows up as latency
//! instead of silently lowering the offered load (coordinated omission).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use loadgen::engine::{self, Plan};
use loadgen::opts::{Cli, RunOpts};
use loadgen::proc_stats::{CpuMeter, Memory};
use loadgen::saturation::Saturation;
use loadgen::stats::{Latency, LatencyHistogram, Totals};
use protocol::Proto;
use serde::Serialize;
use tokio::sync::watch;

use crate::report::fixed;
use crate::server_proc::{ServerConfig, ServerProcess};
use loadgen::printer::{int, rate};

/// The shapes BENCHMARKS.md quotes, by name, so that a figure there can be
/// re-measured with one flag. Flags given beside a preset override it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// 1,000 connections in 10 rooms of 100, 5 senders per room (50 in
    /// all) at 20 msg/s: 100,000 deliveries/s asked. With `--rate 160`,
    /// the 800,000 deliveries/s of the README.
    FewSenders,
    /// 18,000 connections in 180 rooms of 100, a fifth of them sending (20
    /// per room, 3,600 in all) at 0.28 msg/s: 100,800 deliveries/s asked.
    /// A chat service's shape: many members, each saying little. One
    /// bench process holds all of it (under the 19,990 sockets one
    /// process may open here).
    ManySenders,
}

/// The values a [`Preset`] sets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PresetValues {
    pub rooms: usize,
    pub members: usize,
    /// Senders per room.
    pub senders: usize,
    pub rate: f64,
    pub duration: Duration,
    pub warmup: Duration,
}

impl Preset {
    pub fn values(self) -> PresetValues {
        match self {
            Preset::FewSenders => PresetValues {
                rooms: 10,
                members: 100,
                senders: 5,
                rate: 20.0,
                duration: Duration::from_secs(10),
                warmup: Duration::from_secs(2),
            },
            // At 0.28 msg/s a sender sends every 3.6 s: 20 s of sending
            // gives each of them five or six messages, and the time
            // allowed for connecting covers 18,000 upgrades and joins on
            // the shared cores.
            Preset::ManySenders => PresetValues {
                rooms: 180,
                members: 100,
                senders: 20,
                rate: 0.28,
                duration: Duration::from_secs(20),
                warmup: Duration::from_secs(5),
            },
        }
    }
}

/// The load a figure was measured under, printed on the same line as the
/// figure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shape {
    pub connections: usize,
    pub rooms: usize,
    pub members: usize,
    /// Senders in all (rooms × senders per room).
    pub senders: usize,
    /// Messages per second per sender.
    pub rate: f64,
    /// Messages per second into the server, asked: senders × rate.
    pub messages_per_sec: f64,
    /// Copies per second out of the server, asked: every message goes to
    /// every member of its room, the sender included.
    pub deliveries_per_sec: f64,
    pub proto: &'static str,
    pub size: usize,
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} connections ({} rooms × {} members), {} senders × {} msg/s = {} msg/s in, {} deliveries/s asked, {} {} B",
            int(self.connections as u64),
            int(self.rooms as u64),
            int(self.members as u64),
            int(self.senders as u64),
            self.rate,
            rate(self.messages_per_sec),
            rate(self.deliveries_per_sec),
            self.proto,
            self.size
        )
    }
}

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

    pub fn shape(&self) -> Shape {
        let senders = self.rooms * self.senders;
        let messages_per_sec = senders as f64 * self.rate;
        Shape {
            connections: self.connections(),
            rooms: self.rooms,
            members: self.members,
            senders,
            rate: self.rate,
            messages_per_sec,
            deliveries_per_sec: messages_per_sec * self.members as f64,
            proto: self.proto.as_str(),
            size: self.size,
        }
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
    /// What was asked: printed beside every headline figure.
    pub shape: Shape,
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
    /// The headline latency: every timed copy, the sender's own and the
    /// other members', from its due time (loadgen's
    /// [`Latency::Delivery`]). A server that hurries the sender's copy and
    /// keeps the room waiting cannot look fast on it. Percentiles in ms,
    /// with the HDR histogram (base64), mergeable.
    pub delivery: LatencyHistogram,
    /// Details of `delivery`: the sender's own copy back...
    pub round_trip: LatencyHistogram,
    /// ...and the other members' copies.
    pub fanout: LatencyHistogram,
    /// The bench's and the server's CPU over the seconds of sending, in
    /// percent of one core.
    pub bench_cpu_percent: f64,
    pub server_cpu_percent: f64,
    /// loadgen's judgement of the seconds that carried measurements: in
    /// which of them the bench (the load generator) or the host ran out of
    /// CPU, and the share of timed copies that fell in those seconds.
    pub saturation: Saturation,
    /// Some timed copy fell in a second when the bench or the host was
    /// saturated: its latencies are then partly the machine's queueing,
    /// not the server's. A saturated ramp alone, before any copy was
    /// timed, does not count.
    pub saturated: bool,
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
        &outcome.saturation,
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
    saturation: &Saturation,
    (server_rss_start, server_rss_end): (Memory, Memory),
) -> BroadcastResult {
    let expected = t.messages_sent * cfg.members as u64;
    let summary = |kind: Latency| t.latency(kind).cloned().unwrap_or_default();
    BroadcastResult {
        shape: cfg.shape(),
        connections: cfg.connections(),
        held,
        senders_total: cfg.rooms * cfg.senders,
        connect_secs,
        sending_secs,
        sent: t.messages_sent,
        sent_per_sec: t.sent_per_sec(sending_secs).unwrap_or(0.0),
        offered_per_sec: (cfg.rooms * cfg.senders) as f64 * cfg.rate,
        expected_deliveries: expected,
        received_deliveries: t.copies_received,
        lost: expected as i64 - t.copies_received as i64,
        delivered_per_sec: t.copies_per_sec(sending_secs).unwrap_or(0.0),
        delivery: summary(Latency::Delivery),
        round_trip: summary(Latency::RoundTrip),
        fanout: summary(Latency::Fanout),
        bench_cpu_percent,
        server_cpu_percent,
        saturation: saturation.clone(),
        saturated: saturation.timed_share > 0.0,
        server_rss_start,
        server_rss_end,
        connect_errors: t.connect_errors_total(),
        unexpected_closes: t.closes_unexpected_total(),
    }
}

impl BroadcastResult {
    /// The headline, one figure per line, each with the shape it was
    /// measured in, then whether the machine was saturated while copies
    /// were timed.
    pub fn headlines(&self) -> Vec<String> {
        let d = &self.delivery;
        let mut lines = vec![
            format!(
                "delivery latency p50 / p99 / p99.9: {} / {} / {} ms | {}",
                fixed(d.p50_ms, 2),
                fixed(d.p99_ms, 2),
                fixed(d.p999_ms, 2),
                self.shape
            ),
            format!(
                "delivered: {} copies/s of {} asked, {} lost | {}",
                rate(self.delivered_per_sec),
                rate(self.shape.deliveries_per_sec),
                // negative: more copies than expected (duplicates)
                format!(
                    "{}{}",
                    if self.lost < 0 { "-" } else { "" },
                    int(self.lost.unsigned_abs())
                ),
                self.shape
            ),
        ];
        let s = &self.saturation;
        lines.push(match s.describe().filter(|_| self.saturated) {
            Some(why) => format!("saturated while measuring: YES: {why}"),
            None => format!(
                "saturated while measuring: no (of {} measured seconds, busiest: the bench {:.0} % of one core of {} cores, the host {:.0} % of all cores)",
                s.judged_secs, s.loadgen_cpu_max, s.cores, s.host_cpu_max
            ),
        });
        lines
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

    fn preset_cfg(preset: Preset) -> BroadcastConfig {
        let v = preset.values();
        BroadcastConfig {
            rooms: v.rooms,
            members: v.members,
            senders: v.senders,
            rate: v.rate,
            duration: v.duration,
            warmup: v.warmup,
            proto: Proto::Binary,
            ..cfg()
        }
    }

    /// Senders per room, as loadgen's workload assigns them.
    fn senders_per_room(c: &BroadcastConfig) -> Vec<usize> {
        let opts = c.run_opts("127.0.0.1:9".parse().unwrap()).unwrap();
        let w = loadgen::workload::Workload::from_opts(&opts).unwrap();
        let mut per_room = vec![0; c.rooms];
        for i in (0..c.connections() as u64).filter(|&i| w.role(i).sends) {
            per_room[w.room_of(i) as usize] += 1;
        }
        per_room
    }

    #[test]
    fn the_many_senders_preset_is_the_issues_shape() {
        let c = preset_cfg(Preset::ManySenders);
        let shape = c.shape();
        assert_eq!(shape.connections, 18_000);
        assert_eq!(
            (shape.rooms, shape.members, shape.senders),
            (180, 100, 3600)
        );
        // about 100,000 deliveries/s: 3,600 × 0.28 × 100
        assert!((shape.deliveries_per_sec - 100_800.0).abs() < 1e-6);
        // one process holds it: under the 20,000 open files of this machine
        assert!(shape.connections < 19_990);
        assert_eq!(senders_per_room(&c), vec![20; 180]);
        let few = preset_cfg(Preset::FewSenders).shape();
        assert_eq!((few.connections, few.senders), (1000, 50));
        assert_eq!(few.deliveries_per_sec, 100_000.0);
        assert_eq!(
            senders_per_room(&preset_cfg(Preset::FewSenders)),
            vec![5; 10]
        );
    }

    #[test]
    fn the_shape_reads_as_benchmarks_md_writes_it() {
        let mut c = preset_cfg(Preset::FewSenders);
        c.rate = 160.0;
        assert_eq!(
            c.shape().to_string(),
            "1,000 connections (10 rooms × 100 members), 50 senders × 160 msg/s = 8,000 msg/s in, 800,000 deliveries/s asked, binary 64 B"
        );
        assert!(preset_cfg(Preset::ManySenders)
            .shape()
            .to_string()
            .starts_with("18,000 connections (180 rooms × 100 members), 3,600 senders × 0.28 msg/s = 1,008 msg/s in, 100,800 deliveries/s asked"));
    }

    #[test]
    fn every_headline_figure_carries_its_shape_and_saturation_is_said() {
        let c = cfg();
        let totals = Totals {
            messages_sent: 1000,
            copies_received: 100_000,
            ..Totals::default()
        };
        let calm = Saturation {
            cores: 2,
            judged_secs: 10,
            loadgen_cpu_max: 80.0,
            host_cpu_max: 70.0,
            ..Saturation::default()
        };
        let r = result(
            &c,
            &totals,
            1000,
            0.5,
            10.0,
            (40.0, 50.0),
            &calm,
            Default::default(),
        );
        assert_eq!(r.delivered_per_sec, 10_000.0);
        assert!(!r.saturated);
        let lines = r.headlines();
        let shape = c.shape().to_string();
        assert!(
            lines[0].starts_with("delivery latency p50 / p99 / p99.9:"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].starts_with("delivered: 10,000 copies/s of 100,000 asked, 0 lost"),
            "{}",
            lines[1]
        );
        for line in &lines[..2] {
            assert!(line.ends_with(&shape), "{line}");
        }
        assert!(
            lines[2].starts_with("saturated while measuring: no (of 10 measured seconds"),
            "{}",
            lines[2]
        );

        // timed copies in a saturated second: said, with loadgen's words
        let busy = Saturation {
            host_secs: vec![3],
            timed_share: 0.1,
            host_cpu_max: 97.0,
            ..calm.clone()
        };
        let r = result(
            &c,
            &totals,
            1000,
            0.5,
            10.0,
            (40.0, 50.0),
            &busy,
            Default::default(),
        );
        assert!(r.saturated);
        let line = &r.headlines()[2];
        assert!(
            line.starts_with(
                "saturated while measuring: YES: its host was saturated in 1 of the 10"
            ),
            "{line}"
        );
        // a saturated ramp alone, before any copy was timed, is not
        let ramp_only = Saturation {
            loadgen_secs: vec![1],
            timed_share: 0.0,
            ..calm
        };
        let r = result(
            &c,
            &totals,
            1000,
            0.5,
            10.0,
            (40.0, 50.0),
            &ramp_only,
            Default::default(),
        );
        assert!(!r.saturated);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["saturation"]["loadgen_secs"][0], 1);
        assert_eq!(json["shape"]["deliveries_per_sec"], 100_000.0);
        assert!(json["delivery"]["p50_ms"].is_number());
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
