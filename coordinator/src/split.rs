//! How a phase is shared out: connections by agent weight (exact integer
//! shares that sum to the phase's count), consecutive slices of one global
//! connection numbering (so room membership and the choice of chatters are
//! the same as if one process ran the phase), and each agent's share of
//! the ramp rate and the in-flight cap.

use loadgen::clock::HostClock;
use loadgen::control::PhaseJob;
use loadgen::opts::{Processes, Progress, RunOpts};

use crate::scenario::schema::{Phase, Target};

/// Shares of `total` proportional to `weights` (largest remainder, ties to
/// the earlier agent); they sum to `total` exactly.
pub fn shares(total: u64, weights: &[f64]) -> Vec<u64> {
    let sum: f64 = weights.iter().filter(|w| w.is_finite() && **w > 0.0).sum();
    if weights.is_empty() || sum <= 0.0 {
        return vec![0; weights.len()];
    }
    let exact: Vec<f64> = weights
        .iter()
        .map(|w| {
            if w.is_finite() && *w > 0.0 {
                total as f64 * w / sum
            } else {
                0.0
            }
        })
        .collect();
    let mut out: Vec<u64> = exact.iter().map(|e| e.floor() as u64).collect();
    let mut left = total.saturating_sub(out.iter().sum());
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (exact[a] - exact[a].floor(), exact[b] - exact[b].floor());
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    for i in order.into_iter().cycle().take(weights.len() * 2) {
        if left == 0 {
            break;
        }
        if exact[i] > 0.0 {
            out[i] += 1;
            left -= 1;
        }
    }
    out
}

/// The options every agent shares for `phase` (before its own share).
pub fn phase_opts(target: &Target, urls: &[String], phase: &Phase, room_prefix: &str) -> RunOpts {
    RunOpts {
        targets: urls.to_vec(),
        connections: phase.connections,
        ramp: phase.ramp,
        max_inflight: phase.max_inflight,
        duration: phase.duration,
        workload: target.workload,
        rooms: phase.rooms,
        room_size: phase.room_size,
        room_dist: phase.room_distribution,
        room_prefix: Some(room_prefix.to_string()),
        chatters: phase.chatters,
        rate: phase.rate,
        size: phase.size,
        ping_interval: phase.ping_interval,
        insecure: target.insecure,
        ca_file: None,
        ca_pem: target.ca_pem.clone(),
        headers: target.headers.clone(),
        subprotocols: target.subprotocols.clone(),
        churn: phase.churn,
        source_ips: None,
        connect_timeout: phase.connect_timeout,
        drain: phase.drain,
        loss_timeout: phase.loss_timeout,
        json: None,
        progress: Progress::Never,
        min_held: 0.0,
        max_loss: phase.max_loss,
        join: target.join,
        threads: None,
        processes: Processes::Auto,
        metrics_listen: None,
    }
}

