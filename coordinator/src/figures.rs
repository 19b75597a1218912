//! The named figures of a phase or a run: what thresholds test, what the
//! summary and the report show. [`FIGURES`] is the one list of names, so
//! validation, the reference table in scenarios/README.md (a test keeps it
//! equal to [`markdown_table`]) and the report cannot disagree.

use loadgen::stats::{Latency, LatencyHistogram, Totals};

use crate::results::Figures;

/// (name, unit, meaning) of every figure a threshold can use.
pub const FIGURES: &[(&str, &str, &str)] = &[
    (
        "connections_held",
        "connections",
        "open when the phase ended (for a run: the most over its phases)",
    ),
    (
        "connections_held_after_ramp",
        "connections",
        "open when the ramp had finished",
    ),
    (
        "connections_peak",
        "connections",
        "the most open at once (summed over agents: an upper bound, exact when they peak together)",
    ),
    (
        "connects_attempted",
        "connects",
        "connection attempts, reconnects included",
    ),
    (
        "connects_ok",
        "connects",
        "attempts that ended in a completed WebSocket upgrade",
    ),
    (
        "connect_errors",
        "connects",
        "attempts that failed, every kind together",
    ),
    (
        "connect_errors_ratio",
        "ratio",
        "connect_errors / connects_attempted (0 when nothing was attempted)",
    ),
    (
        "closes_unexpected",
        "closes",
        "connections closed by the server or by an error rather than by us",
    ),
    (
        "churned",
        "closes",
        "connections closed on purpose to reconnect (churn)",
    ),
    ("messages_sent", "messages", "chat or echo messages sent"),
    (
        "messages_received",
        "messages",
        "data messages received: copies_received + notices_received + messages_unexpected",
    ),
    (
        "copies_received",
        "messages",
        "copies of the messages the run's senders sent (chat copies, echoes), every recipient's counted",
    ),
    (
        "notices_received",
        "messages",
        "welcomes, join and leave notices (and pongs): counted apart from copies, never in a rate",
    ),
    (
        "messages_unexpected",
        "messages",
        "received messages that were not the run's (errors from the server, others' chat); any fails the phase",
    ),
    (
        "messages_lost",
        "messages",
        "a sender's own message that never came back",
    ),
    (
        "messages_lost_ratio",
        "ratio",
        "messages_lost / messages_sent (0 when nothing was sent)",
    ),
    (
        "messages_sent_per_sec",
        "messages/s",
        "messages_sent per second of sending (from the end of the ramp to the end of the phase)",
    ),
    (
        "copies_received_per_sec",
        "messages/s",
        "copies_received per second of sending: the delivery rate (notices are not counted)",
    ),
    (
        "delivery_timed_ratio",
        "ratio",
        "of copies_received, the share whose latency was measured (copies from another host's senders are counted, not timed)",
    ),
    (
        "delivery_p50_ms",
        "ms",
        "every timed copy, the sender's own and every other member's, from its scheduled send time, median: the headline latency",
    ),
    ("delivery_p90_ms", "ms", "delivery, 90th percentile"),
    ("delivery_p99_ms", "ms", "delivery, 99th percentile"),
    ("delivery_p999_ms", "ms", "delivery, 99.9th percentile"),
    ("delivery_max_ms", "ms", "delivery, slowest"),
    ("delivery_mean_ms", "ms", "delivery, mean"),
    ("connect_p50_ms", "ms", "TCP connect plus upgrade, median"),
    (
        "connect_p90_ms",
        "ms",
        "TCP connect plus upgrade, 90th percentile",
    ),
    (
        "connect_p99_ms",
        "ms",
        "TCP connect plus upgrade, 99th percentile",
    ),
    (
        "connect_p999_ms",
        "ms",
        "TCP connect plus upgrade, 99.9th percentile",
    ),
    ("connect_max_ms", "ms", "TCP connect plus upgrade, slowest"),
    ("connect_mean_ms", "ms", "TCP connect plus upgrade, mean"),
    (
        "rtt_p50_ms",
        "ms",
        "a detail of delivery: a chatter's own message back to it, from its scheduled send time, median",
    ),
    ("rtt_p90_ms", "ms", "round trip, 90th percentile"),
    ("rtt_p99_ms", "ms", "round trip, 99th percentile"),
    ("rtt_p999_ms", "ms", "round trip, 99.9th percentile"),
    ("rtt_max_ms", "ms", "round trip, slowest"),
    ("rtt_mean_ms", "ms", "round trip, mean"),
    (
        "fanout_p50_ms",
        "ms",
        "a detail of delivery: a message reaching another member of its room on the sender's host (one clock), median",
    ),
    ("fanout_p90_ms", "ms", "fan-out, 90th percentile"),
    ("fanout_p99_ms", "ms", "fan-out, 99th percentile"),
    ("fanout_p999_ms", "ms", "fan-out, 99.9th percentile"),
    ("fanout_max_ms", "ms", "fan-out, slowest"),
    ("fanout_mean_ms", "ms", "fan-out, mean"),
    (
        "echo_p50_ms",
        "ms",
        "a frame echoed back by an echo server, median",
    ),
    ("echo_p90_ms", "ms", "echo round trip, 90th percentile"),
    ("echo_p99_ms", "ms", "echo round trip, 99th percentile"),
    ("echo_p999_ms", "ms", "echo round trip, 99.9th percentile"),
    ("echo_max_ms", "ms", "echo round trip, slowest"),
    ("echo_mean_ms", "ms", "echo round trip, mean"),
    (
        "agents_failed",
        "agents",
        "agents that died, dropped the control connection or refused a phase",
    ),
];

