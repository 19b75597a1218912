//! The figures a [`super::Recorder`] hands out: [`Totals`] for the whole
//! run (mergeable across processes) and [`Interval`] for one progress step.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Latency, LatencyHistogram};

/// Everything measured since the recorder started. Merging the totals of
/// several processes gives the figures one process recording every sample
/// would have given, except for the two gauges noted on their fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Wall time covered. The recorder fills in the time since it was
    /// created; callers may overwrite it (e.g. with the run's own clock).
    /// Merging keeps the longest, since processes run side by side.
    pub elapsed_secs: f64,
    pub connects_attempted: u64,
    pub connects_ok: u64,
    /// Failed connects by [`crate::conn::ConnectError::kind`] label.
    pub connect_errors: BTreeMap<String, u64>,
    /// Connections open when the snapshot was taken.
    pub open_connections: u64,
    /// The most connections open at once. Merged as the sum of the parts'
    /// peaks: an upper bound, exact when the parts peaked together (as when
    /// every process ramps and then holds).
    pub peak_connections: u64,
    pub messages_sent: u64,
    pub bytes_sent: u64,
    pub messages_received: u64,
    /// Of `messages_received`, the chat messages and echoes: copies of what
    /// the run's senders sent (the rest are welcomes and notices).
    #[serde(default)]
    pub copies_received: u64,
    pub bytes_received: u64,
    /// A chatter's own message never came back within the timeout.
    pub messages_lost: u64,
    /// Data messages that were neither copies of the run's messages nor
    /// notices: errors from the server, other clients' chat, garbage. A
    /// run that gets any was not measuring what it meant to.
    #[serde(default)]
    pub messages_unexpected: u64,
    /// The first of them, described, so a failed run can show one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unexpected_example: Option<String>,
    /// Connections we closed ourselves at the end of the run.
    #[serde(default)]
    pub closes_by_us: u64,
    /// Connections we closed to reconnect them (`--churn`).
    #[serde(default)]
    pub churned: u64,
    /// Every other close, by close code ("1001"), [`super::NO_CLOSE_CODE`],
    /// or error label.
    pub closes_unexpected: BTreeMap<String, u64>,
    /// Keyed by [`Latency::as_str`]; a recorder fills in every kind, empty
    /// ones included.
    pub latencies: BTreeMap<String, LatencyHistogram>,
}

impl Totals {
    /// Adds `other` into `self`: counters summed, histograms added (see the
    /// field docs for `elapsed_secs` and `peak_connections`).
    pub fn merge(&mut self, other: &Totals) {
        self.elapsed_secs = self.elapsed_secs.max(other.elapsed_secs);
        self.connects_attempted += other.connects_attempted;
        self.connects_ok += other.connects_ok;
        add_counts(&mut self.connect_errors, &other.connect_errors);
        self.open_connections += other.open_connections;
        self.peak_connections += other.peak_connections;
        self.messages_sent += other.messages_sent;
        self.bytes_sent += other.bytes_sent;
        self.messages_received += other.messages_received;
        self.copies_received += other.copies_received;
        self.bytes_received += other.bytes_received;
        self.messages_lost += other.messages_lost;
        self.messages_unexpected += other.messages_unexpected;
        if self.unexpected_example.is_none() {
            self.unexpected_example = other.unexpected_example.clone();
        }
        self.closes_by_us += other.closes_by_us;
        self.churned += other.churned;
        add_counts(&mut self.closes_unexpected, &other.closes_unexpected);
        for (key, h) in &other.latencies {
            match self.latencies.get_mut(key) {
                Some(mine) => mine.merge(h),
                None => {
                    self.latencies.insert(key.clone(), h.clone());
                }
            }
        }
    }

