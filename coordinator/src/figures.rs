//! TEMP stub (helper A replaces).
use crate::results::Figures;
use loadgen::stats::Totals;
pub fn phase_figures(t: &Totals, held_after_ramp: u64) -> Figures {
    let mut f = Figures::new();
    f.insert("connections_held".into(), t.open_connections as f64);
    f.insert("connections_held_after_ramp".into(), held_after_ramp as f64);
    f.insert("messages_lost".into(), t.messages_lost as f64);
    if let Some(h) = t.latencies.get("round_trip").filter(|h| h.count > 0) {
        f.insert("rtt_p99_ms".into(), h.p99_ms);
    }
    f
}
pub fn run_figures(phases: &[(&Totals, u64)]) -> Figures {
    let mut all = Totals::default();
    for (t, _) in phases {
        all.merge(t);
    }
    phase_figures(&all, 0)
}
