//! One latency histogram as it travels: summary figures in milliseconds for
//! people, plus the full HDR histogram (V2 deflate, base64) so that a
//! coordinator can merge it with others exactly.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::StatsError;

/// The top of the recorded range: one hour in microseconds. Larger
/// latencies are clamped to it (a run that sees them is broken anyway).
pub const HIGHEST_MICROS: u64 = 3_600_000_000;

/// Three significant digits: 0.1 % resolution at every magnitude.
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// A base64 HDR string longer than this is refused before decoding. Ours
/// are a few kB at most; the cap keeps a corrupt file from costing much.
const MAX_HDR_BASE64: usize = 4 << 20;

/// An empty histogram of microseconds, 1 µs .. 1 h at 3 significant digits.
/// Its counts are allocated here, once, so recording never allocates.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_MICROS, SIGNIFICANT_DIGITS)
        .expect("constant histogram bounds are valid")
}

/// Upper bounds (milliseconds) for Prometheus latency histograms: loopback
/// round trips sit well below a millisecond, overloaded servers take
/// seconds.
pub const PROMETHEUS_BUCKETS_MS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0,
    5000.0, 10000.0,
];

/// Cumulative counts of samples at or below each upper bound (milliseconds),
/// as Prometheus `le` buckets want them; `+Inf` is `h.len()`. Exact below
/// 2.048 ms; above, a bound falls inside an HDR bucket (0.1 % wide) whose
/// samples all count as at or below it.
pub fn cumulative_buckets(h: &Histogram<u64>, upper_bounds_ms: &[f64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(upper_bounds_ms.len());
    for &le in upper_bounds_ms {
        let micros = (le * 1000.0).floor();
        let count = if micros < 0.0 {
            0
        } else {
            h.count_between(0, micros as u64)
        };
        out.push(count);
    }
    out
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// A latency histogram with its summary. The summary fields are derived
/// from `hdr` (on deserialization too: stored summaries are recomputed), so
/// they never disagree with the histogram.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "LatencyHistogramWire")]
pub struct LatencyHistogram {
    pub count: u64,
    pub min_ms: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// Base64 of the HDR V2 deflate serialization (values in microseconds).
    pub hdr: String,
    /// The decoded `hdr`, kept so merging cannot fail on bad input: any
    /// `LatencyHistogram` that exists has a valid histogram.
    #[serde(skip)]
    hist: Histogram<u64>,
}

/// What is read back: only `hdr` matters.
#[derive(Deserialize)]
struct LatencyHistogramWire {
    hdr: String,
}

impl TryFrom<LatencyHistogramWire> for LatencyHistogram {
    type Error = StatsError;

    fn try_from(wire: LatencyHistogramWire) -> Result<Self, StatsError> {
        Ok(LatencyHistogram::from_histogram(&decode(&wire.hdr)?))
    }
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram::from_histogram(&new_histogram())
    }
}

impl LatencyHistogram {
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        let mut hist = new_histogram();
        hist.auto(true);
        add_exactly(&mut hist, h);
        let mut lh = LatencyHistogram {
            count: 0,
            min_ms: 0.0,
            mean_ms: 0.0,
            p50_ms: 0.0,
            p90_ms: 0.0,
            p99_ms: 0.0,
            p999_ms: 0.0,
            max_ms: 0.0,
            hdr: String::new(),
            hist,
        };
        lh.refresh();
        lh
    }

    /// The full histogram (microseconds), decoded from `hdr`.
    pub fn to_histogram(&self) -> Result<Histogram<u64>, StatsError> {
        decode(&self.hdr)
    }

    /// Adds `other`'s samples: the result is what one histogram that got
    /// every sample of both would say.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        if other.hist.is_empty() {
            return;
        }
        add_exactly(&mut self.hist, &other.hist);
        self.refresh();
    }

    /// The decoded histogram without another decode.
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.hist
    }

    /// Recomputes the summary and `hdr` from `hist`.
    fn refresh(&mut self) {
        let h = &self.hist;
        let empty = h.is_empty();
        let at = |q: f64| {
            if empty {
                0.0
            } else {
                ms(h.value_at_quantile(q))
            }
        };
        self.count = h.len();
        self.min_ms = if empty { 0.0 } else { ms(h.min()) };
        self.mean_ms = if empty { 0.0 } else { h.mean() / 1000.0 };
        self.p50_ms = at(0.50);
        self.p90_ms = at(0.90);
        self.p99_ms = at(0.99);
        self.p999_ms = at(0.999);
        self.max_ms = if empty { 0.0 } else { ms(h.max()) };
        self.hdr = encode(h);
    }
}

/// Adds `from` into `into` without failing: `into` auto-resizes; should
/// even that fail, samples are re-recorded one value at a time, clamped.
fn add_exactly(into: &mut Histogram<u64>, from: &Histogram<u64>) {
    if into.add(from).is_err() {
        for v in from.iter_recorded() {
            into.saturating_record_n(v.value_iterated_to(), v.count_at_value());
        }
    }
}

fn encode(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    // Serializing into a Vec can only fail for histograms whose counts do
    // not fit the format (over i64::MAX); an empty string then decodes as an
    // error instead of as wrong figures.
    match V2DeflateSerializer::new().serialize(h, &mut bytes) {
        Ok(_) => BASE64.encode(&bytes),
        Err(_) => String::new(),
    }
}

