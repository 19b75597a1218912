//! `--metrics-listen`: the run's figures, as they stand at each scrape, in
//! the Prometheus text format, served by `promhttp` (the server's endpoint).
//!
//! Everything comes from one [`Recorder::totals`] snapshot, so counters and
//! histogram counts agree with each other and with the `--json` report.
//! Latencies are histograms in seconds whose buckets are
//! [`PROMETHEUS_BUCKETS_MS`] (chosen in milliseconds: loopback round trips
//! sit below a millisecond, overloaded servers take seconds).
//!
//! Labels whose values come from outside (connect error kinds, close codes)
//! are capped: the first [`MAX_LABEL_VALUES`] values in name order keep
//! their own series and any further ones are counted together as
//! `"other"`. Values are never forgotten during a run, so a new value that
//! sorts early can only push the last kept one into `"other"` (its series
//! ends there, its count carries on in `"other"`), and nothing ever leaves
//! `"other"`: every series only grows, as a counter must. A cap by count
//! would move values in and out of `"other"` and make it go down.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use hdrhistogram::Histogram;
use promhttp::escape_label_value;
use tokio::sync::watch;
use tracing::info;

use crate::stats::{cumulative_buckets, Latency, Recorder, Totals, PROMETHEUS_BUCKETS_MS};

/// Label values of an externally labelled metric that keep their own
/// series; `"other"` may come on top.
pub const MAX_LABEL_VALUES: usize = 50;

/// The label value of everything past [`MAX_LABEL_VALUES`].
pub const OTHER: &str = "other";

/// The I/O error is part of the message, not a `source`, so that printing
/// the error chain (`{:#}`) does not say it twice.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("--metrics-listen {addr}: cannot listen there: {reason}")]
    Bind {
        addr: SocketAddr,
        reason: std::io::Error,
    },
    #[error("--metrics-listen: cannot serve: {reason}")]
    Serve { reason: std::io::Error },
}

/// Binds the endpoint's address before the run starts, so a port in use or
/// an address not on this host is an error before any connection, and the
/// run never goes ahead without the metrics it was asked for. Needs no
/// runtime.
pub fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, MetricsError> {
    let open = || {
        let listener = std::net::TcpListener::bind(addr)?;
        // tokio takes it over in `serve`
        listener.set_nonblocking(true)?;
        Ok(listener)
    };
    open().map_err(|reason| MetricsError::Bind { addr, reason })
}

/// Serves `/metrics` (see [`render`]) and `/healthz` on `listener` until
/// `stop` changes or its sender is dropped; returns the address it serves.
/// Must be called inside the tokio runtime.
pub fn serve(
    listener: std::net::TcpListener,
    recorder: Arc<Recorder>,
    target_connections: u64,
    stop: watch::Receiver<bool>,
) -> Result<SocketAddr, MetricsError> {
    serve_totals(listener, target_connections, stop, move || {
        recorder.totals()
    })
}

/// Serves the figures `totals` returns at each scrape: one recorder's, or
/// the merged totals of a `--processes` run's workers. The `process_*`
/// figures are those of the serving process with its workers.
pub fn serve_totals(
    listener: std::net::TcpListener,
    target_connections: u64,
    stop: watch::Receiver<bool>,
    totals: impl Fn() -> Totals + Send + Sync + 'static,
) -> Result<SocketAddr, MetricsError> {
    let start = || {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let addr = listener.local_addr()?;
        Ok((listener, addr))
    };
    let (listener, addr) = start().map_err(|reason| MetricsError::Serve { reason })?;
    info!("Prometheus metrics on http://{addr}/metrics");
    tokio::spawn(promhttp::serve(listener, stop, move || {
        let mut out = String::with_capacity(16 * 1024);
        render_totals(&totals(), target_connections, &mut out);
        promhttp::process::render(promhttp::process::Scope::WithChildren, &mut out);
        out
    }));
    Ok(addr)
}

