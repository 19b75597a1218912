//! `--processes N`: one run spread over N processes of this binary, because
//! each process can hold only as many connections as its open-file limit
//! allows. The parent starts `loadgen worker` children, gives each its
//! slice of the connection indices as a JSON job on stdin, and merges what
//! they stream back on stdout: per-second intervals while running and one
//! outcome at the end. Counters are summed and histograms merged, so the
//! run's totals are exact; per-second latency figures across processes are
//! not (see `merge_interval`). The workers share the host's clock
//! ([`crate::clock`]), so fan-out is timed across them.

use std::collections::BTreeMap;
use std::ops::Range;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::{mpsc, watch};
use tracing::warn;

use crate::clock::HostClock;
use crate::engine::{self, Outcome};
use crate::opts::{Processes, RunOpts};
use crate::plan;
use crate::stats::{Interval, Totals};

/// What a worker is asked to do.
#[derive(Debug, Serialize, Deserialize)]
pub struct Job {
    pub opts: RunOpts,
    pub first: u64,
    pub count: u64,
    /// Send full totals every few seconds, for the parent's Prometheus
    /// endpoint (they cost a few milliseconds to encode).
    #[serde(default)]
    pub stream_totals: bool,
    /// The connections on this host, all workers' included, so each
    /// worker times the copies the others send ([`crate::clock`]).
    #[serde(default)]
    pub clock: Option<HostClock>,
}

/// How often a worker sends its totals when asked to.
pub const TOTALS_EVERY_SECS: usize = 2;

/// One line a worker writes on stdout.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerLine {
    Interval(Interval),
    /// Everything so far, histograms included (only with `stream_totals`).
    Totals(Box<Totals>),
    Done(Box<Outcome>),
}

/// How many processes the run needs: `auto` fits each process's share in
/// its open-file limit (with room for the runtime's own files).
pub fn processes_for(opts: &RunOpts, nofile: u64) -> u64 {
    processes_for_share(opts.processes, opts.connections, nofile)
}

/// [`processes_for`] for a share of `connections` (an agent's slice).
pub fn processes_for_share(processes: Processes, connections: u64, nofile: u64) -> u64 {
    match processes {
        Processes::Exactly(n) => n,
        Processes::Auto => connections.div_ceil(per_process(nofile)).max(1),
    }
}

/// Connections one process may own under an open-file limit of `nofile`.
pub fn per_process(nofile: u64) -> u64 {
    nofile
        .saturating_sub(crate::capacity::RESERVED_FDS + 16)
        .max(1)
}

/// The jobs of an N-process run: the connections split as evenly as can be,
/// and the ramp rate and in-flight cap shared out so the whole run ramps as
/// asked.
pub fn jobs(opts: &RunOpts, processes: u64) -> Vec<Job> {
    jobs_for_slice(opts, 0..opts.connections, processes, None)
}

/// [`jobs`] for the connections numbered `slice` of the run (an agent's
/// share): the numbering stays global, so rooms and senders agree with
/// every other process and agent of the run. `host` names the run's
/// other connections on this host (other agents'), if any.
pub fn jobs_for_slice(
    opts: &RunOpts,
    slice: Range<u64>,
    processes: u64,
    host: Option<&HostClock>,
) -> Vec<Job> {
    let clock = match host.map(|h| (h, h.check_here())) {
        Some((h, Ok(()))) => Some(h.with(slice.clone())),
        Some((_, Err(why))) => {
            warn!("fan-out is timed between this agent's own connections only: {why}");
            HostClock::here(vec![slice.clone()])
        }
        None => HostClock::here(vec![slice.clone()]),
    };
    let sizes = plan::split((slice.end - slice.start) as usize, processes as usize);
    plan::slices(&sizes)
        .into_iter()
        .map(|part| {
            let part = plan::Slice {
                first: part.first + slice.start as usize,
                count: part.count,
            };
            let mut child = opts.clone();
            child.ramp = opts.ramp / processes as f64;
            child.max_inflight = opts.max_inflight.div_ceil(processes as usize).max(1);
            child.processes = Processes::Exactly(1);
            child.json = None;
            child.metrics_listen = None;
            Job {
                stream_totals: opts.metrics_listen.is_some(),
                clock: clock.clone(),
                opts: child,
                first: part.first as u64,
                count: part.count as u64,
            }
        })
        .collect()
}

