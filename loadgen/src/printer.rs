//! What people read: the per-second progress line and the final summary.

use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::saturation::Saturation;
use crate::stats::{Interval, Latency, LatencyHistogram, Totals};

/// What the run was asked to do and how the load generator itself fared;
/// printed with the figures and stored beside them in the JSON report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub target_connections: u64,
    /// The planned duration of the run.
    pub duration_secs: f64,
    pub workload: String,
    /// Whether the load generator or its host ran out of CPU in the seconds
    /// that carried measurements, so that its figures partly measure
    /// itself; with the busiest seconds' CPU and the cores.
    #[serde(default)]
    pub saturation: Saturation,
    /// Anything the reader should know (why the run fell short, settings).
    pub notes: Vec<String>,
    /// Connections open once every attempt of the ramp had resolved.
    #[serde(default)]
    pub held_after_ramp: u64,
    /// Growth of the load generator's resident memory from start to the
    /// end of the ramp, per connection held (all processes summed).
    #[serde(default)]
    pub rss_per_connection_bytes: Option<f64>,
    /// Load generator processes that shared the run.
    #[serde(default)]
    pub processes: u64,
    /// The target URLs, as given.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Source addresses the connections were spread over (0: the kernel
    /// chose).
    #[serde(default)]
    pub source_addresses: usize,
    /// How long the ramp took, in seconds.
    #[serde(default)]
    pub ramp_secs: f64,
    /// Connections per second the ramp was asked for (`--ramp`); None
    /// when unpaced.
    #[serde(default)]
    pub ramp_asked: Option<f64>,
    /// Connections per second the ramp achieved (attempted during the
    /// ramp / its length), to set beside the asked rate; None when not
    /// measured.
    #[serde(default)]
    pub ramp_achieved: Option<f64>,
    /// How long senders sent, in seconds: message rates are per second of
    /// this, not of the whole run with its ramp and drain.
    #[serde(default)]
    pub sending_secs: f64,
}

/// Runs smaller than this say nothing about memory per connection: the
/// start-up allocations of the runtime and the first upgrades dominate.
pub const MEMORY_FIGURE_MIN_CONNECTIONS: u64 = 1000;

/// The kinds of the progress line, with their short labels.
const PROGRESS_LATENCIES: [(Latency, &str); 2] = [
    (Latency::Delivery, "delivery"),
    (Latency::Connect, "connect"),
];

/// Below this share of copies timed, the summary warns that its latency
/// describes only part of the traffic.
pub const TIMED_SHARE_WARNING: f64 = 0.5;

/// One progress line, e.g.
/// `12s conns 95,000/100,000 +19,800/s err 3 | sent 9,500/s copies 950,000/s | delivery p50 1.20 ms p99 4.80 ms | cpu 150%`.
/// Error, close and loss counts are those of the interval; "copies" counts
/// copies of the run's messages only (no notices), as every rate does;
/// latencies appear for delivery and connect when they had samples; the
/// load generator's own CPU (percent of one core, all its processes) comes
/// last, so that a saturated generator shows while it runs.
pub fn progress_line(iv: &Interval, target_connections: u64, elapsed: Duration) -> String {
    let mut line = format!(
        "{}s conns {}/{} +{}/s err {}",
        elapsed.as_secs(),
        int(iv.open_connections),
        int(target_connections),
        rate(iv.rate(iv.connects_ok)),
        int(iv.connect_errors),
    );
    if iv.closes_unexpected > 0 {
        let _ = write!(line, " closed {}", int(iv.closes_unexpected));
    }
    let _ = write!(
        line,
        " | sent {}/s copies {}/s",
        rate(iv.rate(iv.messages_sent)),
        rate(iv.rate(iv.copies_received)),
    );
    if iv.lost > 0 {
        let _ = write!(line, " lost {}", int(iv.lost));
    }
    for (kind, short) in PROGRESS_LATENCIES {
        if let Some(l) = iv.latency(kind).filter(|l| l.count > 0) {
            let _ = write!(
                line,
                " | {short} p50 {} ms p99 {} ms",
                ms(l.p50_ms),
                ms(l.p99_ms)
            );
        }
    }
    if iv.cpu_percent > 0.0 {
        let _ = write!(line, " | cpu {:.0}%", iv.cpu_percent);
    }
    line
}

/// Width of the label column of the summary.
const LABEL: usize = 22;
/// Width of a figure column of the summary.
const FIGURE: usize = 14;