/// One job per agent: consecutive slices sized by `shares`, with the ramp
/// and in-flight cap scaled to each share so the phase as a whole ramps as
/// asked. Agents with a zero share get no job (`None`). Agents with the
/// same boot id in `boot_ids` are on one host and read one clock: each is
/// told the others' slices, so it times the copies they send too.
pub fn jobs(
    opts: &RunOpts,
    shares: &[u64],
    source_ips: &[Option<String>],
    boot_ids: &[Option<String>],
) -> Vec<Option<PhaseJob>> {
    let total = opts.connections.max(1) as f64;
    let mut firsts = Vec::with_capacity(shares.len());
    let mut first = 0;
    for &count in shares {
        firsts.push(first);
        first += count;
    }
    let slice = |i: usize| firsts[i]..firsts[i] + shares[i];
    let host_clock = |i: usize| {
        let boot_id = boot_ids.get(i)?.as_ref()?;
        let shared_by = (0..shares.len())
            .filter(|&j| shares[j] > 0 && boot_ids.get(j).and_then(Option::as_ref) == Some(boot_id))
            .map(slice)
            .collect();
        Some(HostClock {
            boot_id: boot_id.clone(),
            shared_by,
        })
    };
    (0..shares.len())
        .map(|i| {
            let count = shares[i];
            if count == 0 {
                return None;
            }
            let part = count as f64 / total;
            let mut mine = opts.clone();
            mine.ramp = opts.ramp * part;
            mine.max_inflight = ((opts.max_inflight as f64 * part).ceil() as usize).max(1);
            mine.source_ips = source_ips.get(i).cloned().flatten();
            Some(PhaseJob {
                opts: mine,
                first: firsts[i],
                count,
                host_clock: host_clock(i),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_sum_exactly_and_follow_weights() {
        assert_eq!(shares(10, &[1.0, 1.0, 1.0]), vec![4, 3, 3]);
        assert_eq!(shares(3000, &[1.0, 2.0]), vec![1000, 2000]);
        assert_eq!(shares(7, &[1.0, 0.0, 1.0]), vec![4, 0, 3]);
        assert_eq!(shares(5, &[]), Vec::<u64>::new());
        for total in [0u64, 1, 99, 1_000_000, 1_000_003] {
            for weights in [vec![1.0; 7], vec![0.5, 3.0, 1.25], vec![1e-9, 1.0]] {
                let s = shares(total, &weights);
                assert_eq!(s.iter().sum::<u64>(), total, "{total} {weights:?}");
            }
        }
    }

    #[test]
    fn jobs_tile_the_numbering_and_share_the_ramp() {
        let mut opts = RunOpts {
            ..phase_opts(
                &serde_yaml::from_str("urls: []").unwrap(),
                &["ws://127.0.0.1:1/".to_string()],
                &serde_yaml::from_str(
                    "{name: p, duration: 10s, connections: 3000, ramp: 600, max_inflight: 90}",
                )
                .unwrap(),
                "r-",
            )
        };
        opts.connections = 3000;
        let jobs = jobs(
            &opts,
            &shares(3000, &[1.0, 1.0, 1.0]),
            &[Some("127.0.1.1".into()), None, None],
            &[],
        );
        let jobs: Vec<PhaseJob> = jobs.into_iter().flatten().collect();
        assert_eq!(jobs.len(), 3);
        assert_eq!(
            (jobs[0].first, jobs[1].first, jobs[2].first),
            (0, 1000, 2000)
        );
        assert!(jobs
            .iter()
            .all(|j| j.count == 1000 && j.opts.connections == 3000));
        assert!(jobs
            .iter()
            .all(|j| (j.opts.ramp - 200.0).abs() < 1e-9 && j.opts.max_inflight == 30));
        assert_eq!(jobs[0].opts.source_ips.as_deref(), Some("127.0.1.1"));
        assert_eq!(jobs[1].opts.source_ips, None);
        assert!(jobs.iter().all(|j| j.host_clock.is_none()));
    }

    /// Agents on one host (one boot id) are told each other's slices;
    /// an agent without a share, or without a boot id, changes nothing.
    #[test]
    fn agents_on_one_host_share_its_clock() {
        let mut opts = phase_opts(
            &serde_yaml::from_str("urls: []").unwrap(),
            &["ws://127.0.0.1:1/".to_string()],
            &serde_yaml::from_str("{name: p, duration: 10s, connections: 400}").unwrap(),
            "r-",
        );
        opts.connections = 400;
        let host = |id: &str| Some(id.to_string());
        let jobs = jobs(
            &opts,
            &[100, 100, 0, 100, 100],
            &[],
            &[host("a"), host("b"), host("a"), host("a"), None],
        );
        let clock = |i: usize| jobs[i].as_ref().unwrap().host_clock.clone();
        let a = clock(0).unwrap();
        assert_eq!(
            (a.boot_id.as_str(), a.shared_by),
            ("a", vec![0..100, 200..300])
        );
        assert_eq!(clock(3).unwrap().shared_by, vec![0..100, 200..300]);
        assert_eq!(clock(1).unwrap().shared_by, vec![100..200]);
        assert!(jobs[2].is_none());
        assert_eq!(clock(4), None);
    }
}
