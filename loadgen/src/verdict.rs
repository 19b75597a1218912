//! Whether a run did what was asked, and the notes that go with its
//! figures. A run that could not do what was asked exits non-zero and
//! says why.

use crate::engine::Outcome;
use crate::opts::RunOpts;
use crate::printer::{int, ms, RunInfo};
use crate::signals::StopSignal;
use crate::stats::Latency;

pub struct Verdict {
    /// Reasons the run failed; empty when it did what was asked.
    pub problems: Vec<String>,
    /// Things worth knowing about the figures.
    pub notes: Vec<String>,
}

/// `stopped_by` is the signal that cut the run short, if one did, so the
/// reason names it (a run stopped by `docker stop` says SIGTERM).
pub fn judge(opts: &RunOpts, outcome: &Outcome, stopped_by: Option<StopSignal>) -> Verdict {
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let wanted = opts.connections;
    let needed = (wanted as f64 * opts.min_held).ceil() as u64;
    problems.extend(outcome.failures.iter().cloned());
    if outcome.interrupted {
        let by = stopped_by.map_or(String::new(), |s| format!(" by {s}"));
        problems.push(format!(
            "interrupted{by} before the end: the figures cover the run so far"
        ));
    }
    // Under churn some connections are always between close and reconnect;
    // "held at end" below still catches reconnects that failed.
    if opts.churn == 0.0 && outcome.held_after_ramp < needed {
        let errors: u64 = outcome.totals.connect_errors.values().sum();
        let mut why = format!(
            "held {} of {} connections after the ramp (needed {})",
            outcome.held_after_ramp, wanted, needed
        );
        if let Some((kind, n)) = outcome
            .totals
            .connect_errors
            .iter()
            .max_by_key(|(_, n)| **n)
        {
            why.push_str(&format!(
                "; {errors} connect errors, most often {kind:?} ({n})"
            ));
        }
        if outcome.not_attempted > 0 {
            why.push_str(&format!(
                "; {} connections were never attempted: at --ramp {}/s the ramp had not reached them when --duration ended",
                outcome.not_attempted, opts.ramp
            ));
        }
        problems.push(why);
    }
    // Held at end: connections that lasted until we closed them.
    let held_at_end = outcome.totals.open_connections;
    if (opts.churn > 0.0 || outcome.held_after_ramp >= needed)
        && held_at_end < needed
        && !outcome.interrupted
    {
        let closes: Vec<String> = outcome
            .totals
            .closes_unexpected
            .iter()
            .map(|(label, n)| format!("{n} × {label}"))
            .collect();
        problems.push(format!(
            "only {held_at_end} of {wanted} connections lasted the run (needed {needed}); unexpected closes: {}",
            if closes.is_empty() { "none recorded".to_string() } else { closes.join(", ") }
        ));
    }
    let t = &outcome.totals;
    let loss_too_high =
        t.messages_sent > 0 && t.messages_lost as f64 > opts.max_loss * t.messages_sent as f64;
    if loss_too_high {
        problems.push(format!(
            "lost {} of {} messages sent ({} %), more than --max-loss {} allows: a sender's own copy did not come back within --loss-timeout ({}) of its scheduled send time, or by the end of the run (--drain {} after the last send)",
            t.messages_lost,
            t.messages_sent,
            crate::printer::percent(t.messages_lost as f64 * 100.0 / t.messages_sent as f64),
            opts.max_loss,
            humantime::format_duration(opts.loss_timeout),
            humantime::format_duration(opts.drain)
        ));
    }
    if t.messages_unexpected > 0 {
        problems.push(format!(
            "received {} messages that were not the run's (e.g. {}): the server did not do what the workload asked{}",
            t.messages_unexpected,
            t.unexpected_example.as_deref().unwrap_or("?"),
            match opts.workload.is_chat() && opts.join == crate::opts::JoinMode::Url {
                true => "; --join url needs a server that reads the room from the upgrade URL, --join message works with any server that speaks the chat protocol",
                false => "",
            }
        ));
    }
    // Saturation is not a note: the summary warns of it from
    // `RunInfo::saturation`, seconds and all.
    if outcome.dropped_at_end > 0 {
        notes.push(format!(
            "{} connections had not finished their close handshake {} s after the drain and were dropped without it: the server was slow to answer closes (in chat, each close also sends a leave notice to every member of the room)",
            outcome.dropped_at_end,
            crate::engine::FINISH_GRACE.as_secs()
        ));
    }
    if outcome.totals.messages_lost > 0 && !loss_too_high {
        notes.push(format!(
            "{} messages lost: a sender's own copy did not come back within --loss-timeout ({}) of its scheduled send time, or by the end of the run (--drain {} after the last send)",
            outcome.totals.messages_lost,
            humantime::format_duration(opts.loss_timeout),
            humantime::format_duration(opts.drain)
        ));
    }
    Verdict { problems, notes }
}

