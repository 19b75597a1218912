//! Memory per idle connection of the chat server. See bench/README.md.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bench::holder::{self, HoldArgs};
use bench::idle::{self, CountResult, IdleConfig};
use bench::machine::Machine;
use bench::report::{self, fixed, mib, Document};
use bench::server_proc::{self, ServerConfig};
use clap::{Args, Parser, Subcommand};
use loadgen::{proc_stats, source_ips};
use serde::Serialize;

#[derive(Parser)]
#[command(
    name = "idle-memory",
    about = "Memory per idle WebSocket connection of the chat server",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Internal: hold a share of the connections (started by the bench).
    #[command(hide = true)]
    Hold(HoldArgs),
}

#[derive(Args, Serialize)]
struct RunArgs {
    /// Connection counts to measure, comma-separated, one run each.
    #[arg(
        long,
        env = "IDLE_MEMORY_CONNECTIONS",
        value_delimiter = ',',
        default_value = "10000"
    )]
    connections: Vec<usize>,
    /// Source addresses, round-robin: a range `127.0.0.2-127.0.0.9` or a
    /// comma list. Each gives ~28k ports per server port.
    #[arg(long, env = "IDLE_MEMORY_SOURCE_IPS", default_value = "127.0.0.1")]
    source_ips: String,
    /// JSON results file.
    #[arg(
        long,
        env = "IDLE_MEMORY_OUT",
        default_value = "bench-results/idle-memory.json"
    )]
    out: PathBuf,
    /// The server binary [default: `server` next to this executable].
    #[arg(long, env = "IDLE_MEMORY_SERVER_BIN")]
    server_bin: Option<PathBuf>,
    /// Connections per server process at most (each process may open 20,000 files).
    #[arg(long, env = "IDLE_MEMORY_PER_SERVER", default_value_t = 18_000)]
    per_server: usize,
    /// Connections per holder process at most.
    #[arg(long, env = "IDLE_MEMORY_PER_HOLDER", default_value_t = 15_000)]
    per_holder: usize,
    /// Server worker threads.
    #[arg(long, env = "IDLE_MEMORY_WORKERS", default_value_t = 2)]
    workers: usize,
    /// Upgrades in flight per holder.
    #[arg(long, env = "IDLE_MEMORY_CONCURRENCY", default_value_t = 256)]
    concurrency: usize,
    /// Bound on one connection's connect plus upgrade.
    #[arg(long, env = "IDLE_MEMORY_CONNECT_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde_shim")]
    connect_timeout: Duration,
    /// Wait after the last connection before reading RSS again.
    #[arg(long, env = "IDLE_MEMORY_SETTLE", default_value = "3s", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde_shim")]
    settle: Duration,
    /// All connections of one count must be up within this.
    #[arg(long, env = "IDLE_MEMORY_ESTABLISH_TIMEOUT", default_value = "180s", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde_shim")]
    establish_timeout: Duration,
    /// Hard bound on a holder's life, in case this process dies.
    #[arg(long, env = "IDLE_MEMORY_HOLD_DEADLINE", default_value = "10m", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde_shim")]
    hold_deadline: Duration,
    /// Passed to the server as --idle-timeout: its default (120 s) would
    /// close the first idle connections before 100k are up.
    #[arg(long, env = "IDLE_MEMORY_SERVER_IDLE_TIMEOUT", default_value = "1h", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde_shim")]
    server_idle_timeout: Duration,
    /// More server flags, whitespace-separated (e.g. "--pin-cores").
    #[arg(
        long,
        env = "IDLE_MEMORY_SERVER_ARGS",
        default_value = "",
        allow_hyphen_values = true
    )]
    server_args: String,
    /// Upgrade request target of every connection.
    #[arg(long, env = "IDLE_MEMORY_PATH", default_value = "/")]
    path: String,
}

/// Durations in the JSON as humantime text, e.g. "3s".
mod humantime_serde_shim {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

/// The JSON file's own fields, after the bench's name and the machine
/// ([`report::Document`]).
#[derive(Serialize)]
struct Output<'a> {
    config: &'a RunArgs,
    results: &'a [CountResult],
    /// Set when a count fell short or failed; the results before it stand.
    error: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Hold(args)) => {
            // one thread: a holder only connects and then sleeps
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?
                .block_on(holder::run_holder(args))
        }
        None => {
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info".into()),
                )
                .init();
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .context("starting the runtime")?
                .block_on(run(cli.run))
        }
    }
}