/// The latest totals of whatever run is going on, for an endpoint that
/// outlives runs (an agent's): runs publish here, scrapes read.
#[derive(Clone, Default)]
pub struct Snapshot(Arc<std::sync::Mutex<Option<(Totals, u64)>>>);

impl Snapshot {
    /// Publishes `totals` of a run asked to hold `target` connections.
    pub fn set(&self, totals: Totals, target: u64) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((totals, target));
    }

    /// The run's figures as Prometheus text, or nothing before any run.
    pub fn render(&self, out: &mut String) {
        if let Some((t, target)) = &*self.0.lock().unwrap_or_else(|e| e.into_inner()) {
            render_totals(t, *target, out);
        }
    }
}

/// The whole exposition: the run's figures and the `process_*` figures
/// (this process's with its children's: `--processes` workers).
/// A few milliseconds with full histograms ([`Recorder::totals`] encodes
/// them), which is why `promhttp` renders on the blocking pool.
pub fn render(recorder: &Recorder, target_connections: u64, out: &mut String) {
    render_totals(&recorder.totals(), target_connections, out);
    promhttp::process::render(promhttp::process::Scope::WithChildren, out);
}

/// The run's figures from a snapshot (also usable for merged totals).
pub fn render_totals(t: &Totals, target_connections: u64, out: &mut String) {
    gauge(
        out,
        "loadgen_connections_open",
        "WebSocket connections open now.",
        t.open_connections,
    );
    gauge(
        out,
        "loadgen_connections_target",
        "WebSocket connections this process was asked to open and hold.",
        target_connections,
    );
    gauge(
        out,
        "loadgen_connections_peak",
        "The most WebSocket connections open at once so far.",
        t.peak_connections,
    );
    counter(
        out,
        "loadgen_connect_attempts_total",
        "Connection attempts started (TCP connect plus WebSocket upgrade).",
        t.connects_attempted,
    );
    counter(
        out,
        "loadgen_connects_total",
        "Connection attempts that ended with an upgraded WebSocket.",
        t.connects_ok,
    );
    labelled_counter(
        out,
        "loadgen_connect_errors_total",
        "Connection attempts that failed, by kind (the first 50 kinds in name order; any further ones count as \"other\").",
        "kind",
        &t.connect_errors,
    );
    labelled_counter(
        out,
        "loadgen_closes_unexpected_total",
        "Connections that ended without us closing them, by close code, \"no close code\" or error (the first 50 in name order; any further ones count as \"other\").",
        "code",
        &t.closes_unexpected,
    );
    counter(
        out,
        "loadgen_messages_sent_total",
        "Data messages sent (chat messages or echo frames).",
        t.messages_sent,
    );
    counter(
        out,
        "loadgen_messages_received_total",
        "Data messages received: copies, notices (welcomes, join and leave) and unexpected messages together.",
        t.messages_received,
    );
    counter(
        out,
        "loadgen_copies_received_total",
        "Copies of the run's messages received (chat copies, echoes; every member's copy counts): what message rates count.",
        t.copies_received,
    );
    counter(
        out,
        "loadgen_messages_unexpected_total",
        "Received messages that were not the run's (errors from the server, others' chat, undecodable): any fails the run.",
        t.messages_unexpected,
    );
    counter(
        out,
        "loadgen_sent_bytes_total",
        "Bytes written to WebSocket connections after the upgrade (frames, headers included).",
        t.bytes_sent,
    );
    counter(
        out,
        "loadgen_received_bytes_total",
        "Bytes read from WebSocket connections after the upgrade (frames, headers included).",
        t.bytes_received,
    );
    counter(
        out,
        "loadgen_messages_lost_total",
        "A chatter's own chat messages that did not come back within the drain time.",
        t.messages_lost,
    );
    counter(
        out,
        "loadgen_churned_total",
        "Connections closed by loadgen to reconnect them (--churn).",
        t.churned,
    );
    header(
        out,
        "loadgen_latency_seconds",
        "Latency by kind: delivery (the headline: every timed copy, the sender's own and every other member's, from its scheduled send time), connect (TCP connect plus upgrade), round_trip (a chatter's own message back, from its scheduled send time), fanout (a message reaching another member, sent from this host), echo (a frame echoed back).",
        "histogram",
    );
    for kind in Latency::ALL {
        match t.latency(kind) {
            Some(h) => histogram(out, kind, h.histogram()),
            None => histogram(out, kind, &crate::stats::new_histogram()),
        }
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    header(out, name, help, "gauge");
    let _ = writeln!(out, "{name} {value}");
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    header(out, name, help, "counter");
    let _ = writeln!(out, "{name} {value}");
}

fn labelled_counter(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    counts: &BTreeMap<String, u64>,
) {
    header(out, name, help, "counter");
    for (value, n) in bounded(counts) {
        let _ = writeln!(
            out,
            "{name}{{{label}=\"{}\"}} {n}",
            escape_label_value(value)
        );
    }
}

/// The first [`MAX_LABEL_VALUES`] label values in name order as they are,
/// any further ones summed under [`OTHER`] (a real label "other" among the
/// first ones shares that series).
pub fn bounded(counts: &BTreeMap<String, u64>) -> BTreeMap<&str, u64> {
    let mut out = BTreeMap::new();
    for (i, (label, n)) in counts.iter().enumerate() {
        let key = if i < MAX_LABEL_VALUES {
            label.as_str()
        } else {
            OTHER
        };
        *out.entry(key).or_default() += n;
    }
    out
}

/// Buckets, `_sum` and `_count` of one latency kind. The histogram is in
/// microseconds; `le` and `_sum` are in seconds.
fn histogram(out: &mut String, kind: Latency, h: &Histogram<u64>) {
    let name = "loadgen_latency_seconds";
    let kind = kind.as_str();
    let counts = cumulative_buckets(h, PROMETHEUS_BUCKETS_MS);
    for (&le_ms, count) in PROMETHEUS_BUCKETS_MS.iter().zip(counts) {
        let _ = writeln!(
            out,
            "{name}_bucket{{kind=\"{kind}\",le=\"{}\"}} {count}",
            ms_to_seconds(le_ms)
        );
    }
    let _ = writeln!(
        out,
        "{name}_bucket{{kind=\"{kind}\",le=\"+Inf\"}} {}",
        h.len()
    );
    let _ = writeln!(
        out,
        "{name}_sum{{kind=\"{kind}\"}} {}",
        micros_as_seconds(sum_micros(h))
    );
    let _ = writeln!(out, "{name}_count{{kind=\"{kind}\"}} {}", h.len());
}

/// `ms` in seconds, written as the shortest decimal of the exact quotient
/// (`0.05` ms is `0.00005`, not `5.0000000000000002e-5`'s digits).
fn ms_to_seconds(ms: f64) -> String {
    match format!("{ms}e-3").parse::<f64>() {
        Ok(s) => s.to_string(),
        Err(_) => (ms / 1e3).to_string(),
    }
}

/// The sum of the samples: exact below 2.048 ms, the middle of each HDR
/// bucket (0.1 % wide) above; integer microseconds, so it never goes down
/// between scrapes.
fn sum_micros(h: &Histogram<u64>) -> u128 {
    h.iter_recorded()
        .map(|v| {
            u128::from(h.median_equivalent(v.value_iterated_to())) * u128::from(v.count_at_value())
        })
        .sum()
}

fn micros_as_seconds(micros: u128) -> String {
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::stats::Closed;

    fn micros(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    fn lines_of<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        text.lines().filter(|l| l.starts_with(prefix)).collect()
    }

    /// A recorder with known samples, rendered without the process figures.
    fn known() -> String {
        let r = Recorder::new();
        for _ in 0..3 {
            r.attempted();
            r.connected();
        }
        r.attempted();
        r.connect_failed("connect: Connection refused (os error 111)");
        r.attempted();
        r.connect_failed("HTTP 503");
        r.attempted();
        r.connect_failed("HTTP 503");
        r.disconnected(Closed::ByServer { code: Some(1001) });
        r.disconnected(Closed::ByServer { code: None });
        r.sent(4, 400);
        r.received(8, 800);
        r.lost(1);
        for us in [40, 100, 100, 900, 1_000] {
            r.latency(Latency::RoundTrip, micros(us));
        }
        r.latency(Latency::RoundTrip, Duration::from_secs(30));
        r.latency(Latency::Connect, micros(1_500));
        let mut out = String::new();
        render_totals(&r.totals(), 10, &mut out);
        out
    }

    #[test]
    fn counters_and_gauges_are_exact_lines_with_help_and_type() {
        let text = known();
        let expected = "\
# HELP loadgen_connections_open WebSocket connections open now.
# TYPE loadgen_connections_open gauge
loadgen_connections_open 1
# HELP loadgen_connections_target WebSocket connections this process was asked to open and hold.
# TYPE loadgen_connections_target gauge
loadgen_connections_target 10
# HELP loadgen_connections_peak The most WebSocket connections open at once so far.
# TYPE loadgen_connections_peak gauge
loadgen_connections_peak 3
# HELP loadgen_connect_attempts_total Connection attempts started (TCP connect plus WebSocket upgrade).
# TYPE loadgen_connect_attempts_total counter
loadgen_connect_attempts_total 6
# HELP loadgen_connects_total Connection attempts that ended with an upgraded WebSocket.
# TYPE loadgen_connects_total counter
loadgen_connects_total 3
";
        assert!(text.starts_with(expected), "{text}");
        for line in [
            "# TYPE loadgen_connect_errors_total counter",
            "loadgen_connect_errors_total{kind=\"HTTP 503\"} 2",
            "loadgen_connect_errors_total{kind=\"connect: Connection refused (os error 111)\"} 1",
            "# TYPE loadgen_closes_unexpected_total counter",
            "loadgen_closes_unexpected_total{code=\"1001\"} 1",
            "loadgen_closes_unexpected_total{code=\"no close code\"} 1",
            "loadgen_messages_sent_total 4",
            "loadgen_messages_received_total 8",
            "loadgen_copies_received_total 0",
            "loadgen_messages_unexpected_total 0",
            "loadgen_sent_bytes_total 400",
            "loadgen_received_bytes_total 800",
            "loadgen_messages_lost_total 1",
            "loadgen_churned_total 0",
            "# TYPE loadgen_latency_seconds histogram",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "no line {line:?} in\n{text}"
            );
        }
        assert_eq!(lines_of(&text, "loadgen_connect_errors_total{").len(), 2);
        assert_eq!(lines_of(&text, "loadgen_closes_unexpected_total{").len(), 2);
        // every family has exactly one HELP and one TYPE, before its samples
        let mut families = Vec::new();
        for l in text.lines() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                families.push(rest.split(' ').next().unwrap().to_string());
            } else if !l.starts_with('#') {
                let family = families.last().unwrap();
                assert!(l.starts_with(family.as_str()), "{l} outside {family}");
            }
        }
        assert_eq!(families.len(), 16);
        assert_eq!(lines_of(&text, "# HELP ").len(), 16);
    }

    #[test]
    fn latency_histogram_lines_are_exact_in_seconds() {
        let text = known();
        let rt: Vec<&str> = lines_of(&text, "loadgen_latency_seconds")
            .into_iter()
            .filter(|l| l.contains("kind=\"round_trip\""))
            .collect();
        let expected = [
            r#"loadgen_latency_seconds_bucket{kind="round_trip",le="0.00005"} 1"#,
            r#"loadgen_latency_seconds_bucket{kind="round_trip",le="0.0001"} 3"#,
            r#"loadgen_latency_seconds_bucket{kind="round_trip",le="0.00025"} 3"#,
            r#"loadgen_latency_seconds_bucket{kind="round_trip",le="0.0005"} 3"#,
            r#"loadgen_latency_seconds_bucket{kind="round_trip",le="0.001"} 5"#,
            r#"loadgen_latency_seconds_bucket{kind="round_trip",le="0.0025"} 5"#,
            r#"loadgen_latency_seconds_bucket{kind="round_trip",le="0.005"} 5"#,
            r#"loadgen_latency_seconds_bucket{kind="round_trip",le="0.01"} 5"#,
            r#"loadgen_latency_seconds_bucket{kind="round_trip",le="0.025"} 5"#,
            r#"loadgen_latency_seconds_bucket{kind="round_trip",le="0.05"} 5"#,
            r#"loadgen_latency_seconds_bucket{kind="round_trip",le="0.1"} 5"#,
            r#"loadgen_latency_seconds_bucket{kind="round_trip",le="0.25"} 5"#,
            r#"loadgen_latency_seconds_bucket{kind="round_trip",le="0.5"} 5"#,
            r#"loadgen_latency_seconds_bucket{kind="round_trip",le="1"} 5"#,
            r#"loadgen_latency_seconds_bucket{kind="round_trip",le="2.5"} 5"#,
            r#"loadgen_latency_seconds_bucket{kind="round_trip",le="5"} 5"#,
            r#"loadgen_latency_seconds_bucket{kind="round_trip",le="10"} 5"#,
            r#"loadgen_latency_seconds_bucket{kind="round_trip",le="+Inf"} 6"#,
            // 2140 µs exact, plus 30 s counted at the middle of its HDR
            // bucket (29.999104 s + 16.384 ms wide): 30.007296 s
            r#"loadgen_latency_seconds_sum{kind="round_trip"} 30.009436"#,
            r#"loadgen_latency_seconds_count{kind="round_trip"} 6"#,
        ];
        assert_eq!(rt, expected, "{text}");
        // every kind is there, empty ones too, and nothing else
        for kind in Latency::ALL {
            let k = format!("kind=\"{}\"", kind.as_str());
            assert_eq!(
                text.lines().filter(|l| l.contains(&k)).count(),
                PROMETHEUS_BUCKETS_MS.len() + 3,
                "{kind:?}"
            );
        }
        assert!(text
            .lines()
            .any(|l| l == r#"loadgen_latency_seconds_count{kind="echo"} 0"#));
        assert!(text
            .lines()
            .any(|l| l == r#"loadgen_latency_seconds_sum{kind="echo"} 0.000000"#));
        assert!(text
            .lines()
            .any(|l| l == r#"loadgen_latency_seconds_bucket{kind="connect",le="0.0025"} 1"#));
        assert!(text
            .lines()
            .any(|l| l == r#"loadgen_latency_seconds_sum{kind="connect"} 0.001500"#));
    }

    #[test]
    fn buckets_are_cumulative_and_inf_is_the_count() {
        let r = Recorder::new();
        // a log-ish spread over the whole range, clamped outliers included
        let mut v = 1u64;
        let mut n = 0;
        while v < 7_200_000_000 {
            r.latency(Latency::Fanout, micros(v));
            v = v * 3 / 2 + 1;
            n += 1;
        }
        let mut text = String::new();
        render(&r, 0, &mut text);
        let values: Vec<f64> = lines_of(&text, "loadgen_latency_seconds_bucket{kind=\"fanout\"")
            .iter()
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(values.len(), PROMETHEUS_BUCKETS_MS.len() + 1);
        assert!(values.windows(2).all(|w| w[0] <= w[1]), "{values:?}");
        assert!(values[0] > 0.0 && values[values.len() - 2] < n as f64);
        assert_eq!(*values.last().unwrap(), n as f64);
        let count = lines_of(&text, "loadgen_latency_seconds_count{kind=\"fanout\"}");
        assert_eq!(
            count,
            [format!(
                "loadgen_latency_seconds_count{{kind=\"fanout\"}} {n}"
            )]
        );
        // the process figures are appended
        assert!(text.contains("\nprocess_resident_memory_bytes "), "{text}");
    }

    #[test]
    fn le_values_are_the_millisecond_bounds_in_seconds() {
        let les: Vec<String> = PROMETHEUS_BUCKETS_MS
            .iter()
            .map(|&ms| ms_to_seconds(ms))
            .collect();
        assert_eq!(
            les,
            [
                "0.00005", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01",
                "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10"
            ]
        );
        assert_eq!(micros_as_seconds(0), "0.000000");
        assert_eq!(micros_as_seconds(12_345_678), "12.345678");
    }

    #[test]
    fn label_values_are_escaped() {
        let r = Recorder::new();
        r.connect_failed("upgrade: bad header \"Sec-WebSocket-Accept\"");
        r.connect_failed("a\\b\nc: (d)");
        r.disconnected(Closed::Error("protocol: \"oops\"".into()));
        let mut text = String::new();
        render_totals(&r.totals(), 1, &mut text);
        for line in [
            r#"loadgen_connect_errors_total{kind="upgrade: bad header \"Sec-WebSocket-Accept\""} 1"#,
            r#"loadgen_connect_errors_total{kind="a\\b\nc: (d)"} 1"#,
            r#"loadgen_closes_unexpected_total{code="protocol: \"oops\""} 1"#,
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "no line {line:?} in\n{text}"
            );
        }
        // the newline inside a label never splits a sample line
        assert!(text
            .lines()
            .all(|l| l.starts_with("# ") || l.starts_with("loadgen_")));
    }

    #[test]
    fn label_cardinality_is_capped_and_other_only_grows() {
        let r = Recorder::new();
        for i in 0..120u64 {
            for _ in 0..=i % 3 {
                r.connect_failed(&format!("HTTP {}", 400 + i));
            }
        }
        r.disconnected(Closed::ByServer { code: Some(4000) });
        let series = |r: &Recorder| {
            let mut text = String::new();
            render_totals(&r.totals(), 1, &mut text);
            lines_of(&text, "loadgen_connect_errors_total{")
                .iter()
                .map(|l| {
                    let (labels, n) = l.rsplit_once(' ').unwrap();
                    (labels.to_string(), n.parse::<u64>().unwrap())
                })
                .collect::<BTreeMap<String, u64>>()
        };
        let before = series(&r);
        assert_eq!(before.len(), MAX_LABEL_VALUES + 1);
        let total: u64 = (0..120u64).map(|i| i % 3 + 1).sum();
        assert_eq!(before.values().sum::<u64>(), total);
        // name order: HTTP 400 .. HTTP 449 keep their series
        assert_eq!(
            before[r#"loadgen_connect_errors_total{kind="HTTP 400"}"#],
            1
        );
        assert_eq!(
            before[r#"loadgen_connect_errors_total{kind="HTTP 449"}"#],
            2
        );
        assert!(!before.contains_key(r#"loadgen_connect_errors_total{kind="HTTP 450"}"#));
        let other = r#"loadgen_connect_errors_total{kind="other"}"#;

        // a new kind sorting first pushes one kind into "other": "other"
        // grows by that kind's count plus nothing else, no series goes down
        r.connect_failed("EARLY");
        let after = series(&r);
        assert_eq!(after.len(), MAX_LABEL_VALUES + 1);
        assert_eq!(after[r#"loadgen_connect_errors_total{kind="EARLY"}"#], 1);
        assert_eq!(
            after[other],
            before[other] + before[r#"loadgen_connect_errors_total{kind="HTTP 449"}"#]
        );
        for (k, n) in &after {
            assert!(before.get(k).is_none_or(|b| n >= b), "{k} went down");
        }
        // a real "other" kind shares the series instead of duplicating it
        let counts = BTreeMap::from([("other".to_string(), 2), ("x".to_string(), 1)]);
        assert_eq!(bounded(&counts), BTreeMap::from([("other", 2), ("x", 1)]));
    }
}
