//! report.html from a realistic `Results`: two phases of three agents,
//! thirty one-second intervals each, with HDR histograms recorded from
//! synthetic latency samples through loadgen's own types, and the server's
//! side scraped once a second. The page is checked as text, and rendered
//! by a real headless Chromium when one is installed (required when
//! REQUIRE_CHROMIUM=1).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use coordinator::report;
use coordinator::results::{
    AgentPhase, AgentResult, Figures, PhaseResult, Results, ScenarioInfo, ServerSample,
    ServerSeries, ServerTotals, ThresholdResult,
};
use hdrhistogram::Histogram;
use loadgen::multiproc::merge_interval;
use loadgen::saturation::Saturation;
use loadgen::stats::{new_histogram, Interval, IntervalLatency, Latency, LatencyHistogram, Totals};

const HOSTILE_NAME: &str = "smoke <script>alert(1)</script>";
const HOSTILE_AGENT: &str = "agent-\"c\"<b>&";
const PHASE_SECS: u64 = 30;
/// Each fixture phase draws four time charts (connections, messages sent,
/// copies received, latency) and one distribution per latency kind with
/// samples (delivery, round trip, fan-out, connect)...
const CLIENT_CHARTS: usize = 8;
/// ...and six of the server: CPU, memory, connections, messages in, out
/// and drops.
const SERVER_CHARTS: usize = 6;
const CHARTS_PER_PHASE: usize = CLIENT_CHARTS + SERVER_CHARTS;
/// Every time chart's x-axis title.
const TIME_AXIS: &str = "time since phase start (s)";

/// xorshift64*: the same samples every run, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A standard normal value (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(1e-12);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Microseconds, log-normal around `median_ms`; one sample in 400 is
    /// 8–12 times slower, the tail real servers have.
    fn latency_us(&mut self, median_ms: f64) -> u64 {
        let mut v = median_ms * 1000.0 * (0.35 * self.normal()).exp();
        if self.next().is_multiple_of(400) {
            v *= 8.0 + 4.0 * self.unit();
        }
        v.round().max(1.0) as u64
    }
}

struct Plan {
    name: &'static str,
    per_agent: u64,
    ramp_secs: u64,
    /// Seconds (inclusive) in which the server is five times slower.
    spike: Option<(u64, u64)>,
}

/// What one agent does in a phase.
struct AgentPlan {
    connect_failures: u64,
    /// Own messages lost, one per second at the end of the phase.
    lost: u64,
    cpu_percent_max: f64,
}

fn interval_latency(h: &Histogram<u64>) -> IntervalLatency {
    if h.is_empty() {
        return IntervalLatency::default();
    }
    IntervalLatency {
        count: h.len(),
        p50_ms: h.value_at_quantile(0.5) as f64 / 1000.0,
        p99_ms: h.value_at_quantile(0.99) as f64 / 1000.0,
        max_ms: h.max() as f64 / 1000.0,
    }
}

/// One agent's phase as loadgen would report it: a chat room of ten per
/// ten connections, one chatter in ten sending one message a second.
fn agent_phase(rng: &mut Rng, plan: &Plan, agent: usize, ap: &AgentPlan) -> AgentPhase {
    let mut whole: BTreeMap<Latency, Histogram<u64>> = Latency::ALL
        .into_iter()
        .map(|k| (k, new_histogram()))
        .collect();
    let mut totals = Totals {
        elapsed_secs: PHASE_SECS as f64,
        ..Totals::default()
    };
    let mut intervals = Vec::new();
    let mut open = 0u64;
    let mut held_after_ramp = 0;
    let mut failures_left = ap.connect_failures;
    let mut attempted = 0u64;
    for t in 1..=PHASE_SECS {
        let mut hs: BTreeMap<Latency, Histogram<u64>> = Latency::ALL
            .into_iter()
            .map(|k| (k, new_histogram()))
            .collect();
        let slow = match plan.spike {
            Some((from, to)) if (from..=to).contains(&t) => 5.0,
            _ => 1.0,
        };
        // Attempts follow the ramp; the agent's failures come one a second
        // from the start and are not retried.
        let due = (plan.per_agent * t / plan.ramp_secs).min(plan.per_agent);
        let attempts = due - attempted;
        attempted = due;
        let failed = attempts.min(failures_left).min(1);
        failures_left -= failed;
        let new = attempts - failed;
        for _ in 0..new {
            hs.get_mut(&Latency::Connect)
                .unwrap()
                .record(rng.latency_us(2.5 * slow))
                .unwrap();
        }
        open += new;
        if t == plan.ramp_secs {
            held_after_ramp = open;
        }
        let sent = open / 10;
        let lost = if t + ap.lost > PHASE_SECS { 1 } else { 0 }.min(sent);
        let back = sent - lost;
        for _ in 0..back {
            let rtt = rng.latency_us(1.2 * slow);
            hs.get_mut(&Latency::RoundTrip)
                .unwrap()
                .record(rtt)
                .unwrap();
            // delivery: every timed copy, as a recorder derives it
            hs.get_mut(&Latency::Delivery).unwrap().record(rtt).unwrap();
            for _ in 0..9 {
                let fanout = rng.latency_us(1.4 * slow);
                hs.get_mut(&Latency::Fanout)
                    .unwrap()
                    .record(fanout)
                    .unwrap();
                hs.get_mut(&Latency::Delivery)
                    .unwrap()
                    .record(fanout)
                    .unwrap();
            }
        }
        let received = back * 10;
        let iv = Interval {
            secs: 1.0,
            at_secs: t as f64,
            connects_attempted: attempts,
            connects_ok: new,
            connect_errors: failed,
            closes_unexpected: 0,
            messages_sent: sent,
            messages_received: received,
            copies_received: received,
            bytes_sent: sent * 64,
            bytes_received: received * 64,
            lost,
            cpu_percent: ap.cpu_percent_max,
            host_cpu_percent: 60.0,
            steal_percent: 0.0,
            open_connections: open,
            latencies: hs
                .iter()
                .map(|(k, h)| (k.as_str().to_string(), interval_latency(h)))
                .collect(),
        };
        totals.connects_attempted += iv.connects_attempted;
        totals.connects_ok += iv.connects_ok;
        if failed > 0 {
            *totals.connect_errors.entry("timeout".into()).or_default() += failed;
        }
        totals.messages_sent += sent;
        totals.messages_received += received;
        totals.copies_received += received;
        totals.bytes_sent += sent * 64;
        totals.bytes_received += received * 64;
        totals.messages_lost += lost;
        totals.peak_connections = totals.peak_connections.max(open);
        for (k, h) in &hs {
            whole.get_mut(k).unwrap().add(h).unwrap();
        }
        intervals.push(iv);
    }
    totals.open_connections = open;
    totals.closes_by_us = open;
    totals.latencies = whole
        .iter()
        .map(|(k, h)| (k.as_str().to_string(), LatencyHistogram::from_histogram(h)))
        .collect();
    AgentPhase {
        agent,
        first: agent as u64 * plan.per_agent,
        count: plan.per_agent,
        figures: figures_of(&totals),
        totals: Some(totals),
        held_after_ramp,
        saturation: Saturation::judge(&intervals, 2),
        intervals,
        threads: 2,
        processes: 1,
        failure: None,
        ..AgentPhase::default()
    }
}

