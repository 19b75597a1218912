//! The charts of one phase, from its merged series and histograms, and
//! of the server's side of it, from the scrapes of its metrics endpoint.
//! Every time chart of a phase spans the same seconds ([`time_span`]), so
//! charts one above the other line up.

use hdrhistogram::Histogram;
use loadgen::stats::{Interval, Latency, LatencyHistogram};

use super::format;
use super::svg::{self, Chart, RefLine, Series, Unit, XScale};
use crate::results::{PhaseResult, ServerSample, ServerSeries};

/// One chart with its heading and caption, or why there is none.
pub struct Figure {
    pub title: String,
    /// `Err` holds the sentence shown instead of the chart.
    pub svg: Result<String, String>,
    pub caption: Option<String>,
}

const BLUE: &str = "#0072b2";
const GREEN: &str = "#009e73";
/// The server's own lines.
const VERMILLION: &str = "#d55e00";
const GREY: &str = "#6e7781";

/// Okabe–Ito colours, which stay apart for colour-blind readers.
fn color(kind: Latency) -> &'static str {
    match kind {
        Latency::Connect => "#e69f00",
        Latency::RoundTrip => BLUE,
        Latency::Fanout => GREEN,
        Latency::Echo => "#cc79a7",
        Latency::Delivery => "#000000",
    }
}

const NO_SAMPLES: &str = "no samples";

/// The clients' charts of a phase: those over time, which the server's
/// follow on the page, and the latency distributions.
pub struct PhaseCharts {
    pub over_time: Vec<Figure>,
    pub distributions: Vec<Figure>,
}

/// Every chart of the phase, in page order. `slot` makes the chart ids
/// unique in the page.
pub fn phase_charts(phase: &PhaseResult, slot: usize) -> PhaseCharts {
    let id = |name: &str| format!("phase{slot}-{name}");
    let span = time_span(phase);
    let over_time = vec![
        connections(phase, id("connections"), span),
        messages(phase, id("sent"), span, Way::Sent),
        messages(phase, id("received"), span, Way::Received),
        latency_over_time(phase, id("latency"), span),
    ];
    let mut figures = Vec::new();
    let with_samples: Vec<(Latency, &LatencyHistogram)> = Latency::DISPLAY
        .into_iter()
        .filter_map(|k| phase.totals.latency(k).map(|h| (k, h)))
        .filter(|(_, h)| h.count > 0)
        .collect();
    if with_samples.is_empty() {
        figures.push(Figure {
            title: "Latency distribution".to_string(),
            svg: Err(NO_SAMPLES.to_string()),
            caption: None,
        });
    }
    for (kind, h) in with_samples {
        figures.push(distribution(
            kind,
            h,
            id(&format!("dist-{}", kind.as_str())),
        ));
    }
    PhaseCharts {
        over_time,
        distributions: figures,
    }
}

/// Seconds since the phase started, the x of every time chart.
fn times(intervals: &[Interval]) -> impl Iterator<Item = (f64, &Interval)> {
    intervals.iter().map(|iv| (iv.at_secs, iv))
}

/// What every time chart of the phase spans: from its start to the last
/// second anyone measured it, the clients or the server. `None` when
/// nothing did.
pub fn time_span(phase: &PhaseResult) -> Option<(f64, f64)> {
    let clients = phase.intervals.iter().map(|iv| iv.at_secs);
    let server = phase
        .server
        .iter()
        .flat_map(|s| s.samples.iter().map(|x| x.at_secs));
    clients
        .chain(server)
        .filter(|t| t.is_finite())
        .reduce(f64::max)
        .map(|end| (0.0, end.max(0.0)))
}

/// The clients' `n` per second, each interval.
fn client_rates(phase: &PhaseResult, n: fn(&Interval) -> u64) -> Vec<(f64, Option<f64>)> {
    times(&phase.intervals)
        .map(|(t, iv)| (t, Some(iv.rate(n(iv)))))
        .collect()
}

