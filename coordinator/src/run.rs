//! Drives a scenario's phases across the agents and merges what they
//! measured. Per phase: Prepare to every agent, wait until all are Ready
//! (an agent that cannot take its share says so here, before anything
//! connects), then Start to all at once — a barrier rather than a shared
//! start time, so agents' clocks never matter and the skew is one control
//! message (sub-millisecond on a LAN). While the phase runs, each agent's
//! seconds are merged as they complete; at the end its Done carries the
//! HDR histograms, and the phase's totals are their exact merge.
//!
//! When the server's metrics endpoint is known, a [`Scraper`] samples it
//! from each phase's start to its end, on the same clock.
//!
//! Nothing here waits without a bound: Prepare, the phase itself and the
//! stop after SIGINT or SIGTERM all have deadlines, and an agent that goes
//! silent or drops its connection is reported by name and handled as the
//! scenario's `on_agent_failure` says.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use loadgen::control::{self, Order, PhaseJob, Report};
use loadgen::engine::Outcome;
use loadgen::multiproc::IntervalMerger;
use loadgen::printer::int;
use loadgen::saturation::Saturation;
use loadgen::signals::StopSignal;
use loadgen::stats::{Interval, Totals};
use tokio::sync::{mpsc, watch};
use tracing::warn;

use crate::client::{AgentLink, Event};
use crate::figures;
use crate::live::Live;
use crate::progress::Progress;
use crate::results::{
    AgentPhase, AgentResult, PhaseResult, Results, ScenarioInfo, ThresholdResult,
};
use crate::scenario::schema::{OnAgentFailure, Scenario};
use crate::server_metrics::Scraper;
use crate::split;
use crate::threshold;

/// How long agents get to check a phase.
const PREPARE_WITHIN: Duration = Duration::from_secs(30);
/// Past a phase's duration, drain and the engine's own grace, how long an
/// agent may take to send its result.
const FINISH_SLACK: Duration = Duration::from_secs(30);
/// An agent that sends nothing this long during a phase has failed.
const SILENT_LIMIT: Duration = Duration::from_secs(15);
/// After Stop, how long agents get to close and report.
const STOP_WITHIN: Duration = Duration::from_secs(20);
/// The engine's own wait for closes after the drain (loadgen::engine).
const ENGINE_GRACE: Duration = Duration::from_secs(5);

/// An agent to drive, and how it takes part.
pub struct Member {
    pub link: AgentLink,
    pub weight: f64,
    pub source_ips: Option<String>,
}

/// What the run needs besides the agents.
pub struct RunSetup<'a> {
    pub scenario: &'a Scenario,
    pub info: ScenarioInfo,
    pub urls: Vec<String>,
    pub room_prefix: String,
    /// The server's Prometheus endpoint, sampled during every phase.
    pub server_metrics: Option<promhttp::MetricsUrl>,
}

/// Where a phase stands with one agent.
#[derive(Debug, Clone, PartialEq)]
enum State {
    Idle,
    Preparing,
    Ready,
    Running,
    Done,
}

pub struct Runner<'a> {
    setup: RunSetup<'a>,
    members: Vec<Member>,
    events: mpsc::UnboundedReceiver<(usize, Event)>,
    /// The signal (SIGINT or SIGTERM) that stops the run, once one came.
    stop: watch::Receiver<Option<StopSignal>>,
    progress: &'a Progress,
    live: &'a Live,
    results: Results,
    /// Why each agent failed, once it has.
    failed: Vec<Option<String>>,
    /// Set by a stop signal or an aborting failure: no further phase starts.
    halted: bool,
    /// Set once a stop signal was acted on (its failure line written).
    signalled: bool,
}

