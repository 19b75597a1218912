//! Whether the machine that generated the load was the bottleneck, and
//! when. A saturated load generator (or a host busy with something else,
//! such as the server under test on the same cores) measures itself: its
//! rates are capped and its latencies include its own queueing.
//!
//! Only the seconds that carry measurements are judged: seconds in which
//! something was timed (a copy delivered, a connect made) and that lasted
//! at least half a second. The seconds of closing at the end time nothing,
//! and a sliver of a few milliseconds turns one clock tick into hundreds
//! of percent; neither says anything about the figures.

use serde::{Deserialize, Serialize};

use crate::stats::{Interval, Latency};

/// The load generator's own CPU, in percent of each core it can use, at
/// which it counts as saturated.
pub const LOADGEN_MARK_PER_CORE: f64 = 90.0;
/// The whole host's CPU busy, in percent of all its cores, at which it
/// counts as saturated.
pub const HOST_MARK: f64 = 90.0;
/// CPU stolen by the hypervisor, in percent of all the host's cores, at
/// which the host counts as saturated.
pub const STEAL_MARK: f64 = 10.0;
/// Intervals shorter than this are not judged.
pub const MIN_JUDGED_SECS: f64 = 0.5;

/// The judgement of one run's (or phase's, or agent's) seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Saturation {
    /// Cores the load generator could use (all its processes); its own
    /// CPU figures are in percent of one core, so `cores` × 100 is all.
    pub cores: usize,
    /// Cores of the machine it ran on (0: unknown, from an older agent).
    #[serde(default)]
    pub host_cores: usize,
    /// Seconds judged: those that carried measurements.
    pub judged_secs: u64,
    /// Of those, the ones in which the load generator's own CPU reached
    /// [`LOADGEN_MARK_PER_CORE`] of its cores, as whole seconds since the
    /// start (the end of each interval).
    pub loadgen_secs: Vec<u64>,
    /// Of those, the ones in which the host was busy past [`HOST_MARK`] or
    /// lost [`STEAL_MARK`] to the hypervisor.
    pub host_secs: Vec<u64>,
    /// Of the timed samples (deliveries; connects where nothing was
    /// delivered), the share that fell in a saturated second, 0 to 1.
    pub timed_share: f64,
    /// The load generator's busiest judged second, in percent of one core.
    pub loadgen_cpu_max: f64,
    /// The host's busiest judged second, in percent of all its cores.
    pub host_cpu_max: f64,
    /// The most CPU stolen in a judged second, in percent of all cores.
    pub steal_max: f64,
}

/// Whether a second carried measurements, and how many samples.
fn timed(iv: &Interval) -> u64 {
    let count = |k: Latency| iv.latency(k).map_or(0, |l| l.count);
    count(Latency::Delivery) + count(Latency::Connect)
}

impl Saturation {
    /// Judges a per-second series of a load generator that could use
    /// `cores` cores (the sum over its processes, at most the machine's).
    pub fn judge(intervals: &[Interval], cores: usize) -> Saturation {
        Saturation::judge_parts(intervals, &[(intervals, cores)])
    }

