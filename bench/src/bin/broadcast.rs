//! Fan-out throughput and latency of the chat server. See bench/README.md.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use bench::broadcast::{self, BroadcastConfig, BroadcastResult, Preset};
use bench::machine::Machine;
use bench::report::{self, fixed, Document};
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
    /// A named shape (see bench/README.md): few-senders (1,000
    /// connections, 50 senders at 20 msg/s) or many-senders (18,000
    /// connections, 3,600 senders at 0.28 msg/s). The flags below override
    /// its values.
    #[arg(
        long,
        env = "BROADCAST_PRESET",
        value_enum,
        default_value = "few-senders"
    )]
    preset: Preset,
    /// Rooms [default: the preset's].
    #[arg(long, env = "BROADCAST_ROOMS")]
    rooms: Option<usize>,
    /// Members (connections) per room [default: the preset's].
    #[arg(long, env = "BROADCAST_MEMBERS")]
    members: Option<usize>,
    /// Senders per room, spread over its members [default: the preset's].
    #[arg(long, env = "BROADCAST_SENDERS")]
    senders: Option<usize>,
    /// Messages per second per sender, on a fixed timetable [default: the preset's].
    #[arg(long, env = "BROADCAST_RATE")]
    rate: Option<f64>,
    /// Payload bytes per message (at least 24).
    #[arg(long, env = "BROADCAST_SIZE", default_value_t = 64)]
    size: usize,
    /// How long the senders send, after the members are connected [default: the preset's].
    #[arg(long, env = "BROADCAST_DURATION", value_parser = humantime::parse_duration)]
    #[serde(serialize_with = "human_opt")]
    duration: Option<Duration>,
    /// Time allowed for connecting every member: sending starts as soon as
    /// they are all in, and stops WARMUP + DURATION after the start (so a
    /// quicker ramp sends a little longer; rates are per second of sending)
    /// [default: the preset's].
    #[arg(long, env = "BROADCAST_WARMUP", value_parser = humantime::parse_duration)]
    #[serde(serialize_with = "human_opt")]
    warmup: Option<Duration>,
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

fn human_opt<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => human(d, s),
        None => s.serialize_none(),
    }
}

impl Cli {
    /// Fills every shape flag not given from the preset, so that the
    /// JSON's `config` holds the values the run used.
    fn apply_preset(&mut self) {
        let v = self.preset.values();
        self.rooms.get_or_insert(v.rooms);
        self.members.get_or_insert(v.members);
        self.senders.get_or_insert(v.senders);
        self.rate.get_or_insert(v.rate);
        self.duration.get_or_insert(v.duration);
        self.warmup.get_or_insert(v.warmup);
    }
}

/// The JSON file's own fields, after the bench's name and the machine
/// ([`report::Document`]).
#[derive(Serialize)]
struct Output<'a> {
    /// The headline lines as printed, each figure with its shape.
    headlines: Vec<String>,
    config: &'a Cli,
    result: &'a BroadcastResult,
}

fn main() -> anyhow::Result<()> {
    let mut cli = Cli::parse();
    cli.apply_preset();
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
    // Read before the run: the load average says how busy the machine
    // already was.
    let machine = Machine::read();
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
    let preset = cli.preset.values();
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
        rooms: cli.rooms.unwrap_or(preset.rooms),
        members: cli.members.unwrap_or(preset.members),
        senders: cli.senders.unwrap_or(preset.senders),
        rate: cli.rate.unwrap_or(preset.rate),
        size: cli.size,
        warmup: cli.warmup.unwrap_or(preset.warmup),
        duration: cli.duration.unwrap_or(preset.duration),
        drain: cli.drain,
        proto: Proto::from_name(&cli.proto).unwrap_or(Proto::Binary),
        source_ips,
        connect_timeout: cli.connect_timeout,
        concurrency: 128,
    };
    tracing::info!(shape = %cfg.shape(), "{}", machine.line());
    let r = broadcast::run(&cfg, &server).await?;
    let headlines = r.headlines();
    println!(
        "{}\n{}\n\n{}",
        machine.line(),
        headlines.join("\n"),
        tables(&r)
    );
    report::write_json(
        &cli.out,
        &Document {
            bench: "broadcast",
            machine: &machine,
            body: Output {
                headlines,
                config: cli,
                result: &r,
            },
        },
    )?;
    eprintln!(
        "wrote {} ({:.1} s in all)",
        cli.out.display(),
        started.elapsed().as_secs_f64()
    );
    if r.saturated {
        tracing::warn!(
            bench_cpu = r.bench_cpu_percent,
            server_cpu = r.server_cpu_percent,
            "the bench or the host was CPU-saturated while copies were timed: latencies are partly the machine's"
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

/// The details under the headline: throughput, CPU and every latency.
fn tables(r: &BroadcastResult) -> String {
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
            r.shape.proto.to_string(),
            format!("{}×{}", r.shape.rooms, r.shape.members),
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
        &[
            row("delivery", &r.delivery),
            row("round trip", &r.round_trip),
            row("fan-out", &r.fanout),
        ],
    );
    let mut out = format!("{throughput}\n{latency}");
    if r.connect_errors + r.unexpected_closes > 0 {
        out.push_str(&format!(
            "\nconnect errors: {}, unexpected closes: {}\n",
            r.connect_errors, r.unexpected_closes
        ));
    }
    out
}