fn figures_of(t: &Totals) -> Figures {
    let p99 = |k: Latency| t.latency(k).map_or(0.0, |h| h.p99_ms);
    Figures::from([
        ("connections_held".to_string(), t.open_connections as f64),
        ("messages_lost".to_string(), t.messages_lost as f64),
        ("rtt_p99_ms".to_string(), p99(Latency::RoundTrip)),
        ("connect_p99_ms".to_string(), p99(Latency::Connect)),
    ])
}

/// The server's side of a phase as the coordinator scrapes it: a sample
/// 50 ms into each second from the phase's start until a second after
/// the clients' last interval (the closes), the counters following what
/// the clients did.
fn server_series(phase: &PhaseResult, spike: Option<(u64, u64)>) -> ServerSeries {
    let mut samples = Vec::new();
    let mut totals = ServerTotals {
        cpu_seconds: Some(0.0),
        messages_in: Some(0.0),
        messages_out: Some(0.0),
        drops: Some(0.0),
    };
    let add = |total: &mut Option<f64>, v: Option<f64>| {
        if let (Some(t), Some(v)) = (total.as_mut(), v) {
            *t += v;
        }
    };
    for i in 0..=PHASE_SECS + 1 {
        let iv = (1..=PHASE_SECS)
            .contains(&i)
            .then(|| &phase.intervals[i as usize - 1]);
        let open = iv.map_or(0, |iv| iv.open_connections);
        let slow = matches!(spike, Some((from, to)) if (from..=to).contains(&i));
        let (cpu, msgs_in, msgs_out, drops) = if i == 0 {
            (None, None, None, None)
        } else {
            let sent = iv.map_or(0, |iv| iv.messages_sent) as f64;
            let received = iv.map_or(0, |iv| iv.messages_received) as f64;
            let cpu = (2.0 + open as f64 / 150.0 + received / 500.0) * if slow { 1.6 } else { 1.0 };
            (
                Some(cpu),
                Some(sent),
                Some(received + open as f64 / 60.0),
                Some(if slow { 3.0 } else { 0.0 }),
            )
        };
        add(&mut totals.cpu_seconds, cpu.map(|c| c / 100.0));
        add(&mut totals.messages_in, msgs_in);
        add(&mut totals.messages_out, msgs_out);
        add(&mut totals.drops, drops);
        samples.push(ServerSample {
            at_secs: i as f64 + 0.05,
            cpu_percent: cpu,
            rss_bytes: Some(18 * 1048576 + open * 11 * 1024),
            connections: Some(open),
            messages_in_per_sec: msgs_in,
            messages_out_per_sec: msgs_out,
            drops_per_sec: drops,
        });
    }
    ServerSeries {
        url: "http://127.0.0.1:9090/metrics".to_string(),
        scrapes: samples.len() as u64 + 1,
        scrape_failures: 1,
        first_error: Some("no answer within 2s <slow>".to_string()),
        samples,
        totals,
    }
}

