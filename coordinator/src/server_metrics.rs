//! The server's side of a phase: its Prometheus endpoint scraped about
//! once a second from the phase's start to its end, so the report can put
//! the server's CPU, memory, connections and message rates beside what
//! the clients measured over the same seconds.
//!
//! The scraper is a spectator. A scrape that fails (refused, silent past
//! [`SCRAPE_WITHIN`], not an exposition) is counted, its first error kept
//! and logged once, and the phase goes on; [`Scraper::finish`] cancels a
//! scrape in flight instead of waiting for it, and its one last scrape
//! (the server after the clients' closes) has [`FINAL_WITHIN`], so the end
//! of a run waits on the server's endpoint for half a second at most.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use promhttp::{Exposition, MetricsUrl};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tracing::{debug, warn};

use crate::results::{ServerSample, ServerSeries, ServerTotals};

/// How often the endpoint is scraped: the clients report whole seconds.
pub const EVERY: Duration = Duration::from_secs(1);
/// One scrape, connecting included, may take this long. Longer than
/// [`EVERY`] so a busy server's slow answer still counts (the next scrape
/// waits for it); short enough that a silent endpoint costs two seconds.
pub const SCRAPE_WITHIN: Duration = Duration::from_secs(2);
/// How long [`Scraper::finish`] waits for the cancelled task to let go.
const STOP_WITHIN: Duration = Duration::from_secs(1);
/// The last scrape, at the phase's end, gets this long: a server that
/// answered all phase answers at once, and a silent one must not hold up
/// the run.
pub const FINAL_WITHIN: Duration = Duration::from_millis(500);
/// A scrape answered more recently than this already shows the phase's
/// end: no last scrape then.
const FRESH: Duration = Duration::from_millis(500);

/// The raw figures of one successful scrape; `None` where the exposition
/// has no such series or its value is not a finite, non-negative number.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Reading {
    /// Seconds since the phase started.
    pub at_secs: f64,
    pub cpu_seconds: Option<f64>,
    pub rss_bytes: Option<f64>,
    pub connections: Option<f64>,
    pub received: Option<f64>,
    pub sent: Option<f64>,
    pub dropped: Option<f64>,
}

impl Reading {
    /// The figures of `e`; counters split by labels (message type,
    /// encoding, drop reason) are summed.
    pub fn of(e: &Exposition, at_secs: f64) -> Reading {
        let figure = |name: &str| e.total(name).filter(|v| v.is_finite() && *v >= 0.0);
        Reading {
            at_secs,
            cpu_seconds: figure("process_cpu_seconds_total"),
            rss_bytes: figure("process_resident_memory_bytes"),
            connections: figure("chat_connections_open"),
            received: figure("chat_messages_received_total"),
            sent: figure("chat_messages_sent_total"),
            dropped: figure("chat_messages_dropped_total"),
        }
    }
}

/// How much counter `f` rose from `prev` to `now`; `None` without both
/// values or when it fell (the server restarted, its counters with it).
fn rise(prev: &Reading, now: &Reading, f: fn(&Reading) -> Option<f64>) -> Option<f64> {
    let d = f(now)? - f(prev)?;
    (d >= 0.0).then_some(d)
}

/// The sample `now` makes after `prev` (the previous successful scrape):
/// gauges as read, counters as rates over the span between the two.
pub fn sample(prev: Option<&Reading>, now: &Reading) -> ServerSample {
    let span = prev
        .map(|p| now.at_secs - p.at_secs)
        .filter(|s| s.is_finite() && *s > 0.0);
    let rate = |f: fn(&Reading) -> Option<f64>| -> Option<f64> {
        let (p, span) = (prev?, span?);
        Some(rise(p, now, f)? / span)
    };
    ServerSample {
        at_secs: now.at_secs,
        cpu_percent: rate(|r| r.cpu_seconds).map(|r| r * 100.0),
        // float to int casts saturate; the values are finite and >= 0
        rss_bytes: now.rss_bytes.map(|b| b.round() as u64),
        connections: now.connections.map(|c| c.round() as u64),
        messages_in_per_sec: rate(|r| r.received),
        messages_out_per_sec: rate(|r| r.sent),
        drops_per_sec: rate(|r| r.dropped),
    }
}

/// What the scrapes of one phase have gathered.
#[derive(Debug, Default)]
struct State {
    series: ServerSeries,
    last: Option<Reading>,
    /// When the latest scrape finished, failed or not.
    last_answer: Option<Instant>,
}