/// Runs the jobs in child processes and merges their results; with
/// `metrics`, serves the workers' merged totals for Prometheus while they
/// run; with `snapshot`, publishes them there (an agent's endpoint, which
/// outlives runs). Either needs jobs with `stream_totals`.
pub async fn run(
    jobs: Vec<Job>,
    metrics: Option<std::net::TcpListener>,
    snapshot: Option<crate::prometheus::Snapshot>,
    mut stop: watch::Receiver<bool>,
    mut on_interval: impl FnMut(&Interval),
) -> anyhow::Result<Outcome> {
    let target: u64 = jobs.iter().map(|j| j.count).sum();
    let latest: Arc<Mutex<Vec<Option<Totals>>>> = Arc::new(Mutex::new(vec![None; jobs.len()]));
    let (_metrics_stop, metrics_stop) = watch::channel(false);
    if let Some(listener) = metrics {
        let latest = latest.clone();
        crate::prometheus::serve_totals(listener, target, metrics_stop, move || {
            let parts = latest.lock().unwrap_or_else(|e| e.into_inner());
            Totals::merged(parts.iter().flatten())
        })?;
    }
    let remember = |i: usize, t: &Totals| {
        let mut parts = latest.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = parts.get_mut(i) {
            *slot = Some(t.clone());
        }
        if let Some(snapshot) = &snapshot {
            snapshot.set(Totals::merged(parts.iter().flatten()), target);
        }
    };
    let exe = std::env::current_exe().context("finding this program to start workers")?;
    let n = jobs.len();
    let (tx, mut rx) = mpsc::channel::<(usize, Option<WorkerLine>)>(1024);
    let mut children = Vec::with_capacity(n);
    for (index, job) in jobs.into_iter().enumerate() {
        let mut child = Command::new(&exe)
            .arg("worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting worker {index}"))?;
        let job = serde_json::to_vec(&job)?;
        let mut stdin = child.stdin.take().context("worker stdin")?;
        stdin
            .write_all(&job)
            .await
            .context("sending a worker its job")?;
        drop(stdin);
        let stdout = child.stdout.take().context("worker stdout")?;
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match serde_json::from_str::<WorkerLine>(&line) {
                    Ok(parsed) => {
                        if tx.send((index, Some(parsed))).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => warn!(worker = index, "unreadable line from worker: {e}"),
                }
            }
            let _ = tx.send((index, None)).await;
        });
        children.push(child);
    }
    drop(tx);

    let mut done: Vec<Option<Outcome>> = (0..n).map(|_| None).collect();
    let mut merger = IntervalMerger::new(n);
    let mut intervals = Vec::new();
    let mut emit = |merged: Vec<Interval>, intervals: &mut Vec<Interval>| {
        for iv in merged {
            on_interval(&iv);
            intervals.push(iv);
        }
    };
    let mut interrupted = false;
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                None => break,
                Some((i, Some(WorkerLine::Interval(iv)))) => {
                    emit(merger.push(i, &iv), &mut intervals);
                }
                Some((i, Some(WorkerLine::Totals(t)))) => remember(i, &t),
                Some((i, Some(WorkerLine::Done(outcome)))) => {
                    remember(i, &outcome.totals);
                    done[i] = Some(*outcome);
                }
                Some((i, None)) => emit(merger.end(i), &mut intervals),
            },
            _ = stop.changed(), if !interrupted => {
                interrupted = true;
                // SIGINT whichever signal stopped us: workers treat SIGINT
                // and SIGTERM alike, and one that already got the signal
                // itself (a whole group or cgroup signalled) ignores this.
                for child in &children {
                    if let Some(pid) = child.id() {
                        // SAFETY: kill(2) on our own child's pid.
                        unsafe { libc::kill(pid as i32, libc::SIGINT) };
                    }
                }
            }
        }
    }
    emit(merger.finish(), &mut intervals);
    let mut failures = Vec::new();
    for (i, child) in children.iter_mut().enumerate() {
        let status = child.wait().await.ok();
        if done[i].is_none() {
            failures.push(format!(
                "worker {i} ended ({}) without a result: its connections are missing from the figures",
                status.map_or_else(|| "status unknown".to_string(), |s| s.to_string())
            ));
        }
    }
    let outcomes: Vec<Outcome> = done.into_iter().flatten().collect();
    let totals = Totals::merged(outcomes.iter().map(|o| &o.totals));
    // The workers share the machine: their summed CPU, second by second,
    // against the machine's cores says whether the generator was the limit.
    let threads = engine::usable_cores(outcomes.iter().map(|o| o.threads).sum());
    let saturation = crate::saturation::Saturation::judge(&intervals, threads);
    let longest = |f: fn(&Outcome) -> f64| outcomes.iter().map(f).fold(0.0, f64::max);
    let (ramp_secs, ramp_attempted) =
        merged_ramp(outcomes.iter().map(|o| (o.ramp_secs, o.ramp_attempted)));
    Ok(Outcome {
        held_after_ramp: outcomes.iter().map(|o| o.held_after_ramp).sum(),
        threads,
        saturation,
        ramp_secs,
        ramp_attempted,
        sending_secs: longest(|o| o.sending_secs),
        not_attempted: outcomes.iter().map(|o| o.not_attempted).sum(),
        dropped_at_end: outcomes.iter().map(|o| o.dropped_at_end).sum(),
        interrupted: interrupted || outcomes.iter().any(|o| o.interrupted),
        rss_growth_bytes: outcomes.iter().map(|o| o.rss_growth_bytes).sum(),
        processes: n as u64,
        failures: failures
            .into_iter()
            .chain(outcomes.iter().flat_map(|o| o.failures.clone()))
            .collect(),
        totals,
        intervals,
    })
}

