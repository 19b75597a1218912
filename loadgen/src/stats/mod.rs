//! What a run measured: a lock-light [`Recorder`] shared by every
//! connection task, and the serializable, mergeable figures it yields
//! ([`Totals`] for the whole run, [`Interval`] for the progress line and
//! streaming).
//!
//! Latencies are kept as HDR histograms in microseconds so that figures of
//! several processes or agents can be merged exactly: histograms are added,
//! percentiles are never averaged.

mod histogram;
mod recorder;
mod totals;

pub use histogram::{
    cumulative_buckets, new_histogram, LatencyHistogram, HIGHEST_MICROS, PROMETHEUS_BUCKETS_MS,
    SIGNIFICANT_DIGITS,
};
pub use recorder::Recorder;
pub use totals::{per_second, Interval, IntervalLatency, Totals};

use serde::{Deserialize, Serialize};

/// The latencies a run measures; each has its own histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Latency {
    /// TCP connect plus WebSocket upgrade.
    Connect,
    /// A chatter's own chat message back to it, from its scheduled send time.
    RoundTrip,
    /// A chat message reaching another member of the room, sent from this
    /// host (so timed by one clock: [`crate::clock`]).
    Fanout,
    /// A frame echoed back by an echo server.
    Echo,
    /// Every timed copy of a message, whoever received it: the sender's
    /// own (round trip, echo) and every other member's (fan-out), from its
    /// scheduled send time. The headline latency: a server that hurries
    /// the sender's own copy and keeps the room waiting cannot look fast
    /// on it. Never recorded directly; it is the sum of the copy kinds'
    /// histograms ([`Latency::COPIES`]), so it merges exactly like them.
    Delivery,
}

impl Latency {
    pub const ALL: [Latency; 5] = [
        Latency::Connect,
        Latency::RoundTrip,
        Latency::Fanout,
        Latency::Echo,
        Latency::Delivery,
    ];

    /// The kinds a connection records; [`Latency::Delivery`] is derived.
    pub const RECORDED: [Latency; 4] = [
        Latency::Connect,
        Latency::RoundTrip,
        Latency::Fanout,
        Latency::Echo,
    ];

    /// The order people read them in: the headline, its parts, connect.
    pub const DISPLAY: [Latency; 5] = [
        Latency::Delivery,
        Latency::RoundTrip,
        Latency::Fanout,
        Latency::Echo,
        Latency::Connect,
    ];

    /// The kinds that time a copy of a sent message: together, delivery.
    pub const COPIES: [Latency; 3] = [Latency::RoundTrip, Latency::Fanout, Latency::Echo];

    /// The key in [`Totals::latencies`] and [`Interval::latencies`], and the
    /// label in JSON and Prometheus.
    pub fn as_str(self) -> &'static str {
        match self {
            Latency::Connect => "connect",
            Latency::RoundTrip => "round_trip",
            Latency::Fanout => "fanout",
            Latency::Echo => "echo",
            Latency::Delivery => "delivery",
        }
    }

    /// The kind's name for people, in summaries and reports.
    pub fn label(self) -> &'static str {
        match self {
            Latency::Connect => "connect",
            Latency::RoundTrip => "round trip",
            Latency::Fanout => "fan-out",
            Latency::Echo => "echo",
            Latency::Delivery => "delivery",
        }
    }

    /// The inverse of [`Latency::as_str`].
    pub fn from_key(key: &str) -> Option<Latency> {
        Latency::ALL.into_iter().find(|k| k.as_str() == key)
    }

    /// Position in [`Latency::RECORDED`], for the recorder's per-kind
    /// arrays; `None` for the derived delivery kind.
    fn recorded_index(self) -> Option<usize> {
        match self {
            Latency::Connect => Some(0),
            Latency::RoundTrip => Some(1),
            Latency::Fanout => Some(2),
            Latency::Echo => Some(3),
            Latency::Delivery => None,
        }
    }
}

/// Why a connection ended. Anything but [`Closed::ByUs`] and
/// [`Closed::Churn`] is an unexpected close and is counted by its label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// We closed it at the end of the run (or on Ctrl-C).
    ByUs,
    /// We closed it to reconnect (`--churn`).
    Churn,
    /// The server sent a close frame (with its code, if it gave one) or
    /// simply closed the TCP connection (`code: None`).
    ByServer { code: Option<u16> },
    /// The connection failed: the label says how (e.g. "reset", "protocol").
    Error(String),
}

/// The label of closes without a close code in [`Totals::closes_unexpected`].
pub const NO_CLOSE_CODE: &str = "no close code";

/// Decoding figures that came from a file or another process.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("latency histogram is not valid base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("latency histogram is not a valid HDR V2 serialization: {0}")]
    Hdr(#[from] hdrhistogram::serialization::DeserializeError),
    #[error("latency histogram is too large ({0} bytes of base64; the limit is {1})")]
    TooLarge(usize, usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_keys_round_trip_and_index_all() {
        for (i, k) in Latency::RECORDED.into_iter().enumerate() {
            assert_eq!(k.recorded_index(), Some(i));
        }
        assert_eq!(Latency::Delivery.recorded_index(), None);
        for k in Latency::ALL {
            assert_eq!(Latency::from_key(k.as_str()), Some(k));
        }
        assert_eq!(Latency::RoundTrip.as_str(), "round_trip");
        assert_eq!(Latency::from_key("rtt"), None);
        assert_eq!(
            serde_json::to_string(&Latency::RoundTrip).unwrap(),
            "\"round_trip\""
        );
    }
}
