//! The recorder every connection task writes into.
//!
//! The hot path (`latency`, `sent`, `received`) touches only the shard of
//! the calling thread: relaxed atomics and one uncontended mutex around a
//! histogram whose counts were allocated up front. Readers (`interval`,
//! `totals`) swap each shard's histogram for an empty one under that
//! shard's lock and do the adding outside it, so recording threads wait
//! for a pointer swap at most.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::histogram::{new_histogram, LatencyHistogram, HIGHEST_MICROS};
use super::totals::{Interval, IntervalLatency, Totals};
use super::{Closed, Latency, NO_CLOSE_CODE};

/// Shards of the hot-path state. Tokio runs one worker per core, so this
/// many keeps threads apart on all but large machines, and unused shards
/// cost only address space (their histograms are never touched).
const SHARDS: usize = 16;

const KINDS: usize = Latency::RECORDED.len();

/// Locks, ignoring poisoning: a panic elsewhere must not stop measuring, and
/// the data under these locks is consistent after any completed call.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The calling thread's shard, handed out round-robin on first use.
fn shard_index() -> usize {
    SHARD
        .try_with(|s| {
            let mut i = s.get();
            if i == usize::MAX {
                i = NEXT_SHARD.fetch_add(1, Relaxed) % SHARDS;
                s.set(i);
            }
            i
        })
        // thread-local storage is gone while the thread exits
        .unwrap_or(0)
}

/// One shard, aligned so that two shards never share a cache line.
#[repr(align(128))]
struct Shard {
    /// Samples not yet taken by an `interval` call.
    latencies: [Mutex<Histogram<u64>>; KINDS],
    messages_sent: AtomicU64,
    bytes_sent: AtomicU64,
    messages_received: AtomicU64,
    copies_received: AtomicU64,
    bytes_received: AtomicU64,
    messages_lost: AtomicU64,
    messages_unexpected: AtomicU64,
}

impl Shard {
    fn new() -> Shard {
        Shard {
            latencies: std::array::from_fn(|_| Mutex::new(new_histogram())),
            messages_sent: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            messages_received: AtomicU64::new(0),
            copies_received: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            messages_lost: AtomicU64::new(0),
            messages_unexpected: AtomicU64::new(0),
        }
    }
}

/// Counter readings, for interval deltas.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    connects_attempted: u64,
    connects_ok: u64,
    connect_errors: u64,
    closes_unexpected: u64,
    messages_sent: u64,
    bytes_sent: u64,
    messages_received: u64,
    copies_received: u64,
    bytes_received: u64,
    messages_lost: u64,
    messages_unexpected: u64,
}

/// Reader-side state. Holding this lock is what makes `interval` and
/// `totals` exact against each other: a sample is either still in its
/// shard or already in `drained`, never both and never neither.
struct Base {
    /// Every sample taken out of the shards so far.
    drained: [Histogram<u64>; KINDS],
    /// An empty histogram to swap into a shard.
    spare: Histogram<u64>,
    /// The interval being assembled (reused to avoid allocating).
    scratch: [Histogram<u64>; KINDS],
    /// The interval's delivery latencies: the copy kinds' scratch summed.
    delivery_scratch: Histogram<u64>,
    last_at: Instant,
    last: Counters,
}

/// Shared by every connection task of a process (`Arc<Recorder>`). All
/// methods take `&self`, are cheap, and never panic.
pub struct Recorder {
    started: Instant,
    shards: Box<[Shard]>,
    connects_attempted: AtomicU64,
    connects_ok: AtomicU64,
    connect_errors_total: AtomicU64,
    closes_by_us: AtomicU64,
    churned: AtomicU64,
    closes_unexpected_total: AtomicU64,
    /// Signed so that a stray extra `disconnected` cannot wrap around; read
    /// clamped at 0.
    open: AtomicI64,
    peak: AtomicU64,
    connect_errors: Mutex<HashMap<String, u64>>,
    closes_by_code: Mutex<HashMap<Option<u16>, u64>>,
    closes_by_error: Mutex<HashMap<String, u64>>,
    /// The first message received that was not ours, for the reason a run
    /// fails with (cold: taken only when one arrives).
    unexpected_example: Mutex<Option<String>>,
    /// Set once the example is kept, so that a server answering every
    /// message with an error costs a relaxed load per message, not a lock.
    has_unexpected_example: AtomicBool,
    base: Mutex<Base>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("open_connections", &self.open_connections())
            .finish_non_exhaustive()
    }
}