impl<'a> Runner<'a> {
    pub fn new(
        setup: RunSetup<'a>,
        members: Vec<Member>,
        events: mpsc::UnboundedReceiver<(usize, Event)>,
        stop: watch::Receiver<Option<StopSignal>>,
        progress: &'a Progress,
        live: &'a Live,
    ) -> Runner<'a> {
        let agents = members
            .iter()
            .map(|m| AgentResult {
                name: m.link.info.name.clone(),
                addr: m.link.addr.clone(),
                weight: m.weight,
                source_ips: m.source_ips.clone(),
                build: m.link.info.build.clone(),
                failure: None,
            })
            .collect();
        let n = members.len();
        let results = Results {
            scenario: setup.info.clone(),
            started_unix_ms: control::unix_ms(),
            agents,
            ..Results::default()
        };
        Runner {
            setup,
            members,
            events,
            stop,
            progress,
            live,
            results,
            failed: vec![None; n],
            halted: false,
            signalled: false,
        }
    }

    /// Runs every phase (until a halt) and returns the judged results.
    pub async fn run(mut self) -> Results {
        self.precheck().await;
        for index in 0..self.setup.scenario.phases.len() {
            if self.halted {
                break;
            }
            if self.stop.borrow().is_some() {
                self.interrupt();
                break;
            }
            let result = self.run_phase(index).await;
            self.results.phases.push(result);
        }
        let results = self.judge();
        // Each agent is idle by now; say goodbye properly.
        futures_util::future::join_all(self.members.into_iter().map(|m| m.link.close())).await;
        results
    }

    fn any_agent_left(&self) -> bool {
        self.failed.iter().any(Option::is_none)
    }

    /// Marks agent `i` failed; under `abort` every other agent is stopped.
    fn fail(&mut self, i: usize, why: String) {
        if self.failed[i].is_some() {
            return;
        }
        let message = format!("agent {} {why}", self.members[i].link.label());
        warn!("{message}");
        self.progress.println(&format!("✗ {message}"));
        self.results.failures.push(message.clone());
        self.results.agents[i].failure = Some(why.clone());
        self.failed[i] = Some(why);
        self.live.agent_failed();
        if self.setup.scenario.on_agent_failure == OnAgentFailure::Abort && !self.halted {
            self.halted = true;
            self.results.interrupted = true;
            self.results
                .failures
                .push("on_agent_failure is abort: stopping the other agents".to_string());
            for (j, m) in self.members.iter().enumerate() {
                if self.failed[j].is_none() {
                    let _ = m.link.send(Order::Stop);
                }
            }
        }
    }

    /// Acts on the stop signal: every agent is stopped and no further
    /// phase starts; the failure line names the signal, so a run stopped
    /// by `docker stop` or systemd is told from one stopped at a terminal.
    fn interrupt(&mut self) {
        if !self.signalled {
            self.signalled = true;
            self.results.failures.push(format!(
                "{}: every agent was stopped; the figures cover the run so far",
                interrupted_by(*self.stop.borrow())
            ));
        }
        self.halted = true;
        self.results.interrupted = true;
        for (j, m) in self.members.iter().enumerate() {
            if self.failed[j].is_none() {
                let _ = m.link.send(Order::Stop);
            }
        }
    }

    async fn run_phase(&mut self, index: usize) -> PhaseResult {
        let scenario = self.setup.scenario;
        let phase = &scenario.phases[index];
        let mut result = PhaseResult {
            index,
            name: phase.name.clone(),
            duration_secs: phase.duration.as_secs_f64(),
            connections: phase.connections,
            ..PhaseResult::default()
        };
        self.live.phase(index, &phase.name, phase.connections);

        let Some((jobs, mut states)) = self.prepare(index).await else {
            result.interrupted = true;
            self.finish_phase(&mut result, &[], &mut Vec::new(), &mut Vec::new());
            return result;
        };

        // The barrier: every share is ready; start them together.
        result.started_unix_ms = control::unix_ms();
        for (i, state) in states.iter_mut().enumerate() {
            if *state == State::Ready {
                if self.members[i].link.send(Order::Start { phase: index }) {
                    *state = State::Running;
                } else {
                    self.fail(i, "dropped its control connection".to_string());
                }
            }
        }
        let started = Instant::now();
        let scraper = self
            .setup
            .server_metrics
            .clone()
            .map(|url| Scraper::start(url, started));
        self.progress.phase_started(
            index,
            scenario.phases.len(),
            &phase.name,
            phase.duration,
            phase.connections,
        );
        let deadline = started + phase.duration + phase.drain + ENGINE_GRACE + FINISH_SLACK;
        let mut outcomes: Vec<Option<Outcome>> = vec![None; self.members.len()];
        let mut series: Vec<Vec<Interval>> = vec![Vec::new(); self.members.len()];
        let mut merger = IntervalMerger::new(self.members.len());
        for (i, s) in states.iter().enumerate() {
            if *s != State::Running {
                result.intervals.extend(merger.end(i));
            }
        }
        let mut last_heard: Vec<Instant> = vec![Instant::now(); self.members.len()];
        let mut stop_deadline: Option<Instant> = None;
        let mut watchdog = tokio::time::interval(Duration::from_secs(1));
        while states.contains(&State::Running) {
            let until = stop_deadline.map_or(deadline, |d| d.min(deadline));
            tokio::select! {
                event = self.events.recv() => {
                    let Some((i, event)) = event else { break };
                    last_heard[i] = Instant::now();
                    match event {
                        Event::Report(Report::Interval { phase: p, interval }) if p == index => {
                            series[i].push(interval.clone());
                            for merged in merger.push(i, &interval) {
                                self.seen_second(&merged, (&states, &jobs, &series), started, phase.connections);
                                result.intervals.push(merged);
                            }
                        }
                        Event::Report(Report::Done { phase: p, outcome }) if p == index => {
                            outcomes[i] = Some(*outcome);
                            states[i] = State::Done;
                            result.intervals.extend(merger.end(i));
                        }
                        Event::Report(Report::Error { message }) => {
                            warn!(agent = %self.members[i].link.label(), "agent says: {message}");
                        }
                        Event::Report(_) => {}
                        Event::Lost(why) => {
                            if states[i] == State::Running {
                                let at = started.elapsed().as_secs_f64();
                                self.fail(i, format!("{why} during phase {:?}, {at:.1} s in", phase.name));
                                states[i] = State::Done;
                                result.intervals.extend(merger.end(i));
                            } else {
                                self.fail(i, why);
                            }
                            if self.halted && stop_deadline.is_none() {
                                stop_deadline = Some(Instant::now() + STOP_WITHIN);
                            }
                        }
                    }
                }
                _ = self.stop.changed(), if stop_deadline.is_none() || !self.results.interrupted => {
                    let signal = *self.stop.borrow();
                    if signal.is_some() {
                        self.progress.println(&format!(
                            "{}: stopping every agent, then the results",
                            interrupted_by(signal)
                        ));
                        self.interrupt();
                        stop_deadline = Some(Instant::now() + STOP_WITHIN);
                    }
                }
                _ = watchdog.tick() => {
                    let now = Instant::now();
                    for i in 0..self.members.len() {
                        if states[i] == State::Running && now.duration_since(last_heard[i]) > SILENT_LIMIT {
                            self.fail(i, format!("sent nothing for {SILENT_LIMIT:?} during phase {:?}", phase.name));
                            states[i] = State::Done;
                            result.intervals.extend(merger.end(i));
                        }
                    }
                    if self.halted && stop_deadline.is_none() {
                        stop_deadline = Some(Instant::now() + STOP_WITHIN);
                    }
                }
                _ = tokio::time::sleep_until(until.into()) => {
                    for (i, state) in states.iter_mut().enumerate() {
                        if *state == State::Running {
                            self.fail(i, format!("did not finish phase {:?} in time", phase.name));
                            *state = State::Done;
                        }
                    }
                }
            }
        }
        result.intervals.extend(merger.finish());
        if let Some(scraper) = scraper {
            result.server = Some(scraper.finish().await);
        }
        result.interrupted = self.halted;
        self.progress.phase_done();
        self.finish_phase(&mut result, &jobs, &mut outcomes, &mut series);
        result
    }

    /// Prepares phase `index` on every live agent until all with a share
    /// are ready; an agent that refuses fails, and (under `continue`) the
    /// others share its part. `None` when the run halted or no agent is
    /// left.
    async fn prepare(&mut self, index: usize) -> Option<(Vec<Option<PhaseJob>>, Vec<State>)> {
        let scenario = self.setup.scenario;
        let phase = &scenario.phases[index];
        let prefix = format!("{}p{}-", self.setup.room_prefix, index + 1);
        let opts = split::phase_opts(&scenario.target, &self.setup.urls, phase, &prefix);
        loop {
            let weights: Vec<f64> = (0..self.members.len())
                .map(|i| {
                    if self.failed[i].is_none() {
                        self.members[i].weight
                    } else {
                        0.0
                    }
                })
                .collect();
            let shares = split::shares(phase.connections, &weights);
            let sources: Vec<Option<String>> =
                self.members.iter().map(|m| m.source_ips.clone()).collect();
            let boot_ids: Vec<Option<String>> = self
                .members
                .iter()
                .map(|m| m.link.info.boot_id.clone())
                .collect();
            let jobs = split::jobs(&opts, &shares, &sources, &boot_ids);
            let mut states = vec![State::Idle; self.members.len()];
            for (i, job) in jobs.iter().enumerate() {
                if let Some(job) = job {
                    if self.members[i].link.send(Order::Prepare {
                        phase: index,
                        job: Box::new(job.clone()),
                    }) {
                        states[i] = State::Preparing;
                    } else {
                        self.fail(i, "dropped its control connection".to_string());
                    }
                }
            }
            let refusals = self.await_ready(index, &mut states).await;
            if !self.any_agent_left() && !self.halted {
                self.results
                    .failures
                    .push(format!("phase {:?}: no agent left to run it", phase.name));
                self.halted = true;
            }
            if self.halted {
                return None;
            }
            if refusals == 0 {
                return Some((jobs, states));
            }
        }
    }

    /// Before the first phase starts, every agent checks its share of every
    /// phase, so an agent that cannot take one says so before anything
    /// connects.
    async fn precheck(&mut self) {
        for index in 0..self.setup.scenario.phases.len() {
            if self.prepare(index).await.is_none() {
                return;
            }
        }
    }

    /// Waits for Ready or Refused from every preparing agent; returns how
    /// many refused (each is failed).
    async fn await_ready(&mut self, index: usize, states: &mut [State]) -> usize {
        let deadline = Instant::now() + PREPARE_WITHIN;
        let mut refusals = 0;
        while states.contains(&State::Preparing) && !self.halted {
            tokio::select! {
                event = self.events.recv() => {
                    let Some((i, event)) = event else { break };
                    match event {
                        Event::Report(Report::Ready { phase, .. }) if phase == index => {
                            states[i] = State::Ready;
                        }
                        Event::Report(Report::Refused { phase, error }) if phase == index => {
                            states[i] = State::Idle;
                            refusals += 1;
                            self.fail(i, format!("cannot take its share of phase {}: {error}", index + 1));
                        }
                        Event::Report(Report::Error { message }) => {
                            warn!(agent = %self.members[i].link.label(), "agent says: {message}");
                        }
                        Event::Report(_) => {}
                        Event::Lost(why) => {
                            states[i] = State::Idle;
                            self.fail(i, why);
                        }
                    }
                }
                _ = self.stop.changed() => {
                    if self.stop.borrow().is_some() {
                        self.interrupt();
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    for (i, s) in states.iter_mut().enumerate() {
                        if *s == State::Preparing {
                            *s = State::Idle;
                            refusals += 1;
                            self.fail(i, format!("did not answer Prepare within {PREPARE_WITHIN:?}"));
                        }
                    }
                }
            }
        }
        refusals
    }

    fn seen_second(
        &self,
        merged: &Interval,
        view: (&[State], &[Option<PhaseJob>], &[Vec<Interval>]),
        started: Instant,
        target: u64,
    ) {
        self.live.second(merged);
        let health = self.health(view.0, view.1, view.2);
        self.progress
            .second(merged, target, started.elapsed(), &health);
    }

    /// One line on the agents (see [`health_line`]).
    fn health(
        &self,
        states: &[State],
        jobs: &[Option<PhaseJob>],
        series: &[Vec<Interval>],
    ) -> String {
        let agents: Vec<AgentHealth> = jobs
            .iter()
            .enumerate()
            .filter_map(|(i, job)| {
                let job = job.as_ref()?;
                Some(AgentHealth {
                    name: &self.members[i].link.info.name,
                    held: series[i].last().map_or(0, |iv| iv.open_connections),
                    share: job.count,
                    failed: self.failed[i].is_some(),
                    running: states[i] == State::Running,
                })
            })
            .collect();
        health_line(&agents)
    }

    fn finish_phase(
        &mut self,
        result: &mut PhaseResult,
        jobs: &[Option<PhaseJob>],
        outcomes: &mut [Option<Outcome>],
        series: &mut [Vec<Interval>],
    ) {
        let mut parts = Vec::new();
        let mut ramps = Vec::new();
        let mut held_after_ramp = 0;
        for (i, job) in jobs.iter().enumerate() {
            let Some(job) = job else { continue };
            let outcome = outcomes.get_mut(i).and_then(Option::take);
            let mut part = AgentPhase {
                agent: i,
                first: job.first,
                count: job.count,
                intervals: series.get_mut(i).map(std::mem::take).unwrap_or_default(),
                failure: self.failed[i].clone(),
                ..AgentPhase::default()
            };
            if let Some(o) = outcome {
                if !o.failures.is_empty() {
                    let why = o.failures.join("; ");
                    self.results
                        .failures
                        .push(format!("agent {}: {why}", self.members[i].link.label()));
                    part.failure.get_or_insert(why);
                }
                part.figures = figures::phase_figures(&o.totals, o.held_after_ramp, o.sending_secs);
                part.held_after_ramp = o.held_after_ramp;
                part.threads = o.threads;
                part.saturation = o.saturation.clone();
                part.ramp_secs = o.ramp_secs;
                part.sending_secs = o.sending_secs;
                part.processes = o.processes;
                held_after_ramp += o.held_after_ramp;
                result.ramp_secs = result.ramp_secs.max(o.ramp_secs);
                result.sending_secs = result.sending_secs.max(o.sending_secs);
                parts.push(o.totals.clone());
                ramps.push((o.ramp_secs, o.ramp_attempted));
                part.totals = Some(o.totals);
            }
            result.agents.push(part);
        }
        result.totals = Totals::merged(&parts);
        let (ramp_secs, attempted) = loadgen::multiproc::merged_ramp(ramps);
        result.ramp_achieved = loadgen::engine::achieved_ramp(ramp_secs, attempted);
        result.ramp_asked = loadgen::verdict::paced(self.setup.scenario.phases[result.index].ramp);
        let series: Vec<(&[Interval], usize)> = result
            .agents
            .iter()
            .map(|a| (a.intervals.as_slice(), a.threads))
            .collect();
        result.saturation = Saturation::judge_parts(&result.intervals, &series);
        result.saturation.cores = self.usable_cores(&result.agents);
        // the agents' machines, not the coordinator's
        result.saturation.host_cores = result
            .agents
            .iter()
            .map(|a| a.saturation.host_cores)
            .max()
            .unwrap_or(0);
        result.figures =
            figures::phase_figures(&result.totals, held_after_ramp, result.sending_secs);
        let phase = &self.setup.scenario.phases[result.index];
        self.results
            .failures
            .extend(phase_problems(&result.totals, phase));
        for expr in &phase.thresholds {
            let mut checked = match threshold::parse(expr) {
                Ok(t) => t.check(&result.figures, &phase.name),
                Err(e) => threshold::unparsable(expr, &phase.name, &e.to_string()),
            };
            checked.caveat = caveat(&checked, [&result.saturation]);
            self.live.threshold(&checked);
            self.results.thresholds.push(checked);
        }
    }

    /// Run-level figures and thresholds, and the verdict.
    fn judge(&mut self) -> Results {
        let parts: Vec<(&Totals, u64, f64)> = self
            .results
            .phases
            .iter()
            .map(|p| {
                let held = p.agents.iter().map(|a| a.held_after_ramp).sum();
                (&p.totals, held, p.sending_secs)
            })
            .collect();
        let mut run = figures::run_figures(&parts);
        run.insert(
            "agents_failed".to_string(),
            self.failed.iter().filter(|f| f.is_some()).count() as f64,
        );
        for expr in &self.setup.scenario.thresholds {
            let mut checked = match threshold::parse(expr) {
                Ok(t) => t.check(&run, "run"),
                Err(e) => threshold::unparsable(expr, "run", &e.to_string()),
            };
            checked.caveat = caveat(&checked, self.results.phases.iter().map(|p| &p.saturation));
            self.live.threshold(&checked);
            self.results.thresholds.push(checked);
        }
        self.results.run_figures = run;
        let all_phases = self.results.phases.len() == self.setup.scenario.phases.len();
        if !all_phases && self.results.failures.is_empty() {
            self.results
                .failures
                .push("not every phase ran".to_string());
        }
        self.results.passed = self.results.failures.is_empty()
            && !self.results.interrupted
            && all_phases
            && self.results.thresholds.iter().all(|t| t.passed);
        self.results.finished_unix_ms = control::unix_ms();
        self.live.finished(self.results.passed);
        std::mem::take(&mut self.results)
    }
}