fn connections(phase: &PhaseResult, id: String, span: Option<(f64, f64)>) -> Figure {
    let points: Vec<(f64, Option<f64>)> = times(&phase.intervals)
        .map(|(t, iv)| (t, Some(iv.open_connections as f64)))
        .collect();
    let peak = phase
        .intervals
        .iter()
        .map(|iv| iv.open_connections)
        .max()
        .unwrap_or(0);
    let chart = Chart {
        id,
        title: "Open connections".to_string(),
        desc: format!(
            "Open connections each interval, all agents together; highest {}, target {}.",
            format::int(peak),
            format::int(phase.connections)
        ),
        x: XScale::Linear(Unit::Seconds),
        x_range: span,
        x_label: "time since phase start (s)".to_string(),
        y: Unit::Count,
        y_label: "connections".to_string(),
        series: vec![Series {
            name: "open".to_string(),
            color: BLUE,
            dashed: false,
            points,
        }],
        refs: vec![RefLine {
            name: format!("target {}", format::int(phase.connections)),
            y: phase.connections as f64,
        }],
    };
    Figure {
        title: "Connections over time".to_string(),
        svg: svg::render(&chart).ok_or_else(|| NO_SAMPLES.to_string()),
        caption: None,
    }
}

/// Which way the messages of a chart went. Sent and received get a chart
/// each: in a chat room every message sent is received by every member,
/// so on one axis the sent line would lie flat along the bottom.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Way {
    Sent,
    Received,
}

fn messages(phase: &PhaseResult, id: String, span: Option<(f64, f64)>, way: Way) -> Figure {
    let (word, color, count, total): (&str, _, fn(&Interval) -> u64, u64) = match way {
        Way::Sent => (
            "sent",
            BLUE,
            |iv| iv.messages_sent,
            phase.totals.messages_sent,
        ),
        // Copies of the sent messages only, as every rate of the lab:
        // join and leave notices would swamp the ramp and the closes.
        Way::Received => (
            "received",
            GREEN,
            |iv| iv.copies_received,
            phase.totals.copies_received,
        ),
    };
    let any = phase.intervals.iter().any(|iv| count(iv) > 0);
    let title = match way {
        Way::Sent => "Messages sent per second".to_string(),
        Way::Received => "Copies received per second".to_string(),
    };
    let chart = Chart {
        id,
        title: title.clone(),
        desc: match way {
            Way::Sent => format!(
                "Messages sent per second, all agents together; {} sent in the phase.",
                format::int(total),
            ),
            Way::Received => format!(
                "Copies of the sent messages received per second (every member's copy; notices left out), all agents together; {} in the phase.",
                format::int(total),
            ),
        },
        x: XScale::Linear(Unit::Seconds),
        x_range: span,
        x_label: "time since phase start (s)".to_string(),
        y: Unit::PerSecond,
        y_label: format!("messages {word}/s"),
        series: vec![Series {
            name: word.to_string(),
            color,
            dashed: false,
            points: client_rates(phase, count),
        }],
        refs: Vec::new(),
    };
    let svg = if any {
        svg::render(&chart).ok_or_else(|| NO_SAMPLES.to_string())
    } else if phase.intervals.is_empty() {
        Err(NO_SAMPLES.to_string())
    } else {
        Err(format!("no messages {word} in this phase"))
    };
    Figure {
        title,
        svg,
        caption: Some(
            "Each interval's messages over its length, or over one second for the short last interval that holds the closes."
                .to_string(),
        ),
    }
}

