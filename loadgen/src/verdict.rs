//! Whether a run did what was asked, and the notes that go with its
//! figures. A run that could not do what was asked exits non-zero and
//! says why.

use crate::engine::Outcome;
use crate::opts::RunOpts;
use crate::printer::RunInfo;
use crate::signals::StopSignal;

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
            sending_secs: outcome.sending_secs,

        }
    }
}
