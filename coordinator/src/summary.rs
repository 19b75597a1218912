//! The text printed at the end: each phase's merged figures in loadgen's
//! own summary layout (one format for one agent or many), a line per
//! agent, the thresholds with how far off each failing one was, and the
//! verdict.

use std::fmt::Write as _;

use loadgen::printer::{self, RunInfo};

use crate::results::{PhaseResult, Results, ServerSample, ServerSeries};

pub fn render(results: &Results) -> String {
    let mut out = String::new();
    for phase in &results.phases {
        let _ = writeln!(
            out,
            "\n== phase {} {} ({} agents) ==",
            phase.index + 1,
            phase.name,
            phase.agents.len()
        );
        out.push_str(&printer::summary(&phase.totals, &run_info(results, phase)));
        let _ = writeln!(out, "\nAgents");
        for a in &phase.agents {
            let name = results.agents.get(a.agent).map_or("?", |r| r.name.as_str());
            let held = a.totals.as_ref().map_or(0, |t| t.open_connections);
            let _ = write!(
                out,
                "  {name:<16} slice {}..{}  held {}/{}  cpu max {:.0} % of one core ({} cores = {} %)",
                a.first,
                a.first + a.count,
                printer::int(held),
                printer::int(a.count),
                a.saturation.loadgen_cpu_max,
                a.threads.max(1),
                a.threads.max(1) * 100,
            );
            if a.saturation.loadgen() {
                out.push_str("  SATURATED");
            }
            if let Some(f) = &a.failure {
                let _ = write!(out, "  FAILED: {f}");
            }
            out.push('\n');
        }
        if let Some(server) = &phase.server {
            out.push_str(&server_line(server));
        }
    }
    if !results.thresholds.is_empty() {
        let _ = writeln!(out, "\nThresholds");
        for t in &results.thresholds {
            let mark = if t.passed { "✓" } else { "✗" };
            let _ = writeln!(out, "  {mark} [{}] {}  ({})", t.scope, t.expr, t.detail);
            if let Some(caveat) = &t.caveat {
                let _ = writeln!(out, "      {caveat}");
            }
        }
    }
    if !results.failures.is_empty() {
        let _ = writeln!(out, "\nProblems");
        for f in &results.failures {
            let _ = writeln!(out, "  - {f}");
        }
    }
    let failed = results.thresholds.iter().filter(|t| !t.passed).count();
    let _ = writeln!(
        out,
        "\n{}: {} of {} thresholds held{}",
        if results.passed { "PASS" } else { "FAIL" },
        results.thresholds.len() - failed,
        results.thresholds.len(),
        if results.interrupted {
            ", run cut short"
        } else {
            ""
        }
    );
    out
}

/// The server's busiest figures of the phase and how its scrapes went.
fn server_line(s: &ServerSeries) -> String {
    let peak = |f: fn(&ServerSample) -> Option<f64>| s.peak(f);
    let mut line = String::from("\nServer");
    if let Some(cpu) = peak(|x| x.cpu_percent) {
        let _ = write!(line, "  cpu max {cpu:.0}%");
    }
    if let Some(rss) = peak(|x| x.rss_bytes.map(|b| b as f64)) {
        let _ = write!(line, "  rss max {:.1} MiB", rss / 1048576.0);
    }
    if let Some(c) = peak(|x| x.connections.map(|c| c as f64)) {
        let _ = write!(line, "  connections max {}", printer::int(c as u64));
    }
    let _ = writeln!(
        line,
        "  ({} scrapes of {}, {} failed)",
        s.scrapes, s.url, s.scrape_failures
    );
    line
}

fn run_info(results: &Results, phase: &PhaseResult) -> RunInfo {
    RunInfo {
        target_connections: phase.connections,
        duration_secs: phase.duration_secs,
        workload: results.scenario.workload.clone(),
        // the merged seconds: the live line's total, not one agent's peak
        saturation: phase.saturation.clone(),
        notes: Vec::new(),
        held_after_ramp: phase.agents.iter().map(|a| a.held_after_ramp).sum(),
        processes: phase.agents.iter().map(|a| a.processes).sum(),
        ramp_secs: phase.ramp_secs,
        ramp_asked: phase.ramp_asked,
        ramp_achieved: phase.ramp_achieved,
        sending_secs: phase.sending_secs,
        // The agents block below names each agent and its share.
        ..RunInfo::default()
    }
}