/// p50 and p99 per interval of the message latencies there are, or of
/// connect when there are none (an idle workload).
fn latency_over_time(phase: &PhaseResult, id: String, span: Option<(f64, f64)>) -> Figure {
    let has = |k: Latency| phase.totals.latency(k).is_some_and(|h| h.count > 0);
    let mut kinds: Vec<Latency> = [
        Latency::Delivery,
        Latency::RoundTrip,
        Latency::Fanout,
        Latency::Echo,
    ]
    .into_iter()
    .filter(|&k| has(k))
    .collect();
    if kinds.is_empty() && has(Latency::Connect) {
        kinds.push(Latency::Connect);
    }
    let mut series = Vec::new();
    for &kind in &kinds {
        let pick = |p99: bool| -> Vec<(f64, Option<f64>)> {
            times(&phase.intervals)
                .map(|(t, iv)| {
                    let v = iv.latency(kind).filter(|l| l.count > 0).map(|l| {
                        if p99 {
                            l.p99_ms
                        } else {
                            l.p50_ms
                        }
                    });
                    (t, v)
                })
                .collect()
        };
        series.push(Series {
            name: format!("{} p99", Latency::label(kind)),
            color: color(kind),
            dashed: false,
            points: pick(true),
        });
        series.push(Series {
            name: format!("{} p50", Latency::label(kind)),
            color: color(kind),
            dashed: true,
            points: pick(false),
        });
    }
    let names: Vec<&str> = kinds.iter().map(|&k| Latency::label(k)).collect();
    let chart = Chart {
        id,
        title: "Latency percentiles over time".to_string(),
        desc: format!(
            "p50 and p99 latency each interval of: {}.",
            if names.is_empty() {
                "nothing".to_string()
            } else {
                names.join(", ")
            }
        ),
        x: XScale::Linear(Unit::Seconds),
        x_range: span,
        x_label: "time since phase start (s)".to_string(),
        y: Unit::Ms,
        y_label: "latency (ms)".to_string(),
        series,
        refs: Vec::new(),
    };
    Figure {
        title: "Latency percentiles over time".to_string(),
        svg: svg::render(&chart).ok_or_else(|| NO_SAMPLES.to_string()),
        caption: Some(
            "Per-interval percentiles across agents are approximations (p50: the agents' p50s \
             weighted by their sample counts; p99: the highest agent's p99). The totals above \
             and the distributions below come from merged histograms and are exact."
                .to_string(),
        ),
    }
}