/// The unit of a figure, `None` for a name that is not one.
pub fn unit(name: &str) -> Option<&'static str> {
    FIGURES.iter().find(|f| f.0 == name).map(|f| f.1)
}

/// The prefix of a latency kind's figures: short names people type in
/// thresholds, not the `Totals` keys ("round_trip").
fn prefix(kind: Latency) -> &'static str {
    match kind {
        Latency::Connect => "connect",
        Latency::RoundTrip => "rtt",
        Latency::Fanout => "fanout",
        Latency::Echo => "echo",
        Latency::Delivery => "delivery",
    }
}

/// One phase's figures from its merged totals. Latency figures appear only
/// for histograms that recorded something, so a threshold on a latency
/// the workload never measures fails as "nothing measured" instead of
/// passing on a zero.
/// `sending_secs` is how long senders sent: rates are per second of that,
/// not of the ramp and the drain.
pub fn phase_figures(totals: &Totals, held_after_ramp: u64, sending_secs: f64) -> Figures {
    let mut f = counters(totals, sending_secs);
    f.insert("connections_held".into(), totals.open_connections as f64);
    f.insert("connections_held_after_ramp".into(), held_after_ramp as f64);
    f.insert("connections_peak".into(), totals.peak_connections as f64);
    f
}

/// The whole run from each phase's merged totals, held-after-ramp count
/// and sending time: counters summed and histograms merged, rates over the
/// phases' summed sending time (they run one after another, where
/// `Totals::merge` assumes side by side), and the gauges the highest
/// phase's, since each phase closes what it opened.
pub fn run_figures(phases: &[(&Totals, u64, f64)]) -> Figures {
    let merged = Totals::merged(phases.iter().map(|(t, _, _)| *t));
    let sending: f64 = phases.iter().map(|(_, _, s)| s).sum();
    let mut f = counters(&merged, sending);
    let max = |g: fn(&Totals, u64) -> u64| {
        phases.iter().map(|(t, h, _)| g(t, *h)).max().unwrap_or(0) as f64
    };
    f.insert("connections_held".into(), max(|t, _| t.open_connections));
    f.insert("connections_held_after_ramp".into(), max(|_, h| h));
    f.insert("connections_peak".into(), max(|t, _| t.peak_connections));
    f
}

