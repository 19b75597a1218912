//! The command line. `loadgen run URL ...` is the full form; the seed's
//! `loadgen URL CONNECTIONS DURATION_SECS CONCURRENT_LIMIT` still works as
//! a shortcut for `run` with those three figures.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    version,
    about = "WebSocket load generator",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Shortcut (the seed's form): URL CONNECTIONS DURATION_SECS CONCURRENT_LIMIT.
    #[arg(num_args = 4, value_names = ["URL", "CONNECTIONS", "DURATION_SECS", "CONCURRENT_LIMIT"])]
    pub shortcut: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a load against one or more WebSocket URLs.
    Run(Box<RunOpts>),
    /// Wait for a coordinator's orders on a control port (token required;
    /// targets limited to --allow-target).
    Agent(crate::agent::AgentOpts),
    /// One process of a `--processes` run: reads its job as JSON on stdin,
    /// writes JSON lines on stdout. Started by `run`, not by people.
    #[command(hide = true)]
    Worker,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadKind {
    /// The lab's chat protocol in binary (bincode) frames.
    ChatBinary,
    /// The lab's chat protocol in JSON text frames.
    ChatJson,
    /// Any echo server: send a frame, expect the same frame back.
    Echo,
    /// Connect and hold, with WebSocket pings at --ping-interval.
    Idle,
}

#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct RunOpts {
    /// Target URLs (ws://); several spread connections round-robin.
    #[arg(required = true, env = "LOADGEN_TARGETS", value_delimiter = ',')]
    pub targets: Vec<String>,

    /// Connections to open and hold.
    #[arg(long, short = 'c', env = "LOADGEN_CONNECTIONS", default_value_t = 1000)]
    pub connections: u64,

    /// New connections per second while ramping up.
    #[arg(long, env = "LOADGEN_RAMP", default_value_t = 10_000.0)]
    pub ramp: f64,

    /// Upgrades in flight at once.
    #[arg(long, env = "LOADGEN_MAX_INFLIGHT", default_value_t = 512)]
    pub max_inflight: usize,

    /// Length of the whole run, ramp included; then every connection closes.
    #[arg(long, short = 'd', env = "LOADGEN_DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub duration: Duration,

    #[arg(long, short = 'w', env = "LOADGEN_WORKLOAD", value_enum, default_value_t = WorkloadKind::ChatBinary)]
    pub workload: WorkloadKind,

    /// Chat rooms; connection i joins room i mod ROOMS [default: one room per 100 connections].
    #[arg(long, env = "LOADGEN_ROOMS")]
    pub rooms: Option<u64>,

    /// Prefix of this run's room names, so runs sharing a server never
    /// count each other's messages [default: a random one per run].
    #[arg(long, env = "LOADGEN_ROOM_PREFIX")]
    pub room_prefix: Option<String>,

    /// Fraction of connections that send (chat: chatters; echo: senders).
    #[arg(long, env = "LOADGEN_CHATTERS", default_value_t = 0.1)]
    pub chatters: f64,

    /// Messages per second per sending connection (open model: on a timetable, never waiting for replies).
    #[arg(long, env = "LOADGEN_RATE", default_value_t = 1.0)]
    pub rate: f64,

    /// Payload bytes per message (at least 24: it carries the send time).
    #[arg(long, env = "LOADGEN_SIZE", default_value_t = 64)]
    pub size: usize,

    /// WebSocket ping interval per connection (keeps servers' idle timeouts away); 0 = off.
    #[arg(long, env = "LOADGEN_PING_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub ping_interval: Duration,

    /// For wss:// targets: accept any server certificate (self-signed test
    /// servers). Without it, certificates are verified against Mozilla's
    /// root certificates and must name the URL's host.
    #[arg(long, env = "LOADGEN_INSECURE")]
    pub insecure: bool,

    /// Extra header on every upgrade request, `Name: value` (repeat for
    /// more), e.g. an auth token your service wants.
    #[arg(
        long = "header",
        short = 'H',
        env = "LOADGEN_HEADERS",
        value_delimiter = '\n'
    )]
    pub headers: Vec<String>,

    /// Subprotocol to offer on the upgrade (repeat for several, in order of
    /// preference); the server must choose one of them or none.
    #[arg(
        long = "subprotocol",
        env = "LOADGEN_SUBPROTOCOLS",
        value_delimiter = ','
    )]
    pub subprotocols: Vec<String>,

    /// Connections per second (over the whole run) that close and reconnect:
    /// each connection lives an exponentially distributed time with mean
    /// CONNECTIONS / CHURN seconds, then closes politely and reconnects.
    /// 0 = no churn.
    #[arg(long, env = "LOADGEN_CHURN", default_value_t = 0.0)]
    pub churn: f64,

    /// Source addresses to spread connections over: ranges, CIDRs or lists
    /// (127.0.0.2-127.0.0.40, 10.0.1.0/28, a,b,c). On loopback every 127.x
    /// address works without configuration.
    #[arg(long, env = "LOADGEN_SOURCE_IPS")]
    pub source_ips: Option<String>,

    /// Bound on TCP connect plus upgrade.
    #[arg(long, env = "LOADGEN_CONNECT_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,

    /// After the last send, how long to wait for copies still in flight
    /// before counting a chatter's missing own copies as lost.
    #[arg(long, env = "LOADGEN_DRAIN", default_value = "2s", value_parser = humantime::parse_duration)]
    pub drain: Duration,

    /// A sender's own copy not back this long after its scheduled send time
    /// counts as lost at once (so losses show while the run goes on). Long,
    /// so that a server that stalls shows up as latency rather than loss.
    #[arg(long, env = "LOADGEN_LOSS_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    #[serde(default = "default_loss_timeout")]
    pub loss_timeout: Duration,

    /// Write every figure and the histograms (HDR, mergeable) to this file.
    #[arg(long, env = "LOADGEN_JSON")]
    pub json: Option<PathBuf>,

    /// Progress line every second: auto (when stderr is a terminal), always, never.
    #[arg(long, env = "LOADGEN_PROGRESS", default_value = "auto")]
    pub progress: Progress,

    /// Fail (exit 1) when fewer than this fraction of the connections are held at the end of the ramp.
    #[arg(long, env = "LOADGEN_MIN_HELD", default_value_t = 1.0)]
    pub min_held: f64,

    /// Worker threads per process [default: one per core].
    #[arg(long, env = "LOADGEN_THREADS")]
    pub threads: Option<usize>,

    /// Processes to spread the connections over (each is bound by the
    /// open-file limit): a number, or `auto` for as many as that limit needs.
    #[arg(long, env = "LOADGEN_PROCESSES", default_value = "auto", value_parser = parse_processes)]
    pub processes: Processes,

    /// Serve Prometheus metrics (the run's figures, latency histograms in
    /// seconds) on http://ADDR/metrics while the run lasts, e.g. 127.0.0.1:9091.
    #[arg(long, env = "LOADGEN_METRICS_LISTEN")]
    #[serde(default)]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Processes {
    Auto,
    Exactly(u64),
}