    /// Judges the merged series of several load generators (a
    /// coordinator's agents, each with the cores it could use and its own
    /// series, second k of each merged into second k of `merged`): a
    /// second counts as the load generator's when any part was saturated
    /// in it, since one saturated agent skews the merged figures; the host
    /// figures are the merged ones (the busiest host's).
    pub fn judge_parts(merged: &[Interval], parts: &[(&[Interval], usize)]) -> Saturation {
        let cores: usize = parts.iter().map(|(_, c)| (*c).max(1)).sum();
        let part_saturated = |k: usize| {
            parts.iter().any(|(series, c)| {
                series
                    .get(k)
                    .is_some_and(|iv| iv.cpu_percent >= LOADGEN_MARK_PER_CORE * (*c).max(1) as f64)
            })
        };
        // Deliveries are what a run is about; connects count only when
        // nothing was delivered (an idle workload, a ramp-only run).
        let delivered: u64 = merged
            .iter()
            .filter_map(|iv| iv.latency(Latency::Delivery))
            .map(|l| l.count)
            .sum();
        let samples = |iv: &Interval| {
            if delivered > 0 {
                iv.latency(Latency::Delivery).map_or(0, |l| l.count)
            } else {
                timed(iv)
            }
        };
        let mut s = Saturation {
            cores: cores.max(1),
            host_cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            ..Saturation::default()
        };
        let (mut all, mut in_saturated) = (0u64, 0u64);
        for (k, iv) in merged.iter().enumerate() {
            // a NaN length is no second either
            let long_enough = iv.secs.is_finite() && iv.secs >= MIN_JUDGED_SECS;
            if timed(iv) == 0 || !long_enough {
                continue;
            }
            s.judged_secs += 1;
            s.loadgen_cpu_max = s.loadgen_cpu_max.max(iv.cpu_percent);
            s.host_cpu_max = s.host_cpu_max.max(iv.host_cpu_percent);
            s.steal_max = s.steal_max.max(iv.steal_percent);
            let at = iv.at_secs.round().max(0.0) as u64;
            let loadgen = part_saturated(k);
            let host = iv.host_cpu_percent >= HOST_MARK || iv.steal_percent >= STEAL_MARK;
            if loadgen {
                s.loadgen_secs.push(at);
            }
            if host {
                s.host_secs.push(at);
            }
            all += samples(iv);
            if loadgen || host {
                in_saturated += samples(iv);
            }
        }
        if all > 0 {
            s.timed_share = in_saturated as f64 / all as f64;
        }
        s
    }

    /// The load generator itself ran out of CPU in some judged second.
    pub fn loadgen(&self) -> bool {
        !self.loadgen_secs.is_empty()
    }

    /// The load generator or its host was saturated in some judged second.
    pub fn any(&self) -> bool {
        self.loadgen() || !self.host_secs.is_empty()
    }

    /// A sentence for people, `None` when nothing was saturated.
    pub fn describe(&self) -> Option<String> {
        if !self.any() {
            return None;
        }
        let mut parts = Vec::new();
        if self.loadgen() {
            parts.push(format!(
                "the load generator was CPU-saturated in {} of the {} measured seconds (second {}; peak {:.0} % of one core, {} cores = {} %)",
                self.loadgen_secs.len(),
                self.judged_secs,
                seconds(&self.loadgen_secs),
                self.loadgen_cpu_max,
                self.cores,
                self.cores * 100
            ));
        }
        if !self.host_secs.is_empty() {
            parts.push(format!(
                "its host was saturated in {} of the {} measured seconds (second {}; busiest {:.0} % of all its cores, steal up to {:.0} %)",
                self.host_secs.len(),
                self.judged_secs,
                seconds(&self.host_secs),
                self.host_cpu_max,
                self.steal_max
            ));
        }
        Some(format!(
            "{}; {:.0} % of the timed messages fell in those seconds, so their latencies describe the load generator's machine as much as the server: use more machines, or fewer connections per machine",
            parts.join(", and "),
            self.timed_share * 100.0
        ))
    }
}