impl Recorder {
    pub fn new() -> Recorder {
        let now = Instant::now();
        Recorder {
            started: now,
            shards: (0..SHARDS).map(|_| Shard::new()).collect(),
            connects_attempted: AtomicU64::new(0),
            connects_ok: AtomicU64::new(0),
            connect_errors_total: AtomicU64::new(0),
            closes_by_us: AtomicU64::new(0),
            churned: AtomicU64::new(0),
            closes_unexpected_total: AtomicU64::new(0),
            open: AtomicI64::new(0),
            peak: AtomicU64::new(0),
            connect_errors: Mutex::new(HashMap::new()),
            closes_by_code: Mutex::new(HashMap::new()),
            closes_by_error: Mutex::new(HashMap::new()),
            unexpected_example: Mutex::new(None),
            has_unexpected_example: AtomicBool::new(false),
            base: Mutex::new(Base {
                drained: std::array::from_fn(|_| new_histogram()),
                spare: new_histogram(),
                scratch: std::array::from_fn(|_| new_histogram()),
                delivery_scratch: new_histogram(),
                last_at: now,
                last: Counters::default(),
            }),
        }
    }

    fn shard(&self) -> &Shard {
        &self.shards[shard_index() % self.shards.len()]
    }

    /// Records one latency at microsecond resolution, clamped to 1 h.
    /// [`Latency::Delivery`] is derived from the copy kinds, so recording
    /// it directly does nothing.
    pub fn latency(&self, kind: Latency, d: Duration) {
        let Some(k) = kind.recorded_index() else {
            return;
        };
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        lock(&self.shard().latencies[k]).saturating_record(micros.min(HIGHEST_MICROS));
    }

    /// A connect attempt started.
    pub fn attempted(&self) {
        self.connects_attempted.fetch_add(1, Relaxed);
    }

    /// One more connection open.
    pub fn connected(&self) {
        self.connects_ok.fetch_add(1, Relaxed);
        let open = self.open.fetch_add(1, Relaxed).saturating_add(1);
        self.peak.fetch_max(open.max(0).unsigned_abs(), Relaxed);
    }

    /// A connect attempt failed; `kind` is the error's label.
    pub fn connect_failed(&self, kind: &str) {
        self.connect_errors_total.fetch_add(1, Relaxed);
        let mut errors = lock(&self.connect_errors);
        match errors.get_mut(kind) {
            Some(n) => *n += 1,
            None => {
                errors.insert(kind.to_string(), 1);
            }
        }
    }

    /// A connection that `connected` counted has ended.
    pub fn disconnected(&self, close: Closed) {
        self.open.fetch_sub(1, Relaxed);
        match close {
            Closed::ByUs => {
                self.closes_by_us.fetch_add(1, Relaxed);
            }
            Closed::Churn => {
                self.churned.fetch_add(1, Relaxed);
            }
            Closed::ByServer { code } => {
                self.closes_unexpected_total.fetch_add(1, Relaxed);
                *lock(&self.closes_by_code).entry(code).or_default() += 1;
            }
            Closed::Error(label) => {
                self.closes_unexpected_total.fetch_add(1, Relaxed);
                *lock(&self.closes_by_error).entry(label).or_default() += 1;
            }
        }
    }

    pub fn sent(&self, messages: u64, bytes: u64) {
        let s = self.shard();
        s.messages_sent.fetch_add(messages, Relaxed);
        s.bytes_sent.fetch_add(bytes, Relaxed);
    }

    pub fn received(&self, messages: u64, bytes: u64) {
        let s = self.shard();
        s.messages_received.fetch_add(messages, Relaxed);
        s.bytes_received.fetch_add(bytes, Relaxed);
    }

    /// A copy of a message some sender of the run sent: a chat message
    /// (any sender's) or an echo. Counted apart from welcome and join or
    /// leave notices, so that copies in = sent × fan-out can be checked.
    pub fn copy_received(&self) {
        self.shard().copies_received.fetch_add(1, Relaxed);
    }