/// `--loss-timeout`'s default, also for orders from a coordinator of an
/// earlier version, which had no loss timeout.
pub fn default_loss_timeout() -> Duration {
    Duration::from_secs(10)
}

fn parse_processes(s: &str) -> Result<Processes, String> {
    match s {
        "auto" => Ok(Processes::Auto),
        n => match n.parse::<u64>() {
            Ok(0) | Err(_) => Err(format!(
                "{s:?} is neither `auto` nor a number of processes (1 or more)"
            )),
            Ok(n) => Ok(Processes::Exactly(n)),
        },
    }
}

impl WorkloadKind {
    /// The name on the command line (`chat-binary`).
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::ChatBinary => "chat-binary",
            WorkloadKind::ChatJson => "chat-json",
            WorkloadKind::Echo => "echo",
            WorkloadKind::Idle => "idle",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Progress {
    Auto,
    Always,
    Never,
}

impl Cli {
    /// The run to do: the `run` subcommand, or the shortcut turned into one.
    pub fn into_run(self) -> Result<RunOpts, String> {
        match (self.command, self.shortcut.as_slice()) {
            (Some(Command::Run(opts)), _) => Ok(*opts),
            (Some(Command::Worker), _) => Err("`worker` is started by `run --processes`".into()),
            (Some(Command::Agent(_)), _) => Err("`agent` is not a run".into()),
            (None, [url, connections, duration, limit]) => {
                let mut opts = RunOpts::from_args(["run", url.as_str()]);
                opts.connections = connections.parse().map_err(|_| {
                    format!("CONNECTIONS must be a whole number, not {connections:?}")
                })?;
                let secs: u64 = duration.parse().map_err(|_| {
                    format!("DURATION_SECS must be whole seconds, not {duration:?}")
                })?;
                opts.duration = Duration::from_secs(secs);
                opts.max_inflight = limit.parse().map_err(|_| {
                    format!("CONCURRENT_LIMIT must be a whole number, not {limit:?}")
                })?;
                Ok(opts)
            }
            _ => Err("nothing to do: try `loadgen run --help`".into()),
        }
    }
}

impl Cli {
    /// Parses `args` into run options; for unit tests, which may panic.
    #[cfg(test)]
    pub(crate) fn run_opts_for_tests<'a>(args: impl IntoIterator<Item = &'a str>) -> RunOpts {
        match Cli::parse_from(args).into_run() {
            Ok(opts) => opts,
            Err(e) => panic!("{e}"),
        }
    }
}