    /// The merge of many totals (e.g. one per agent).
    pub fn merged<'a>(parts: impl IntoIterator<Item = &'a Totals>) -> Totals {
        let mut all = Totals::default();
        for t in parts {
            all.merge(t);
        }
        all
    }

    pub fn latency(&self, kind: Latency) -> Option<&LatencyHistogram> {
        self.latencies.get(kind.as_str())
    }

    pub fn connect_errors_total(&self) -> u64 {
        self.connect_errors.values().sum()
    }

    pub fn closes_unexpected_total(&self) -> u64 {
        self.closes_unexpected.values().sum()
    }

    /// Messages sent per second of sending. Every rate of a run, in the
    /// summary, results.json, the report and thresholds alike, is one of
    /// these two, over the same window: the seconds senders sent (from the
    /// end of the ramp to the end of the run), never the ramp or the drain.
    /// `None` when nobody sent.
    pub fn sent_per_sec(&self, sending_secs: f64) -> Option<f64> {
        per_second(self.messages_sent, sending_secs)
    }

    /// Copies of the run's messages received per second of sending (see
    /// [`Totals::sent_per_sec`]); notices are not copies.
    pub fn copies_per_sec(&self, sending_secs: f64) -> Option<f64> {
        per_second(self.copies_received, sending_secs)
    }

    /// Received messages that were not copies of the run's messages:
    /// welcomes, join and leave notices, errors.
    pub fn notices_received(&self) -> u64 {
        self.messages_received.saturating_sub(self.copies_received)
    }

    /// Of the copies received, the share whose latency was measured
    /// (delivery samples / copies): copies from another host's senders
    /// are counted but cannot be timed. `None` when no copy arrived.
    pub fn timed_share(&self) -> Option<f64> {
        let timed = self.latency(Latency::Delivery).map_or(0, |h| h.count);
        (self.copies_received > 0).then(|| (timed as f64 / self.copies_received as f64).min(1.0))
    }
}

/// `n` per second of `secs`; `None` without a positive, finite window.
pub fn per_second(n: u64, secs: f64) -> Option<f64> {
    (secs.is_finite() && secs > 0.0).then(|| n as f64 / secs)
}

fn add_counts(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (label, n) in from {
        *into.entry(label.clone()).or_default() += n;
    }
}

/// Latency figures of one interval. Interval percentiles are for display;
/// anything that must be merged uses [`Totals`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct IntervalLatency {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// What happened since the previous [`super::Recorder::interval`] call:
/// counter deltas and latencies of that span, plus gauges as of now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Wall time this interval covers.
    pub secs: f64,
    /// Time since the recorder started, at the end of this interval.
    pub at_secs: f64,
    pub connects_attempted: u64,
    pub connects_ok: u64,
    /// Failed connects, all kinds together.
    pub connect_errors: u64,
    /// Unexpected closes, all codes together.
    pub closes_unexpected: u64,
    pub messages_sent: u64,
    /// Every data message received, notices included.
    pub messages_received: u64,
    /// Of `messages_received`, the copies of the run's messages (chat
    /// copies, echoes): what message rates count.
    #[serde(default)]
    pub copies_received: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub lost: u64,
    /// This process's CPU over the interval, in percent of one core (the
    /// sum over processes once merged).
    #[serde(default)]
    pub cpu_percent: f64,
    /// The host's CPU busy over the interval, in percent of all its cores
    /// (0 to 100), whatever used it (the server under test too); the
    /// busiest host's once merged.
    #[serde(default)]
    pub host_cpu_percent: f64,
    /// CPU the hypervisor stole from the host over the interval, in percent
    /// of all its cores; the most of any host once merged.
    #[serde(default)]
    pub steal_percent: f64,
    /// Gauge: connections open now.
    pub open_connections: u64,
    /// Keyed by [`Latency::as_str`], every kind present.
    pub latencies: BTreeMap<String, IntervalLatency>,
}

impl Interval {
    pub fn latency(&self, kind: Latency) -> Option<&IntervalLatency> {
        self.latencies.get(kind.as_str())
    }