/// Whole seconds as runs: "3-5, 9".
pub fn seconds(secs: &[u64]) -> String {
    let mut sorted = secs.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        out.push(if end > start {
            format!("{start}-{end}")
        } else {
            start.to_string()
        });
        i += 1;
    }
    out.join(", ")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::stats::IntervalLatency;

    fn second(at: f64, secs: f64, cpu: f64, host: f64, delivered: u64, connects: u64) -> Interval {
        let lat = |count| IntervalLatency {
            count,
            ..IntervalLatency::default()
        };
        Interval {
            secs,
            at_secs: at,
            cpu_percent: cpu,
            host_cpu_percent: host,
            latencies: BTreeMap::from([
                (Latency::Delivery.as_str().to_string(), lat(delivered)),
                (Latency::Connect.as_str().to_string(), lat(connects)),
            ]),
            ..Interval::default()
        }
    }

    #[test]
    fn only_seconds_that_carry_measurements_are_judged() {
        let series = [
            second(1.0, 1.0, 120.0, 70.0, 0, 500),  // ramp: connects timed
            second(2.0, 1.0, 185.0, 95.0, 1000, 0), // saturated, both ways
            second(3.0, 1.0, 100.0, 96.0, 1000, 0), // host busy (the server)
            second(4.0, 1.0, 60.0, 60.0, 2000, 0),  // fine
            second(5.0, 1.0, 199.0, 99.0, 0, 0),    // closing: nothing timed
            second(5.004, 0.004, 227.0, 100.0, 0, 0), // the closing sliver
        ];
        let s = Saturation::judge(&series, 2);
        assert_eq!(s.judged_secs, 4);
        assert_eq!(s.loadgen_secs, vec![2]);
        assert_eq!(s.host_secs, vec![2, 3]);
        assert_eq!(s.loadgen_cpu_max, 185.0, "the sliver's 227 % is no peak");
        assert_eq!(s.host_cpu_max, 96.0);
        // 2000 of the 4000 deliveries fell in saturated seconds
        assert_eq!(s.timed_share, 0.5);
        let text = s.describe().unwrap();
        assert!(text.contains("CPU-saturated in 1 of the 4 measured seconds (second 2; peak 185 % of one core, 2 cores = 200 %)"), "{text}");
        assert!(
            text.contains(
                "its host was saturated in 2 of the 4 measured seconds (second 2-3; busiest 96 %"
            ),
            "{text}"
        );
        assert!(text.contains("50 % of the timed messages"), "{text}");
    }

    #[test]
    fn a_run_against_a_down_target_is_not_saturated() {
        // nothing timed at all: no second is judged, whatever the CPU read
        let series = [
            second(1.0, 1.0, 30.0, 20.0, 0, 0),
            second(1.01, 0.01, 234.0, 100.0, 0, 0),
        ];
        let s = Saturation::judge(&series, 2);
        assert_eq!((s.judged_secs, s.loadgen_cpu_max), (0, 0.0));
        assert!(!s.any());
        assert_eq!(s.describe(), None);
    }

    #[test]
    fn connects_count_when_nothing_is_delivered_and_steal_saturates_a_host() {
        let mut stolen = second(2.0, 1.0, 20.0, 40.0, 0, 100);
        stolen.steal_percent = 12.0;
        let s = Saturation::judge(&[second(1.0, 1.0, 20.0, 40.0, 0, 300), stolen], 4);
        assert_eq!(s.host_secs, vec![2]);
        assert_eq!(s.timed_share, 0.25);
        assert_eq!(s.steal_max, 12.0);
        assert!(!s.loadgen());
    }

    #[test]
    fn one_saturated_agent_marks_the_merged_second() {
        let a = [
            second(1.0, 1.0, 50.0, 60.0, 100, 0),
            second(2.0, 1.0, 185.0, 60.0, 100, 0),
        ];
        let b = [
            second(1.0, 1.0, 50.0, 60.0, 100, 0),
            second(2.0, 1.0, 10.0, 60.0, 100, 0),
        ];
        let merged = [
            second(1.0, 1.0, 100.0, 60.0, 200, 0),
            second(2.0, 1.0, 195.0, 60.0, 200, 0),
        ];
        let s = Saturation::judge_parts(&merged, &[(&a, 2), (&b, 2)]);
        assert_eq!(s.cores, 4);
        assert_eq!(
            s.loadgen_secs,
            vec![2],
            "a's second 2, though the sum is under 4 cores' mark"
        );
        assert_eq!(s.timed_share, 0.5);
    }

    #[test]
    fn seconds_are_written_as_runs() {
        assert_eq!(seconds(&[9, 3, 4, 5, 11, 12]), "3-5, 9, 11-12");
        assert_eq!(seconds(&[]), "");
        assert_eq!(seconds(&[7, 7]), "7");
    }
}