    /// Chat messages of ours that never came back within the timeout.
    pub fn lost(&self, messages: u64) {
        self.shard().messages_lost.fetch_add(messages, Relaxed);
    }

    /// A data message that is neither a copy of the run's messages nor a
    /// notice: an error from the server, someone else's chat, something
    /// that does not decode. `what` describes it; the first is kept as the
    /// example a failed run names.
    pub fn unexpected(&self, what: impl FnOnce() -> String) {
        self.shard().messages_unexpected.fetch_add(1, Relaxed);
        if self.has_unexpected_example.load(Relaxed) {
            return;
        }
        let mut example = lock(&self.unexpected_example);
        if example.is_none() {
            *example = Some(what());
            self.has_unexpected_example.store(true, Relaxed);
        }
    }

    pub fn open_connections(&self) -> u64 {
        self.open.load(Relaxed).max(0).unsigned_abs()
    }

    pub fn peak_connections(&self) -> u64 {
        self.peak.load(Relaxed)
    }

    fn counters(&self) -> Counters {
        let mut c = Counters {
            connects_attempted: self.connects_attempted.load(Relaxed),
            connects_ok: self.connects_ok.load(Relaxed),
            connect_errors: self.connect_errors_total.load(Relaxed),
            closes_unexpected: self.closes_unexpected_total.load(Relaxed),
            ..Counters::default()
        };
        for s in self.shards.iter() {
            c.messages_sent += s.messages_sent.load(Relaxed);
            c.bytes_sent += s.bytes_sent.load(Relaxed);
            c.messages_received += s.messages_received.load(Relaxed);
            c.copies_received += s.copies_received.load(Relaxed);
            c.bytes_received += s.bytes_received.load(Relaxed);
            c.messages_lost += s.messages_lost.load(Relaxed);
            c.messages_unexpected += s.messages_unexpected.load(Relaxed);
        }
        c
    }

    /// Figures since the previous call (or since creation): counter deltas
    /// and the latencies recorded in between, plus current gauges.
    pub fn interval(&self) -> Interval {
        let mut base = lock(&self.base);
        let base = &mut *base;
        let now = Instant::now();
        let mut latencies = BTreeMap::new();
        for (k, kind) in Latency::RECORDED.into_iter().enumerate() {
            base.scratch[k].reset();
            for shard in self.shards.iter() {
                {
                    let mut h = lock(&shard.latencies[k]);
                    if h.is_empty() {
                        continue;
                    }
                    std::mem::swap(&mut *h, &mut base.spare);
                }
                add_same_config(&mut base.scratch[k], &base.spare);
                base.spare.reset();
            }
            add_same_config(&mut base.drained[k], &base.scratch[k]);
            latencies.insert(
                kind.as_str().to_string(),
                interval_latency(&base.scratch[k]),
            );
        }
        base.delivery_scratch.reset();
        for kind in Latency::COPIES {
            if let Some(k) = kind.recorded_index() {
                add_same_config(&mut base.delivery_scratch, &base.scratch[k]);
            }
        }
        latencies.insert(
            Latency::Delivery.as_str().to_string(),
            interval_latency(&base.delivery_scratch),
        );
        let c = self.counters();
        let last = std::mem::replace(&mut base.last, c);
        let secs = now.duration_since(base.last_at).as_secs_f64();
        base.last_at = now;
        Interval {
            secs,
            at_secs: now.duration_since(self.started).as_secs_f64(),
            connects_attempted: c.connects_attempted.saturating_sub(last.connects_attempted),
            connects_ok: c.connects_ok.saturating_sub(last.connects_ok),
            connect_errors: c.connect_errors.saturating_sub(last.connect_errors),
            closes_unexpected: c.closes_unexpected.saturating_sub(last.closes_unexpected),
            messages_sent: c.messages_sent.saturating_sub(last.messages_sent),
            messages_received: c.messages_received.saturating_sub(last.messages_received),
            copies_received: c.copies_received.saturating_sub(last.copies_received),
            bytes_sent: c.bytes_sent.saturating_sub(last.bytes_sent),
            bytes_received: c.bytes_received.saturating_sub(last.bytes_received),
            lost: c.messages_lost.saturating_sub(last.messages_lost),
            // the caller knows its process's and host's CPU; the recorder
            // does not
            cpu_percent: 0.0,
            host_cpu_percent: 0.0,
            steal_percent: 0.0,
            open_connections: self.open_connections(),
            latencies,
        }
    }