fn config(args: &RunArgs) -> anyhow::Result<IdleConfig> {
    if args.connections.is_empty() || args.connections.contains(&0) {
        bail!("--connections needs counts above zero");
    }
    let ips = source_ips::parse(&args.source_ips).context("--source-ips")?;
    source_ips::check_bindable(&ips).context("--source-ips")?;
    if let Some(limit) = proc_stats::open_file_limit() {
        // a few dozen files besides the sockets: listeners, epoll, pipes
        let room = limit.saturating_sub(100) as usize;
        if args.per_server > room || args.per_holder > room {
            bail!("--per-server and --per-holder must stay under the open-file limit ({limit}) minus 100");
        }
    }
    if args.per_server == 0 || args.per_holder == 0 || args.concurrency == 0 {
        bail!("--per-server, --per-holder and --concurrency must be at least 1");
    }
    if args.hold_deadline < args.establish_timeout + args.settle + Duration::from_secs(30) {
        bail!("--hold-deadline must exceed --establish-timeout plus --settle by 30 s or more");
    }
    let bin = match &args.server_bin {
        Some(b) => b.clone(),
        None => server_proc::default_server_bin().context("locating the server binary")?,
    };
    server_proc::check_server_bin(&bin)?;
    let mut extra_args = vec![
        "--idle-timeout".to_string(),
        humantime::format_duration(args.server_idle_timeout).to_string(),
    ];
    extra_args.extend(args.server_args.split_whitespace().map(String::from));
    Ok(IdleConfig {
        server: ServerConfig {
            bin,
            workers: args.workers,
            extra_args,
            ready_timeout: Duration::from_secs(30),
        },
        per_server: args.per_server,
        per_holder: args.per_holder,
        concurrency: args.concurrency,
        connect_timeout: args.connect_timeout,
        settle: args.settle,
        establish_timeout: args.establish_timeout,
        hold_deadline: args.hold_deadline,
        source_ips: args.source_ips.clone(),
        path: args.path.clone(),
        holder_exe: std::env::current_exe().context("locating this executable")?,
        stop_timeout: Duration::from_secs(15),
    })
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let cfg = config(&args)?;
    let started = Instant::now();
    // Read before the run: the load average says how busy the machine
    // already was.
    let machine = Machine::read();
    tracing::info!("{}", machine.line());
    let mut results = Vec::new();
    let mut error = None;
    for &n in &args.connections {
        tracing::info!(connections = n, "measuring");
        match idle::run_count(&cfg, n).await {
            Ok(r) if r.connections_held < n => {
                error = Some(format!(
                    "only {} of {n} connections were held; failures: {:?}; first: {}",
                    r.connections_held,
                    r.failures,
                    r.first_error.as_deref().unwrap_or("none reported")
                ));
                results.push(r);
                break;
            }
            Ok(r) => {
                if r.server_reported_open
                    .is_some_and(|open| open != r.connections_held as u64)
                {
                    tracing::warn!(
                        held = r.connections_held,
                        server_reported = r.server_reported_open,
                        "the servers count a different number of open connections"
                    );
                }
                tracing::info!(
                    connections = n,
                    bytes_per_conn = r.server_bytes_per_conn_rss.round(),
                    "done"
                );
                results.push(r);
            }
            Err(e) => {
                error = Some(format!("{n} connections: {e:#}"));
                break;
            }
        }
    }
    println!("{}\n\n{}", machine.line(), table(&results));
    report::write_json(
        &args.out,
        &Document {
            bench: "idle-memory",
            machine: &machine,
            body: Output {
                config: &args,
                results: &results,
                error: error.clone(),
            },
        },
    )?;
    eprintln!(
        "wrote {} ({:.1} s in all)",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    match error {
        Some(e) => bail!(e),
        None => Ok(()),
    }
}

fn table(results: &[CountResult]) -> String {
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            vec![
                r.connections_requested.to_string(),
                r.connections_held.to_string(),
                r.server_reported_open.map_or("-".into(), |v| v.to_string()),
                r.servers.to_string(),
                mib(r.server_rss_before_kb),
                mib(r.server_rss_after_kb),
                fixed(r.server_bytes_per_conn_rss, 0),
                fixed(r.server_bytes_per_conn_anon, 0),
                fixed(r.holder_bytes_per_conn_rss, 0),
                fixed(r.establish_secs, 1),
                fixed(r.connections_per_sec, 0),
            ]
        })
        .collect();
    report::markdown_table(
        &[
            "connections",
            "held",
            "server-reported",
            "servers",
            "server RSS before (MiB)",
            "after (MiB)",
            "B/conn (VmRSS)",
            "B/conn (RssAnon)",
            "holder B/conn",
            "establish (s)",
            "conn/s",
        ],
        &rows,
    )
}