impl RunOpts {
    fn from_args<'a>(args: impl IntoIterator<Item = &'a str>) -> RunOpts {
        #[derive(Parser)]
        struct Wrap {
            #[command(flatten)]
            run: RunOpts,
        }
        // Only the URL is given; every other field takes its default.
        match Wrap::try_parse_from(std::iter::once("loadgen").chain(args.into_iter().skip(1))) {
            Ok(w) => w.run,
            Err(e) => e.exit(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_shortcut_maps_to_run() {
        let cli = Cli::parse_from(["loadgen", "ws://127.0.0.1:9/", "500", "12", "64"]);
        let run = cli.into_run().unwrap();
        assert_eq!(run.targets, vec!["ws://127.0.0.1:9/"]);
        assert_eq!(
            (run.connections, run.duration, run.max_inflight),
            (500, Duration::from_secs(12), 64)
        );
        assert_eq!(run.workload, WorkloadKind::ChatBinary);
    }

    #[test]
    fn the_shortcut_refuses_bad_numbers() {
        let cli = Cli::parse_from(["loadgen", "ws://h/", "many", "12", "64"]);
        assert!(cli.into_run().unwrap_err().contains("CONNECTIONS"));
    }

    #[test]
    fn run_takes_the_documented_flags() {
        let cli = Cli::parse_from([
            "loadgen",
            "run",
            "ws://127.0.0.1:8080",
            "--connections",
            "100000",
            "--ramp",
            "20000",
            "--duration",
            "60s",
            "--workload",
            "chat-binary",
            "--rooms",
            "1000",
            "--chatters",
            "0.1",
            "--rate",
            "1",
            "--size",
            "64",
            "--source-ips",
            "127.0.0.2-127.0.0.9",
        ]);
        let run = cli.into_run().unwrap();
        assert_eq!(run.rooms, Some(1000));
        assert_eq!(run.duration, Duration::from_secs(60));
        assert_eq!(run.source_ips.as_deref(), Some("127.0.0.2-127.0.0.9"));
    }
}