/// The final summary: a plain-text table, aligned for a terminal.
pub fn summary(t: &Totals, run: &RunInfo) -> String {
    let mut out = String::new();
    let secs = t.elapsed_secs;
    // Traffic rates are over the sending window: dividing by the whole run
    // would count the ramp and the drain, when nobody sends, as idle time.
    let sending = run.sending_secs;
    let per_sec = |r: Option<f64>| r.map_or_else(|| "-".to_string(), |r| format!("{}/s", rate(r)));
    let row = |out: &mut String, label: &str, value: String, extra: &str| {
        let _ = writeln!(out, "  {label:<LABEL$}{value:>FIGURE$}{extra}");
    };

    let sat = &run.saturation;
    let _ = writeln!(
        out,
        "loadgen summary: workload {}, planned {:.1} s, measured {:.1} s",
        run.workload, run.duration_secs, secs,
    );
    let _ = writeln!(
        out,
        "  CPU in the measured seconds: loadgen max {:.0} % of one core ({} {} = {} %), host max {:.0} % of all its cores{}",
        sat.loadgen_cpu_max,
        sat.cores.max(1),
        if sat.cores.max(1) == 1 { "core" } else { "cores" },
        sat.cores.max(1) * 100,
        sat.host_cpu_max,
        // below half a percent it would print as 0 %
        if sat.steal_max >= 0.5 {
            format!(", steal max {:.0} %", sat.steal_max)
        } else {
            String::new()
        }
    );
    if !run.targets.is_empty() {
        let _ = writeln!(
            out,
            "  {} → {}, from {}, {} {}",
            int(run.target_connections),
            run.targets.join(", "),
            match run.source_addresses {
                0 => "the kernel's choice of source address".to_string(),
                1 => "1 source address".to_string(),
                n => format!("{n} source addresses"),
            },
            run.processes.max(1),
            if run.processes > 1 {
                "processes"
            } else {
                "process"
            },
        );
    }
    if sat.any() {
        out.push('\n');
        let _ = writeln!(
            out,
            "WARNING: saturated in {} of the {} measured seconds ({:.0} % of the timed messages):",
            seconds_union(sat),
            sat.judged_secs,
            sat.timed_share * 100.0,
        );
        if sat.loadgen() {
            let _ = writeln!(
                out,
                "  the load generator itself in second {}",
                crate::saturation::seconds(&sat.loadgen_secs)
            );
        }
        if !sat.host_secs.is_empty() {
            let _ = writeln!(
                out,
                "  its host (everything on the machine, the server under test too) in second {}",
                crate::saturation::seconds(&sat.host_secs)
            );
        }
        out.push_str(
            "  A saturated load generator, or a host it shares with the server, measures\n  \
             itself, not the server: rates are capped and latencies include its own\n  \
             queueing. Spread the load over more processes or machines and run again.\n",
        );
    }

    out.push_str("\nConnections\n");
    row(&mut out, "target", int(run.target_connections), "");
    let short = run.target_connections.saturating_sub(t.open_connections);
    let held_note = if short > 0 {
        format!("   ({} short of target)", int(short))
    } else {
        String::new()
    };
    row(&mut out, "held after ramp", int(run.held_after_ramp), "");
    row(&mut out, "held at end", int(t.open_connections), &held_note);
    row(&mut out, "peak", int(t.peak_connections), "");
    row(&mut out, "attempted", int(t.connects_attempted), "");
    row(&mut out, "established", int(t.connects_ok), "");
    if let (Some(achieved), true) = (run.ramp_achieved, run.ramp_secs > 0.0) {
        // The ramp asked beside the ramp that happened.
        let asked = run
            .ramp_asked
            .map_or_else(|| "unpaced".to_string(), |a| format!("asked {}/s", rate(a)));
        let over = format!(
            "   achieved {}/s over {:.1} s",
            rate(achieved),
            run.ramp_secs
        );
        row(&mut out, "ramp", asked, &over);
    } else if run.ramp_secs > 0.0 {
        row(
            &mut out,
            "ramp",
            format!("{:.1} s", run.ramp_secs),
            &format!(
                "   ({}/s: held after the ramp / its length)",
                rate(run.held_after_ramp as f64 / run.ramp_secs)
            ),
        );
    }
    row(&mut out, "closed by us", int(t.closes_by_us), "");
    if t.churned > 0 {
        row(
            &mut out,
            "churned",
            int(t.churned),
            "   (closed by us and reconnected)",
        );
    }
    if let Some(bytes) = run
        .rss_per_connection_bytes
        .filter(|_| run.held_after_ramp >= MEMORY_FIGURE_MIN_CONNECTIONS)
    {
        row(
            &mut out,
            "memory per connection",
            format!("{bytes:.0} B"),
            "   (loadgen RSS growth / connections held)",
        );
    }

    counts_block(&mut out, "Connect errors", &t.connect_errors);
    counts_block(&mut out, "Unexpected closes", &t.closes_unexpected);

    let window = if sending > 0.0 {
        format!("   (per second of the {sending:.1} s of sending)")
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "\n{:<w$}{:>FIGURE$}{:>FIGURE$}{window}",
        "Traffic",
        "total",
        "per second",
        w = LABEL + 2
    );
    let traffic = |out: &mut String, label: &str, total: String, rate: String| {
        let _ = writeln!(out, "  {label:<LABEL$}{total:>FIGURE$}{rate:>FIGURE$}");
    };
    traffic(
        &mut out,
        "messages sent",
        int(t.messages_sent),
        per_sec(t.sent_per_sec(sending)),
    );
    traffic(
        &mut out,
        "copies received",
        int(t.copies_received),
        per_sec(t.copies_per_sec(sending)),
    );
    row(
        &mut out,
        "notices received",
        int(t.notices_received()),
        "   (welcomes, join and leave notices: not in the rates)",
    );
    if t.messages_unexpected > 0 {
        row(
            &mut out,
            "unexpected received",
            int(t.messages_unexpected),
            &format!(
                "   (not the run's messages, e.g. {})",
                t.unexpected_example.as_deref().unwrap_or("?")
            ),
        );
    }
    let byte_rate = |n: u64| {
        if sending > 0.0 {
            format!("{}/s", bytes(n as f64 / sending))
        } else {
            "-".to_string()
        }
    };
    traffic(
        &mut out,
        "bytes sent",
        bytes(t.bytes_sent as f64),
        byte_rate(t.bytes_sent),
    );
    traffic(
        &mut out,
        "bytes received",
        bytes(t.bytes_received as f64),
        byte_rate(t.bytes_received),
    );
    let lost_note = if t.messages_sent > 0 && t.messages_lost > 0 {
        format!(
            "   ({} % of sent)",
            percent(t.messages_lost as f64 * 100.0 / t.messages_sent as f64)
        )
    } else {
        String::new()
    };
    row(&mut out, "messages lost", int(t.messages_lost), &lost_note);

    latency_block(&mut out, t);

    if !run.notes.is_empty() {
        out.push_str("\nNotes\n");
        for note in &run.notes {
            let _ = writeln!(out, "  - {note}");
        }
    }
    out
}