impl State {
    fn new(url: &MetricsUrl) -> State {
        State {
            series: ServerSeries {
                url: url.to_string(),
                ..ServerSeries::default()
            },
            last: None,
            last_answer: None,
        }
    }

    /// Adds one finished scrape. Returns the error when it is the
    /// phase's first, to be logged where people see it.
    fn record(&mut self, at_secs: f64, answer: Result<&Exposition, String>) -> Option<String> {
        self.series.scrapes += 1;
        let e = match answer {
            Ok(e) => e,
            Err(why) => {
                self.series.scrape_failures += 1;
                if self.series.first_error.is_none() {
                    self.series.first_error = Some(why.clone());
                    return Some(why);
                }
                debug!("server metrics: {why}");
                return None;
            }
        };
        let now = Reading::of(e, at_secs);
        if let Some(prev) = &self.last {
            // Summed over consecutive scrapes, so a restart loses only the
            // span it happened in.
            let add = |total: &mut Option<f64>, f: fn(&Reading) -> Option<f64>| {
                if let Some(d) = rise(prev, &now, f) {
                    *total = Some(total.unwrap_or(0.0) + d);
                }
            };
            let t: &mut ServerTotals = &mut self.series.totals;
            add(&mut t.cpu_seconds, |r| r.cpu_seconds);
            add(&mut t.messages_in, |r| r.received);
            add(&mut t.messages_out, |r| r.sent);
            add(&mut t.drops, |r| r.dropped);
        }
        self.series.samples.push(sample(self.last.as_ref(), &now));
        self.last = Some(now);
        None
    }
}

