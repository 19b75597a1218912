//! The command line. `loadgen run URL ...` is the full form; the seed's
//! `loadgen URL CONNECTIONS DURATION_SECS CONCURRENT_LIMIT` still works as
//! a shortcut for `run` with those three figures.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
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
    /// Target URLs (ws:// or wss://, comma-separated). Several share the
    /// connections: in chat workloads by room (room mod targets, so a
    /// room's members meet on one server), otherwise round-robin.
    #[arg(required = true, env = "LOADGEN_TARGETS", value_delimiter = ',')]
    pub targets: Vec<String>,

    /// Connections to open and hold (at most 100000000).
    #[arg(long, short = 'c', env = "LOADGEN_CONNECTIONS", default_value_t = 1000)]
    pub connections: u64,

    /// New connections per second while ramping up: 0.001 to 10000000, or
    /// 0 (or inf) for no pacing (as fast as --max-inflight lets them). The
    /// summary sets the rate achieved beside it, and says why when it fell
    /// well short.
    #[arg(long, env = "LOADGEN_RAMP", default_value_t = 10_000.0)]
    #[serde(serialize_with = "unpaced_as_zero")]
    pub ramp: f64,

    /// Upgrades in flight at once (1 to 1000000).
    #[arg(long, env = "LOADGEN_MAX_INFLIGHT", default_value_t = 512)]
    pub max_inflight: usize,

    /// Length of the whole run, ramp included; then every connection
    /// closes (at most 30 days).
    #[arg(long, short = 'd', env = "LOADGEN_DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub duration: Duration,

    #[arg(long, short = 'w', env = "LOADGEN_WORKLOAD", value_enum, default_value_t = WorkloadKind::ChatBinary)]
    pub workload: WorkloadKind,

    /// Chat rooms, 1 or more (with --room-dist zipf, at most 10000000)
    /// [default: one room per 100 connections]. Connection i joins room
    /// i mod ROOMS, unless --room-dist says otherwise.
    #[arg(long, env = "LOADGEN_ROOMS")]
    pub rooms: Option<u64>,

    /// Instead of --rooms: rooms of at most K members, i.e. ceil(CONNECTIONS
    /// / K) rooms (with --room-dist zipf, K is the mean size and the first
    /// rooms are larger).
    #[arg(
        long,
        env = "LOADGEN_ROOM_SIZE",
        value_name = "K",
        conflicts_with = "rooms"
    )]
    #[serde(default)]
    pub room_size: Option<u64>,

    /// How connections spread over the rooms: `uniform` (room i mod ROOMS,
    /// all the same size) or `zipf:S` (the room of rank k gets a share
    /// proportional to 1/k^S, S > 0: a few crowded rooms and a long tail of
    /// small ones, like real chat). Decided from the connection's number
    /// alone, so every process and agent agrees.
    #[arg(
        long,
        env = "LOADGEN_ROOM_DIST",
        value_name = "uniform|zipf:S",
        default_value = "uniform",
        value_parser = parse_room_dist
    )]
    #[serde(default)]
    pub room_dist: RoomDist,

    /// Prefix of this run's room names, so runs sharing a server never
    /// count each other's messages [default: a random one per run].
    #[arg(long, env = "LOADGEN_ROOM_PREFIX")]
    pub room_prefix: Option<String>,

    /// Fraction of connections that send (chat: chatters, the same share in
    /// every room; echo: senders), 0 to 1.
    #[arg(long, env = "LOADGEN_CHATTERS", default_value_t = 0.1)]
    pub chatters: f64,

    /// Messages per second per sending connection, 0.001 to 1000000 (open
    /// model: on a timetable, never waiting for replies).
    #[arg(long, env = "LOADGEN_RATE", default_value_t = 1.0)]
    pub rate: f64,

    /// Payload bytes per message: at least 24 (it carries the send time),
    /// at most 67108864 (64 MiB).
    #[arg(long, env = "LOADGEN_SIZE", default_value_t = 64)]
    pub size: usize,

    /// WebSocket ping interval per connection (keeps servers' idle
    /// timeouts away), at most 30 days; 0 = off.
    #[arg(long, env = "LOADGEN_PING_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub ping_interval: Duration,

    /// For wss:// targets: accept any server certificate (self-signed test
    /// servers). Without it, certificates are verified against Mozilla's
    /// root certificates and must name the URL's host.
    #[arg(long, env = "LOADGEN_INSECURE")]
    pub insecure: bool,

    /// For wss:// targets: a PEM file of one or more CA certificates to
    /// trust beside Mozilla's roots (a private CA, or a self-signed
    /// server's own certificate). Read once here: workers and agents get
    /// its contents, never the path.
    #[arg(long, env = "LOADGEN_CA_FILE")]
    #[serde(skip)]
    pub ca_file: Option<PathBuf>,

    /// `--ca-file`'s contents, as they cross to worker processes and
    /// agents (a coordinator reads a scenario's `target.ca_file` and sends
    /// this). Trusting more roots touches nothing on the receiving host,
    /// unlike a path, which would have it read a file of another's choosing.
    #[arg(skip)]
    #[serde(default)]
    pub ca_pem: Option<String>,

    /// Extra header on every upgrade request, `Name: value` (repeat for
    /// more), e.g. an auth token your service wants. One header each: a
    /// line break or other control character is refused, not split on.
    #[arg(long = "header", short = 'H', env = "LOADGEN_HEADERS")]
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
    /// 0 = no churn; otherwise 0.001 to 10000000.
    #[arg(long, env = "LOADGEN_CHURN", default_value_t = 0.0)]
    pub churn: f64,

    /// Source addresses to spread connections over: ranges, CIDRs or lists
    /// (127.0.0.2-127.0.0.40, 10.0.1.0/28, a,b,c). On loopback every 127.x
    /// address works without configuration. A (source, target address)
    /// pair holds at most the local port range (28,232 by default), but
    /// past half of it each connect searches the taken ports first and the
    /// connect rate collapses: give one address per half range (14,116) of
    /// each target's connections, or a warning says how many would do.
    /// Without this flag, when every target is on 127.x, loadgen picks
    /// enough from 127.1.0.1-127.1.0.254 itself and names them in the log
    /// and the summary.
    #[arg(long, env = "LOADGEN_SOURCE_IPS")]
    pub source_ips: Option<String>,

    /// Bound on TCP connect plus upgrade (above 0, at most 30 days).
    #[arg(long, env = "LOADGEN_CONNECT_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,

    /// After the last send, how long to wait for copies still in flight
    /// before counting a chatter's missing own copies as lost (at most 30
    /// days).
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

    /// Fail (exit 1) when fewer than this fraction (0 to 1) of the
    /// connections are held at the end of the ramp.
    #[arg(long, env = "LOADGEN_MIN_HELD", default_value_t = 1.0)]
    pub min_held: f64,

    /// Fail (exit 1) when more than this fraction (0 to 1) of the messages
    /// sent are lost: by default any loss fails the run.
    #[arg(long, env = "LOADGEN_MAX_LOSS", default_value_t = 0.0)]
    #[serde(default)]
    pub max_loss: f64,

    /// How a chat connection joins its room: `message` sends a `join`
    /// message right after the upgrade, as any server speaking the chat
    /// protocol of PROTOCOL.md expects; `url` asks for the room in the
    /// upgrade URL (`?room=&username=`), which only wslab's own server
    /// understands (it takes both).
    #[arg(long, env = "LOADGEN_JOIN", default_value = "message")]
    #[serde(default)]
    pub join: JoinMode,

    /// Worker threads per process, 1 to 1024 [default: one per core].
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