    /// Every sample of `kind` since creation, as a raw histogram (for
    /// Prometheus buckets without the cost of encoding).
    pub fn total_histogram(&self, kind: Latency) -> Histogram<u64> {
        let base = lock(&self.base);
        self.total_with(&base, kind)
    }

    /// Must be called with the base lock held (`base` is its guard).
    fn total_with(&self, base: &Base, kind: Latency) -> Histogram<u64> {
        let Some(k) = kind.recorded_index() else {
            // delivery: the copy kinds together
            let mut h = new_histogram();
            for copy in Latency::COPIES {
                add_same_config(&mut h, &self.total_with(base, copy));
            }
            return h;
        };
        let mut h = base.drained[k].clone();
        for shard in self.shards.iter() {
            let pending = lock(&shard.latencies[k]);
            if !pending.is_empty() {
                add_same_config(&mut h, &pending);
            }
        }
        h
    }

    /// Everything since creation: cumulative counters and full-run
    /// histograms. Does not reset anything.
    pub fn totals(&self) -> Totals {
        let base = lock(&self.base);
        let mut latencies = BTreeMap::new();
        for kind in Latency::ALL {
            let h = self.total_with(&base, kind);
            latencies.insert(
                kind.as_str().to_string(),
                LatencyHistogram::from_histogram(&h),
            );
        }
        drop(base);
        let c = self.counters();
        let mut closes_unexpected: BTreeMap<String, u64> = lock(&self.closes_by_error)
            .iter()
            .map(|(label, n)| (label.clone(), *n))
            .collect();
        for (code, n) in lock(&self.closes_by_code).iter() {
            let label = match code {
                Some(code) => code.to_string(),
                None => NO_CLOSE_CODE.to_string(),
            };
            *closes_unexpected.entry(label).or_default() += n;
        }
        Totals {
            elapsed_secs: self.started.elapsed().as_secs_f64(),
            connects_attempted: c.connects_attempted,
            connects_ok: c.connects_ok,
            connect_errors: lock(&self.connect_errors)
                .iter()
                .map(|(label, n)| (label.clone(), *n))
                .collect(),
            open_connections: self.open_connections(),
            peak_connections: self.peak_connections(),
            messages_sent: c.messages_sent,
            bytes_sent: c.bytes_sent,
            messages_received: c.messages_received,
            copies_received: c.copies_received,
            bytes_received: c.bytes_received,
            messages_lost: c.messages_lost,
            messages_unexpected: c.messages_unexpected,
            unexpected_example: lock(&self.unexpected_example).clone(),
            closes_by_us: self.closes_by_us.load(Relaxed),
            churned: self.churned.load(Relaxed),
            closes_unexpected,
            latencies,
        }
    }
}

/// Adds histograms that share our fixed configuration; that cannot fail,
/// but should it, the samples are re-recorded clamped rather than lost.
fn add_same_config(into: &mut Histogram<u64>, from: &Histogram<u64>) {
    if into.add(from).is_err() {
        for v in from.iter_recorded() {
            into.saturating_record_n(v.value_iterated_to(), v.count_at_value());
        }
    }
}