impl Runner<'_> {
    /// The cores the phase's agents could use together: agents on one host
    /// (one boot id) share its cores, so three agents of two threads each
    /// on a 2-core machine have 2, not 6.
    fn usable_cores(&self, agents: &[AgentPhase]) -> usize {
        // (threads, the host's cores) per host; an agent whose host is
        // unknown (no boot id) counts as a host of its own
        let mut hosts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for (k, a) in agents.iter().enumerate() {
            let host = self
                .members
                .get(a.agent)
                .and_then(|m| m.link.info.boot_id.clone())
                .unwrap_or_else(|| format!("agent {k}"));
            let (threads, cores) = hosts.entry(host).or_default();
            *threads += a.threads.max(1);
            *cores = (*cores).max(a.saturation.host_cores);
        }
        hosts
            .values()
            .map(|&(threads, cores)| {
                if cores > 0 {
                    threads.min(cores)
                } else {
                    threads
                }
            })
            .sum::<usize>()
            .max(1)
    }
}

/// For a failed threshold, that the load generator or its host was
/// saturated in its scope: the failure may be theirs, not the server's.
fn caveat<'a>(
    checked: &ThresholdResult,
    scope: impl IntoIterator<Item = &'a Saturation>,
) -> Option<String> {
    if checked.passed {
        return None;
    }
    let saturated: Vec<String> = scope.into_iter().filter_map(Saturation::describe).collect();
    (!saturated.is_empty()).then(|| format!("but {}", saturated.join("; ")))
}