fn phase(rng: &mut Rng, index: usize, plan: &Plan, agents: [AgentPlan; 3]) -> PhaseResult {
    let parts: Vec<AgentPhase> = agents
        .iter()
        .enumerate()
        .map(|(i, ap)| agent_phase(rng, plan, i, ap))
        .collect();
    let totals = Totals::merged(parts.iter().filter_map(|a| a.totals.as_ref()));
    let intervals: Vec<Interval> = (0..PHASE_SECS as usize)
        .map(|i| {
            let mut merged = Interval::default();
            for a in &parts {
                merge_interval(&mut merged, &a.intervals[i]);
            }
            merged
        })
        .collect();
    let series: Vec<(&[Interval], usize)> = parts
        .iter()
        .map(|a| (a.intervals.as_slice(), a.threads))
        .collect();
    let saturation = Saturation::judge_parts(&intervals, &series);
    let mut phase = PhaseResult {
        index,
        name: plan.name.to_string(),
        duration_secs: PHASE_SECS as f64,
        connections: plan.per_agent * 3,
        started_unix_ms: 1_760_000_000_000 + index as u64 * 35_000,
        interrupted: false,
        figures: figures_of(&totals),
        totals,
        intervals,
        saturation,
        agents: parts,
        ramp_secs: 3.0,
        ramp_asked: None,
        ramp_achieved: None,
        sending_secs: PHASE_SECS as f64 - 3.0,
        server: None,
    };
    phase.server = Some(server_series(&phase, plan.spike));
    phase
}

fn quiet(cpu: f64) -> AgentPlan {
    AgentPlan {
        connect_failures: 0,
        lost: 0,
        cpu_percent_max: cpu,
    }
}

fn fixture() -> Results {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let warm_up = phase(
        &mut rng,
        0,
        &Plan {
            name: "warm-up",
            per_agent: 500,
            ramp_secs: 10,
            spike: None,
        },
        [quiet(38.0), quiet(41.5), quiet(44.0)],
    );
    let mut peak = phase(
        &mut rng,
        1,
        &Plan {
            name: "peak",
            per_agent: 2_000,
            ramp_secs: 15,
            spike: Some((19, 22)),
        },
        [
            quiet(96.0),
            AgentPlan {
                connect_failures: 12,
                lost: 0,
                cpu_percent_max: 101.0,
            },
            AgentPlan {
                connect_failures: 0,
                lost: 12,
                cpu_percent_max: 186.0, // two threads: saturated
            },
        ],
    );
    // the peak's ramp fell short of what was asked
    peak.ramp_asked = Some(2000.0);
    peak.ramp_achieved = Some(1500.0);
    let run_totals = Totals::merged([&warm_up.totals, &peak.totals]);
    let rtt = run_totals.latency(Latency::RoundTrip).unwrap().p99_ms;
    let threshold = |scope: &str, expr: &str, value: Option<f64>, passed: bool, detail: &str| {
        let mut words = expr.split(' ');
        ThresholdResult {
            expr: expr.to_string(),
            scope: scope.to_string(),
            metric: words.next().unwrap().to_string(),
            op: words.next().unwrap().to_string(),
            limit: words.next().unwrap().parse().unwrap(),
            value,
            passed,
            detail: detail.to_string(),
            caveat: None,
        }
    };
    let agent = |name: &str, addr: &str| AgentResult {
        name: name.to_string(),
        addr: addr.to_string(),
        weight: 1.0,
        source_ips: Some("127.0.0.2-127.0.0.9".to_string()),
        build: "loadgen 0.1.0".to_string(),
        failure: None,
    };
    Results {
        scenario: ScenarioInfo {
            name: HOSTILE_NAME.to_string(),
            description:
                "Two phases on three local agents:\na warm-up, then a peak with a slow spell."
                    .to_string(),
            file: "scenarios/smoke.yaml".to_string(),
            targets: vec!["ws://127.0.0.1:8080/".to_string()],
            workload: "chat-binary".to_string(),
            local: true,
        },
        started_unix_ms: 1_760_000_000_000,
        finished_unix_ms: 1_760_000_066_500,
        interrupted: false,
        passed: false,
        agents: vec![
            agent("agent-a", "127.0.0.1:7001"),
            agent("agent-b", "127.0.0.1:7002"),
            agent(HOSTILE_AGENT, "127.0.0.1:7003"),
        ],
        run_figures: figures_of(&run_totals),
        thresholds: vec![
            threshold(
                "run",
                "rtt_p99_ms < 50",
                Some(rtt),
                true,
                &format!("rtt_p99_ms was {rtt:.1}, under the limit of 50"),
            ),
            threshold(
                "run",
                "messages_lost == 0",
                Some(run_totals.messages_lost as f64),
                false,
                &format!(
                    "messages_lost was {}, {} over the limit of 0",
                    run_totals.messages_lost, run_totals.messages_lost
                ),
            ),
            threshold(
                "peak",
                "connections_held >= 5900",
                Some(peak.totals.open_connections as f64),
                true,
                "connections_held held",
            ),
            threshold(
                "peak",
                "echo_p99_ms < 10",
                None,
                false,
                "nothing measured echo_p99_ms <on this workload>",
            ),
        ],
        phases: vec![warm_up, peak],
        failures: vec!["agent-b: 12 connects timed out</li><li>injected".to_string()],
    }
}

/// No `NaN` or `inf` token anywhere: what Rust prints for a non-finite
/// f64 that slipped into a table or an SVG coordinate.
fn assert_only_finite_numbers(html: &str) {
    for token in html.split(|c: char| !c.is_ascii_alphanumeric()) {
        assert!(
            token != "NaN" && token != "inf",
            "non-finite number in the page: {token}"
        );
    }
}