impl Verdict {
    pub fn run_info(&self, opts: &RunOpts, outcome: &Outcome) -> RunInfo {
        let mut notes = self.notes.clone();
        notes.extend(self.problems.iter().cloned());
        RunInfo {
            target_connections: opts.connections,
            duration_secs: opts.duration.as_secs_f64(),
            workload: opts.workload.name().to_string(),
            saturation: outcome.saturation.clone(),
            notes,
            held_after_ramp: outcome.held_after_ramp,
            rss_per_connection_bytes: (outcome.held_after_ramp > 0)
                .then(|| outcome.rss_growth_bytes as f64 / outcome.held_after_ramp as f64),
            processes: outcome.processes,
            targets: opts.targets.clone(),
            source_addresses: opts
                .source_ips
                .as_deref()
                .and_then(|spec| crate::source_ips::parse(spec).ok())
                .map_or(0, |ips| ips.len()),
            ramp_secs: outcome.ramp_secs,
            ramp_asked: paced(opts.ramp),
            ramp_achieved: outcome.ramp_achieved(),
            sending_secs: outcome.sending_secs,
        }
    }
}

/// Below this share of the asked ramp, [`ramp_note`] says why.
const RAMP_SHORTFALL: f64 = 0.9;

/// `--ramp` as a rate, or None when unpaced (0 or infinite).
pub fn paced(ramp: f64) -> Option<f64> {
    (ramp.is_finite() && ramp > 0.0).then_some(ramp)
}

