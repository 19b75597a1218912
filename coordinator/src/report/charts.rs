//! The charts of one phase, from its merged series and histograms.

use hdrhistogram::Histogram;
use loadgen::stats::{Interval, Latency, LatencyHistogram};

use super::format;
use super::svg::{self, Chart, RefLine, Series, Unit, XScale};
use crate::results::PhaseResult;

/// One chart with its heading and caption, or why there is none.
pub struct Figure {
    pub title: String,
    /// `Err` holds the sentence shown instead of the chart.
    pub svg: Result<String, String>,
    pub caption: Option<String>,
}

const BLUE: &str = "#0072b2";
const GREEN: &str = "#009e73";

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

/// The kind's name for people.
pub fn kind_name(kind: Latency) -> &'static str {
    match kind {
        Latency::Connect => "connect",
        Latency::RoundTrip => "round trip",
        Latency::Fanout => "fan-out",
        Latency::Echo => "echo",
        Latency::Delivery => "delivery",
    }
}

const NO_SAMPLES: &str = "no samples";

/// Every chart of the phase, in page order. `slot` makes the chart ids
/// unique in the page.
pub fn phase_charts(phase: &PhaseResult, slot: usize) -> Vec<Figure> {
    let id = |name: &str| format!("phase{slot}-{name}");
    let mut figures = vec![
        connections(phase, id("connections")),
        messages(phase, id("messages")),
        latency_over_time(phase, id("latency")),
    ];
    let with_samples: Vec<(Latency, &LatencyHistogram)> = Latency::ALL
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
    figures
}

/// Seconds since the phase started, the x of every time chart.
fn times(intervals: &[Interval]) -> impl Iterator<Item = (f64, &Interval)> {
    intervals.iter().map(|iv| (iv.at_secs, iv))
}

fn connections(phase: &PhaseResult, id: String) -> Figure {
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

fn messages(phase: &PhaseResult, id: String) -> Figure {
    let rate = |n: fn(&Interval) -> u64| -> Vec<(f64, Option<f64>)> {
        times(&phase.intervals)
            .map(|(t, iv)| (t, Some(iv.rate(n(iv)))))
            .collect()
    };
    let any = phase
        .intervals
        .iter()
        .any(|iv| iv.messages_sent > 0 || iv.messages_received > 0);
    let chart = Chart {
        id,
        title: "Messages per second".to_string(),
        desc: format!(
            "Messages sent and received per second, all agents together; {} sent and {} received in the phase.",
            format::int(phase.totals.messages_sent),
            format::int(phase.totals.messages_received)
        ),
        x: XScale::Linear(Unit::Seconds),
        x_label: "time since phase start (s)".to_string(),
        y: Unit::PerSecond,
        y_label: "messages/s".to_string(),
        series: vec![
            Series {
                name: "sent".to_string(),
                color: BLUE,
                dashed: false,
                points: rate(|iv| iv.messages_sent),
            },
            Series {
                name: "received".to_string(),
                color: GREEN,
                dashed: false,
                points: rate(|iv| iv.messages_received),
            },
        ],
        refs: Vec::new(),
    };
    let svg = if any {
        svg::render(&chart).ok_or_else(|| NO_SAMPLES.to_string())
    } else if phase.intervals.is_empty() {
        Err(NO_SAMPLES.to_string())
    } else {
        Err("no messages in this phase".to_string())
    };
    Figure {
        title: "Messages per second".to_string(),
        svg,
        caption: Some(
            "Each interval's messages over its length, or over one second for the short last interval that holds the closes."
                .to_string(),
        ),
    }
}

/// p50 and p99 per interval of the message latencies there are, or of
/// connect when there are none (an idle workload).
fn latency_over_time(phase: &PhaseResult, id: String) -> Figure {
    let has = |k: Latency| phase.totals.latency(k).is_some_and(|h| h.count > 0);
    let mut kinds: Vec<Latency> = [Latency::RoundTrip, Latency::Fanout, Latency::Echo]
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
            name: format!("{} p99", kind_name(kind)),
            color: color(kind),
            dashed: false,
            points: pick(true),
        });
        series.push(Series {
            name: format!("{} p50", kind_name(kind)),
            color: color(kind),
            dashed: true,
            points: pick(false),
        });
    }
    let names: Vec<&str> = kinds.iter().map(|&k| kind_name(k)).collect();
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

/// Points per nine of the percentile curve: enough for a smooth line, few
/// enough for a small page.
const POINTS_PER_NINE: u32 = 20;

/// The percentile curve of the whole phase's merged histogram.
fn distribution(kind: Latency, h: &LatencyHistogram, id: String) -> Figure {
    let hist = h.histogram();
    let max_nines = nines_for(hist.len());
    let chart = Chart {
        id,
        title: format!("{} latency by percentile", kind_name(kind)),
        desc: format!(
            "{} latency over {} samples: p50 {} ms, p99 {} ms, p99.9 {} ms, max {} ms.",
            kind_name(kind),
            format::int(h.count),
            format::ms(h.p50_ms),
            format::ms(h.p99_ms),
            format::ms(h.p999_ms),
            format::ms(h.max_ms)
        ),
        x: XScale::Nines { max: max_nines },
        x_label: "percentile (log scale of nines)".to_string(),
        y: Unit::Ms,
        y_label: "latency (ms)".to_string(),
        series: vec![Series {
            name: kind_name(kind).to_string(),
            color: color(kind),
            dashed: false,
            points: percentile_curve(hist, max_nines),
        }],
        refs: Vec::new(),
    };
    Figure {
        title: format!("{} latency distribution", capitalized(kind_name(kind))),
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
        let figures = phase_charts(&PhaseResult::default(), 0);
        assert_eq!(figures.len(), 4);
        for f in figures {
            assert_eq!(f.svg.unwrap_err(), NO_SAMPLES, "{}", f.title);
        }
    }
}