/// What fails a phase whatever its thresholds, as loadgen's own verdict
/// does: more loss than the phase's `max_loss`, and messages that were not
/// the run's (errors from the server: it was not doing what was asked).
fn phase_problems(t: &Totals, phase: &crate::scenario::schema::Phase) -> Vec<String> {
    let mut problems = Vec::new();
    if t.messages_sent > 0 && t.messages_lost as f64 > phase.max_loss * t.messages_sent as f64 {
        problems.push(format!(
            "phase {}: lost {} of {} messages sent ({} %), more than its max_loss {} allows",
            phase.name,
            int(t.messages_lost),
            int(t.messages_sent),
            loadgen::printer::percent(t.messages_lost as f64 * 100.0 / t.messages_sent as f64),
            phase.max_loss
        ));
    }
    if t.messages_unexpected > 0 {
        problems.push(format!(
            "phase {}: received {} messages that were not the run's (e.g. {}): the server did not do what the workload asked",
            phase.name,
            int(t.messages_unexpected),
            t.unexpected_example.as_deref().unwrap_or("?")
        ));
    }
    problems
}

/// One agent in the progress display.
struct AgentHealth<'a> {
    name: &'a str,
    held: u64,
    share: u64,
    failed: bool,
    running: bool,
}

/// Each agent's connections held and state when there are few; otherwise
/// the counts and the agent holding the smallest part of its share.
fn health_line(agents: &[AgentHealth<'_>]) -> String {
    const LISTED: usize = 6;
    let held = |a: &AgentHealth<'_>| format!("{} {}/{}", a.name, int(a.held), int(a.share));
    if agents.len() <= LISTED {
        let parts: Vec<String> = agents
            .iter()
            .map(|a| {
                let mark = match (a.failed, a.running) {
                    (true, _) => "✗",
                    (false, true) => "✓",
                    (false, false) => "done",
                };
                format!("{} {mark}", held(a))
            })
            .collect();
        return format!("agents: {}", parts.join(" · "));
    }
    let running = agents.iter().filter(|a| a.running && !a.failed).count();
    let failed = agents.iter().filter(|a| a.failed).count();
    let mut line = format!("agents: {running} running");
    if failed > 0 {
        line.push_str(&format!(", {failed} failed"));
    }
    let fewest = agents
        .iter()
        .filter(|a| !a.failed)
        .min_by(|a, b| (a.held * b.share.max(1)).cmp(&(b.held * a.share.max(1))));
    if let Some(a) = fewest {
        line.push_str(&format!("; fewest held: {}", held(a)));
    }
    line
}

/// "interrupted by SIGTERM", or plain "interrupted" should the signal be
/// unknown.
fn interrupted_by(signal: Option<StopSignal>) -> String {
    match signal {
        Some(s) => format!("interrupted by {s}"),
        None => "interrupted".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_threshold_names_the_saturation_of_its_scope() {
        let failed = ThresholdResult {
            passed: false,
            ..ThresholdResult::default()
        };
        let passed = ThresholdResult {
            passed: true,
            ..ThresholdResult::default()
        };
        let busy = Saturation {
            cores: 2,
            judged_secs: 10,
            host_secs: vec![4, 5],
            host_cpu_max: 97.0,
            timed_share: 0.3,
            ..Saturation::default()
        };
        let quiet = Saturation {
            judged_secs: 10,
            ..Saturation::default()
        };
        let said = caveat(&failed, [&quiet, &busy]).unwrap();
        assert!(
            said.starts_with(
                "but its host was saturated in 2 of the 10 measured seconds (second 4-5"
            ),
            "{said}"
        );
        assert!(said.contains("30 % of the timed messages"), "{said}");
        assert_eq!(caveat(&passed, [&busy]), None, "a threshold that held");
        assert_eq!(caveat(&failed, [&quiet]), None, "a quiet scope");
        let problems = phase_problems(
            &Totals {
                messages_sent: 200,
                messages_lost: 3,
                messages_unexpected: 2,
                unexpected_example: Some("an error from the server: \"error: x\"".into()),
                ..Totals::default()
            },
            &serde_yaml::from_str("name: chat\nduration: 10s\nconnections: 10\nmax_loss: 0.01")
                .unwrap(),
        );
        assert_eq!(
            problems,
            [
                "phase chat: lost 3 of 200 messages sent (1.5 %), more than its max_loss 0.01 allows",
                "phase chat: received 2 messages that were not the run's (e.g. an error from the server: \"error: x\"): the server did not do what the workload asked",
            ]
        );
    }

    #[test]
    fn the_interruption_names_its_signal() {
        assert_eq!(
            interrupted_by(Some(StopSignal::Terminate)),
            "interrupted by SIGTERM"
        );
        assert_eq!(
            interrupted_by(Some(StopSignal::Interrupt)),
            "interrupted by SIGINT"
        );
        assert_eq!(interrupted_by(None), "interrupted");
    }

    fn agent(name: &str, held: u64, failed: bool) -> AgentHealth<'_> {
        AgentHealth {
            name,
            held,
            share: 100,
            failed,
            running: !failed,
        }
    }

    #[test]
    fn few_agents_are_listed_by_name() {
        let line = health_line(&[agent("a", 100, false), agent("b", 40, true)]);
        assert_eq!(line, "agents: a 100/100 ✓ · b 40/100 ✗");
    }

    #[test]
    fn many_agents_are_counted_and_the_weakest_named() {
        let names: Vec<String> = (0..8).map(|i| format!("agent-{i}")).collect();
        let mut agents: Vec<AgentHealth<'_>> = names.iter().map(|n| agent(n, 100, false)).collect();
        agents[3].held = 97;
        agents[5].failed = true;
        agents[5].held = 0;
        assert_eq!(
            health_line(&agents),
            "agents: 7 running, 1 failed; fewest held: agent-3 97/100"
        );
    }
}