/// Writes an unpaced `--ramp inf` as 0, which means the same: JSON has no
/// infinity (serde_json writes null, which no worker or agent could read
/// back as a number).
fn unpaced_as_zero<S: serde::Serializer>(ramp: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(if ramp.is_finite() { *ramp } else { 0.0 })
}

/// `--loss-timeout`'s default, also for orders from a coordinator of an
/// earlier version, which had no loss timeout.
pub fn default_loss_timeout() -> Duration {
    Duration::from_secs(10)
}

/// How connections spread over the chat rooms.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum RoomDist {
    /// Connection i joins room i mod ROOMS: rooms of equal size.
    #[default]
    Uniform,
    /// The room of rank k (1-based) gets a share proportional to 1/k^S.
    Zipf(f64),
}

/// A `--room-dist` that is neither `uniform` nor `zipf:S` with S > 0.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected uniform or zipf:S with S > 0, got {0:?}")]
pub struct RoomDistError(pub String);

impl FromStr for RoomDist {
    type Err = RoomDistError;

    fn from_str(s: &str) -> Result<RoomDist, RoomDistError> {
        if s == "uniform" {
            return Ok(RoomDist::Uniform);
        }
        match s.strip_prefix("zipf:").map(str::parse::<f64>) {
            Some(Ok(exponent)) if exponent > 0.0 && exponent.is_finite() => {
                Ok(RoomDist::Zipf(exponent))
            }
            _ => Err(RoomDistError(s.to_string())),
        }
    }
}