/// The server's charts for the phase, each beside the clients' view of
/// the same figure where there is one (dashed), over the phase's
/// [`time_span`].
pub fn server_charts(phase: &PhaseResult, server: &ServerSeries, slot: usize) -> Vec<Figure> {
    let span = time_span(phase);
    let id = |name: &str| format!("phase{slot}-server-{name}");
    let of = |f: fn(&ServerSample) -> Option<f64>| -> Vec<(f64, Option<f64>)> {
        server.samples.iter().map(|s| (s.at_secs, f(s))).collect()
    };
    let peak = |f: fn(&ServerSample) -> Option<f64>| -> Option<f64> {
        server
            .samples
            .iter()
            .filter_map(f)
            .filter(|v| v.is_finite())
            .reduce(f64::max)
    };
    let base = |name: &str, title: &str, y: Unit, y_label: &str| Chart {
        id: id(name),
        title: title.to_string(),
        desc: String::new(),
        x: XScale::Linear(Unit::Seconds),
        x_range: span,
        x_label: "time since phase start (s)".to_string(),
        y,
        y_label: y_label.to_string(),
        series: Vec::new(),
        refs: Vec::new(),
    };
    let server_line = |name: &str, points| Series {
        name: name.to_string(),
        color: VERMILLION,
        dashed: false,
        points,
    };
    let clients_line = |name: &str, color, points| Series {
        name: name.to_string(),
        color,
        dashed: true,
        points,
    };

    let mut cpu = base("cpu", "Server CPU", Unit::Percent, "CPU (% of one core)");
    cpu.desc = format!(
        "The server's CPU each second in percent of one core; busiest second {}.",
        peak(|s| s.cpu_percent).map_or(format::NONE.to_string(), format::percent)
    );
    cpu.series
        .push(server_line("server", of(|s| s.cpu_percent)));
    if phase.intervals.iter().any(|iv| iv.cpu_percent > 0.0) {
        cpu.series.push(clients_line(
            "agents (all)",
            GREY,
            times(&phase.intervals)
                .map(|(t, iv)| (t, Some(iv.cpu_percent)))
                .collect(),
        ));
    }

    let mut rss = base("rss", "Server memory", Unit::Mib, "resident memory (MiB)");
    rss.desc = format!(
        "The server's resident memory at each scrape; highest {}.",
        peak(|s| s.rss_bytes.map(|b| b as f64)).map_or(format::NONE.to_string(), format::mib)
    );
    rss.series.push(server_line(
        "resident",
        of(|s| s.rss_bytes.map(|b| b as f64 / 1048576.0)),
    ));

    let mut conns = base(
        "connections",
        "Server connections",
        Unit::Count,
        "connections",
    );
    conns.desc = format!(
        "Connections open at the server at each scrape, highest {}, beside the clients' open connections (dashed); target {}.",
        peak(|s| s.connections.map(|c| c as f64)).map_or(format::NONE.to_string(), |c| format::thousands(c, 0)),
        format::int(phase.connections)
    );
    conns.series.push(server_line(
        "server",
        of(|s| s.connections.map(|c| c as f64)),
    ));
    conns.series.push(clients_line(
        "clients (open)",
        BLUE,
        times(&phase.intervals)
            .map(|(t, iv)| (t, Some(iv.open_connections as f64)))
            .collect(),
    ));
    conns.refs.push(RefLine {
        name: format!("target {}", format::int(phase.connections)),
        y: phase.connections as f64,
    });

    let mut msgs_in = base(
        "in",
        "Server messages in per second",
        Unit::PerSecond,
        "messages in/s",
    );
    msgs_in.desc =
        "Messages the server received per second, beside what the clients sent (dashed)."
            .to_string();
    msgs_in
        .series
        .push(server_line("server in", of(|s| s.messages_in_per_sec)));
    msgs_in.series.push(clients_line(
        "clients sent",
        BLUE,
        client_rates(phase, |iv| iv.messages_sent),
    ));

    let mut msgs_out = base(
        "out",
        "Server messages out per second",
        Unit::PerSecond,
        "messages out/s",
    );
    msgs_out.desc =
        "Messages the server wrote per second, beside what the clients received (dashed)."
            .to_string();
    msgs_out
        .series
        .push(server_line("server out", of(|s| s.messages_out_per_sec)));
    msgs_out.series.push(clients_line(
        "clients received (every message, notices too)",
        GREEN,
        client_rates(phase, |iv| iv.messages_received),
    ));

    let mut drops = base(
        "drops",
        "Server drops per second",
        Unit::PerSecond,
        "dropped/s",
    );
    drops.desc = format!(
        "Messages the server dropped per second (slow consumers); {} in the phase.",
        server
            .totals
            .drops
            .map_or(format::NONE.to_string(), |d| format::thousands(d, 0))
    );
    drops
        .series
        .push(server_line("dropped", of(|s| s.drops_per_sec)));

    let has = |f: fn(&ServerSample) -> Option<f64>| server.samples.iter().any(|s| f(s).is_some());
    let figure = |chart: Chart, exported: bool, metric: &str, caption: &str| Figure {
        title: chart.title.clone(),
        svg: if server.samples.is_empty() {
            Err(NO_SAMPLES.to_string())
        } else if !exported {
            Err(format!("the server's metrics have no {metric}"))
        } else {
            svg::render(&chart).ok_or_else(|| NO_SAMPLES.to_string())
        },
        caption: Some(caption.to_string()),
    };
    vec![
        figure(
            cpu,
            has(|s| s.cpu_percent),
            "process_cpu_seconds_total",
            "process_cpu_seconds_total: CPU time used between two scrapes over the time between them; 100 % is one core busy. Dashed: the agents' processes, summed.",
        ),
        figure(
            rss,
            has(|s| s.rss_bytes.map(|b| b as f64)),
            "process_resident_memory_bytes",
            "process_resident_memory_bytes at each scrape.",
        ),
        figure(
            conns,
            has(|s| s.connections.map(|c| c as f64)),
            "chat_connections_open",
            "chat_connections_open at each scrape; dashed: the connections the clients held each interval.",
        ),
        figure(
            msgs_in,
            has(|s| s.messages_in_per_sec),
            "chat_messages_received_total",
            "chat_messages_received_total, every type and encoding, per second between scrapes.",
        ),
        figure(
            msgs_out,
            has(|s| s.messages_out_per_sec),
            "chat_messages_sent_total",
            "chat_messages_sent_total, every type and encoding (each member's copy counts), per second between scrapes.",
        ),
        figure(
            drops,
            has(|s| s.drops_per_sec),
            "chat_messages_dropped_total",
            "chat_messages_dropped_total per second between scrapes: copies the server let go rather than queue for a slow reader.",
        ),
    ]
}

/// Points per nine of the percentile curve: enough for a smooth line, few
/// enough for a small page.
const POINTS_PER_NINE: u32 = 20;