fn interval_latency(h: &Histogram<u64>) -> IntervalLatency {
    if h.is_empty() {
        return IntervalLatency::default();
    }
    let ms = |micros: u64| micros as f64 / 1000.0;
    IntervalLatency {
        count: h.len(),
        p50_ms: ms(h.value_at_quantile(0.5)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        max_ms: ms(h.max()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::stats::{new_histogram, Totals};

    /// A small deterministic generator (xorshift), so failures reproduce.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    fn micros(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    /// Every figure of two totals that must agree, elapsed time aside.
    fn assert_same_figures(a: &Totals, b: &Totals) {
        let mut a = a.clone();
        a.elapsed_secs = b.elapsed_secs;
        assert_eq!(&a, b);
    }

    #[test]
    fn merged_totals_of_three_recorders_equal_one_that_saw_everything() {
        let parts = [Recorder::new(), Recorder::new(), Recorder::new()];
        let all = Recorder::new();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for i in 0..60_000u64 {
            let r = &parts[(rng.next() % 3) as usize];
            let kind = Latency::ALL[(rng.next() % 4) as usize];
            // log-uniform-ish spread: 1 µs .. ~17 min, plus clamped outliers
            let v = (rng.next() % (1 << (rng.next() % 31))).max(1);
            let v = if i % 10_000 == 0 { 7_200_000_000 } else { v };
            for rec in [r, &all] {
                rec.latency(kind, micros(v));
                rec.sent(1, 10 + v % 50);
                rec.received(3, 30);
                if i % 7 == 0 {
                    rec.attempted();
                    rec.connected();
                    // closes follow their own connect, so no part's gauge
                    // goes below zero
                    if i % 14 == 0 {
                        rec.disconnected(match (i / 14) % 4 {
                            0 => Closed::ByUs,
                            1 => Closed::ByServer { code: Some(1013) },
                            2 => Closed::ByServer { code: None },
                            _ => Closed::Error("reset".into()),
                        });
                    }
                }
                if i % 11 == 0 {
                    rec.attempted();
                    rec.connect_failed(if i % 2 == 0 { "timeout" } else { "HTTP 503" });
                }
                if i % 13 == 0 {
                    rec.lost(2);
                }
            }
            // the parts also take intervals now and then: must not matter
            if i % 9_999 == 0 {
                parts[(i % 3) as usize].interval();
            }
        }
        let merged = Totals::merged(&parts.iter().map(Recorder::totals).collect::<Vec<_>>());
        let whole = all.totals();
        // Peaks sum to an upper bound; everything else is exact.
        assert!(merged.peak_connections >= whole.peak_connections);
        let mut merged_same_peak = merged.clone();
        merged_same_peak.peak_connections = whole.peak_connections;
        assert_same_figures(&merged_same_peak, &whole);
        for kind in Latency::ALL {
            let m = merged.latency(kind).unwrap();
            let w = whole.latency(kind).unwrap();
            assert!(w.count > 10_000, "{kind:?}: {}", w.count);
            assert_eq!(m.count, w.count);
            for (a, b) in [
                (m.min_ms, w.min_ms),
                (m.mean_ms, w.mean_ms),
                (m.p50_ms, w.p50_ms),
                (m.p90_ms, w.p90_ms),
                (m.p99_ms, w.p99_ms),
                (m.p999_ms, w.p999_ms),
                (m.max_ms, w.max_ms),
            ] {
                assert_eq!(a, b, "{kind:?}");
            }
            let (mh, wh) = (m.to_histogram().unwrap(), w.to_histogram().unwrap());
            for q in 0..=1000 {
                let q = q as f64 / 1000.0;
                assert_eq!(mh.value_at_quantile(q), wh.value_at_quantile(q));
            }
            // outliers are clamped to an hour, not dropped
            assert_eq!(
                w.max_ms,
                new_histogram().highest_equivalent(HIGHEST_MICROS) as f64 / 1e3
            );
        }
        assert_eq!(whole.closes_unexpected.len(), 3);
        assert!(whole.closes_unexpected["1013"] > 0);
        assert!(whole.closes_unexpected[NO_CLOSE_CODE] > 0);
        assert!(whole.closes_unexpected["reset"] > 0);
        assert_eq!(whole.connect_errors.len(), 2);
    }

    #[test]
    fn counters_and_gauges_are_exact() {
        let r = Recorder::new();
        for _ in 0..5 {
            r.attempted();
            r.connected();
        }
        r.attempted();
        r.connect_failed("timeout");
        r.attempted();
        r.connect_failed("connect: Connection refused (os error 111)");
        r.connect_failed("timeout");
        r.disconnected(Closed::ByUs);
        r.disconnected(Closed::ByServer { code: Some(1001) });
        r.disconnected(Closed::ByServer { code: Some(1001) });
        r.disconnected(Closed::ByServer { code: None });
        r.sent(3, 300);
        r.received(7, 700);
        r.lost(1);
        assert_eq!(r.open_connections(), 1);
        let t = r.totals();
        assert_eq!(t.connects_attempted, 7);
        assert_eq!(t.connects_ok, 5);
        assert_eq!(
            t.connect_errors,
            BTreeMap::from([
                ("timeout".to_string(), 2),
                ("connect: Connection refused (os error 111)".to_string(), 1),
            ])
        );
        assert_eq!((t.open_connections, t.peak_connections), (1, 5));
        assert_eq!(t.closes_by_us, 1);
        assert_eq!(
            t.closes_unexpected,
            BTreeMap::from([("1001".to_string(), 2), (NO_CLOSE_CODE.to_string(), 1)])
        );
        assert_eq!((t.messages_sent, t.bytes_sent), (3, 300));
        assert_eq!((t.messages_received, t.bytes_received), (7, 700));
        assert_eq!(t.messages_lost, 1);
        // every kind is present, empty ones too
        assert_eq!(t.latencies.len(), 5);
        assert!(t.latencies.values().all(|h| h.count == 0));
        // a stray extra disconnect cannot make the gauge wrap
        r.disconnected(Closed::ByUs);
        r.disconnected(Closed::ByUs);
        assert_eq!(r.open_connections(), 0);
        r.connected();
        assert_eq!(r.open_connections(), 0);
        assert_eq!(r.peak_connections(), 5);
    }

    #[test]
    fn intervals_reset_and_totals_keep_everything() {
        let r = Recorder::new();
        r.latency(Latency::RoundTrip, micros(1_000));
        r.latency(Latency::RoundTrip, micros(2_000)); // exact below 2048 µs
        r.sent(2, 20);
        r.attempted();
        r.connected();
        r.connect_failed("timeout");
        let first = r.interval();
        let rt = first.latency(Latency::RoundTrip).unwrap();
        assert_eq!(rt.count, 2);
        assert_eq!(rt.p50_ms, 1.0);
        assert_eq!(rt.p99_ms, 2.0);
        assert_eq!(rt.max_ms, 2.0);
        assert_eq!(first.latency(Latency::Echo).unwrap().count, 0);
        assert_eq!(first.latencies.len(), 5);
        assert_eq!((first.messages_sent, first.bytes_sent), (2, 20));
        assert_eq!((first.connects_attempted, first.connects_ok), (1, 1));
        assert_eq!((first.connect_errors, first.open_connections), (1, 1));
        assert!(first.secs >= 0.0 && first.at_secs >= first.secs);

        // samples after the interval: in totals, not yet in an interval
        r.latency(Latency::RoundTrip, micros(500));
        r.latency(Latency::Fanout, micros(42));
        r.sent(1, 10);
        let t = r.totals();
        assert_eq!(t.latency(Latency::RoundTrip).unwrap().count, 3);
        assert_eq!(t.latency(Latency::RoundTrip).unwrap().min_ms, 0.5);
        assert_eq!(t.latency(Latency::Fanout).unwrap().count, 1);
        assert_eq!(t.messages_sent, 3);
        // totals() took nothing away from the next interval
        let t2 = r.totals();
        assert_same_figures(&t2, &t);

        let second = r.interval();
        assert_eq!(second.latency(Latency::RoundTrip).unwrap().count, 1);
        assert_eq!(second.latency(Latency::RoundTrip).unwrap().p50_ms, 0.5);
        assert_eq!(second.latency(Latency::Fanout).unwrap().p50_ms, 0.042);
        assert_eq!((second.messages_sent, second.bytes_sent), (1, 10));
        assert_eq!((second.connects_ok, second.connect_errors), (0, 0));
        assert_eq!(second.open_connections, 1);
        assert!(second.at_secs >= first.at_secs);

        let third = r.interval();
        assert!(third.latencies.values().all(|l| l.count == 0));
        assert_eq!(third.messages_sent, 0);
        // and intervals took nothing away from totals
        let t3 = r.totals();
        assert_same_figures(&t3, &t);
        let h = t3
            .latency(Latency::RoundTrip)
            .unwrap()
            .to_histogram()
            .unwrap();
        assert_eq!(h.len(), 3);
        assert_eq!(h.max(), 2_000);
    }

    #[test]
    fn delivery_is_every_timed_copy_and_unexpected_messages_keep_an_example() {
        let r = Recorder::new();
        r.latency(Latency::RoundTrip, micros(1_000));
        // exact below 2048 µs
        r.latency(Latency::Fanout, micros(1_500));
        r.latency(Latency::Fanout, micros(1_900));
        r.latency(Latency::Echo, micros(7));
        r.latency(Latency::Connect, micros(900_000));
        // derived, never recorded directly
        r.latency(Latency::Delivery, micros(5));
        let iv = r.interval();
        let d = iv.latency(Latency::Delivery).unwrap();
        assert_eq!(d.count, 4, "round trip + fan-out + echo, connect not");
        assert_eq!(d.max_ms, 1.9);
        r.latency(Latency::Fanout, micros(2_000));
        let t = r.totals();
        let d = t.latency(Latency::Delivery).unwrap();
        assert_eq!(d.count, 5);
        assert_eq!(d.min_ms, 0.007);
        assert_eq!(d.max_ms, 2.0);
        assert_eq!(r.total_histogram(Latency::Delivery).len(), 5);

        r.unexpected(|| "first".to_string());
        r.unexpected(|| unreachable!("only the first is described"));
        r.copy_received();
        r.received(4, 0);
        let t = r.totals();
        assert_eq!(t.messages_unexpected, 2);
        assert_eq!(t.unexpected_example.as_deref(), Some("first"));
        assert_eq!((t.copies_received, t.notices_received()), (1, 3));
        assert_eq!(t.timed_share(), Some(1.0), "at most 1");
        assert_eq!(r.interval().copies_received, 1);
    }

    #[test]
    fn latency_is_clamped_and_truncated_to_microseconds() {
        let r = Recorder::new();
        r.latency(Latency::Connect, Duration::from_nanos(1_999));
        r.latency(Latency::Connect, Duration::from_secs(10 * 3600));
        r.latency(Latency::Connect, Duration::MAX);
        r.latency(Latency::Connect, Duration::ZERO);
        let h = r.total_histogram(Latency::Connect);
        assert_eq!(h.len(), 4);
        assert_eq!(h.count_at(1), 1);
        assert_eq!(h.count_at(0), 1);
        assert_eq!(h.count_at(HIGHEST_MICROS), 2);
    }

    #[test]
    fn concurrent_recording_is_exact() {
        const THREADS: u64 = 8;
        const PER_THREAD: u64 = 20_000;
        let r = Arc::new(Recorder::new());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // a reader taking intervals and totals while writers run
        let reader = {
            let (r, stop) = (Arc::clone(&r), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut seen = 0u64;
                let mut sent = 0u64;
                while !stop.load(Relaxed) {
                    let iv = r.interval();
                    seen += iv.latency(Latency::Echo).unwrap().count;
                    sent += iv.messages_sent;
                    let t = r.totals();
                    assert!(t.latency(Latency::Echo).unwrap().count >= seen);
                }
                (seen, sent)
            })
        };
        let writers: Vec<_> = (0..THREADS)
            .map(|t| {
                let r = Arc::clone(&r);
                std::thread::spawn(move || {
                    for i in 0..PER_THREAD {
                        r.latency(Latency::Echo, micros(1 + (i * 31 + t) % 5_000));
                        r.sent(1, 64);
                        r.received(2, 128);
                        if i % 100 == 0 {
                            r.attempted();
                            r.connected();
                            r.connect_failed("timeout");
                        }
                        if i % 200 == 0 {
                            r.disconnected(Closed::ByServer { code: Some(1013) });
                        }
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        stop.store(true, Relaxed);
        let (seen, sent) = reader.join().unwrap();
        let last = r.interval();
        let n = THREADS * PER_THREAD;
        assert_eq!(seen + last.latency(Latency::Echo).unwrap().count, n);
        assert_eq!(sent + last.messages_sent, n);

        let t = r.totals();
        let mut expect = new_histogram();
        for t in 0..THREADS {
            for i in 0..PER_THREAD {
                expect.record(1 + (i * 31 + t) % 5_000).unwrap();
            }
        }
        assert_eq!(
            t.latency(Latency::Echo).unwrap().to_histogram().unwrap(),
            expect
        );
        assert_eq!((t.messages_sent, t.bytes_sent), (n, 64 * n));
        assert_eq!((t.messages_received, t.bytes_received), (2 * n, 128 * n));
        assert_eq!(t.connects_ok, THREADS * PER_THREAD / 100);
        assert_eq!(t.connect_errors["timeout"], THREADS * PER_THREAD / 100);
        assert_eq!(t.closes_unexpected["1013"], THREADS * PER_THREAD / 200);
        assert_eq!(t.open_connections, THREADS * PER_THREAD / 200);
    }
}