/// Everything but the gauges; rates over `sending_secs`.
fn counters(t: &Totals, sending_secs: f64) -> Figures {
    let mut f = Figures::new();
    let mut put = |name: &str, v: f64| {
        f.insert(name.to_string(), v);
    };
    let errors = t.connect_errors_total();
    put("connects_attempted", t.connects_attempted as f64);
    put("connects_ok", t.connects_ok as f64);
    put("connect_errors", errors as f64);
    put("connect_errors_ratio", ratio(errors, t.connects_attempted));
    put("closes_unexpected", t.closes_unexpected_total() as f64);
    put("churned", t.churned as f64);
    put("messages_sent", t.messages_sent as f64);
    put("messages_received", t.messages_received as f64);
    put("copies_received", t.copies_received as f64);
    put("notices_received", t.notices_received() as f64);
    put("messages_unexpected", t.messages_unexpected as f64);
    put("messages_lost", t.messages_lost as f64);
    put(
        "messages_lost_ratio",
        ratio(t.messages_lost, t.messages_sent),
    );
    // The one definition of each rate (loadgen's summary and the report
    // use the same two functions).
    put(
        "messages_sent_per_sec",
        t.sent_per_sec(sending_secs).unwrap_or(0.0),
    );
    put(
        "copies_received_per_sec",
        t.copies_per_sec(sending_secs).unwrap_or(0.0),
    );
    if let Some(share) = t.timed_share() {
        put("delivery_timed_ratio", share);
    }
    for kind in Latency::ALL {
        if let Some(h) = t.latency(kind).filter(|h| h.count > 0) {
            latency(&mut f, prefix(kind), h);
        }
    }
    f
}