/// The ramp of parts that ramped side by side (worker processes, or a
/// coordinator's agents): the longest ramp and every part's attempts, so
/// that attempted / seconds is the whole run's achieved ramp.
/// `parts` are (ramp seconds, connections attempted during the ramp).
pub fn merged_ramp(parts: impl IntoIterator<Item = (f64, u64)>) -> (f64, u64) {
    parts
        .into_iter()
        .fold((0.0, 0), |(secs, attempted), (s, a)| {
            (f64::max(secs, s), u64::saturating_add(attempted, a))
        })
}

/// Merges the per-second series of several parts (worker processes, or
/// the coordinator's agents) that started together: second k comes out
/// once every part has either delivered its second k or ended, so a part
/// that finishes early does not make the others' seconds come out in
/// pieces.
#[derive(Debug, Default)]
pub struct IntervalMerger {
    /// Second k of every part so far, merged.
    pending: BTreeMap<usize, Interval>,
    seen: Vec<usize>,
    ended: Vec<bool>,
}

impl IntervalMerger {
    pub fn new(parts: usize) -> IntervalMerger {
        IntervalMerger {
            pending: BTreeMap::new(),
            seen: vec![0; parts],
            ended: vec![false; parts],
        }
    }

    /// Part `i`'s next second; returns the seconds now complete, in order.
    pub fn push(&mut self, i: usize, iv: &Interval) -> Vec<Interval> {
        let Some(seen) = self.seen.get_mut(i) else {
            return Vec::new();
        };
        let k = *seen;
        *seen += 1;
        merge_interval(self.pending.entry(k).or_default(), iv);
        self.complete()
    }