impl fmt::Display for RoomDist {
    /// The command-line spelling, which [`FromStr`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoomDist::Uniform => f.write_str("uniform"),
            RoomDist::Zipf(s) => write!(f, "zipf:{s}"),
        }
    }
}

/// As its command-line spelling: the JSON sent to workers and agents, and
/// a scenario's `room_distribution`, read the same as `--room-dist`.
impl Serialize for RoomDist {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RoomDist {
    /// Parsed inside a visitor, so that serde_yaml places an error on the
    /// value's own line and key.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RoomDist, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RoomDist;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("uniform or zipf:S with S > 0")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<RoomDist, E> {
                s.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(Visitor)
    }
}

fn parse_room_dist(s: &str) -> Result<RoomDist, RoomDistError> {
    s.parse()
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
    /// Whether connections join chat rooms.
    pub fn is_chat(self) -> bool {
        matches!(self, WorkloadKind::ChatBinary | WorkloadKind::ChatJson)
    }

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

/// How a chat connection joins its room (`--join`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JoinMode {
    /// A `join` message right after the upgrade.
    #[default]
    Message,
    /// `?room=&username=` in the upgrade URL.
    Url,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Progress {
    Auto,
    Always,
    Never,
}

impl Cli {
    /// The run to do: the `run` subcommand, or the shortcut turned into one,
    /// with every value within loadgen's [`limits`].
    pub fn into_run(self) -> Result<RunOpts, String> {
        let opts = self.into_unchecked_run()?;
        let bad = opts.bad_values();
        if bad.is_empty() {
            Ok(opts)
        } else {
            let all: Vec<String> = bad.iter().map(BadValue::to_string).collect();
            Err(all.join("; "))
        }
    }

    /// [`Cli::into_run`] without the limits (for tests of the checks).
    pub(crate) fn into_unchecked_run(self) -> Result<RunOpts, String> {
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

/// loadgen's limits on its numbers: wide enough for any real run, narrow
/// enough that no value can overflow a timer, an allocation or a
/// semaphore, so a bad number is an error naming its flag instead of a
/// panic (or an abort) after the run has started.
pub mod limits {
    use std::time::Duration;

    /// Connections in one run, every process and agent together.
    pub const MAX_CONNECTIONS: u64 = 100_000_000;
    /// Ramp, connections per second (0 means unpaced). Slower than the
    /// minimum, the last connection's start time overflows the clock.
    pub const MIN_RAMP: f64 = 1e-3;
    pub const MAX_RAMP: f64 = 1e7;
    /// Upgrades in flight: far below tokio's semaphore limit.
    pub const MAX_INFLIGHT: usize = 1_000_000;
    /// Every duration flag: far beyond any run, far below the clock's
    /// overflow.
    pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);
    /// Messages per second per sender: below the minimum the interval
    /// overflows; above the maximum it rounds to nothing and a sender
    /// would never stop sending.
    pub const MIN_RATE: f64 = 1e-3;
    pub const MAX_RATE: f64 = 1e6;
    /// Payload bytes: each message is built whole before it is sent.
    pub const MAX_SIZE: usize = 64 << 20;
    /// Churn, connections per second (0 means none): the mean lifetime is
    /// CONNECTIONS / CHURN seconds, which must stay a duration.
    pub const MIN_CHURN: f64 = 1e-3;
    pub const MAX_CHURN: f64 = 1e7;
    /// Worker threads per process.
    pub const MAX_THREADS: usize = 1024;

    /// The check of a worker thread count, for `loadgen run` and `loadgen
    /// agent` alike: a runtime of 100,000 threads aborts rather than
    /// failing politely.
    pub fn threads(n: usize) -> Result<usize, String> {
        if (1..=MAX_THREADS).contains(&n) {
            Ok(n)
        } else {
            Err(format!("must be 1 to {MAX_THREADS}, not {n}"))
        }
    }
    /// A zipf spread keeps a cumulative table of 8 bytes per room.
    pub const MAX_ZIPF_ROOMS: u64 = 10_000_000;
}

/// A value outside loadgen's [`limits`]: its flag (`rate`, `max-inflight`)
/// and why, naming the allowed range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("--{flag} {why}")]
pub struct BadValue {
    pub flag: &'static str,
    pub why: String,
}

/// A number for a message: 1e-20, not 0.00000000000000000001.
fn num(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 || !v.is_finite() || (1e-4..1e15).contains(&a) {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

fn within(v: f64, min: f64, max: f64) -> bool {
    (min..=max).contains(&v)
}

impl RunOpts {
    /// Every value of a whole run (the command line's, a scenario phase's)
    /// outside loadgen's [`limits`], each naming its flag and range. The
    /// coordinator checks scenarios with this very function.
    pub fn bad_values(&self) -> Vec<BadValue> {
        let mut bad = self.bad_values_but_ramp();
        let ramp = self.ramp;
        let unpaced = ramp == 0.0 || ramp == f64::INFINITY;
        if !(unpaced || within(ramp, limits::MIN_RAMP, limits::MAX_RAMP)) {
            bad.push(BadValue {
                flag: "ramp",
                why: format!(
                    "must be {} to {} connections per second, or 0 (or inf) for no pacing, not {}",
                    num(limits::MIN_RAMP),
                    num(limits::MAX_RAMP),
                    num(ramp)
                ),
            });
        }
        bad
    }

    /// [`RunOpts::bad_values`] but the ramp's, for one process's or
    /// agent's share of a run: its ramp is the run's scaled down by its
    /// share, so may be below the run's minimum. Every process checks this
    /// ([`crate::workload::Workload::from_opts`]), whoever sent its options.
    pub fn bad_values_but_ramp(&self) -> Vec<BadValue> {
        let mut bad = Vec::new();
        let mut check = |flag: &'static str, ok: bool, why: &dyn Fn() -> String| {
            if !ok {
                bad.push(BadValue { flag, why: why() });
            }
        };
        check(
            "connections",
            self.connections <= limits::MAX_CONNECTIONS,
            &|| {
                format!(
                    "must be at most {}, not {}",
                    limits::MAX_CONNECTIONS,
                    self.connections
                )
            },
        );
        check(
            "max-inflight",
            (1..=limits::MAX_INFLIGHT).contains(&self.max_inflight),
            &|| {
                format!(
                    "must be 1 to {}, not {}",
                    limits::MAX_INFLIGHT,
                    self.max_inflight
                )
            },
        );
        let too_long = |d: Duration| {
            format!(
                "must be at most {}, not {}",
                humantime::format_duration(limits::MAX_DURATION),
                humantime::format_duration(d)
            )
        };
        for (flag, d) in [
            ("duration", self.duration),
            ("ping-interval", self.ping_interval),
            ("connect-timeout", self.connect_timeout),
            ("drain", self.drain),
            ("loss-timeout", self.loss_timeout),
        ] {
            check(flag, d <= limits::MAX_DURATION, &|| too_long(d));
        }
        if self.loss_timeout <= limits::MAX_DURATION {
            check("loss-timeout", !self.loss_timeout.is_zero(), &|| {
                "must be longer than 0s".into()
            });
        }
        if self.connect_timeout <= limits::MAX_DURATION {
            check("connect-timeout", !self.connect_timeout.is_zero(), &|| {
                "must be longer than 0s".into()
            });
        }
        check("chatters", within(self.chatters, 0.0, 1.0), &|| {
            format!("must be between 0 and 1, not {}", num(self.chatters))
        });
        check(
            "rate",
            within(self.rate, limits::MIN_RATE, limits::MAX_RATE),
            &|| {
                format!(
                    "must be {} to {} messages per second, not {}",
                    num(limits::MIN_RATE),
                    num(limits::MAX_RATE),
                    num(self.rate)
                )
            },
        );
        check(
            "size",
            (crate::chat::MIN_PAYLOAD..=limits::MAX_SIZE).contains(&self.size),
            &|| {
                format!(
                    "must be at least {} bytes (the payload carries the send time) and at most {} (64 MiB), not {}",
                    crate::chat::MIN_PAYLOAD,
                    limits::MAX_SIZE,
                    self.size
                )
            },
        );
        check(
            "churn",
            self.churn == 0.0 || within(self.churn, limits::MIN_CHURN, limits::MAX_CHURN),
            &|| {
                format!(
                    "must be a number of connections per second, 0 (none) or {} to {}, not {}",
                    num(limits::MIN_CHURN),
                    num(limits::MAX_CHURN),
                    num(self.churn)
                )
            },
        );
        check("max-loss", within(self.max_loss, 0.0, 1.0), &|| {
            format!("must be between 0 and 1, not {}", num(self.max_loss))
        });
        check("min-held", within(self.min_held, 0.0, 1.0), &|| {
            format!("must be between 0 and 1, not {}", num(self.min_held))
        });
        if let Some(why) = self.threads.and_then(|n| limits::threads(n).err()) {
            check("threads", false, &|| why.clone());
        }
        check("rooms", self.rooms != Some(0), &|| {
            "must be at least 1".into()
        });
        check("room-size", self.room_size != Some(0), &|| {
            "must be at least 1".into()
        });
        check(
            "room-size",
            self.rooms.is_none() || self.room_size.is_none(),
            &|| "cannot be used with --rooms: give the number of rooms or their size".into(),
        );
        if let RoomDist::Zipf(exponent) = self.room_dist {
            check("room-dist", exponent > 0.0 && exponent.is_finite(), &|| {
                format!(
                    "must be uniform or zipf:S with S > 0, not {}",
                    self.room_dist
                )
            });
            let rooms = self.room_count();
            check(
                if self.room_size.is_some() {
                    "room-size"
                } else {
                    "rooms"
                },
                rooms <= limits::MAX_ZIPF_ROOMS,
                &|| {
                    format!(
                        "gives {rooms} rooms; a zipf spread takes at most {} (it keeps 8 bytes per room)",
                        limits::MAX_ZIPF_ROOMS
                    )
                },
            );
        }
        bad
    }

    /// The number of chat rooms: --rooms, or enough rooms of --room-size
    /// for every connection, or one per 100 connections; at least 1.
    pub fn room_count(&self) -> u64 {
        match (self.rooms, self.room_size) {
            (Some(rooms), _) => rooms,
            (None, Some(size)) => self.connections.div_ceil(size.max(1)),
            (None, None) => self.connections.div_ceil(100),
        }
        .max(1)
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

    /// `loadgen run ws://h/ ARGS...`'s error: the CLI's check.
    fn refused(args: &[&str]) -> String {
        let cli = Cli::try_parse_from(["loadgen", "run", "ws://h/"].iter().chain(args))
            .unwrap_or_else(|e| panic!("{args:?} did not parse: {e}"));
        match cli.into_run() {
            Ok(_) => panic!("{args:?} was accepted"),
            Err(e) => e,
        }
    }

    #[test]
    fn every_bound_is_refused_naming_its_flag_and_range() {
        for (args, says) in [
            (&["--rate", "1e-20"][..], "--rate must be 0.001 to 1000000 messages per second, not 1e-20"),
            (&["--rate", "1e300"], "--rate must be 0.001 to 1000000"),
            (&["--rate", "NaN"], "--rate must be 0.001 to 1000000 messages per second, not NaN"),
            (&["--ramp", "1e-300"], "--ramp must be 0.001 to 10000000 connections per second, or 0 (or inf) for no pacing, not 1e-300"),
            (&["--ramp", "1e8"], "--ramp must be 0.001 to 10000000"),
            (&["--ramp=-1"], "--ramp must be"),
            (&["--ramp", "NaN"], "--ramp must be"),
            (&["--drain", "500000000000years"], "--drain must be at most 30days, not "),
            (&["--ping-interval", "500000000000years"], "--ping-interval must be at most 30days"),
            (&["--duration", "31days"], "--duration must be at most 30days, not 1month"),
            (&["--connect-timeout", "1000days"], "--connect-timeout must be at most 30days"),
            (&["--connect-timeout", "0s"], "--connect-timeout must be longer than 0s"),
            (&["--max-inflight", "18446744073709551615"], "--max-inflight must be 1 to 1000000, not 18446744073709551615"),
            (&["--max-inflight", "4294967296"], "--max-inflight must be 1 to 1000000"),
            (&["--max-inflight", "0"], "--max-inflight must be 1 to 1000000, not 0"),
            (&["--size", "100000000000"], "--size must be at least 24 bytes (the payload carries the send time) and at most 67108864 (64 MiB), not 100000000000"),
            (&["--size", "8"], "--size must be at least 24 bytes"),
            (&["--threads", "100000"], "--threads must be 1 to 1024, not 100000"),
            (&["--threads", "0"], "--threads must be 1 to 1024, not 0"),
            (&["--connections", "100000001"], "--connections must be at most 100000000, not 100000001"),
            (&["--chatters", "NaN"], "--chatters must be between 0 and 1, not NaN"),
            (&["--chatters", "inf"], "--chatters must be between 0 and 1, not inf"),
            (&["--churn", "NaN"], "--churn must be a number of connections per second, 0 (none) or 0.001 to 10000000, not NaN"),
            (&["--churn", "inf"], "--churn must be"),
            (&["--churn", "1e-300"], "--churn must be"),
            (&["--churn=-1"], "--churn must be"),
            (&["--min-held", "NaN"], "--min-held must be between 0 and 1, not NaN"),
            (&["--min-held=-inf"], "--min-held must be between 0 and 1, not -inf"),
            (&["--rooms", "0"], "--rooms must be at least 1"),
            (&["--room-size", "0"], "--room-size must be at least 1"),
            (&["--room-size", "1", "-c", "20000000", "--room-dist", "zipf:1"], "--room-size gives 20000000 rooms; a zipf spread takes at most 10000000"),
        ] {
            let e = refused(args);
            assert!(e.starts_with(says), "{args:?}:\n  got  {e}\n  want {says}...");
        }
        // Several at once: all of them.
        let e = refused(&["--rate", "0", "--threads", "0"]);
        assert!(e.contains("--rate") && e.contains("--threads"), "{e}");
    }

    #[test]
    fn the_limits_themselves_and_the_special_values_are_accepted() {
        let ok = |args: &[&str]| {
            let cli = Cli::parse_from(["loadgen", "run", "ws://h/"].iter().chain(args));
            cli.into_run().unwrap_or_else(|e| panic!("{args:?}: {e}"))
        };
        ok(&["--rate", "0.001", "--ramp", "0.001", "--churn", "0.001"]);
        ok(&[
            "--rate", "1000000", "--ramp", "10000000", "--churn", "10000000",
        ]);
        assert_eq!(ok(&["--ramp", "0"]).ramp, 0.0);
        assert_eq!(ok(&["--ramp", "inf"]).ramp, f64::INFINITY);
        assert!(ok(&["--ping-interval", "0s"]).ping_interval.is_zero());
        ok(&[
            "--duration",
            "30days",
            "--drain",
            "30days",
            "--ping-interval",
            "30days",
        ]);
        ok(&[
            "--max-inflight",
            "1000000",
            "--size",
            "67108864",
            "--threads",
            "1024",
        ]);
        ok(&[
            "--connections",
            "100000000",
            "--chatters",
            "0",
            "--min-held",
            "0",
        ]);
    }

    #[test]
    fn the_shortcut_is_held_to_the_same_limits() {
        let cli = Cli::parse_from(["loadgen", "ws://h/", "10", "2", "18446744073709551615"]);
        assert!(cli
            .into_run()
            .unwrap_err()
            .starts_with("--max-inflight must be 1 to 1000000"));
    }

    #[test]
    fn options_from_an_older_sender_take_the_new_defaults() {
        let opts = Cli::run_opts_for_tests([
            "loadgen",
            "run",
            "ws://h/",
            "--room-size",
            "7",
            "--room-dist",
            "zipf:1.5",
        ]);
        let mut json = serde_json::to_value(&opts).unwrap();
        assert_eq!(json["room_dist"], "zipf:1.5");
        assert_eq!(json["room_size"], 7);
        let back: RunOpts = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(
            (back.room_size, back.room_dist),
            (Some(7), RoomDist::Zipf(1.5))
        );
        let map = json.as_object_mut().unwrap();
        map.remove("room_dist");
        map.remove("room_size");
        let old: RunOpts = serde_json::from_value(json).unwrap();
        assert_eq!((old.room_size, old.room_dist), (None, RoomDist::Uniform));
        // and the defaults of this version's new keys
        assert_eq!((old.max_loss, old.join), (0.0, JoinMode::Message));
    }

    /// `--ca-file`'s path never crosses to workers or agents, only the
    /// certificates (`ca_pem`), so no process is told a path to read.
    #[test]
    fn the_ca_crosses_as_contents_never_as_a_path() {
        let mut opts =
            Cli::run_opts_for_tests(["loadgen", "run", "wss://h/", "--ca-file", "/x/ca.pem"]);
        assert_eq!(opts.ca_file, Some(PathBuf::from("/x/ca.pem")));
        opts.ca_pem = Some("PEM".into());
        let json = serde_json::to_value(&opts).unwrap();
        assert!(json.get("ca_file").is_none(), "{json}");
        let mut back: RunOpts = serde_json::from_value(json).unwrap();
        assert_eq!((back.ca_file, back.ca_pem.as_deref()), (None, Some("PEM")));
        // An order that names a path anyway is read without it.
        let mut json = serde_json::to_value(&opts).unwrap();
        json["ca_file"] = "/etc/shadow".into();
        back = serde_json::from_value(json).unwrap();
        assert_eq!(back.ca_file, None);
    }

    /// `--ramp inf` crosses to workers and agents as 0, its equal: JSON has
    /// no infinity, and a null would not parse back.
    #[test]
    fn an_unpaced_ramp_survives_the_wire() {
        for ramp in ["inf", "0"] {
            let opts = Cli::run_opts_for_tests(["loadgen", "run", "ws://h/", "--ramp", ramp]);
            let json = serde_json::to_string(&opts).unwrap();
            let back: RunOpts = serde_json::from_str(&json).expect(&json);
            assert_eq!(back.ramp, 0.0, "{ramp}");
            assert!(back.bad_values().is_empty(), "{ramp}: still within limits");
        }
        let paced = Cli::run_opts_for_tests(["loadgen", "run", "ws://h/", "--ramp", "2500"]);
        let back: RunOpts = serde_json::from_str(&serde_json::to_string(&paced).unwrap()).unwrap();
        assert_eq!(back.ramp, 2500.0);
    }
}