fn latency(f: &mut Figures, prefix: &str, h: &LatencyHistogram) {
    for (suffix, v) in [
        ("p50", h.p50_ms),
        ("p90", h.p90_ms),
        ("p99", h.p99_ms),
        ("p999", h.p999_ms),
        ("max", h.max_ms),
        ("mean", h.mean_ms),
    ] {
        f.insert(format!("{prefix}_{suffix}_ms"), v);
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// The figure table of scenarios/README.md, generated so it cannot drift
/// from [`FIGURES`].
pub fn markdown_table() -> String {
    let mut out = String::from("| figure | unit | meaning |\n|---|---|---|\n");
    for (name, unit, meaning) in FIGURES {
        out.push_str(&format!("| `{name}` | {unit} | {meaning} |\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use loadgen::stats::new_histogram;

    use super::*;

    fn histogram(values_us: impl IntoIterator<Item = u64>) -> LatencyHistogram {
        let mut h = new_histogram();
        for v in values_us {
            h.record(v).unwrap();
        }
        LatencyHistogram::from_histogram(&h)
    }

    /// A phase of `scale` × some traffic, every latency kind measured.
    fn totals(scale: u64) -> Totals {
        let mut latencies = BTreeMap::new();
        for kind in Latency::RECORDED {
            latencies.insert(
                kind.as_str().to_string(),
                histogram((1..=1000).map(|v| v * scale)),
            );
        }
        // as a recorder derives it: the copy kinds together
        let mut delivery = LatencyHistogram::default();
        for kind in Latency::COPIES {
            delivery.merge(&latencies[kind.as_str()]);
        }
        latencies.insert(Latency::Delivery.as_str().to_string(), delivery);
        Totals {
            elapsed_secs: 10.0,
            connects_attempted: 1000 * scale,
            connects_ok: 990 * scale,
            connect_errors: BTreeMap::from([
                ("timeout".to_string(), 4 * scale),
                ("refused".to_string(), 6 * scale),
            ]),
            open_connections: 980 * scale,
            peak_connections: 995 * scale,
            messages_sent: 2000 * scale,
            messages_received: 50_000 * scale,
            copies_received: 40_000 * scale,
            messages_lost: 5 * scale,
            churned: 7 * scale,
            closes_unexpected: BTreeMap::from([("1006".to_string(), 3 * scale)]),
            latencies,
            ..Totals::default()
        }
    }

    #[test]
    fn phase_figures_of_full_totals_are_every_figure_but_the_run_level_one() {
        // 10 s measured, of which 8 s of sending
        let f = phase_figures(&totals(1), 970, 8.0);
        let names: BTreeSet<&str> = f.keys().map(String::as_str).collect();
        let expected: BTreeSet<&str> = FIGURES
            .iter()
            .map(|f| f.0)
            .filter(|&n| n != "agents_failed")
            .collect();
        assert_eq!(names, expected);
        assert_eq!(f["connections_held"], 980.0);
        assert_eq!(f["connections_held_after_ramp"], 970.0);
        assert_eq!(f["connections_peak"], 995.0);
        assert_eq!(f["connect_errors"], 10.0);
        assert_eq!(f["connect_errors_ratio"], 0.01);
        assert_eq!(f["closes_unexpected"], 3.0);
        assert_eq!(f["churned"], 7.0);
        assert_eq!(f["messages_lost_ratio"], 0.0025);
        assert_eq!(f["messages_sent_per_sec"], 250.0);
        assert_eq!(f["copies_received"], 40_000.0);
        assert_eq!(f["notices_received"], 10_000.0, "not copies, not in a rate");
        assert_eq!(f["copies_received_per_sec"], 5000.0);
        // delivery holds round trip, fan-out and echo: 3000 samples of 40,000
        assert_eq!(f["delivery_timed_ratio"], 3000.0 / 40_000.0);
        // 1..=1000 µs: the median is 0.5 ms, the maximum 1 ms (HDR
        // rounds within 0.1 %).
        assert!((f["rtt_p50_ms"] - 0.5).abs() < 0.001, "{}", f["rtt_p50_ms"]);
        assert!(
            (f["echo_max_ms"] - 1.0).abs() < 0.001,
            "{}",
            f["echo_max_ms"]
        );
        assert!((f["connect_mean_ms"] - 0.5005).abs() < 0.001);
    }

    #[test]
    fn empty_histograms_and_empty_runs_leave_latencies_out_and_ratios_zero() {
        let mut t = Totals::default();
        t.latencies.insert(
            Latency::RoundTrip.as_str().to_string(),
            LatencyHistogram::default(),
        );
        t.latencies
            .insert(Latency::Connect.as_str().to_string(), histogram([2000]));
        let f = phase_figures(&t, 0, 0.0);
        assert!(!f.contains_key("rtt_p99_ms"));
        assert!(!f.contains_key("fanout_p99_ms"));
        assert_eq!(f["connect_p99_ms"], 2.0);
        assert_eq!(f["connect_errors_ratio"], 0.0);
        assert_eq!(f["messages_lost_ratio"], 0.0);
        assert_eq!(f["messages_sent_per_sec"], 0.0);
    }

    #[test]
    fn run_figures_sum_counters_merge_histograms_and_take_the_highest_gauge() {
        let (a, b) = (totals(1), totals(3));
        let f = run_figures(&[(&a, 900, 8.0), (&b, 2900, 12.0)]);
        assert_eq!(f["connects_attempted"], 4000.0);
        assert_eq!(f["connect_errors"], 40.0);
        assert_eq!(f["connect_errors_ratio"], 0.01);
        assert_eq!(f["messages_lost"], 20.0);
        // Gauges: the larger phase, not the sum.
        assert_eq!(f["connections_held"], 2940.0);
        assert_eq!(f["connections_held_after_ramp"], 2900.0);
        assert_eq!(f["connections_peak"], 2985.0);
        // 8000 messages over 8 s + 12 s of sending, not over the longer
        // phase alone.
        assert_eq!(f["messages_sent_per_sec"], 400.0);
        // Merged histograms: a's 1000 samples up to 1 ms and b's up to 3 ms;
        // the run's maximum is b's.
        assert!((f["rtt_max_ms"] - 3.0).abs() < 0.01, "{}", f["rtt_max_ms"]);
        // Below x µs lie min(x, 1000) of a's samples and x / 3 of b's:
        // 1000 of the 2000 at x = 750.
        let median = f["rtt_p50_ms"];
        assert!((median - 0.75).abs() < 0.002, "{median}");
        assert!(run_figures(&[]).get("connections_held") == Some(&0.0));
    }

    #[test]
    fn units_and_names_are_unique_and_known() {
        let names: BTreeSet<&str> = FIGURES.iter().map(|f| f.0).collect();
        assert_eq!(names.len(), FIGURES.len(), "duplicate figure names");
        assert_eq!(unit("rtt_p99_ms"), Some("ms"));
        assert_eq!(unit("connect_errors_ratio"), Some("ratio"));
        assert_eq!(unit("rtt_p95_ms"), None);
    }

    #[test]
    fn readme_figure_table_is_generated_from_figures() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/README.md");
        let readme = std::fs::read_to_string(path).unwrap();
        let table = markdown_table();
        assert!(
            readme.contains(&table),
            "scenarios/README.md must contain the figure table exactly as \
             figures::markdown_table() writes it:\n\n{table}"
        );
        // And the Figures section lists nothing else.
        let section = readme
            .split("\n## ")
            .find(|s| s.starts_with("Figures"))
            .expect("scenarios/README.md has a \"## Figures\" section");
        let listed: BTreeSet<&str> = section
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .collect();
        let known: BTreeSet<&str> = FIGURES.iter().map(|f| f.0).collect();
        assert_eq!(listed, known);
    }
}