/// How many judged seconds were saturated either way.
fn seconds_union(s: &Saturation) -> usize {
    let mut all: Vec<u64> = s.loadgen_secs.iter().chain(&s.host_secs).copied().collect();
    all.sort_unstable();
    all.dedup();
    all.len()
}

fn counts_block(out: &mut String, title: &str, counts: &std::collections::BTreeMap<String, u64>) {
    let total: u64 = counts.values().sum();
    if total == 0 {
        let _ = writeln!(out, "\n{title}: none");
        return;
    }
    let _ = writeln!(out, "\n{title}: {}", int(total));
    // most frequent first, so the cause of a failed run is on top
    let mut rows: Vec<(&String, &u64)> = counts.iter().collect();
    rows.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    for (label, n) in rows {
        let _ = writeln!(out, "  {:>12}  {label}", int(*n));
    }
}

fn latency_block(out: &mut String, t: &Totals) {
    // delivery, every timed copy, is the headline; then its parts
    let rows: Vec<(&str, &LatencyHistogram)> = Latency::DISPLAY
        .iter()
        .filter_map(|kind| Some((kind.label(), t.latency(*kind)?)))
        .filter(|(_, h)| h.count > 0)
        .collect();
    if rows.is_empty() {
        out.push_str("\nLatency: no samples\n");
        return;
    }
    let _ = writeln!(
        out,
        "\n{:<14}{:>12}{:>10}{:>10}{:>10}{:>10}{:>10}",
        "Latency (ms)", "count", "p50", "p90", "p99", "p99.9", "max"
    );
    for (label, h) in rows {
        let _ = writeln!(
            out,
            "  {label:<12}{:>12}{:>10}{:>10}{:>10}{:>10}{:>10}",
            int(h.count),
            ms(h.p50_ms),
            ms(h.p90_ms),
            ms(h.p99_ms),
            ms(h.p999_ms),
            ms(h.max_ms),
        );
    }
    if let Some(share) = t.timed_share() {
        let _ = writeln!(
            out,
            "  delivery timed {} of {} copies received ({} %){}",
            int(t.latency(Latency::Delivery).map_or(0, |h| h.count)),
            int(t.copies_received),
            percent(share * 100.0),
            if share < TIMED_SHARE_WARNING {
                "\n  WARNING: most copies were not timed (copies from senders on another host, or \
                 written off as lost before they came), so the latency above describes only part of the traffic"
            } else {
                ""
            }
        );
    }
}