/// Samples one endpoint for one phase, on a task of its own.
pub struct Scraper {
    url: MetricsUrl,
    started: Instant,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Scraper {
    /// Starts scraping `url` now, and then every [`EVERY`]; `started` is
    /// the phase's start, time zero of the samples.
    pub fn start(url: MetricsUrl, started: Instant) -> Scraper {
        let state = Arc::new(Mutex::new(State::new(&url)));
        let task = tokio::spawn(scrape_loop(url.clone(), started, Arc::clone(&state)));
        Scraper {
            url,
            started,
            state,
            task,
        }
    }

    /// Stops scraping, cancelling a scrape in flight, scrapes once more
    /// (within [`FINAL_WITHIN`]) unless the latest answer is fresh, and
    /// returns what the phase's scrapes gathered.
    pub async fn finish(mut self) -> ServerSeries {
        self.task.abort();
        // The task lets go at its next await; only a poll already running
        // on another worker can delay that, and not for long.
        let _ = tokio::time::timeout(STOP_WITHIN, &mut self.task).await;
        let fresh = lock(&self.state)
            .last_answer
            .is_some_and(|at| at.elapsed() < FRESH);
        if !fresh {
            scrape_once(&self.url, self.started, &self.state, FINAL_WITHIN).await;
        }
        std::mem::take(&mut lock(&self.state).series)
    }
}

impl Drop for Scraper {
    /// A scraper dropped unfinished (its phase's future was) leaves no
    /// task behind.
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The state, also after a panic elsewhere: it only ever holds finished
/// records.
fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn scrape_loop(url: MetricsUrl, started: Instant, state: Arc<Mutex<State>>) {
    let mut ticks = tokio::time::interval(EVERY);
    // A slow scrape pushes the next one back instead of causing a burst.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        scrape_once(&url, started, &state, SCRAPE_WITHIN).await;
    }
}

/// One scrape, recorded at the middle of its request and answer.
async fn scrape_once(url: &MetricsUrl, started: Instant, state: &Mutex<State>, limit: Duration) {
    let asked = Instant::now();
    let answer = promhttp::scrape(url, limit).await;
    let answered = Instant::now();
    let at = (asked + (answered - asked) / 2)
        .saturating_duration_since(started)
        .as_secs_f64();
    let first_error = {
        let mut state = lock(state);
        state.last_answer = Some(answered);
        state.record(at, answer.as_ref().map_err(ToString::to_string))
    };
    if let Some(why) = first_error {
        warn!(
            "server metrics: scraping {url} failed: {why}; the run goes on, and the \
             report counts the failed scrapes"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use tokio::sync::watch;

    use super::*;

    fn reading(at: f64, cpu: f64, received: f64, sent: f64, dropped: f64) -> Reading {
        Reading {
            at_secs: at,
            cpu_seconds: Some(cpu),
            rss_bytes: Some(50e6),
            connections: Some(3000.0),
            received: Some(received),
            sent: Some(sent),
            dropped: Some(dropped),
        }
    }

    #[test]
    fn figures_are_read_and_counters_summed_over_their_labels() {
        let e = Exposition::parse(
            "process_cpu_seconds_total 12.5\n\
             process_resident_memory_bytes 5.24288e7\n\
             chat_connections_open 3000\n\
             chat_messages_received_total{type=\"chat\",encoding=\"binary\"} 600\n\
             chat_messages_received_total{type=\"join\",encoding=\"binary\"} 3000\n\
             chat_messages_sent_total{type=\"chat\",encoding=\"binary\"} 60000\n\
             chat_messages_dropped_total{reason=\"slow_consumer\"} NaN\n",
        )
        .unwrap();
        let r = Reading::of(&e, 1.5);
        assert_eq!(
            r,
            Reading {
                at_secs: 1.5,
                cpu_seconds: Some(12.5),
                rss_bytes: Some(52_428_800.0),
                connections: Some(3000.0),
                received: Some(3600.0),
                sent: Some(60000.0),
                dropped: None,
            }
        );
        // another exporter: only what it has
        let other = Reading::of(
            &Exposition::parse("process_cpu_seconds_total 1\n").unwrap(),
            0.0,
        );
        assert_eq!(other.cpu_seconds, Some(1.0));
        assert_eq!(
            (other.rss_bytes, other.connections, other.sent),
            (None, None, None)
        );
    }

    #[test]
    fn rates_come_from_deltas_over_the_span_between_scrapes() {
        let first = reading(0.0, 10.0, 1000.0, 5000.0, 0.0);
        let s = sample(None, &first);
        assert_eq!(s.at_secs, 0.0);
        assert_eq!((s.rss_bytes, s.connections), (Some(50_000_000), Some(3000)));
        assert_eq!(
            (
                s.cpu_percent,
                s.messages_in_per_sec,
                s.messages_out_per_sec,
                s.drops_per_sec
            ),
            (None, None, None, None),
            "no rate without a previous scrape"
        );
        // two seconds later (one scrape failed in between)
        let second = reading(2.0, 11.5, 2200.0, 125_000.0, 8.0);
        let s = sample(Some(&first), &second);
        assert_eq!(s.cpu_percent, Some(75.0));
        assert_eq!(s.messages_in_per_sec, Some(600.0));
        assert_eq!(s.messages_out_per_sec, Some(60_000.0));
        assert_eq!(s.drops_per_sec, Some(4.0));
        // a restart: counters fall, no rate; gauges still read
        let restarted = reading(3.0, 0.2, 10.0, 10.0, 0.0);
        let s = sample(Some(&second), &restarted);
        assert_eq!((s.cpu_percent, s.messages_in_per_sec), (None, None));
        assert_eq!(s.connections, Some(3000));
        // the same instant twice: no division by zero
        assert_eq!(sample(Some(&second), &second).cpu_percent, None);
    }

    #[test]
    fn failures_are_counted_and_the_first_is_kept() {
        let url: MetricsUrl = "http://127.0.0.1:9/metrics".parse().unwrap();
        let mut state = State::new(&url);
        let e = |cpu: f64, sent: f64| {
            Exposition::parse(&format!(
                "process_cpu_seconds_total {cpu}\nchat_messages_sent_total {sent}\n"
            ))
            .unwrap()
        };
        assert_eq!(state.record(0.0, Ok(&e(1.0, 100.0))), None);
        assert_eq!(
            state.record(1.0, Err("connecting: refused".into())),
            Some("connecting: refused".into())
        );
        assert_eq!(state.record(2.0, Err("no answer".into())), None);
        state.record(3.0, Ok(&e(2.5, 400.0)));
        state.record(4.0, Ok(&e(0.5, 50.0))); // restarted
        state.record(5.0, Ok(&e(1.0, 150.0)));
        let s = &state.series;
        assert_eq!(s.url, "http://127.0.0.1:9/metrics");
        assert_eq!((s.scrapes, s.scrape_failures), (6, 2));
        assert_eq!(s.first_error.as_deref(), Some("connecting: refused"));
        assert_eq!(s.samples.len(), 4);
        assert_eq!(s.samples[1].at_secs, 3.0);
        assert_eq!(s.samples[1].cpu_percent, Some(50.0));
        assert_eq!(s.samples[1].messages_out_per_sec, Some(100.0));
        assert_eq!(s.samples[2].messages_out_per_sec, None);
        assert_eq!(s.totals.cpu_seconds, Some(2.0));
        assert_eq!(s.totals.messages_out, Some(400.0));
        assert_eq!(s.totals.messages_in, None);
    }

    /// An endpoint whose CPU and sent counters rise by 0.5 s and 100 per
    /// scrape.
    async fn rising_endpoint() -> (MetricsUrl, watch::Sender<bool>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = watch::channel(false);
        let n = Arc::new(AtomicU64::new(0));
        tokio::spawn(promhttp::serve(listener, stopped, move || {
            let n = n.fetch_add(1, Ordering::SeqCst) + 1;
            format!(
                "process_cpu_seconds_total {}\nprocess_resident_memory_bytes 1e6\n\
                 chat_connections_open 7\nchat_messages_sent_total{{type=\"chat\"}} {}\n",
                n as f64 * 0.5,
                n * 100
            )
        }));
        (format!("http://{addr}/metrics").parse().unwrap(), stop)
    }

    #[tokio::test]
    async fn a_scraper_samples_every_second_until_finished() {
        let (url, _stop) = rising_endpoint().await;
        let started = Instant::now();
        let scraper = Scraper::start(url, started);
        tokio::time::sleep(Duration::from_millis(2700)).await;
        let series = scraper.finish().await;
        assert_eq!(series.scrape_failures, 0, "{series:?}");
        assert_eq!(
            series.samples.len(),
            4,
            "at 0, 1 and 2 s, and at the end: {series:?}"
        );
        for (s, at) in series.samples.iter().zip([0.0, 1.0, 2.0, 2.7]) {
            assert!((s.at_secs - at).abs() < 0.3, "{series:?}");
            assert_eq!((s.connections, s.rss_bytes), (Some(7), Some(1_000_000)));
        }
        let last = &series.samples[2];
        // 0.5 s of CPU and 100 messages a second apart
        let cpu = last.cpu_percent.unwrap();
        let out = last.messages_out_per_sec.unwrap();
        assert!((40.0..60.0).contains(&cpu), "{cpu}");
        assert!((80.0..120.0).contains(&out), "{out}");
        assert_eq!(last.messages_in_per_sec, None, "not exported");
        assert_eq!(series.totals.messages_out, Some(300.0));
        // the last scrape, 0.7 s after the one before
        let end = series.samples[3].messages_out_per_sec.unwrap();
        assert!((120.0..170.0).contains(&end), "{end}");
    }

    #[tokio::test]
    async fn unreachable_and_silent_endpoints_are_counted_and_never_hold_the_end() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let scraper = Scraper::start(
            format!("http://{closed}/metrics").parse().unwrap(),
            Instant::now(),
        );
        tokio::time::sleep(Duration::from_millis(1300)).await;
        let series = scraper.finish().await;
        assert!(series.samples.is_empty());
        assert_eq!(series.scrapes, series.scrape_failures);
        assert!(series.scrape_failures >= 2, "{series:?}");
        assert!(
            series
                .first_error
                .as_deref()
                .unwrap()
                .starts_with("connecting: "),
            "{series:?}"
        );

        // Accepted by the kernel, never answered: the first scrape times
        // out, the second is still waiting when the phase ends, and is
        // cancelled; the last one gets half a second.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = silent.local_addr().unwrap();
        let scraper = Scraper::start(format!("http://{addr}/").parse().unwrap(), Instant::now());
        tokio::time::sleep(SCRAPE_WITHIN + Duration::from_millis(700)).await;
        let finishing = Instant::now();
        let series = scraper.finish().await;
        let took = finishing.elapsed();
        assert!(
            took >= FINAL_WITHIN && took < FINAL_WITHIN + Duration::from_millis(400),
            "finish took {took:?}"
        );
        assert_eq!(
            (series.scrapes, series.scrape_failures),
            (2, 2),
            "{series:?}"
        );
        assert_eq!(
            series.first_error.as_deref(),
            Some("no answer within 2s"),
            "{series:?}"
        );
    }
}
