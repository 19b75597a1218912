//! Prometheus metrics. Handles are registered once at start so the hot path
//! pays one atomic add per update, never a registry lookup. The HTTP
//! endpoint and the `process_*` figures come from `promhttp`, shared with
//! the load generator.

use std::sync::OnceLock;

use metrics::{
    describe_counter, describe_gauge, describe_histogram, Counter, Gauge, Histogram, Unit,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use protocol::{MsgType, Proto};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Why a connection ended; the `reason` label of `chat_connections_closed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client sent a close frame.
    ClientClose,
    /// The TCP connection ended without a close frame.
    PeerGone,
    IdleTimeout,
    Shutdown,
    SlowConsumer,
    ProtocolError,
    TooBig,
    InvalidPayload,
    Unsupported,
    IoError,
}

impl CloseReason {
    const ALL: [CloseReason; 10] = [
        CloseReason::ClientClose,
        CloseReason::PeerGone,
        CloseReason::IdleTimeout,
        CloseReason::Shutdown,
        CloseReason::SlowConsumer,
        CloseReason::ProtocolError,
        CloseReason::TooBig,
        CloseReason::InvalidPayload,
        CloseReason::Unsupported,
        CloseReason::IoError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::ClientClose => "client_close",
            CloseReason::PeerGone => "peer_gone",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::Shutdown => "shutdown",
            CloseReason::SlowConsumer => "slow_consumer",
            CloseReason::ProtocolError => "protocol_error",
            CloseReason::TooBig => "too_big",
            CloseReason::InvalidPayload => "invalid_payload",
            CloseReason::Unsupported => "unsupported",
            CloseReason::IoError => "io_error",
        }
    }

    /// The close code the server sends for a close it starts.
    pub fn code(self) -> u16 {
        use protocol::frame::close_code::*;
        match self {
            CloseReason::ClientClose | CloseReason::PeerGone | CloseReason::IdleTimeout => NORMAL,
            CloseReason::Shutdown => GOING_AWAY,
            CloseReason::SlowConsumer => TRY_AGAIN_LATER,
            CloseReason::ProtocolError => PROTOCOL_ERROR,
            CloseReason::TooBig => MESSAGE_TOO_BIG,
            CloseReason::InvalidPayload => INVALID_PAYLOAD,
            CloseReason::Unsupported => UNSUPPORTED_DATA,
            CloseReason::IoError => INTERNAL_ERROR,
        }
    }

    pub fn from_code(code: u16) -> CloseReason {
        use protocol::frame::close_code::*;
        match code {
            MESSAGE_TOO_BIG => CloseReason::TooBig,
            INVALID_PAYLOAD => CloseReason::InvalidPayload,
            UNSUPPORTED_DATA => CloseReason::Unsupported,
            _ => CloseReason::ProtocolError,
        }
    }
}

/// Why an upgrade was refused; the `reason` label of `chat_connections_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    MaxConnections,
    BadRequest,
    HandshakeTimeout,
    IoError,
    ShuttingDown,
}

impl Rejection {
    const ALL: [Rejection; 5] = [
        Rejection::MaxConnections,
        Rejection::BadRequest,
        Rejection::HandshakeTimeout,
        Rejection::IoError,
        Rejection::ShuttingDown,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Rejection::MaxConnections => "max_connections",
            Rejection::BadRequest => "bad_request",
            Rejection::HandshakeTimeout => "handshake_timeout",
            Rejection::IoError => "io_error",
            Rejection::ShuttingDown => "shutting_down",
        }
    }
}

const PROTOS: [Proto; 2] = [Proto::Json, Proto::Binary];

/// Every metric the server updates, registered once.
pub struct Metrics {
    pub connections_open: Gauge,
    pub accepted: Counter,
    closed: [Counter; CloseReason::ALL.len()],
    rejected: [Counter; Rejection::ALL.len()],
    messages_in: [[Counter; 2]; MsgType::ALL.len()],
    messages_out: [[Counter; 2]; MsgType::ALL.len()],
    bad_messages: [Counter; 2],
    pub bytes_in: Counter,
    pub bytes_out: Counter,
    pub fanout: Histogram,
    pub dropped: Counter,
    pub rooms: Gauge,
    pub handshake_seconds: Histogram,
}

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide Prometheus recorder the first time it is
/// called; several servers in one process (tests) share it.
fn recorder() -> Option<&'static PrometheusHandle> {
    RECORDER
        .get_or_init(|| {
            let fanout = [
                1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0,
                10000.0, 25000.0, 100000.0,
            ];
            let seconds = [
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5, 5.0, 10.0,
            ];
            let built = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full("chat_broadcast_recipients".into()), &fanout)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("chat_handshake_duration_seconds".into()),
                        &seconds,
                    )
                })
                .and_then(|b| b.install_recorder());
            match built {
                Ok(handle) => Some(handle),
                Err(e) => {
                    tracing::error!("metrics disabled: {e}");
                    None
                }
            }
        })
        .as_ref()
}