    /// Part `i` will deliver nothing more.
    pub fn end(&mut self, i: usize) -> Vec<Interval> {
        if let Some(e) = self.ended.get_mut(i) {
            *e = true;
        }
        self.complete()
    }

    /// Every second still pending, complete or not (the run is over).
    pub fn finish(&mut self) -> Vec<Interval> {
        std::mem::take(&mut self.pending).into_values().collect()
    }

    fn complete(&mut self) -> Vec<Interval> {
        let mut out = Vec::new();
        while let Some((&k, _)) = self.pending.first_key_value() {
            let all_in = self.seen.iter().zip(&self.ended).all(|(&s, &e)| s > k || e);
            if !all_in {
                break;
            }
            if let Some((_, merged)) = self.pending.pop_first() {
                out.push(merged);
            }
        }
        out
    }
}

/// Adds one process's second to the run's: counters and gauges are summed;
/// latency figures cannot be merged from percentiles, so the merged second
/// shows the highest p99 and max and a count-weighted p50 (an
/// approximation; the run's totals come from merged histograms and are
/// exact).
pub fn merge_interval(into: &mut Interval, iv: &Interval) {
    into.secs = into.secs.max(iv.secs);
    into.at_secs = into.at_secs.max(iv.at_secs);
    into.connects_attempted += iv.connects_attempted;
    into.connects_ok += iv.connects_ok;
    into.connect_errors += iv.connect_errors;
    into.closes_unexpected += iv.closes_unexpected;
    into.messages_sent += iv.messages_sent;
    into.messages_received += iv.messages_received;
    into.copies_received += iv.copies_received;
    into.bytes_sent += iv.bytes_sent;
    into.bytes_received += iv.bytes_received;
    into.lost += iv.lost;
    into.cpu_percent += iv.cpu_percent;
    // the same host's figure (workers) or the busiest host (agents)
    into.host_cpu_percent = into.host_cpu_percent.max(iv.host_cpu_percent);
    into.steal_percent = into.steal_percent.max(iv.steal_percent);
    into.open_connections += iv.open_connections;
    for (kind, l) in &iv.latencies {
        let m = into.latencies.entry(kind.clone()).or_default();
        let count = m.count + l.count;
        if count > 0 {
            m.p50_ms = (m.p50_ms * m.count as f64 + l.p50_ms * l.count as f64) / count as f64;
        }
        m.p99_ms = m.p99_ms.max(l.p99_ms);
        m.max_ms = m.max_ms.max(l.max_ms);
        m.count = count;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::IntervalLatency;
    use clap::Parser;

    fn opts(args: &[&str]) -> RunOpts {
        crate::opts::Cli::parse_from(["loadgen", "run", "ws://127.0.0.1:1/"].iter().chain(args))
            .into_run()
            .unwrap()
    }

    #[test]
    fn auto_fits_each_process_in_the_file_limit() {
        let o = opts(&["-c", "100000"]);
        assert_eq!(processes_for(&o, 20_000), 6);
        assert_eq!(processes_for(&o, 1_048_576), 1);
        assert_eq!(
            processes_for(&opts(&["-c", "100000", "--processes", "3"]), 20_000),
            3
        );
    }

    #[test]
    fn jobs_cover_every_index_once_and_share_the_ramp() {
        let o = opts(&[
            "-c",
            "10",
            "--ramp",
            "900",
            "--max-inflight",
            "10",
            "--json",
            "x.json",
        ]);
        let jobs = jobs(&o, 3);
        let covered: Vec<u64> = jobs
            .iter()
            .flat_map(|j| j.first..j.first + j.count)
            .collect();
        assert_eq!(covered, (0..10).collect::<Vec<_>>());
        assert!(jobs
            .iter()
            .all(|j| j.opts.ramp == 300.0 && j.opts.max_inflight == 4));
        assert!(jobs.iter().all(|j| j.opts.json.is_none()));
        // a job survives the trip through JSON
        let back: Job = serde_json::from_slice(&serde_json::to_vec(&jobs[1]).unwrap()).unwrap();
        assert_eq!((back.first, back.count), (jobs[1].first, jobs[1].count));
    }

    #[test]
    fn ramps_side_by_side_add_their_attempts_over_the_longest() {
        let part = |secs, attempted| Outcome {
            ramp_secs: secs,
            ramp_attempted: attempted,
            ..Outcome::default()
        };
        // Two workers at 2,500/s each: 5,000/s together, not 2,500.
        let parts = [part(4.0, 10_000), part(4.2, 10_000)];
        assert_eq!(
            merged_ramp(parts.iter().map(|o| (o.ramp_secs, o.ramp_attempted))),
            (4.2, 20_000)
        );
        let merged = part(4.2, 20_000);
        assert!((merged.ramp_achieved().unwrap() - 20_000.0 / 4.2).abs() < 1e-9);
        assert_eq!(merged_ramp([]), (0.0, 0));
        assert_eq!(part(0.0, 5).ramp_achieved(), None);
        assert_eq!(part(1.0, 0).ramp_achieved(), None);
        // An outcome from before the field still reads, without a ramp.
        let mut old = serde_json::to_value(part(2.0, 9)).unwrap();
        old.as_object_mut().unwrap().remove("ramp_attempted");
        let old: Outcome = serde_json::from_value(old).unwrap();
        assert_eq!((old.ramp_attempted, old.ramp_achieved()), (0, None));
        let back: Outcome = serde_json::from_str(&serde_json::to_string(&merged).unwrap()).unwrap();
        assert_eq!(back.ramp_attempted, 20_000);
    }

    #[test]
    fn a_second_waits_for_every_worker_that_is_still_running() {
        let iv = |sent| Interval {
            messages_sent: sent,
            ..Interval::default()
        };
        let sent = |ivs: Vec<Interval>| ivs.iter().map(|i| i.messages_sent).collect::<Vec<_>>();
        let mut m = IntervalMerger::new(2);
        // worker 0 delivers seconds 0 and 1, then ends; worker 1 is slower
        assert!(m.push(0, &iv(1)).is_empty());
        assert!(m.push(0, &iv(2)).is_empty());
        assert!(
            m.end(0).is_empty(),
            "second 0 is not complete without worker 1"
        );
        assert_eq!(sent(m.push(1, &iv(10))), vec![11]);
        assert_eq!(sent(m.push(1, &iv(20))), vec![22]);
        // worker 1 goes on alone
        assert_eq!(sent(m.push(1, &iv(30))), vec![30]);
        assert!(m.push(7, &iv(1)).is_empty(), "unknown parts are ignored");
        assert!(m.finish().is_empty());
    }

    #[test]
    fn finish_hands_out_incomplete_seconds() {
        let mut m = IntervalMerger::new(2);
        assert!(m.push(0, &Interval::default()).is_empty());
        assert_eq!(m.finish().len(), 1);
    }

    #[test]
    fn intervals_sum_counts_and_keep_the_worst_tail() {
        let mut a = Interval {
            messages_sent: 3,
            open_connections: 10,
            ..Interval::default()
        };
        a.latencies.insert(
            "round_trip".into(),
            IntervalLatency {
                count: 1,
                p50_ms: 1.0,
                p99_ms: 2.0,
                max_ms: 3.0,
            },
        );
        let mut b = Interval {
            messages_sent: 4,
            open_connections: 5,
            ..Interval::default()
        };
        b.latencies.insert(
            "round_trip".into(),
            IntervalLatency {
                count: 3,
                p50_ms: 3.0,
                p99_ms: 9.0,
                max_ms: 9.5,
            },
        );
        let mut m = Interval::default();
        merge_interval(&mut m, &a);
        merge_interval(&mut m, &b);
        assert_eq!((m.messages_sent, m.open_connections), (7, 15));
        let l = &m.latencies["round_trip"];
        assert_eq!((l.count, l.p50_ms, l.p99_ms, l.max_ms), (4, 2.5, 9.0, 9.5));
    }
}