/// The percentile curve of the whole phase's merged histogram.
fn distribution(kind: Latency, h: &LatencyHistogram, id: String) -> Figure {
    let hist = h.histogram();
    let max_nines = nines_for(hist.len());
    let chart = Chart {
        id,
        title: format!("{} latency by percentile", Latency::label(kind)),
        desc: format!(
            "{} latency over {} samples: p50 {} ms, p99 {} ms, p99.9 {} ms, max {} ms.",
            Latency::label(kind),
            format::int(h.count),
            format::ms(h.p50_ms),
            format::ms(h.p99_ms),
            format::ms(h.p999_ms),
            format::ms(h.max_ms)
        ),
        x: XScale::Nines { max: max_nines },
        x_range: None,
        x_label: "percentile (log scale of nines)".to_string(),
        y: Unit::Ms,
        y_label: "latency (ms)".to_string(),
        series: vec![Series {
            name: Latency::label(kind).to_string(),
            color: color(kind),
            dashed: false,
            points: percentile_curve(hist, max_nines),
        }],
        refs: Vec::new(),
    };
    Figure {
        title: format!("{} latency distribution", capitalized(Latency::label(kind))),
        svg: svg::render(&chart).ok_or_else(|| NO_SAMPLES.to_string()),
        caption: Some(format!(
            "{} samples, from the merged HDR histogram (exact); the right end is the maximum, {} ms.",
            format::int(h.count),
            format::ms(h.max_ms)
        )),
    }
}

/// How many nines the curve can tell apart: one sample in 10^n is the
/// resolution, so n = log10(samples), at least to 99 % and at most to
/// 99.9999 %.
fn nines_for(samples: u64) -> u32 {
    let n = (samples.max(1) as f64).log10().ceil();
    (n as u32).clamp(2, 6)
}

/// (nines, ms) along the curve, the last point being the maximum.
fn percentile_curve(hist: &Histogram<u64>, max_nines: u32) -> Vec<(f64, Option<f64>)> {
    if hist.is_empty() {
        return Vec::new();
    }
    let steps = max_nines * POINTS_PER_NINE;
    (0..=steps)
        .map(|i| {
            let nines = f64::from(i) / f64::from(POINTS_PER_NINE);
            let q = if i == steps {
                1.0
            } else {
                1.0 - 10f64.powf(-nines)
            };
            (nines, Some(hist.value_at_quantile(q) as f64 / 1000.0))
        })
        .collect()
}

fn capitalized(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loadgen::stats::new_histogram;

    #[test]
    fn the_curve_runs_from_the_minimum_to_the_maximum_in_nines() {
        let mut h = new_histogram();
        for v in 1..=10_000u64 {
            h.record(v * 10).unwrap(); // 10 µs .. 100 ms, uniform
        }
        assert_eq!(nines_for(h.len()), 4);
        let curve = percentile_curve(&h, 4);
        assert_eq!(curve.len(), 81);
        assert_eq!(curve[0].0, 0.0);
        assert!((curve[0].1.unwrap() - 0.01).abs() < 0.001);
        // 1 nine = p90 = 90 ms, 2 nines = p99 = 99 ms
        let at = |nines: f64| {
            curve
                .iter()
                .find(|p| (p.0 - nines).abs() < 1e-9)
                .unwrap()
                .1
                .unwrap()
        };
        assert!((at(1.0) - 90.0).abs() < 0.1, "{}", at(1.0));
        assert!((at(2.0) - 99.0).abs() < 0.1, "{}", at(2.0));
        assert!((curve.last().unwrap().1.unwrap() - 100.0).abs() < 0.1);
        assert!(curve.windows(2).all(|w| w[0].1 <= w[1].1));
    }

    #[test]
    fn nines_follow_the_sample_count() {
        assert_eq!(nines_for(0), 2);
        assert_eq!(nines_for(1), 2);
        assert_eq!(nines_for(1_000), 3);
        assert_eq!(nines_for(30_000), 5);
        assert_eq!(nines_for(u64::MAX), 6);
        assert!(percentile_curve(&new_histogram(), 2).is_empty());
    }

    #[test]
    fn an_empty_phase_says_no_samples_for_every_chart() {
        let charts = phase_charts(&PhaseResult::default(), 0);
        assert_eq!(charts.over_time.len(), 4);
        assert_eq!(charts.distributions.len(), 1);
        for f in charts.over_time.into_iter().chain(charts.distributions) {
            assert_eq!(f.svg.unwrap_err(), NO_SAMPLES, "{}", f.title);
        }
    }
}
