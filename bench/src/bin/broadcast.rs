//! Fan-out throughput and latency of the chat server. See bench/README.md.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use bench::broadcast::{self, BroadcastConfig, BroadcastResult};
use bench::report::{self, fixed};
use bench::server_proc::{self, ServerConfig};
use clap::Parser;
use loadgen::source_ips;
use loadgen::stats::LatencyHistogram;
use protocol::Proto;
use serde::Serialize;

#[derive(Parser, Serialize)]
#[command(
    name = "broadcast",
    about = "Fan-out throughput and latency of the chat server"
)]
struct Cli {
    /// Rooms.
    #[arg(long, env = "BROADCAST_ROOMS", default_value_t = 10)]
    rooms: usize,
    /// Members (connections) per room.
    #[arg(long, env = "BROADCAST_MEMBERS", default_value_t = 100)]
    members: usize,
    /// Senders per room (spread over its members).
    #[arg(long, env = "BROADCAST_SENDERS", default_value_t = 5)]
    senders: usize,
    /// Messages per second per sender, on a fixed timetable.
    #[arg(long, env = "BROADCAST_RATE", default_value_t = 20.0)]
    rate: f64,
    /// Payload bytes per message (at least 24).
    #[arg(long, env = "BROADCAST_SIZE", default_value_t = 64)]
    size: usize,
    /// How long the senders send, after the members are connected.
    #[arg(long, env = "BROADCAST_DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    #[serde(serialize_with = "human")]
    duration: Duration,
    /// Time allowed for connecting every member: sending starts as soon as
    /// they are all in, and stops WARMUP + DURATION after the start (so a
    /// quicker ramp sends a little longer; rates are per second of sending).
    #[arg(long, env = "BROADCAST_WARMUP", default_value = "2s", value_parser = humantime::parse_duration)]
    #[serde(serialize_with = "human")]
    warmup: Duration,
    /// Wait after the window for copies still in flight.
    #[arg(long, env = "BROADCAST_DRAIN", default_value = "3s", value_parser = humantime::parse_duration)]
    #[serde(serialize_with = "human")]
    drain: Duration,
    /// Encoding: binary (bincode) or json.
    #[arg(long, env = "BROADCAST_PROTO", default_value = "binary", value_parser = ["binary", "json"])]
    proto: String,
    /// Source addresses, round-robin (range or comma list) [default: the kernel's choice].
    #[arg(long, env = "BROADCAST_SOURCE_IPS")]
    source_ips: Option<String>,
    /// Server worker threads.
    #[arg(long, env = "BROADCAST_WORKERS", default_value_t = 2)]
    workers: usize,
    /// The bench's own runtime threads.
    #[arg(long, env = "BROADCAST_THREADS", default_value_t = 2)]
    threads: usize,
    /// The server binary [default: `server` next to this executable].
    #[arg(long, env = "BROADCAST_SERVER_BIN")]
    server_bin: Option<PathBuf>,
    /// More server flags, whitespace-separated.
    #[arg(
        long,
        env = "BROADCAST_SERVER_ARGS",
        default_value = "",
        allow_hyphen_values = true
    )]
    server_args: String,
    /// Bound on one connection's connect plus upgrade.
    #[arg(long, env = "BROADCAST_CONNECT_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    #[serde(serialize_with = "human")]
    connect_timeout: Duration,
    /// JSON results file.
    #[arg(
        long,
        env = "BROADCAST_OUT",
        default_value = "bench-results/broadcast.json"
    )]
    out: PathBuf,
}

fn human<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

#[derive(Serialize)]
struct Output<'a> {
    bench: &'static str,
    config: &'a Cli,
    result: &'a BroadcastResult,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(run(&cli))
}

async fn run(cli: &Cli) -> anyhow::Result<()> {
    let started = Instant::now();
    let source_ips = match &cli.source_ips {
        Some(spec) => {
            let ips = source_ips::parse(spec).context("--source-ips")?;
            source_ips::check_bindable(&ips).context("--source-ips")?;
            ips
        }
        None => Vec::new(),
    };
    let bin = match &cli.server_bin {
        Some(b) => b.clone(),
        None => server_proc::default_server_bin().context("locating the server binary")?,
    };
    server_proc::check_server_bin(&bin)?;
    let server = ServerConfig {
        bin,
        workers: cli.workers,
        extra_args: cli
            .server_args
            .split_whitespace()
            .map(String::from)
            .collect(),
        ready_timeout: Duration::from_secs(30),
    };
    let cfg = BroadcastConfig {
        rooms: cli.rooms,
        members: cli.members,
        senders: cli.senders,
        rate: cli.rate,
        size: cli.size,
        warmup: cli.warmup,
        duration: cli.duration,
        drain: cli.drain,
        proto: Proto::from_name(&cli.proto).unwrap_or(Proto::Binary),
        source_ips,
        connect_timeout: cli.connect_timeout,
        concurrency: 128,
    };
    let r = broadcast::run(&cfg, &server).await?;
    println!("{}", tables(cli, &r));
    report::write_json(
        &cli.out,
        &Output {
            bench: "broadcast",
            config: cli,
            result: &r,
        },
    )?;
    eprintln!(
        "wrote {} ({:.1} s in all)",
        cli.out.display(),
        started.elapsed().as_secs_f64()
    );
    if r.bench_saturated {
        tracing::warn!(
            cpu = r.bench_cpu_percent,
            "the bench itself was CPU-saturated: latencies are partly the bench's"
        );
    }
    if r.held < r.connections as u64 {
        anyhow::bail!(
            "only {} of {} members connected ({} connect errors)",
            r.held,
            r.connections,
            r.connect_errors
        );
    }
    Ok(())
}

fn tables(cli: &Cli, r: &BroadcastResult) -> String {
    let throughput = report::markdown_table(
        &[
            "proto",
            "rooms×members",
            "senders",
            "offered msg/s",
            "sent msg/s",
            "sending s",
            "delivered msg/s",
            "expected",
            "received",
            "lost",
            "bench CPU %",
            "server CPU %",
        ],
        &[vec![
            cli.proto.clone(),
            format!("{}×{}", cli.rooms, cli.members),
            r.senders_total.to_string(),
            fixed(r.offered_per_sec, 0),
            fixed(r.sent_per_sec, 0),
            fixed(r.sending_secs, 2),
            fixed(r.delivered_per_sec, 0),
            r.expected_deliveries.to_string(),
            r.received_deliveries.to_string(),
            r.lost.to_string(),
            fixed(r.bench_cpu_percent, 0),
            fixed(r.server_cpu_percent, 0),
        ]],
    );
    let row = |name: &str, s: &LatencyHistogram| {
        vec![
            name.to_string(),
            s.count.to_string(),
            fixed(s.p50_ms, 3),
            fixed(s.p90_ms, 3),
            fixed(s.p99_ms, 3),
            fixed(s.p999_ms, 3),
            fixed(s.max_ms, 3),
        ]
    };
    let latency = report::markdown_table(
        &["latency (ms)", "count", "p50", "p90", "p99", "p99.9", "max"],
        &[row("round trip", &r.round_trip), row("fan-out", &r.fanout)],
    );
    let mut out = format!("{throughput}\n{latency}");
    if r.connect_errors + r.unexpected_closes > 0 {
        out.push_str(&format!(
            "\nconnect errors: {}, unexpected closes: {}\n",
            r.connect_errors, r.unexpected_closes
        ));
    }
    if r.bench_saturated {
        out.push_str("\nthe bench was CPU-saturated: its latencies are partly its own\n");
    }
    out
}
