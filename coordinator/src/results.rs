//! What a run produced, as written to `results.json` and read by the HTML
//! report: the scenario, the agents, and per phase the merged figures (HDR
//! histograms merged, never percentiles averaged), the merged per-second
//! series, and every agent's own figures, so anyone can re-merge and check.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use loadgen::saturation::Saturation;
use loadgen::stats::{Interval, Totals};
use serde::{Deserialize, Serialize};

/// Named figures of a result, the values thresholds are checked against
/// (see `figures.rs` for the names and their units).
pub type Figures = BTreeMap<String, f64>;

/// The whole of `results.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Results {
    pub scenario: ScenarioInfo,
    pub started_unix_ms: u64,
    pub finished_unix_ms: u64,
    /// Cut short by SIGINT (Ctrl-C), SIGTERM or an aborting agent failure;
    /// `failures` says which.
    pub interrupted: bool,
    /// Every threshold held and nothing failed.
    pub passed: bool,
    pub agents: Vec<AgentResult>,
    pub phases: Vec<PhaseResult>,
    /// The whole run: counters summed and histograms merged over the
    /// phases; gauges (connections held, peak) are the highest phase's.
    pub run_figures: Figures,
    /// Every threshold, the run's and the phases', in scenario order.
    pub thresholds: Vec<ThresholdResult>,
    /// Why the run did not go as planned (an agent that died, a phase that
    /// could not start), in the order they happened.
    pub failures: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScenarioInfo {
    pub name: String,
    pub description: String,
    /// The scenario file as given on the command line.
    pub file: String,
    /// Target URLs actually used (after `--local` filled them in).
    pub targets: Vec<String>,
    pub workload: String,
    /// Whether the coordinator started the server and agents itself.
    pub local: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AgentResult {
    /// The agent's own name (its `--name` or host name).
    pub name: String,
    /// The control address the coordinator used.
    pub addr: String,
    pub weight: f64,
    pub source_ips: Option<String>,
    /// The agent's loadgen version.
    pub build: String,
    /// Set once the agent failed (died, dropped its control connection,
    /// refused a phase); it took no further part.
    pub failure: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PhaseResult {
    pub index: usize,
    pub name: String,
    /// As planned in the scenario.
    pub duration_secs: f64,
    /// The phase's connection target, all agents together.
    pub connections: u64,
    /// When Start was sent to the agents.
    pub started_unix_ms: u64,
    /// Whether the phase ran to its end on every agent.
    pub interrupted: bool,
    /// The longest ramp of the agents, in seconds.
    #[serde(default)]
    pub ramp_secs: f64,
    /// How long senders sent (the longest of the agents', which start
    /// together): the phase's message rates are per second of this.
    #[serde(default)]
    pub sending_secs: f64,
    /// The phase's `ramp` (connections per second, all agents together);
    /// `None` for an unpaced ramp.
    #[serde(default)]
    pub ramp_asked: Option<f64>,
    /// What the agents achieved together: their connections attempted
    /// during the ramp over the longest ramp; `None` without a ramp.
    #[serde(default)]
    pub ramp_achieved: Option<f64>,
    /// Every agent's totals merged: counters summed, histograms merged.
    pub totals: Totals,
    pub figures: Figures,
    /// The merged per-second series (counters summed across agents; the
    /// per-second latency figures are the approximation documented in
    /// `loadgen::multiproc::merge_interval`, the totals are exact).
    pub intervals: Vec<Interval>,
    /// Whether any agent or the busiest agent host ran out of CPU in the
    /// seconds that carried measurements.
    #[serde(default)]
    pub saturation: Saturation,
    pub agents: Vec<AgentPhase>,
    /// The server's own figures over the phase, when its metrics endpoint
    /// was known (always in `--local` runs; `server_metrics` in the
    /// scenario otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerSeries>,
}

/// What the server's metrics endpoint said during one phase, sampled about
/// once a second from the phase's start to its end.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServerSeries {
    /// The endpoint scraped.
    pub url: String,
    /// Scrapes attempted, failed ones included.
    pub scrapes: u64,
    /// Scrapes that gave no figures (refused, timed out, not an
    /// exposition); the run goes on without them.
    pub scrape_failures: u64,
    /// What the first failed scrape said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// One per successful scrape, in time order.
    pub samples: Vec<ServerSample>,
    /// From the first successful scrape to the last.
    #[serde(default)]
    pub totals: ServerTotals,
}

impl ServerSeries {
    /// The highest finite value of `f` over the samples, `None` when no
    /// sample has one.
    pub fn peak(&self, f: impl Fn(&ServerSample) -> Option<f64>) -> Option<f64> {
        self.samples
            .iter()
            .filter_map(f)
            .filter(|v| v.is_finite())
            .reduce(f64::max)
    }
}

/// One scrape. Rates and CPU are over the span since the previous
/// successful scrape, so the first sample of a phase has none; a figure
/// the server does not export, or a counter that went backwards (a
/// restart), is left out rather than shown as zero.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerSample {
    /// Seconds since the phase started, the clock of the clients'
    /// `intervals[].at_secs`: the middle of the scrape's request and
    /// answer.
    pub at_secs: f64,
    /// Percent of one core (`process_cpu_seconds_total`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f64>,
    /// `process_resident_memory_bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
    /// `chat_connections_open`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<u64>,
    /// `chat_messages_received_total`, all labels together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages_in_per_sec: Option<f64>,
    /// `chat_messages_sent_total`, all labels together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages_out_per_sec: Option<f64>,
    /// `chat_messages_dropped_total`, all labels together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drops_per_sec: Option<f64>,
}

/// Counter increases between the phase's first and last successful
/// scrape; `None` when fewer than two scrapes read the counter or it went
/// backwards.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerTotals {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages_in: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages_out: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drops: Option<f64>,
}

/// One agent's part of one phase.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AgentPhase {
    /// Index into [`Results::agents`].
    pub agent: usize,
    /// The slice of connection numbers this agent had.
    pub first: u64,
    pub count: u64,
    /// `None` when the agent failed before sending its result.
    pub totals: Option<Totals>,
    pub figures: Figures,
    pub intervals: Vec<Interval>,
    pub held_after_ramp: u64,
    /// Cores the agent could use.
    pub threads: usize,
    /// The agent's own judgement of its seconds: its busiest second, and
    /// whether it or its host was saturated.
    #[serde(default)]
    pub saturation: Saturation,
    #[serde(default)]
    pub ramp_secs: f64,
    #[serde(default)]
    pub sending_secs: f64,
    pub processes: u64,
    pub failure: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ThresholdResult {
    /// As written in the scenario, e.g. `rtt_p99_ms < 50`.
    pub expr: String,
    /// `run`, or the name of the phase it belongs to.
    pub scope: String,
    pub metric: String,
    pub op: String,
    pub limit: f64,
    /// The measured value; `None` when nothing measured it (e.g. an rtt
    /// threshold on an idle workload), which fails the threshold.
    pub value: Option<f64>,
    pub passed: bool,
    /// A sentence for people: "rtt_p99_ms was 73.2, 23.2 (46%) over the
    /// limit of 50".
    pub detail: String,
    /// For a failed threshold whose scope had saturated seconds: that the
    /// failure may be the load generator's machine's, not the server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caveat: Option<String>,
}

impl Results {
    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_vec_pretty(self).context("encoding results")?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }

    pub fn read_json(path: &Path) -> anyhow::Result<Results> {
        let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))
    }
}
