//! The run as Prometheus sees it (`--metrics-listen`): the current phase,
//! its connection target, the merged live figures of the last complete
//! second, cumulative counters, agent health and every threshold checked
//! so far, so the lab's dashboards can show the run beside the server.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use loadgen::stats::Interval;
use tokio::sync::watch;

use crate::results::ThresholdResult;

#[derive(Debug, Default)]
struct State {
    scenario: String,
    phase_index: Option<usize>,
    phase_name: String,
    phases: usize,
    target_connections: u64,
    open_connections: u64,
    agents: usize,
    agents_failed: usize,
    connects_ok: u64,
    connect_errors: u64,
    closes_unexpected: u64,
    messages_sent: u64,
    messages_received: u64,
    copies_received: u64,
    messages_lost: u64,
    /// Last second's merged p99 per latency kind, in seconds.
    p99_seconds: BTreeMap<String, f64>,
    /// (scope, expression) → passed.
    thresholds: BTreeMap<(String, String), bool>,
    /// None while running.
    passed: Option<bool>,
}

/// Shared, cheap to update from the run loop.
#[derive(Clone, Default)]
pub struct Live {
    state: Arc<Mutex<State>>,
}

impl Live {
    pub fn new(scenario: &str, phases: usize, agents: usize) -> Live {
        let live = Live::default();
        {
            let mut s = live.lock();
            s.scenario = scenario.to_string();
            s.phases = phases;
            s.agents = agents;
        }
        live
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn phase(&self, index: usize, name: &str, target: u64) {
        let mut s = self.lock();
        s.phase_index = Some(index);
        s.phase_name = name.to_string();
        s.target_connections = target;
        s.open_connections = 0;
    }

    pub fn second(&self, iv: &Interval) {
        let mut s = self.lock();
        s.open_connections = iv.open_connections;
        s.connects_ok += iv.connects_ok;
        s.connect_errors += iv.connect_errors;
        s.closes_unexpected += iv.closes_unexpected;
        s.messages_sent += iv.messages_sent;
        s.messages_received += iv.messages_received;
        s.copies_received += iv.copies_received;
        s.messages_lost += iv.lost;
        for (kind, l) in &iv.latencies {
            if l.count > 0 {
                s.p99_seconds.insert(kind.clone(), l.p99_ms / 1000.0);
            }
        }
    }

    pub fn agent_failed(&self) {
        self.lock().agents_failed += 1;
    }

    pub fn threshold(&self, t: &ThresholdResult) {
        self.lock()
            .thresholds
            .insert((t.scope.clone(), t.expr.clone()), t.passed);
    }

    pub fn finished(&self, passed: bool) {
        let mut s = self.lock();
        s.passed = Some(passed);
        s.phase_index = None;
        s.open_connections = 0;
    }

    /// The Prometheus text exposition of the current state.
    pub fn render(&self) -> String {
        let s = self.lock();
        let mut out = String::with_capacity(2048);
        let esc = promhttp::escape_label_value;
        let gauge = |out: &mut String, name: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        };
        let _ = writeln!(
            out,
            "# HELP coordinator_info The scenario being run.\n# TYPE coordinator_info gauge\ncoordinator_info{{scenario=\"{}\"}} 1",
            esc(&s.scenario)
        );
        let _ = writeln!(
            out,
            "# HELP coordinator_phase_info The phase running now (absent between phases).\n# TYPE coordinator_phase_info gauge"
        );
        if let Some(i) = s.phase_index {
            let _ = writeln!(
                out,
                "coordinator_phase_info{{phase=\"{}\",index=\"{}\"}} 1",
                esc(&s.phase_name),
                i + 1
            );
        }
        gauge(
            &mut out,
            "coordinator_phase",
            "Number of the phase running (1-based; 0 before the first and after the last).",
            s.phase_index.map_or(0, |i| i + 1).to_string(),
        );
        gauge(
            &mut out,
            "coordinator_phases",
            "Phases in the scenario.",
            s.phases.to_string(),
        );
        gauge(
            &mut out,
            "coordinator_target_connections",
            "Connection target of the running phase, all agents together.",
            s.target_connections.to_string(),
        );
        gauge(
            &mut out,
            "coordinator_open_connections",
            "Connections open on all agents at the last complete second.",
            s.open_connections.to_string(),
        );
        gauge(
            &mut out,
            "coordinator_agents",
            "Agents taking part.",
            s.agents.to_string(),
        );
        gauge(
            &mut out,
            "coordinator_agents_failed",
            "Agents that died, dropped their control connection or refused a phase.",
            s.agents_failed.to_string(),
        );
        let counters = [
            (
                "coordinator_connects_total",
                "Connections established, all agents.",
                s.connects_ok,
            ),
            (
                "coordinator_connect_errors_total",
                "Failed connects, all agents.",
                s.connect_errors,
            ),
            (
                "coordinator_closes_unexpected_total",
                "Connections closed by the server or by errors.",
                s.closes_unexpected,
            ),
            (
                "coordinator_messages_sent_total",
                "Messages sent, all agents.",
                s.messages_sent,
            ),
            (
                "coordinator_messages_received_total",
                "Data messages received, all agents: copies, notices and unexpected ones.",
                s.messages_received,
            ),
            (
                "coordinator_copies_received_total",
                "Copies of the run's messages received, all agents: what message rates count.",
                s.copies_received,
            ),
            (
                "coordinator_messages_lost_total",
                "Own messages that never came back.",
                s.messages_lost,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        }
        let _ = writeln!(out, "# HELP coordinator_latency_p99_seconds 99th percentile of the last complete second, all agents (the highest agent's p99: an upper bound).\n# TYPE coordinator_latency_p99_seconds gauge");
        for (kind, v) in &s.p99_seconds {
            let _ = writeln!(
                out,
                "coordinator_latency_p99_seconds{{kind=\"{}\"}} {v}",
                esc(kind)
            );
        }
        let _ = writeln!(out, "# HELP coordinator_threshold_passing Whether each threshold checked so far held (1) or failed (0).\n# TYPE coordinator_threshold_passing gauge");
        for ((scope, expr), passed) in &s.thresholds {
            let _ = writeln!(
                out,
                "coordinator_threshold_passing{{scope=\"{}\",threshold=\"{}\"}} {}",
                esc(scope),
                esc(expr),
                u8::from(*passed)
            );
        }
        let failing = s.thresholds.values().filter(|p| !**p).count();
        gauge(
            &mut out,
            "coordinator_thresholds_failing",
            "Thresholds checked so far that failed.",
            failing.to_string(),
        );
        gauge(
            &mut out,
            "coordinator_run_passed",
            "The verdict: 1 passed, 0 failed, -1 still running.",
            s.passed
                .map_or("-1".to_string(), |p| u8::from(p).to_string()),
        );
        drop(s);
        promhttp::process::render_process(&mut out);
        out
    }

    /// Serves [`Live::render`] on `listener` until `stop` changes.
    pub fn serve(&self, listener: TcpListener, stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let me = self.clone();
        tokio::spawn(promhttp::serve(listener, stop, move || me.render()));
        Ok(())
    }
}