    /// `n` per second over this interval, counted over at least a second:
    /// the last interval of a run is a sliver holding the closes (and, in
    /// chat, every member's leave notices), whose count over its own length
    /// would read as a rate nothing ever sustained.
    pub fn rate(&self, n: u64) -> f64 {
        n as f64 / self.secs.max(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;

    fn totals(seed: u64) -> Totals {
        let mut h = new_histogram();
        for v in 1..=100 {
            h.record(v * seed).unwrap();
        }
        Totals {
            elapsed_secs: seed as f64,
            connects_attempted: 10 * seed,
            connects_ok: 9 * seed,
            connect_errors: BTreeMap::from([("timeout".to_string(), seed)]),
            open_connections: 8 * seed,
            peak_connections: 9 * seed,
            messages_sent: 100 * seed,
            bytes_sent: 6400 * seed,
            messages_received: 1000 * seed,
            copies_received: 900 * seed,
            bytes_received: 64000 * seed,
            messages_lost: seed,
            messages_unexpected: seed,
            unexpected_example: Some(format!("example {seed}")),
            closes_by_us: seed,
            churned: seed,
            closes_unexpected: BTreeMap::from([(format!("{}", 1000 + seed), 1)]),
            latencies: BTreeMap::from([(
                Latency::RoundTrip.as_str().to_string(),
                LatencyHistogram::from_histogram(&h),
            )]),
        }
    }

    #[test]
    fn merge_sums_counters_and_unions_labels() {
        let mut a = totals(1);
        let b = totals(2);
        a.merge(&b);
        assert_eq!(a.elapsed_secs, 2.0);
        assert_eq!(a.connects_attempted, 30);
        assert_eq!(a.connects_ok, 27);
        assert_eq!(a.connect_errors["timeout"], 3);
        assert_eq!(a.open_connections, 24);
        assert_eq!(a.peak_connections, 27);
        assert_eq!(
            (
                a.messages_sent,
                a.bytes_sent,
                a.messages_received,
                a.bytes_received
            ),
            (300, 19200, 3000, 192000)
        );
        assert_eq!((a.messages_lost, a.closes_by_us, a.churned), (3, 3, 3));
        assert_eq!(a.messages_unexpected, 3);
        assert_eq!(
            a.unexpected_example.as_deref(),
            Some("example 1"),
            "the first kept"
        );
        assert_eq!(
            a.closes_unexpected,
            BTreeMap::from([("1001".to_string(), 1), ("1002".to_string(), 1)])
        );
        assert_eq!(a.closes_unexpected_total(), 2);
        assert_eq!(a.connect_errors_total(), 3);
        assert_eq!(a.latency(Latency::RoundTrip).unwrap().count, 200);
        assert!(a.latency(Latency::Echo).is_none());
    }

    #[test]
    fn merging_into_default_is_identity() {
        let t = totals(3);
        assert_eq!(Totals::merged([&t]), t);
        let mut u = t.clone();
        u.merge(&Totals::default());
        assert_eq!(u, t);
    }

    #[test]
    fn rates_are_over_the_sending_window_and_count_copies_only() {
        let t = totals(2); // 200 sent, 1800 copies of 2000 received
        assert_eq!(t.sent_per_sec(4.0), Some(50.0));
        assert_eq!(t.copies_per_sec(4.0), Some(450.0));
        assert_eq!(t.notices_received(), 200);
        assert_eq!(t.copies_per_sec(0.0), None, "nobody sent");
        assert_eq!(per_second(10, f64::NAN), None);
        assert_eq!(per_second(10, f64::INFINITY), None);
    }

    #[test]
    fn interval_rate_counts_slivers_as_a_second() {
        let iv = |secs| Interval {
            secs,
            ..Interval::default()
        };
        assert_eq!(iv(2.0).rate(100), 50.0);
        assert_eq!(iv(1.0).rate(100), 100.0);
        assert_eq!(iv(0.05).rate(100), 100.0, "the closing sliver is no spike");
        assert_eq!(iv(0.0).rate(100), 100.0);
        assert_eq!(iv(f64::NAN).rate(100), 100.0);
    }
}
