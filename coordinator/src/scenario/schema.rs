//! The scenario file's shape. Every struct denies unknown keys, so a typo
//! is an error that names its line instead of a silently ignored setting.
//! Units are in the key or the type: durations are humantime strings
//! ("30s", "2m"), rates are per second, ratios are 0..=1.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A whole scenario file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Shown in the summary and the report.
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub target: Target,
    /// The server's Prometheus endpoint, `http://HOST:PORT/metrics`,
    /// sampled every second of every phase for the report's server
    /// section. `--local` runs scrape the server they start instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_metrics: Option<String>,
    pub agents: Agents,
    /// What happens when an agent dies or drops its control connection.
    #[serde(default)]
    pub on_agent_failure: OnAgentFailure,
    /// Run in order; each phase opens its connections, runs, and closes
    /// them (see scenarios/README.md).
    pub phases: Vec<Phase>,
    /// Checked against the whole run (every phase merged).
    #[serde(default)]
    pub thresholds: Vec<String>,
    #[serde(default)]
    pub output: Output,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// ws:// or wss:// URLs; connections go round-robin. May be empty only
    /// for `--local` runs, which start their own server.
    #[serde(default)]
    pub urls: Vec<String>,
    #[serde(default = "default_workload")]
    pub workload: loadgen::opts::WorkloadKind,
    /// Accept self-signed certificates on wss:// targets.
    #[serde(default)]
    pub insecure: bool,
    /// A PEM file of CA certificates to trust on wss:// targets beside
    /// Mozilla's roots (a private CA), relative to the scenario file's
    /// directory. The coordinator reads it and sends the contents in each
    /// order: an agent never reads a file a coordinator names.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// `ca_file`'s contents, read by [`super::load`]; `check` refuses a
    /// scenario whose file could not be read or holds no certificate.
    #[serde(skip)]
    pub ca_pem: Option<String>,
    /// Extra upgrade headers, "Name: value".
    #[serde(default)]
    pub headers: Vec<String>,
    #[serde(default)]
    pub subprotocols: Vec<String>,
    /// How chat connections join their room: `message` (a `join` message
    /// after the upgrade, any server of the chat protocol) or `url`
    /// (`?room=` in the upgrade URL, wslab's server only).
    #[serde(default)]
    pub join: loadgen::opts::JoinMode,
}

fn default_workload() -> loadgen::opts::WorkloadKind {
    loadgen::opts::WorkloadKind::ChatBinary
}

/// Where the agents are: exactly one of the three forms.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agents {
    /// Start this many agents on this machine (loopback source addresses
    /// are computed for them).
    #[serde(default)]
    pub local: Option<u32>,
    /// Agents at fixed addresses.
    #[serde(default, rename = "static")]
    pub static_list: Vec<StaticAgent>,
    /// "name:port": every A/AAAA record of the name is an agent (the
    /// docker compose service name).
    #[serde(default)]
    pub dns: Option<String>,
    /// Source addresses every dns-discovered agent binds (ranges, CIDRs or
    /// lists, as `loadgen --source-ips`); none means the kernel chooses.
    #[serde(default)]
    pub source_ips: Option<String>,
    /// Ephemeral ports per source address and target that the remote
    /// agents' kernels offer, for `validate`'s capacity check [default:
    /// Linux's default range, 28232].
    #[serde(default)]
    pub ports_per_address: Option<u64>,
}

/// One agent of a static list: "host:port", or the long form.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StaticAgent {
    Addr(String),
    Full(StaticAgentFull),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticAgentFull {
    pub addr: String,
    /// Share of the connections relative to the other agents [default 1].
    #[serde(default = "one")]
    pub weight: f64,
    #[serde(default)]
    pub source_ips: Option<String>,
}

fn one() -> f64 {
    1.0
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnAgentFailure {
    /// Stop every other agent and end the run (the default).
    #[default]
    Abort,
    /// Go on without it; its share is missing from the figures.
    Continue,
}

/// One phase: the knobs of `loadgen run`, for all agents together.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phase {
    pub name: String,
    /// Ramp included.
    #[serde(with = "humantime_serde_compat")]
    pub duration: Duration,
    /// Connections to open and hold, all agents together.
    pub connections: u64,
    /// New connections per second while ramping, all agents together.
    #[serde(default = "default_ramp")]
    pub ramp: f64,
    /// Upgrades in flight at once, all agents together.
    #[serde(default = "default_max_inflight")]
    pub max_inflight: usize,
    /// Chat rooms [default: one per 100 connections]; not with `room_size`.
    #[serde(default)]
    pub rooms: Option<u64>,
    /// Instead of `rooms`: members per room, giving ceil(connections /
    /// room_size) rooms (with a zipf distribution, the mean size).
    #[serde(default)]
    pub room_size: Option<u64>,
    /// How connections spread over the rooms: "uniform" (connection i in
    /// room i mod rooms) or "zipf:S" (the room of rank k gets a share
    /// proportional to 1/k^S), as `loadgen run --room-dist`.
    #[serde(default)]
    pub room_distribution: loadgen::opts::RoomDist,
    /// Fraction of connections that send.
    #[serde(default = "default_chatters")]
    pub chatters: f64,
    /// Messages per second per sending connection.
    #[serde(default = "default_rate")]
    pub rate: f64,
    /// Payload bytes per message (at least 24).
    #[serde(default = "default_size")]
    pub size: usize,
    /// Connections per second, all agents together, that close and reconnect.
    #[serde(default)]
    pub churn: f64,
    #[serde(default = "default_ping", with = "humantime_serde_compat")]
    pub ping_interval: Duration,
    #[serde(default = "default_connect_timeout", with = "humantime_serde_compat")]
    pub connect_timeout: Duration,
    #[serde(default = "default_drain", with = "humantime_serde_compat")]
    pub drain: Duration,
    /// A sender's own copy not back this long after it was due is lost.
    #[serde(
        default = "loadgen::opts::default_loss_timeout",
        with = "humantime_serde_compat"
    )]
    pub loss_timeout: Duration,
    /// The phase fails when more than this share (0 to 1) of the messages
    /// sent are lost; any loss by default.
    #[serde(default)]
    pub max_loss: f64,
    /// Checked against this phase alone.
    #[serde(default)]
    pub thresholds: Vec<String>,
}

fn default_ramp() -> f64 {
    10_000.0
}
fn default_max_inflight() -> usize {
    512
}
fn default_chatters() -> f64 {
    0.1
}
fn default_rate() -> f64 {
    1.0
}
fn default_size() -> usize {
    64
}
fn default_ping() -> Duration {
    Duration::from_secs(30)
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_drain() -> Duration {
    Duration::from_secs(2)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Output {
    /// Directory for results.json and report.html, relative to the
    /// working directory; `{name}` and `{time}` are filled in.
    #[serde(default = "default_dir")]
    pub dir: String,
}

impl Default for Output {
    fn default() -> Self {
        Output { dir: default_dir() }
    }
}

fn default_dir() -> String {
    "results/{name}-{time}".to_string()
}

/// Durations as humantime strings ("30s", "1m 30s").
mod humantime_serde_compat {
    use std::time::Duration;

    use std::fmt;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    /// Parsed inside a visitor, so that serde_yaml marks an error with the
    /// value's own line and key rather than its enclosing mapping's.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_str(DurationVisitor)
    }

    struct DurationVisitor;

    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a duration such as \"30s\" or \"2m\"")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
            humantime::parse_duration(text).map_err(|e| {
                E::custom(format!(
                    "{text:?} is not a duration ({e}); write e.g. \"30s\" or \"2m\""
                ))
            })
        }
    }
}