/// A note when the ramp achieved well under the ramp asked, so a run that
/// connected slower than asked does not pass as the run that was asked
/// for, naming the likely causes: the busiest (source, target) pair past
/// half the local port range (`busiest_pair` connections against
/// `half_range`, from [`crate::source_plan`]), the in-flight cap,
/// connect errors, or loadgen's own CPU. Ramps under a second are not
/// judged: the last connect's own time is most of them.
pub fn ramp_note(
    opts: &RunOpts,
    outcome: &Outcome,
    busiest_pair: u64,
    half_range: u64,
) -> Option<String> {
    let asked = paced(opts.ramp)?;
    let achieved = outcome.ramp_achieved()?;
    if outcome.ramp_secs < 1.0 || achieved >= RAMP_SHORTFALL * asked {
        return None;
    }
    let per_sec = |r: f64| int(r.round() as u64);
    let mut causes = Vec::new();
    if busiest_pair > half_range {
        causes.push(format!(
            "{} connections on the busiest (source, target) pair, past half the local port \
             range ({}), where every connect searches the taken ports first: spread them over \
             more --source-ips",
            int(busiest_pair),
            int(half_range)
        ));
    }
    // Connects in flight = rate × connect time, so the cap allows at most
    // cap / connect time.
    if let Some(connect) = outcome.totals.latency(Latency::Connect) {
        let allows = opts.max_inflight as f64 * 1000.0 / connect.mean_ms;
        if connect.count > 0 && connect.mean_ms > 0.0 && allows < RAMP_SHORTFALL * asked {
            causes.push(format!(
                "the in-flight cap: --max-inflight {} at a mean connect time of {} ms allows \
                 about {}/s",
                opts.max_inflight,
                ms(connect.mean_ms),
                per_sec(allows)
            ));
        }
    }
    let errors = outcome.totals.connect_errors_total();
    if errors > 0 && errors.saturating_mul(100) >= outcome.ramp_attempted {
        causes.push(format!(
            "connect errors ({} of {} attempts)",
            int(errors),
            int(outcome.ramp_attempted)
        ));
    }
    let sat = &outcome.saturation;
    if sat.any() {
        causes.push(format!(
            "loadgen's CPU or its host's (loadgen peak {:.0} % of one core, {} cores = {} %; host peak {:.0} % of all its cores)",
            sat.loadgen_cpu_max,
            sat.cores.max(1),
            sat.cores.max(1) * 100,
            sat.host_cpu_max
        ));
    }
    let why = if causes.is_empty() {
        "none of the usual causes showed (per-pair ports, --max-inflight, connect errors, \
         loadgen's CPU): the server may be slow to accept; see the connect latency"
            .to_string()
    } else {
        format!("likely {}", causes.join("; "))
    };
    Some(format!(
        "the ramp achieved {}/s of the {}/s asked ({:.0} %) over {:.1} s: {why}",
        per_sec(achieved),
        per_sec(asked),
        achieved * 100.0 / asked,
        outcome.ramp_secs
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{new_histogram, LatencyHistogram, Totals};
    use clap::Parser;

    fn opts(args: &[&str]) -> RunOpts {
        crate::opts::Cli::parse_from(["loadgen", "run", "ws://127.0.0.1:1/"].iter().chain(args))
            .into_run()
            .unwrap()
    }

    /// A ramp of `attempted` connections over `secs`, each connect taking
    /// `connect_ms`.
    fn ramped(attempted: u64, secs: f64, connect_ms: u64) -> Outcome {
        let mut h = new_histogram();
        h.record_n(connect_ms * 1000, attempted).unwrap();
        let mut totals = Totals::default();
        totals.latencies.insert(
            Latency::Connect.as_str().to_string(),
            LatencyHistogram::from_histogram(&h),
        );
        Outcome {
            totals,
            ramp_secs: secs,
            ramp_attempted: attempted,
            threads: 2,
            ..Outcome::default()
        }
    }

    #[test]
    fn a_ramp_at_the_asked_rate_has_no_note() {
        let o = opts(&["--ramp", "5000"]);
        assert_eq!(ramp_note(&o, &ramped(20_000, 4.1, 1), 10_000, 14_116), None);
        // 90 % is close enough; unpaced and sub-second ramps are not judged.
        assert_eq!(ramp_note(&o, &ramped(18_000, 4.0, 1), 20_000, 14_116), None);
        assert_eq!(
            ramp_note(&opts(&["--ramp", "0"]), &ramped(100, 4.0, 1), 0, 1),
            None
        );
        assert_eq!(ramp_note(&o, &ramped(100, 0.5, 1), 0, 14_116), None);
        assert_eq!(ramp_note(&o, &Outcome::default(), 0, 14_116), None);
    }

    #[test]
    fn a_slow_ramp_names_the_crowded_pair_and_the_cpu() {
        let o = opts(&["--ramp", "5000"]);
        let mut out = ramped(20_000, 14.2, 1);
        out.saturation = crate::saturation::Saturation {
            cores: 2,
            loadgen_cpu_max: 184.0,
            host_cpu_max: 97.0,
            loadgen_secs: vec![3, 4, 5],
            ..Default::default()
        };
        let note = ramp_note(&o, &out, 20_000, 14_116).unwrap();
        assert_eq!(
            note,
            "the ramp achieved 1,408/s of the 5,000/s asked (28 %) over 14.2 s: likely 20,000 \
             connections on the busiest (source, target) pair, past half the local port range \
             (14,116), where every connect searches the taken ports first: spread them over \
             more --source-ips; loadgen's CPU or its host's (loadgen peak 184 % of one core, \
             2 cores = 200 %; host peak 97 % of all its cores)"
        );
    }

    #[test]
    fn a_slow_ramp_names_the_inflight_cap_and_connect_errors() {
        // 512 in flight at 200 ms each: at most 2,560/s.
        let o = opts(&["--ramp", "5000"]);
        let mut out = ramped(10_000, 4.0, 200);
        out.totals.connect_errors.insert("timeout".to_string(), 150);
        let note = ramp_note(&o, &out, 5_000, 14_116).unwrap();
        assert!(note.starts_with("the ramp achieved 2,500/s of the 5,000/s asked (50 %) over 4.0 s: likely the in-flight cap: --max-inflight 512 at a mean connect time of 200 ms allows about 2,5"), "{note}");
        assert!(
            note.ends_with("; connect errors (150 of 10,000 attempts)"),
            "{note}"
        );
        // Nothing to blame: say so, and where to look.
        let note = ramp_note(&o, &ramped(10_000, 4.0, 1), 5_000, 14_116).unwrap();
        assert!(note.ends_with("none of the usual causes showed (per-pair ports, --max-inflight, connect errors, loadgen's CPU): the server may be slow to accept; see the connect latency"), "{note}");
    }

    #[test]
    fn the_run_info_carries_both_ramps() {
        let v = judge(
            &opts(&["--ramp", "5000", "-c", "10"]),
            &ramped(10, 2.0, 1),
            None,
        );
        let info = v.run_info(&opts(&["--ramp", "5000"]), &ramped(10, 2.0, 1));
        assert_eq!(
            (info.ramp_asked, info.ramp_achieved),
            (Some(5000.0), Some(5.0))
        );
        let info = v.run_info(&opts(&["--ramp", "inf"]), &Outcome::default());
        assert_eq!((info.ramp_asked, info.ramp_achieved), (None, None));
    }
}