/// Nothing is loaded from anywhere: every src/href is a fragment, no CSS
/// import or url(), no absolute URL at all.
fn assert_self_contained(html: &str) {
    for attr in ["src=", "href=", "srcset=", "action=", "data="] {
        for (at, _) in html.match_indices(attr) {
            let value = html[at + attr.len()..].trim_start_matches(['"', '\'']);
            assert!(
                value.starts_with('#'),
                "external reference: {}",
                &html[at..(at + 60).min(html.len())]
            );
        }
    }
    // URLs shown as text (the server's metrics endpoint, in <code>) are
    // not loaded; anywhere else they would be.
    let mut outside_code = String::new();
    let mut rest = html;
    while let Some(at) = rest.find("<code>") {
        outside_code.push_str(&rest[..at]);
        let text = &rest[at..];
        let end = text.find("</code>").expect("<code> closed");
        let inside = &text["<code>".len()..end];
        assert!(!inside.contains('<'), "markup in <code>: {inside}");
        rest = &text[end..];
    }
    outside_code.push_str(rest);
    for external in [
        "http://", "https://", "url(", "@import", "<link", "<script", "<iframe",
    ] {
        assert!(!outside_code.contains(external), "page contains {external}");
    }
}

fn section<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let from = html.find(start).unwrap_or_else(|| panic!("no {start}"));
    let to = html[from..].find(end).unwrap_or_else(|| panic!("no {end}")) + from;
    &html[from..to]
}