fn decode(text: &str) -> Result<Histogram<u64>, StatsError> {
    if text.len() > MAX_HDR_BASE64 {
        return Err(StatsError::TooLarge(text.len(), MAX_HDR_BASE64));
    }
    let bytes = BASE64.decode(text.trim())?;
    let mut h: Histogram<u64> = Deserializer::new().deserialize(&mut bytes.as_slice())?;
    h.auto(true);
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Histogram<u64> {
        let mut h = new_histogram();
        for v in 1..=10_000u64 {
            h.record(v * 10).unwrap(); // 10 µs .. 100 ms
        }
        h.record(HIGHEST_MICROS).unwrap();
        h
    }

    #[test]
    fn base64_hdr_round_trips_exactly() {
        let h = sample();
        let lh = LatencyHistogram::from_histogram(&h);
        let back = lh.to_histogram().unwrap();
        assert_eq!(back, h);
        assert_eq!(back.len(), 10_001);
        for q in [0.0, 0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(back.value_at_quantile(q), h.value_at_quantile(q), "q={q}");
        }
        assert_eq!(back.max(), h.max());
        assert_eq!(back.min(), h.min());
        // the string is plain standard base64 of an HDR V2 compressed blob
        let raw = BASE64.decode(&lh.hdr).unwrap();
        assert_eq!(&raw[..4], &0x1c84_9314u32.to_be_bytes());
    }

    #[test]
    fn summary_is_in_milliseconds() {
        let lh = LatencyHistogram::from_histogram(&sample());
        assert_eq!(lh.count, 10_001);
        assert_eq!(lh.min_ms, 0.01);
        assert!((lh.p50_ms - 50.0).abs() < 0.05, "{lh:?}");
        assert!((lh.p90_ms - 90.0).abs() < 0.1, "{lh:?}");
        assert!((lh.p99_ms - 99.0).abs() < 0.1, "{lh:?}");
        assert!((lh.max_ms - 3_600_000.0).abs() < 3_600.0, "{lh:?}");
        assert!(lh.mean_ms > 50.0 && lh.mean_ms < 500.0, "{lh:?}");
    }

    #[test]
    fn empty_histogram_has_zero_summary_and_round_trips() {
        let lh = LatencyHistogram::default();
        assert_eq!(lh.count, 0);
        for v in [
            lh.min_ms, lh.mean_ms, lh.p50_ms, lh.p90_ms, lh.p99_ms, lh.p999_ms, lh.max_ms,
        ] {
            assert_eq!(v, 0.0);
        }
        assert!(lh.to_histogram().unwrap().is_empty());
        let json = serde_json::to_string(&lh).unwrap();
        let back: LatencyHistogram = serde_json::from_str(&json).unwrap();
        assert_eq!(back, lh);
    }

    #[test]
    fn merge_adds_samples_exactly() {
        let mut a = new_histogram();
        let mut b = new_histogram();
        let mut all = new_histogram();
        for v in 1..=5_000u64 {
            let target = if v % 3 == 0 { &mut a } else { &mut b };
            target.record(v * 7).unwrap();
            all.record(v * 7).unwrap();
        }
        let mut la = LatencyHistogram::from_histogram(&a);
        la.merge(&LatencyHistogram::from_histogram(&b));
        assert_eq!(la, LatencyHistogram::from_histogram(&all));
        assert_eq!(la.to_histogram().unwrap(), all);
        // merging an empty one changes nothing
        let before = la.clone();
        la.merge(&LatencyHistogram::default());
        assert_eq!(la, before);
    }

    #[test]
    fn merge_accepts_foreign_ranges() {
        // e.g. a histogram written by another tool with a wider range
        let mut wide: Histogram<u64> = Histogram::new_with_bounds(1, u64::MAX / 4, 2).unwrap();
        wide.record(HIGHEST_MICROS * 10).unwrap();
        let mut ours = LatencyHistogram::from_histogram(&sample());
        ours.merge(&LatencyHistogram::from_histogram(&wide));
        assert_eq!(ours.count, 10_002);
        assert!(ours.max_ms >= 35_000_000.0, "{ours:?}");
    }

    #[test]
    fn deserialization_recomputes_the_summary_and_rejects_garbage() {
        let lh = LatencyHistogram::from_histogram(&sample());
        let mut v = serde_json::to_value(&lh).unwrap();
        v["p99_ms"] = serde_json::json!(12345.0); // a stale or edited figure
        let back: LatencyHistogram = serde_json::from_value(v).unwrap();
        assert_eq!(back.p99_ms, lh.p99_ms);

        for bad in ["not base64!", "AAAA", ""] {
            let err = serde_json::from_value::<LatencyHistogram>(serde_json::json!({ "hdr": bad }))
                .unwrap_err();
            assert!(
                err.to_string().contains("latency histogram"),
                "{bad}: {err}"
            );
        }
        let huge = "A".repeat(MAX_HDR_BASE64 + 4);
        assert!(matches!(decode(&huge), Err(StatsError::TooLarge(..))));
    }

    #[test]
    fn prometheus_buckets_are_cumulative() {
        let mut h = new_histogram();
        for micros in [40, 100, 100, 900, 1_000, 30_000, 20_000_000] {
            h.record(micros).unwrap();
        }
        let b = cumulative_buckets(&h, &[0.05, 0.1, 1.0, 25.0, 10_000.0]);
        assert_eq!(b, vec![1, 3, 5, 5, 6]);
        assert_eq!(h.len(), 7); // +Inf
        assert_eq!(PROMETHEUS_BUCKETS_MS.len(), 17);
        assert!(PROMETHEUS_BUCKETS_MS.windows(2).all(|w| w[0] < w[1]));
    }
}