/// `1234567` as `1,234,567`.
pub fn int(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A per-second rate, rounded to a whole number, with thousands separators.
pub fn rate(per_sec: f64) -> String {
    if per_sec.is_finite() && per_sec > 0.0 {
        int(per_sec.round() as u64)
    } else {
        "0".to_string()
    }
}

/// Milliseconds at about three significant digits, as the histograms hold.
pub fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// A byte count in binary units.
fn bytes(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// A percentage with one decimal, more for small ones.
pub fn percent(p: f64) -> String {
    if p >= 0.1 {
        format!("{p:.1}")
    } else {
        format!("{p:.4}")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::stats::{new_histogram, IntervalLatency};

    #[test]
    fn numbers_are_formatted_for_people() {
        assert_eq!(int(0), "0");
        assert_eq!(int(999), "999");
        assert_eq!(int(1_000), "1,000");
        assert_eq!(int(950_000), "950,000");
        assert_eq!(int(1_234_567), "1,234,567");
        assert_eq!(int(u64::MAX), "18,446,744,073,709,551,615");
        assert_eq!(ms(0.042), "0.042");
        assert_eq!(ms(1.2), "1.20");
        assert_eq!(ms(12.345), "12.3");
        assert_eq!(ms(1234.5), "1234");
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(6_400.0), "6.2 KiB");
        assert_eq!(bytes(3.0 * 1024.0 * 1024.0), "3.0 MiB");
        assert_eq!(rate(f64::NAN), "0");
        assert_eq!(rate(19_800.4), "19,800");
    }

    fn interval() -> Interval {
        let mut latencies = BTreeMap::new();
        for kind in Latency::ALL {
            latencies.insert(kind.as_str().to_string(), IntervalLatency::default());
        }
        for kind in [Latency::RoundTrip, Latency::Delivery] {
            latencies.insert(
                kind.as_str().to_string(),
                IntervalLatency {
                    count: 9_500,
                    p50_ms: 1.2,
                    p99_ms: 4.8,
                    max_ms: 9.0,
                },
            );
        }
        Interval {
            secs: 1.0,
            at_secs: 12.3,
            connects_attempted: 19_810,
            connects_ok: 19_800,
            connect_errors: 3,
            closes_unexpected: 0,
            messages_sent: 9_500,
            messages_received: 950_000,
            copies_received: 900_000,
            bytes_sent: 9_500 * 64,
            bytes_received: 950_000 * 64,
            lost: 0,
            cpu_percent: 150.0,
            host_cpu_percent: 80.0,
            steal_percent: 0.0,
            open_connections: 95_000,
            latencies,
        }
    }

    #[test]
    fn progress_line_has_the_figures() {
        let line = progress_line(&interval(), 100_000, Duration::from_millis(12_300));
        assert_eq!(
            line,
            "12s conns 95,000/100,000 +19,800/s err 3 | sent 9,500/s copies 900,000/s \
             | delivery p50 1.20 ms p99 4.80 ms | cpu 150%"
        );
    }

    #[test]
    fn progress_line_shows_losses_closes_and_every_latency_kind_with_samples() {
        let mut iv = interval();
        iv.secs = 2.0;
        iv.lost = 7;
        iv.closes_unexpected = 2;
        iv.latencies.insert(
            Latency::Connect.as_str().to_string(),
            IntervalLatency {
                count: 1,
                p50_ms: 0.25,
                p99_ms: 31.0,
                max_ms: 31.0,
            },
        );
        let line = progress_line(&iv, 100_000, Duration::from_secs(3));
        assert!(
            line.starts_with("3s conns 95,000/100,000 +9,900/s err 3 closed 2 |"),
            "{line}"
        );
        assert!(
            line.contains("| sent 4,750/s copies 450,000/s lost 7 |"),
            "{line}"
        );
        assert!(
            line.ends_with(
                "| delivery p50 1.20 ms p99 4.80 ms | connect p50 0.250 ms p99 31.0 ms | cpu 150%"
            ),
            "{line}"
        );
        // the parts of delivery are the summary's details
        assert!(!line.contains("rtt") && !line.contains("fanout"), "{line}");
        // an interval without time or samples prints zeros, not NaN
        let line = progress_line(&Interval::default(), 10, Duration::ZERO);
        assert_eq!(line, "0s conns 0/10 +0/s err 0 | sent 0/s copies 0/s");
    }

    fn totals() -> Totals {
        let mut rtt = new_histogram();
        for v in 1..=1000u64 {
            rtt.record(v * 10).unwrap(); // 0.01 .. 10 ms
        }
        let mut connect = new_histogram();
        connect.record(2_500).unwrap();
        let mut fanout = new_histogram();
        for v in 1..=3000u64 {
            fanout.record(v * 10).unwrap(); // 0.01 .. 30 ms
        }
        let mut delivery = rtt.clone();
        delivery.add(&fanout).unwrap();
        Totals {
            elapsed_secs: 10.0,
            connects_attempted: 100_010,
            connects_ok: 100_000,
            connect_errors: BTreeMap::from([
                ("HTTP 503".to_string(), 3),
                ("timeout".to_string(), 7),
            ]),
            open_connections: 99_997,
            peak_connections: 100_000,
            messages_sent: 200_000,
            bytes_sent: 200_000 * 64,
            messages_received: 2_000_000,
            copies_received: 4_000,
            bytes_received: 2_000_000 * 64,
            messages_lost: 20,
            messages_unexpected: 0,
            unexpected_example: None,
            closes_by_us: 0,
            churned: 0,
            closes_unexpected: BTreeMap::from([("1013".to_string(), 3)]),
            latencies: BTreeMap::from([
                (
                    Latency::RoundTrip.as_str().to_string(),
                    crate::stats::LatencyHistogram::from_histogram(&rtt),
                ),
                (
                    Latency::Connect.as_str().to_string(),
                    crate::stats::LatencyHistogram::from_histogram(&connect),
                ),
                (
                    Latency::Fanout.as_str().to_string(),
                    crate::stats::LatencyHistogram::from_histogram(&fanout),
                ),
                (
                    Latency::Delivery.as_str().to_string(),
                    crate::stats::LatencyHistogram::from_histogram(&delivery),
                ),
                (
                    Latency::Echo.as_str().to_string(),
                    crate::stats::LatencyHistogram::default(),
                ),
            ]),
        }
    }

    fn run() -> RunInfo {
        RunInfo {
            target_connections: 100_000,
            duration_secs: 10.0,
            workload: "chat-binary".to_string(),
            saturation: Saturation {
                cores: 2,
                judged_secs: 9,
                loadgen_cpu_max: 87.0,
                host_cpu_max: 71.0,
                ..Saturation::default()
            },
            notes: vec!["3 connections short of the target".to_string()],
            held_after_ramp: 99_998,
            rss_per_connection_bytes: Some(1234.4),
            processes: 1,
            targets: vec!["ws://127.0.0.1:8080/".to_string()],
            source_addresses: 8,
            ramp_secs: 5.0,
            ramp_asked: None,
            ramp_achieved: None,
            sending_secs: 8.0,
        }
    }

    #[test]
    fn the_ramp_asked_is_shown_beside_the_ramp_achieved() {
        let mut r = run();
        r.ramp_secs = 13.5;
        r.ramp_asked = Some(5_000.0);
        r.ramp_achieved = Some(1_412.3);
        let s = summary(&totals(), &r);
        let line = "  ramp                   asked 5,000/s   achieved 1,412/s over 13.5 s";
        assert!(s.lines().any(|l| l == line), "missing {line:?} in\n{s}");
        r.ramp_asked = None;
        let s = summary(&totals(), &r);
        let line = "  ramp                         unpaced   achieved 1,412/s over 13.5 s";
        assert!(s.lines().any(|l| l == line), "missing {line:?} in\n{s}");
    }

    #[test]
    fn summary_has_every_figure_aligned() {
        let s = summary(&totals(), &run());
        let expected_lines = [
            "loadgen summary: workload chat-binary, planned 10.0 s, measured 10.0 s",
            "  CPU in the measured seconds: loadgen max 87 % of one core (2 cores = 200 %), host max 71 % of all its cores",
            "  100,000 → ws://127.0.0.1:8080/, from 8 source addresses, 1 process",
            "  target                       100,000",
            "  held at end                   99,997   (3 short of target)",
            "  peak                         100,000",
            "  attempted                    100,010",
            "  established                  100,000",
            "  ramp                           5.0 s   (20,000/s: held after the ramp / its length)",
            "  memory per connection         1234 B   (loadgen RSS growth / connections held)",
            "Connect errors: 10",
            "             7  timeout",
            "             3  HTTP 503",
            "Unexpected closes: 3",
            "             3  1013",
            "Traffic                          total    per second   (per second of the 8.0 s of sending)",
            "  messages sent                200,000      25,000/s",
            "  copies received                4,000         500/s",
            "  notices received           1,996,000   (welcomes, join and leave notices: not in the rates)",
            "  bytes sent                  12.2 MiB     1.5 MiB/s",
            "  bytes received             122.1 MiB    15.3 MiB/s",
            "  messages lost                     20   (0.0100 % of sent)",
            "Latency (ms)         count       p50       p90       p99     p99.9       max",
            "  delivery           4,000      10.0      26.0      29.6      30.0      30.0",
            "  round trip         1,000      5.00      9.01      9.90      9.99      10.0",
            "  fan-out            3,000      15.0      27.0      29.7      30.0      30.0",
            "  connect                1      2.50      2.50      2.50      2.50      2.50",
            "  delivery timed 4,000 of 4,000 copies received (100.0 %)",
            "  - 3 connections short of the target",
        ];
        for line in expected_lines {
            assert!(
                s.lines().any(|l| l == line),
                "missing line {line:?} in\n{s}"
            );
        }
        // kinds without samples are left out; no warning without saturation
        assert!(!s.contains("echo"), "{s}");
        assert!(!s.contains("WARNING"), "{s}");
        // the error kinds come most frequent first
        assert!(s.find("timeout").unwrap() < s.find("HTTP 503").unwrap());
    }

    #[test]
    fn summary_warns_when_cpu_saturated_and_handles_an_empty_run() {
        let mut r = run();
        r.saturation.loadgen_cpu_max = 199.0;
        r.saturation.loadgen_secs = vec![3, 4, 5];
        r.saturation.host_secs = vec![5, 6];
        r.saturation.timed_share = 0.42;
        let s = summary(&totals(), &r);
        for line in [
            "WARNING: saturated in 4 of the 9 measured seconds (42 % of the timed messages):",
            "  the load generator itself in second 3-5",
            "  its host (everything on the machine, the server under test too) in second 5-6",
        ] {
            assert!(s.lines().any(|l| l == line), "no {line:?} in {s}");
        }
        assert!(
            s.contains("itself, not the server: rates are capped"),
            "{s}"
        );

        // copies from another host's senders are counted, not timed
        let mut t = totals();
        t.copies_received = 10_000;
        let s = summary(&t, &run());
        assert!(
            s.contains("  delivery timed 4,000 of 10,000 copies received (40.0 %)\n  WARNING: most copies were not timed"),
            "{s}"
        );

        let s = summary(&Totals::default(), &RunInfo::default());
        assert!(s.contains("Connect errors: none"), "{s}");
        assert!(s.contains("Unexpected closes: none"), "{s}");
        assert!(s.contains("Latency: no samples"), "{s}");
        // no ramp, no sending: no rate rather than a division by zero
        assert!(!s.contains("  ramp "), "{s}");
        assert!(!s.contains("of sending"), "{s}");
        assert!(
            s.contains("  messages sent                      0             -"),
            "{s}"
        );
        assert!(!s.contains(" → "), "no targets, no targets line: {s}");
        assert!(!s.contains("NaN") && !s.contains("inf"), "{s}");
        assert!(!s.contains("Notes"), "{s}");
    }

    #[test]
    fn small_runs_print_no_memory_per_connection() {
        let mut r = run();
        r.held_after_ramp = MEMORY_FIGURE_MIN_CONNECTIONS - 1;
        let s = summary(&totals(), &r);
        assert!(!s.contains("memory per connection"), "{s}");
        r.held_after_ramp = MEMORY_FIGURE_MIN_CONNECTIONS;
        assert!(summary(&totals(), &r).contains("memory per connection"));
    }
}