#[test]
fn fixture_report_has_every_chart_table_and_escaped_text() {
    let results = fixture();
    let html = report::render(&results);

    assert_eq!(html.matches("<svg").count(), 2 * CHARTS_PER_PHASE);
    for phase in html.split("<section class=\"phase\"").skip(1) {
        assert_eq!(phase.matches("<svg").count(), CHARTS_PER_PHASE);
        let server = section(
            phase,
            "<div class=\"server\"",
            "<h3>Latency distributions</h3>",
        );
        assert_eq!(server.matches("<svg").count(), SERVER_CHARTS);
        // every chart drew at least one line and has an accessible name
        for svg in phase.split("<svg").skip(1) {
            assert!(svg.contains("<polyline"), "{}", &svg[..200]);
            assert!(svg.contains("aria-labelledby=") && svg.contains("<title id="));
        }
        assert!(!phase.contains("no samples"));
    }
    assert_only_finite_numbers(&html);
    assert_self_contained(&html);

    // sections in order
    let at = |s: &str| html.find(s).unwrap_or_else(|| panic!("no {s}"));
    assert!(at("class=\"verdict fail\"") < at("id=\"thresholds\""));
    assert!(at("id=\"thresholds\"") < at("id=\"phase-0\""));
    assert!(at("id=\"phase-0\"") < at("id=\"phase-1\""));
    assert!(at("id=\"phase-1\"") < at("id=\"agents\""));
    assert!(html.contains(">FAIL</div>"));

    // thresholds: one row each, escaped, values and verdicts
    let thresholds = section(&html, "<table class=\"thresholds\">", "</table>");
    assert_eq!(thresholds.matches("<tr").count(), 1 + 4);
    assert_eq!(thresholds.matches("<tr class=\"failed\">").count(), 2);
    assert!(thresholds.contains("<code>rtt_p99_ms &lt; 50</code>"));
    assert!(thresholds.contains("<code>connections_held &gt;= 5900</code>"));
    assert!(thresholds.contains("<td class=\"num\">5,988</td>"));
    assert!(thresholds.contains("<td class=\"num\">12</td>"));
    assert!(thresholds.contains("not measured"));
    assert!(thresholds.contains("&lt;on this workload&gt;"));

    // hostile text is text
    assert!(html.contains("smoke &lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("agent-&quot;c&quot;&lt;b&gt;&amp;"));
    assert!(html.contains("timed out&lt;/li&gt;&lt;li&gt;injected"));
    assert!(!html.contains("<li>injected"));

    // figures for people
    let peak = section(&html, "id=\"phase-1\"", "</section>");
    assert!(peak.contains("6,000 target"), "target with separators");
    assert!(peak.contains("<div class=\"v\">5,988</div>"), "held at end");
    assert!(peak.contains("timeout <b>12</b>"));
    for kind in ["connect", "round trip", "fan-out"] {
        assert!(
            peak.contains(&format!("<td class=\"text\">{kind}</td>")),
            "{kind}"
        );
    }
    assert!(!peak.contains("<td class=\"text\">echo</td>"));
    // only agent c in the peak was saturated (186 % of 2 threads)
    assert_eq!(html.matches(": its latencies describe itself").count(), 1);
    let agents = section(peak, "<table class=\"agents\">", "</table>");
    assert!(agents.contains("4,000..6,000"), "agent c's slice");
    assert!(agents.contains("186 %"));
    // ...and the phase says so above its figures, with the seconds and
    // the share of the timed messages in them
    let saturated = section(peak, "<p class=\"warn\">Saturated: ", "</p>");
    assert!(
        saturated.contains("the load generator was CPU-saturated in"),
        "{saturated}"
    );
    assert!(saturated.contains("of the timed messages"), "{saturated}");
    let warm_up = section(&html, "id=\"phase-0\"", "</section>");
    assert!(!warm_up.contains("Saturated: "));
    // the ramp asked beside the ramp achieved, flagged when short
    assert!(
        peak.contains("<div class=\"k\">ramp achieved</div><div class=\"v\">1,500/s</div><div class=\"sub\"><span class=\"warn\">asked 2,000/s</span>; over 3.0 s</div>"),
        "{peak}"
    );
    assert!(html.contains("2025-10-09 08:53:20 UTC"));
    assert!(html.contains("1m 7s"));
}

#[test]
fn report_from_results_json_is_the_same_page() {
    let results = fixture();
    let json = serde_json::to_string(&results).unwrap();
    let back: Results = serde_json::from_str(&json).unwrap();
    assert_eq!(report::render(&back), report::render(&results));
}

#[test]
fn empty_results_render_without_charts_or_non_numbers() {
    let html = report::render(&Results::default());
    assert_eq!(html.matches("<svg").count(), 0);
    assert!(html.contains("No phase ran."));
    assert!(html.contains("The scenario set no thresholds."));
    assert!(html.contains(">FAIL</div>"));
    assert_only_finite_numbers(&html);
    assert_self_contained(&html);
}

#[test]
fn idle_empty_and_broken_phases_say_no_samples() {
    let mut r = fixture();
    // phase 0: nothing arrived at all
    r.phases[0].intervals.clear();
    r.phases[0].totals = Totals::default();
    r.phases[0].agents[1].totals = None;
    r.phases[0].agents[1].failure = Some("control connection closed: <eof>".into());
    r.phases[0].agents[2].agent = 17; // not in the agent list
                                      // and the server's endpoint never answered
    r.phases[0].server = Some(ServerSeries {
        url: "http://10.0.0.9:9090/metrics?x=<y>".to_string(),
        scrapes: 12,
        scrape_failures: 12,
        first_error: Some("connecting: Connection refused <os error 111>".to_string()),
        ..ServerSeries::default()
    });
    // phase 1: an idle workload: no messages, only connect latency
    let idle = &mut r.phases[1];
    idle.totals.messages_sent = 0;
    idle.totals.messages_received = 0;
    idle.totals.copies_received = 0;
    for kind in [Latency::RoundTrip, Latency::Fanout, Latency::Delivery] {
        idle.totals
            .latencies
            .insert(kind.as_str().into(), LatencyHistogram::default());
    }
    for iv in &mut idle.intervals {
        iv.messages_sent = 0;
        iv.messages_received = 0;
        iv.copies_received = 0;
        for kind in [Latency::RoundTrip, Latency::Fanout, Latency::Delivery] {
            iv.latencies
                .insert(kind.as_str().into(), IntervalLatency::default());
        }
    }
    // and values no run should produce, from a hand-edited file
    idle.intervals[3].at_secs = f64::NAN;
    idle.intervals[4].secs = 0.0;
    idle.intervals[5].open_connections = u64::MAX;
    idle.totals.elapsed_secs = f64::INFINITY;
    idle.duration_secs = f64::NAN;
    idle.agents[0].saturation.loadgen_cpu_max = f64::NAN;
    idle.agents[0].threads = 0;
    idle.figures.insert("weird".into(), f64::NEG_INFINITY);
    let server = idle.server.as_mut().unwrap();
    server.samples[2].at_secs = f64::NAN;
    server.samples[3].cpu_percent = Some(f64::INFINITY);
    server.samples[4].rss_bytes = Some(u64::MAX);
    server.totals.cpu_seconds = Some(f64::NAN);
    r.thresholds[0].value = Some(f64::NAN);

    let html = report::render(&r);
    assert_only_finite_numbers(&html);
    assert_self_contained(&html);

    let empty = section(&html, "id=\"phase-0\"", "</section>");
    assert_eq!(empty.matches("<svg").count(), 0);
    // four time charts, one distribution placeholder, the latency table
    assert_eq!(empty.matches("no samples").count(), 6);
    let server = section(
        empty,
        "id=\"phase-0-server\"",
        "<h3>Latency distributions</h3>",
    );
    assert!(
        server.contains("12 scrapes, <span class=\"warn\">12 failed</span>"),
        "{server}"
    );
    assert!(
        server.contains("Connection refused &lt;os error 111&gt;"),
        "{server}"
    );
    assert!(server.contains("<code>http://10.0.0.9:9090/metrics?x=&lt;y&gt;</code>"));
    assert!(empty.contains("No scrape succeeded"));
    assert!(empty.contains("&lt;eof&gt;"));
    assert!(empty.contains("agent #17"));
    let failed_row = section(empty, "<tr class=\"failed\">", "</tr>");
    assert!(failed_row.contains("agent-b"));
    assert!(
        failed_row.contains("<td class=\"num\">–</td>"),
        "{failed_row}"
    );

    let idle = section(&html, "id=\"phase-1\"", "</section>");
    // connections, connect latency over time, connect distribution, and
    // the server's
    assert_eq!(idle.matches("<svg").count(), 3 + SERVER_CHARTS);
    assert!(idle.contains("no messages sent in this phase"));
    assert!(idle.contains("no messages received in this phase"));
    assert!(idle.contains("connect p99"));
    assert!(!idle.contains("round trip p99"));
}

/// The `<svg>...</svg>` elements of `html`, in page order.
fn charts(html: &str) -> Vec<&str> {
    html.split("<svg")
        .skip(1)
        .map(|s| &s[..s.find("</svg>").expect("closed svg")])
        .collect()
}

/// The legend entries of a chart.
fn legend(svg: &str) -> Vec<&str> {
    let g = section(svg, "<g class=\"legend\"", "</g>");
    g.split("</text>")
        .filter_map(|t| t.rsplit_once('>').map(|(_, name)| name))
        .filter(|n| !n.is_empty())
        .collect()
}

/// Every (x, y) of every polyline of a chart, in SVG units.
fn line_points(svg: &str) -> Vec<(f64, f64)> {
    svg.split("<polyline")
        .skip(1)
        .flat_map(|p| {
            let coords = section(p, "points=\"", "\"/>").trim_start_matches("points=\"");
            coords.split(' ').map(|pair| {
                let (x, y) = pair.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
        })
        .collect()
}

/// The plot frame's top and bottom, from `<path d="M{l} {t}V{b}H{r}"`.
fn plot_top_bottom(svg: &str) -> (f64, f64) {
    let at = svg.find("<path d=\"M").expect("a frame") + "<path d=\"M".len();
    let d = svg[at..].split('"').next().unwrap();
    let (_, rest) = d.split_once(' ').unwrap();
    let (top, rest) = rest.split_once('V').unwrap();
    let bottom = rest.split_once('H').unwrap().0;
    (top.parse().unwrap(), bottom.parse().unwrap())
}

#[test]
fn sent_and_received_messages_have_an_axis_each() {
    let html = report::render(&fixture());
    for (slot, phase) in html.split("<section class=\"phase\"").skip(1).enumerate() {
        let all = charts(phase);
        let with = |name: &str| -> Vec<&&str> {
            all.iter()
                .filter(|svg| legend(svg).contains(&name))
                .collect()
        };
        let (sent, received) = (with("sent"), with("received"));
        assert_eq!(sent.len(), 1, "phase {slot}: one chart of messages sent");
        assert_eq!(
            received.len(),
            1,
            "phase {slot}: one chart of messages received"
        );
        assert_ne!(
            sent[0], received[0],
            "phase {slot}: sent and received share an axis"
        );
        // Each line uses its axis: from the ramp's first second to the
        // steady state it climbs most of the plot's height. (On one axis
        // with the received copies, ten times as many, sent stayed in the
        // bottom tenth.)
        for svg in [sent[0], received[0]] {
            let (top, bottom) = plot_top_bottom(svg);
            let ys: Vec<f64> = line_points(svg).iter().map(|p| p.1).collect();
            let highest = ys.iter().copied().fold(f64::INFINITY, f64::min);
            assert!(
                bottom - highest > 0.6 * (bottom - top),
                "phase {slot}: {:?}: the line reaches {highest} of {top}..{bottom}",
                legend(svg)
            );
        }
    }
}

#[test]
fn every_time_chart_of_a_phase_spans_the_same_seconds() {
    let mut r = fixture();
    // An idle workload: connect latency is measured during the ramp only,
    // so a latency chart fitted to its own data would end there.
    for kind in [Latency::RoundTrip, Latency::Fanout, Latency::Delivery] {
        r.phases[1]
            .totals
            .latencies
            .insert(kind.as_str().into(), LatencyHistogram::default());
    }
    for iv in &mut r.phases[1].intervals {
        iv.messages_sent = 0;
        iv.messages_received = 0;
        iv.copies_received = 0;
        for kind in [Latency::RoundTrip, Latency::Fanout, Latency::Delivery] {
            iv.latencies
                .insert(kind.as_str().into(), IntervalLatency::default());
        }
    }
    let html = report::render(&r);
    let phases: Vec<Vec<&str>> = html
        .split("<section class=\"phase\"")
        .skip(1)
        .map(|phase| {
            charts(phase)
                .into_iter()
                .filter(|svg| svg.contains(&format!(">{TIME_AXIS}</text>")))
                .collect()
        })
        .collect();
    for (slot, timed) in phases.iter().enumerate() {
        // Same ticks at the same places: the same x range, drawn the same.
        let axes: Vec<&str> = timed
            .iter()
            .map(|svg| section(svg, "<g class=\"x-axis\">", "</g>"))
            .collect();
        for (i, axis) in axes.iter().enumerate() {
            assert_eq!(
                *axis,
                axes[0],
                "phase {slot}: time chart {i} ({:?}) has other x ticks than the first",
                legend(timed[i])
            );
        }
        // ... from the phase's start to the server's last scrape, 31.05 s
        // in, past the clients' last interval at 30 s.
        assert!(axes[0].contains(">0</text>"), "{}", axes[0]);
        assert!(axes[0].contains(">30</text>"), "{}", axes[0]);
    }
    for (slot, timed) in phases.iter().enumerate() {
        // the clients' and the server's
        assert!(
            timed.len() >= 2 + SERVER_CHARTS,
            "phase {slot}: {:?}",
            timed.iter().map(|s| legend(s)).collect::<Vec<_>>()
        );
    }
}

#[test]
fn the_server_section_shows_the_server_beside_the_clients() {
    let html = report::render(&fixture());
    let peak = section(&html, "id=\"phase-1\"", "</section>");
    let server = section(
        peak,
        "id=\"phase-1-server\"",
        "<h3>Latency distributions</h3>",
    );
    assert!(server.contains("<h3>Server</h3>"));
    assert!(server.contains("<code>http://127.0.0.1:9090/metrics</code>"));
    assert!(server.contains("33 scrapes, <span class=\"warn\">1 failed</span>"));
    assert!(server.contains("no answer within 2s &lt;slow&gt;"));
    for title in [
        "Server CPU",
        "Server memory",
        "Server connections",
        "Server messages in per second",
        "Server messages out per second",
        "Server drops per second",
    ] {
        assert!(server.contains(&format!("<h4>{title}</h4>")), "{title}");
    }
    let svgs = charts(server);
    assert_eq!(svgs.len(), SERVER_CHARTS);
    // beside the clients' view of the same figure, dashed
    let legends: Vec<Vec<&str>> = svgs.iter().map(|s| legend(s)).collect();
    assert_eq!(legends[0], ["server", "agents (all)"]);
    assert_eq!(legends[1], ["resident"]);
    assert_eq!(legends[2], ["server", "clients (open)", "target 6,000"]);
    assert_eq!(legends[3], ["server in", "clients sent"]);
    assert_eq!(
        legends[4],
        [
            "server out",
            "clients received (every message, notices too)"
        ]
    );
    assert_eq!(legends[5], ["dropped"]);
    // key figures: connections as the clients held them, the spike's drops
    assert!(
        server.contains("<div class=\"v\">5,988</div>"),
        "peak connections"
    );
    assert!(
        server.contains("<div class=\"v\">12</div>"),
        "4 s of 3 drops"
    );
    // hover read-outs in the axes' units
    assert!(svgs[0].contains(" %\n") || svgs[0].contains(" %</title>"));
    assert!(svgs[1].contains(" MiB"));
}

#[test]
fn write_html_writes_the_page_and_names_a_bad_path() {
    let dir = scratch_dir("write");
    let results = fixture();
    let path = dir.join("report.html");
    report::write_html(&results, &path).unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        report::render(&results)
    );
    let bad = dir.join("missing-dir").join("report.html");
    let err = report::write_html(&results, &bad).unwrap_err();
    assert!(format!("{err:#}").contains("missing-dir"), "{err:#}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("coordinator-report-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---- the headless browser check ----

const CHROMIUM_LIMIT: Duration = Duration::from_secs(60);

fn find_chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|p| p.is_file())
}

/// Runs chromium with its own process group, killing the group if it has
/// not finished within [`CHROMIUM_LIMIT`] (and any helper it left behind
/// once it has).
fn run_chromium(chromium: &Path, dir: &Path, args: &[String], stdout: &Path) -> ExitStatus {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--hide-scrollbars",
            "--disable-extensions",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(stdout).unwrap())
        .stderr(std::fs::File::create(dir.join("chromium-stderr.txt")).unwrap())
        .process_group(0)
        .spawn()
        .unwrap();
    let group = child.id() as i32;
    let deadline = Instant::now() + CHROMIUM_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // SAFETY: kill(2) on the process group this test created; it has no
    // memory-safety preconditions.
    unsafe {
        libc::kill(-group, libc::SIGKILL);
    }
    match status {
        Some(s) => s,
        None => {
            let _ = child.wait();
            panic!(
                "chromium did not finish within {CHROMIUM_LIMIT:?}; stderr in {}",
                dir.display()
            );
        }
    }
}

/// Counts alerts from the very start, then (at the end of the body)
/// writes what the browser made of the page into a `<pre>` that
/// --dump-dom shows.
const ALERT_TRAP: &str =
    "<script>window.__alerts = 0; window.alert = function () { window.__alerts++; };</script>";
const PROBE: &str = r#"<script>
(function () {
  var out = { svgs: [], scripts: document.scripts.length, alerts: window.__alerts,
              literalTitle: document.title.indexOf('<script>') >= 0,
              height: document.documentElement.scrollHeight,
              verdict: (document.querySelector('.verdict') || {}).textContent || '' };
  document.querySelectorAll('svg').forEach(function (s) {
    var r = s.getBoundingClientRect();
    var drawn = 0, lines = 0, series = {};
    s.querySelectorAll('polyline').forEach(function (p) {
      lines++;
      var b = p.getBBox();
      if (b.width > 0 || b.height > 0) drawn++;
      var name = p.getAttribute('data-series') || '';
      series[name] = Math.max(series[name] || 0, p.getBoundingClientRect().height);
    });
    var frame = s.querySelector('path');
    var ticks = [];
    s.querySelectorAll('g.x-axis line').forEach(function (l) {
      ticks.push([l.nextElementSibling ? l.nextElementSibling.textContent : '',
                  Math.round(l.getBoundingClientRect().left * 10) / 10]);
    });
    var section = s.closest('section');
    out.svgs.push({ w: r.width, h: r.height, lines: lines, drawn: drawn,
                    texts: s.querySelectorAll('text').length,
                    time: s.classList.contains('time'), server: !!s.closest('.server'),
                    phase: section ? section.id : '', left: Math.round(r.left * 10) / 10,
                    plot: frame ? frame.getBoundingClientRect().height : 0,
                    series: series, ticks: ticks });
  });
  var pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>"#;

#[test]
fn the_page_renders_in_a_headless_browser() {
    let Some(chromium) = find_chromium() else {
        if std::env::var("REQUIRE_CHROMIUM").as_deref() == Ok("1") {
            panic!("REQUIRE_CHROMIUM=1 but no chromium on PATH (apt-get install -y chromium)");
        }
        eprintln!("skipped: chromium is not installed (set REQUIRE_CHROMIUM=1 to fail instead)");
        return;
    };
    let dir = scratch_dir("browser");
    let html = report::render(&fixture());
    let probed = html
        .replacen("<head>", &format!("<head>{ALERT_TRAP}"), 1)
        .replacen("</body>", &format!("{PROBE}</body>"), 1);
    let page = dir.join("report.html");
    std::fs::write(&page, &probed).unwrap();
    let url = format!("file://{}", page.display());

    let dom = dir.join("dom.html");
    let status = run_chromium(
        &chromium,
        &dir,
        &[
            "--window-size=1280,1000".to_string(),
            "--dump-dom".to_string(),
            url.clone(),
        ],
        &dom,
    );
    assert!(status.success(), "chromium --dump-dom: {status}");
    let dumped = std::fs::read_to_string(&dom).unwrap();
    let probe = section(&dumped, "<pre id=\"probe\">", "</pre>")
        .trim_start_matches("<pre id=\"probe\">")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    let probe: serde_json::Value = serde_json::from_str(&probe).unwrap();

    assert_eq!(probe["alerts"], 0, "a script of the page ran: {probe}");
    assert_eq!(probe["scripts"], 2, "only the test's own scripts: {probe}");
    assert_eq!(probe["literalTitle"], true, "{probe}");
    assert_eq!(probe["verdict"], "FAIL");
    let svgs = probe["svgs"].as_array().unwrap();
    assert_eq!(svgs.len(), 2 * CHARTS_PER_PHASE, "{probe}");
    for s in svgs {
        let (w, h) = (s["w"].as_f64().unwrap(), s["h"].as_f64().unwrap());
        assert!(w >= 400.0 && h >= 120.0, "chart laid out too small: {s}");
        assert!((w / h - 720.0 / 250.0).abs() < 0.05, "chart distorted: {s}");
        assert!(s["lines"].as_u64().unwrap() >= 1, "{s}");
        assert_eq!(s["drawn"], s["lines"], "a line with an empty box: {s}");
        assert!(
            s["texts"].as_u64().unwrap() >= 8,
            "axes without labels: {s}"
        );
    }
    for phase in ["phase-0", "phase-1"] {
        let of_phase: Vec<&serde_json::Value> =
            svgs.iter().filter(|s| s["phase"] == phase).collect();
        assert_eq!(
            of_phase.iter().filter(|s| s["server"] == true).count(),
            SERVER_CHARTS,
            "{phase}: {probe}"
        );
        // Every time chart has the same ticks, and charts in one column
        // of the grid have them at the same place on the screen: they
        // line up one above the other.
        let timed: Vec<&&serde_json::Value> =
            of_phase.iter().filter(|s| s["time"] == true).collect();
        assert_eq!(timed.len(), 4 + SERVER_CHARTS, "{phase}");
        let labels = |s: &serde_json::Value| -> Vec<String> {
            s["ticks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t[0].to_string())
                .collect()
        };
        for s in &timed {
            assert_eq!(labels(s), labels(timed[0]), "{phase}: {s}");
            for other in timed.iter().filter(|o| o["left"] == s["left"]) {
                assert_eq!(
                    s["ticks"], other["ticks"],
                    "{phase}: not aligned:\n{s}\n{other}"
                );
            }
        }
        assert!(
            timed
                .iter()
                .map(|s| s["left"].to_string())
                .collect::<std::collections::BTreeSet<_>>()
                .len()
                >= 2,
            "{phase}: the charts sit in columns"
        );
        // Sent and received each fill their own axis.
        for name in ["sent", "received"] {
            let with: Vec<&&serde_json::Value> = of_phase
                .iter()
                .filter(|s| s["series"].get(name).is_some())
                .collect();
            assert_eq!(with.len(), 1, "{phase}: {name}");
            let s = with[0];
            assert_eq!(s["series"].as_object().unwrap().len(), 1, "{phase}: {s}");
            let height = s["series"][name].as_f64().unwrap();
            let plot = s["plot"].as_f64().unwrap();
            assert!(
                height > 0.6 * plot,
                "{phase}: {name} spans {height} of {plot} px"
            );
        }
    }

    // A screenshot of the whole page, for people to look at.
    let height = probe["height"].as_u64().unwrap_or(4000).clamp(1000, 16_000);
    let shot = dir.join("report.png");
    let status = run_chromium(
        &chromium,
        &dir,
        &[
            format!("--window-size=1280,{height}"),
            format!("--screenshot={}", shot.display()),
            url,
        ],
        &dir.join("screenshot-stdout.txt"),
    );
    assert!(status.success(), "chromium --screenshot: {status}");
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // a blank 1280-wide page compresses to a few kB; charts and tables do not
    assert!(png.len() > 100_000, "screenshot is {} bytes", png.len());
    // REPORT_SCREENSHOT=/tmp/x.png keeps the screenshot, and the page
    // itself as /tmp/x.html, for a person to look at.
    if let Some(keep) = std::env::var_os("REPORT_SCREENSHOT") {
        let keep = PathBuf::from(keep);
        std::fs::copy(&shot, &keep).unwrap();
        std::fs::write(keep.with_extension("html"), &html).unwrap();
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
