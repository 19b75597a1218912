//! Command-line options and the validated configuration derived from them.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use protocol::Proto;

/// The chat server. Every flag but `--healthcheck` can also be set from the
/// environment variable shown, for containers.
#[derive(Debug, Clone, Parser)]
#[command(name = "server", version, about)]
pub struct Opts {
    /// Address the WebSocket listeners bind (one SO_REUSEPORT socket per worker).
    #[arg(long, env = "SERVER_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// Address of the Prometheus endpoint (`/metrics`, plus `/healthz`).
    #[arg(long, env = "SERVER_METRICS_LISTEN", default_value = "0.0.0.0:9090")]
    pub metrics_listen: SocketAddr,

    /// Serve no metrics endpoint.
    #[arg(long, env = "SERVER_NO_METRICS")]
    pub no_metrics: bool,

    /// Do not serve: check the server these flags describe and exit 0 when
    /// it answers (`/healthz` on the metrics address, or the WebSocket
    /// port with --no-metrics), 1 otherwise. For container healthchecks.
    /// Command line only, unlike every other flag: the check runs with the
    /// server container's own environment (docker-compose.yml), where a
    /// SERVER_HEALTHCHECK would turn the server itself into a check that
    /// exits at once.
    #[arg(long)]
    pub healthcheck: bool,

    /// Worker threads, each with its own listener and event loop [default: cores].
    #[arg(long, env = "SERVER_WORKERS")]
    pub workers: Option<usize>,

    /// Pin worker N to core N (mod the core count).
    #[arg(long, env = "SERVER_PIN_CORES")]
    pub pin_cores: bool,

    /// Shards of the room registry (a power of two) [default: 4 × cores, rounded up].
    #[arg(long, env = "SERVER_ROOM_SHARDS")]
    pub room_shards: Option<usize>,

    /// Connections held at once; upgrades past it get HTTP 503. Capped by the
    /// open-file limit, which the server raises to its hard limit at start.
    #[arg(long, env = "SERVER_MAX_CONNECTIONS", default_value_t = 1_000_000)]
    pub max_connections: usize,

    /// Listen backlog per worker (the kernel caps it at net.core.somaxconn).
    #[arg(long, env = "SERVER_BACKLOG", default_value_t = 4096)]
    pub backlog: u32,

    /// Close a connection that sent nothing for this long (code 1000).
    #[arg(long, env = "SERVER_IDLE_TIMEOUT", default_value = "120s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,

    /// Drop a TCP connection that has not completed its upgrade in this time.
    #[arg(long, env = "SERVER_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub handshake_timeout: Duration,

    /// On SIGTERM/SIGINT, how long connections get to close before exit.
    #[arg(long, env = "SERVER_DRAIN_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,

    /// Largest message (after reassembling fragments), bytes; larger: close 1009.
    #[arg(long, env = "SERVER_MAX_MESSAGE_SIZE", default_value_t = 65536)]
    pub max_message_size: usize,

    /// Longest username, bytes.
    #[arg(long, env = "SERVER_MAX_USERNAME_LEN", default_value_t = 64)]
    pub max_username_len: usize,

    /// Longest room name, bytes.
    #[arg(long, env = "SERVER_MAX_ROOM_LEN", default_value_t = 128)]
    pub max_room_len: usize,

    /// Rooms one connection may be in at once.
    #[arg(long, env = "SERVER_MAX_ROOMS_PER_CONNECTION", default_value_t = 16)]
    pub max_rooms_per_connection: usize,

    /// Bytes waiting in one connection's outbound queue before messages for
    /// it are dropped (slow consumer).
    #[arg(long, env = "SERVER_MAX_QUEUED_BYTES", default_value_t = 1 << 20)]
    pub max_queued_bytes: usize,

    /// Dropped messages after which a slow consumer is closed with 1013.
    #[arg(long, env = "SERVER_MAX_DROPS", default_value_t = 100)]
    pub max_drops: u32,

    /// Undecodable or unsupported messages after which a connection is
    /// closed (1007, or 1003 when the last one was of an unknown type).
    #[arg(long, env = "SERVER_MAX_BAD_MESSAGES", default_value_t = 5)]
    pub max_bad_messages: u32,

    /// SO_SNDBUF for accepted sockets, bytes. Unset, the kernel autotunes up
    /// to net.ipv4.tcp_wmem's maximum (4 MiB by default) per slow reader;
    /// set, it caps the kernel memory a non-reading client can pin.
    #[arg(long, env = "SERVER_SOCKET_SEND_BUFFER")]
    pub socket_send_buffer: Option<usize>,

    /// SO_RCVBUF for accepted sockets, bytes [default: kernel autotuning].
    #[arg(long, env = "SERVER_SOCKET_RECV_BUFFER")]
    pub socket_recv_buffer: Option<usize>,

    /// Encoding of messages to a connection that has not sent any yet and
    /// did not ask with `?proto=`.
    #[arg(long, env = "SERVER_DEFAULT_PROTO", default_value = "json", value_parser = parse_proto)]
    pub default_proto: Proto,

    /// Serve an echo endpoint at `/echo` on the WebSocket listener: every
    /// message comes back in the frame type it came in, with no chat
    /// protocol. For conformance tests (Autobahn) of the frame reader the
    /// chat path uses. Off, `/echo` is a chat upgrade like any other path.
    #[arg(long, env = "SERVER_ECHO")]
    pub echo: bool,

    /// Largest message on `/echo` (after reassembling fragments), bytes;
    /// larger: close 1009. Apart from --max-message-size, because
    /// Autobahn's performance cases send up to 16 MiB.
    #[arg(long, env = "SERVER_ECHO_MAX_MESSAGE_SIZE", default_value_t = 16 << 20)]
    pub echo_max_message_size: usize,
}

fn parse_proto(s: &str) -> Result<Proto, String> {
    Proto::from_name(s).ok_or_else(|| format!("unknown encoding {s:?} (json or binary)"))
}

impl Opts {
    /// Options with every default, for tests and embedding.
    pub fn defaults() -> Opts {
        Opts::parse_from(["server"])
    }
}

/// Why options were refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--{0} must be at least 1")]
    Zero(&'static str),
    #[error("--max-message-size must be at least 1024 bytes (a chat message carries headers)")]
    MessageTooSmall,
}

impl Opts {
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, value) in [
            ("workers", self.workers.unwrap_or(1)),
            ("max-connections", self.max_connections),
            ("max-username-len", self.max_username_len),
            ("max-room-len", self.max_room_len),
            ("max-rooms-per-connection", self.max_rooms_per_connection),
            ("max-queued-bytes", self.max_queued_bytes),
            ("max-drops", self.max_drops as usize),
            ("max-bad-messages", self.max_bad_messages as usize),
            ("echo-max-message-size", self.echo_max_message_size),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        if self.max_message_size < 1024 {
            return Err(ConfigError::MessageTooSmall);
        }
        if self.idle_timeout.is_zero() {
            return Err(ConfigError::Zero("idle-timeout"));
        }
        Ok(())
    }

    pub fn worker_count(&self) -> usize {
        self.workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}