impl Metrics {
    pub fn new() -> Metrics {
        let _ = recorder();
        describe();
        Metrics {
            connections_open: metrics::gauge!("chat_connections_open"),
            accepted: metrics::counter!("chat_connections_accepted_total"),
            closed: CloseReason::ALL
                .map(|r| metrics::counter!("chat_connections_closed_total", "reason" => r.as_str())),
            rejected: Rejection::ALL.map(|r| {
                metrics::counter!("chat_connections_rejected_total", "reason" => r.as_str())
            }),
            messages_in: MsgType::ALL.map(|t| {
                PROTOS.map(|p| {
                    metrics::counter!("chat_messages_received_total", "type" => t.as_str(), "encoding" => p.as_str())
                })
            }),
            messages_out: MsgType::ALL.map(|t| {
                PROTOS.map(|p| {
                    metrics::counter!("chat_messages_sent_total", "type" => t.as_str(), "encoding" => p.as_str())
                })
            }),
            bad_messages: PROTOS
                .map(|p| metrics::counter!("chat_bad_messages_total", "encoding" => p.as_str())),
            bytes_in: metrics::counter!("chat_received_bytes_total"),
            bytes_out: metrics::counter!("chat_sent_bytes_total"),
            fanout: metrics::histogram!("chat_broadcast_recipients"),
            dropped: metrics::counter!("chat_messages_dropped_total", "reason" => "slow_consumer"),
            rooms: metrics::gauge!("chat_rooms"),
            handshake_seconds: metrics::histogram!("chat_handshake_duration_seconds"),
        }
    }

    pub fn closed(&self, reason: CloseReason) -> &Counter {
        &self.closed[reason as usize]
    }

    pub fn rejected(&self, reason: Rejection) -> &Counter {
        &self.rejected[reason as usize]
    }

    pub fn received(&self, kind: MsgType, proto: Proto) -> &Counter {
        &self.messages_in[kind as usize - 1][proto as usize]
    }

    pub fn sent(&self, kind: MsgType, proto: Proto) -> &Counter {
        &self.messages_out[kind as usize - 1][proto as usize]
    }

    pub fn bad_message(&self, proto: Proto) -> &Counter {
        &self.bad_messages[proto as usize]
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn describe() {
    describe_gauge!(
        "chat_connections_open",
        Unit::Count,
        "WebSocket connections currently open (upgraded)."
    );
    describe_counter!(
        "chat_connections_accepted_total",
        Unit::Count,
        "Connections upgraded to WebSocket."
    );
    describe_counter!(
        "chat_connections_closed_total",
        Unit::Count,
        "Upgraded connections closed, by reason."
    );
    describe_counter!(
        "chat_connections_rejected_total",
        Unit::Count,
        "TCP connections refused before or during the upgrade, by reason."
    );
    describe_counter!(
        "chat_messages_received_total",
        Unit::Count,
        "Chat protocol messages received, by type and encoding."
    );
    describe_counter!(
        "chat_messages_sent_total",
        Unit::Count,
        "Chat protocol messages queued to clients (each recipient counts), by type and encoding."
    );
    describe_counter!(
        "chat_bad_messages_total",
        Unit::Count,
        "Messages that could not be decoded or were refused, by encoding."
    );
    describe_counter!(
        "chat_received_bytes_total",
        Unit::Bytes,
        "Bytes read from WebSocket connections (frames, after the upgrade)."
    );
    describe_counter!(
        "chat_sent_bytes_total",
        Unit::Bytes,
        "Bytes written to WebSocket connections (frames, after the upgrade)."
    );
    describe_histogram!(
        "chat_broadcast_recipients",
        Unit::Count,
        "Recipients of each room broadcast (fan-out)."
    );
    describe_counter!(
        "chat_messages_dropped_total",
        Unit::Count,
        "Messages dropped because a recipient's outbound queue was full."
    );
    describe_gauge!("chat_rooms", Unit::Count, "Rooms with at least one member.");
    describe_histogram!(
        "chat_handshake_duration_seconds",
        Unit::Seconds,
        "From TCP accept to the 101 response written."
    );
}

/// The text of `/metrics`: the registry plus process figures read now.
pub fn render() -> String {
    let mut text = recorder().map(PrometheusHandle::render).unwrap_or_default();
    promhttp::render_process(&mut text);
    text
}

/// Serves [`render`] on `GET /metrics` (and `GET /healthz`) until `stop`
/// changes.
pub async fn serve(listener: TcpListener, stop: watch::Receiver<bool>) {
    promhttp::serve(listener, stop, render).await
}

/// Keeps histogram storage bounded between scrapes.
pub fn upkeep() {
    if let Some(handle) = recorder() {
        handle.run_upkeep();
    }
}
