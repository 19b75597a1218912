//! `coordinator run` end to end with real processes on loopback: the real
//! server, real `loadgen agent`s, the real coordinator binary. Merged
//! figures must be exact, failures must be named and bounded in time.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use coordinator::results::Results;
use loadgen::stats::{new_histogram, Totals};
use testkit::{AgentProcess, ServerProcess};

const COORDINATOR: &str = env!("CARGO_BIN_EXE_coordinator");
const TOKEN: &str = "coordinator-test-token-42";

fn server() -> ServerProcess {
    let bin = testkit::server_bin();
    ServerProcess::spawn(bin.to_str().unwrap(), &["--no-metrics", "--workers", "2"]).unwrap()
}

fn agent() -> AgentProcess {
    AgentProcess::spawn(&testkit::workspace_bin("loadgen"), TOKEN, &[]).unwrap()
}

fn temp_dir() -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "coordinator-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A scenario file for `agents` against `url`, with `phases` and
/// `extra` YAML appended verbatim.
fn scenario(dir: &Path, url: &str, agents: &[&AgentProcess], body: &str) -> PathBuf {
    let list: Vec<String> = agents
        .iter()
        .map(|a| format!("    - \"{}\"", a.addr))
        .collect();
    let text = format!(
        "name: test\ntarget:\n  urls: [\"{url}\"]\n  workload: chat-binary\nagents:\n  static:\n{}\n{body}",
        list.join("\n")
    );
    let path = dir.join("scenario.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs the coordinator to completion, killing it after `limit`.
fn coordinator(args: &[&str], limit: Duration) -> (Output, Duration) {
    let started = Instant::now();
    let child = Command::new(COORDINATOR)
        .args(args)
        .env("LOADGEN_AGENT_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let watchdog = std::thread::spawn(move || {
        std::thread::sleep(limit);
        // SAFETY: kill(2) on our own child (a no-op if it has exited and
        // been reaped: the pid is only reused after the wait below).
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    });
    let _ = &watchdog;
    let out = child.wait_with_output().unwrap();
    let took = started.elapsed();
    assert!(
        took < limit,
        "the coordinator hung: killed after {limit:?}\n{}",
        show(&out)
    );
    (out, took)
}

/// `coordinator run FILE -o OUT_DIR --progress never`, bounded by `limit`.
fn run_scenario(file: &Path, out_dir: &Path, limit: Duration) -> (Output, Duration) {
    coordinator(
        &[
            "run",
            file.to_str().unwrap(),
            "-o",
            out_dir.to_str().unwrap(),
            "--progress",
            "never",
        ],
        limit,
    )
}

/// SIGKILLs `pid` (a child of this test) after `delay`, as a crash would.
fn kill_later(pid: u32, delay: Duration) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        std::thread::sleep(delay);
        // SAFETY: kill(2) on a child of this test process.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    })
}

fn show(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

const STEADY: &str = "phases:
  - name: steady
    duration: 3s
    connections: 300
    ramp: 1000
    rooms: 6
    chatters: 0.2
    rate: 4
    drain: 1s
";

#[test]
fn three_agents_merge_exactly() {
    let server = server();
    let agents = [agent(), agent(), agent()];
    let dir = temp_dir();
    let body = format!(
        "{STEADY}    thresholds: [\"connections_held >= 300\"]\n  - name: second\n    duration: 2s\n    connections: 150\n    ramp: 1000\n    rooms: 3\n    chatters: 0.2\n    rate: 4\n    drain: 1s\nthresholds: [\"messages_lost == 0\", \"connect_errors == 0\"]\n"
    );
    let file = scenario(
        &dir,
        &server.url(),
        &agents.iter().collect::<Vec<_>>(),
        &body,
    );
    let out_dir = dir.join("out");
    let (out, _) = run_scenario(&file, &out_dir, Duration::from_secs(60));
    assert!(out.status.success(), "{}", show(&out));
    let results = Results::read_json(&out_dir.join("results.json")).unwrap();
    assert!(results.passed);
    assert_eq!(results.agents.len(), 3);
    assert_eq!(results.phases.len(), 2);
    for phase in &results.phases {
        assert_eq!(phase.agents.len(), 3, "{}", phase.name);
        let parts: Vec<&Totals> = phase
            .agents
            .iter()
            .map(|a| a.totals.as_ref().unwrap())
            .collect();
        // Slices tile the phase's numbering.
        let mut next = 0;
        for a in &phase.agents {
            assert_eq!(a.first, next);
            next += a.count;
        }
        assert_eq!(next, phase.connections);
        // Counters: the merged figure is the sum of the agents'.
        let sum = |f: fn(&Totals) -> u64| parts.iter().map(|t| f(t)).sum::<u64>();
        let t = &phase.totals;
        assert_eq!(t.connects_ok, phase.connections);
        assert_eq!(t.connects_ok, sum(|t| t.connects_ok));
        assert_eq!(t.open_connections, sum(|t| t.open_connections));
        assert_eq!(t.messages_sent, sum(|t| t.messages_sent));
        assert_eq!(t.messages_received, sum(|t| t.messages_received));
        assert_eq!(t.bytes_sent, sum(|t| t.bytes_sent));
        assert_eq!(t.bytes_received, sum(|t| t.bytes_received));
        assert!(t.messages_sent > 0);
        // Every agent's chatters sent: the global numbering spread them.
        assert!(parts.iter().all(|p| p.messages_sent > 0));
        // Percentiles: those of one histogram holding every sample.
        for kind in ["round_trip", "fanout", "connect"] {
            let mut all = new_histogram();
            for p in &parts {
                all.add(p.latencies[kind].to_histogram().unwrap()).unwrap();
            }
            let merged = &t.latencies[kind];
            assert_eq!(merged.count, all.len(), "{kind}");
            assert!(merged.count > 0, "{kind}");
            for (q, got) in [
                (50.0, merged.p50_ms),
                (99.0, merged.p99_ms),
                (99.9, merged.p999_ms),
            ] {
                let want = all.value_at_quantile(q / 100.0) as f64 / 1000.0;
                assert_eq!(got, want, "{kind} p{q}");
            }
            assert_eq!(merged.max_ms, all.max() as f64 / 1000.0, "{kind} max");
            // And the figures thresholds use come from the merged histogram.
            if kind == "round_trip" {
                assert_eq!(phase.figures["rtt_p99_ms"], merged.p99_ms);
            }
        }
        // The merged seconds add up to the totals.
        let sent: u64 = phase.intervals.iter().map(|iv| iv.messages_sent).sum();
        assert_eq!(sent, t.messages_sent, "{}", phase.name);
        // No server_metrics in the scenario, no server section.
        assert!(phase.server.is_none(), "{}", phase.name);
    }
    assert_eq!(results.thresholds.len(), 3);
    assert!(results.thresholds.iter().all(|t| t.passed));
    assert!(out_dir.join("report.html").is_file());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("PASS"), "{stdout}");
}

#[test]
fn an_unreachable_server_metrics_endpoint_is_counted_and_the_run_still_passes() {
    let server = server();
    let a = agent();
    let dir = temp_dir();
    // A port nothing listens on.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let body = format!(
        "server_metrics: http://{closed}/metrics\n{STEADY}thresholds: [\"connections_held >= 300\"]\n"
    );
    let file = scenario(&dir, &server.url(), &[&a], &body);
    let out_dir = dir.join("out");
    let (out, took) = run_scenario(&file, &out_dir, Duration::from_secs(60));
    assert!(out.status.success(), "{}", show(&out));
    // 3 s and a 1 s drain: the scrapes cost the run nothing.
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("server metrics: http://{closed}/metrics")),
        "{stderr}"
    );
    // said once, when the first scrape failed
    assert_eq!(stderr.matches("scraping").count(), 1, "{stderr}");

    let results = Results::read_json(&out_dir.join("results.json")).unwrap();
    assert!(
        results.passed && results.failures.is_empty(),
        "{:?}",
        results.failures
    );
    let s = results.phases[0].server.as_ref().expect("a server section");
    assert_eq!(s.url, format!("http://{closed}/metrics"));
    assert!(s.scrapes >= 3, "one a second over 4 s: {s:?}");
    assert_eq!(s.scrape_failures, s.scrapes, "{s:?}");
    assert!(s.samples.is_empty());
    assert!(
        s.first_error
            .as_deref()
            .unwrap()
            .starts_with("connecting: "),
        "{s:?}"
    );
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(html.contains("No scrape succeeded"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "\nServer  ({n} scrapes of http://{closed}/metrics, {n} failed)",
            n = s.scrapes
        )),
        "{stdout}"
    );
}

#[test]
fn a_failing_threshold_fails_the_run_and_says_by_how_much() {
    let server = server();
    let a = agent();
    let dir = temp_dir();
    let body = format!("{STEADY}thresholds: [\"rtt_p99_ms < 0.001\", \"messages_lost == 0\"]\n");
    let file = scenario(&dir, &server.url(), &[&a], &body);
    let out_dir = dir.join("out");
    let (out, _) = run_scenario(&file, &out_dir, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("rtt_p99_ms < 0.001"), "{stdout}");
    assert!(stdout.contains("FAIL"), "{stdout}");
    let results = Results::read_json(&out_dir.join("results.json")).unwrap();
    assert!(!results.passed);
    let failed: Vec<_> = results.thresholds.iter().filter(|t| !t.passed).collect();
    assert_eq!(failed.len(), 1);
    assert!(failed[0].value.unwrap() > 0.001);
    assert!(results
        .thresholds
        .iter()
        .any(|t| t.passed && t.metric == "messages_lost"));
}

#[test]
fn a_killed_agent_is_named_and_the_run_ends() {
    let server = server();
    let mut agents = [agent(), agent(), agent()];
    let victim = agents[1].addr.to_string();
    let dir = temp_dir();
    let body = "phases:\n  - name: long\n    duration: 60s\n    connections: 90\n    ramp: 1000\n    rooms: 3\n    chatters: 0.1\n    rate: 2\n    drain: 0s\n";
    let file = scenario(
        &dir,
        &server.url(),
        &agents.iter().collect::<Vec<_>>(),
        body,
    );
    let out_dir = dir.join("out");
    let killer = kill_later(agents[1].child.id(), Duration::from_secs(4));
    let (out, took) = run_scenario(&file, &out_dir, Duration::from_secs(45));
    killer.join().unwrap();
    agents[1].kill();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(took < Duration::from_secs(35), "abort took {took:?}");
    let results = Results::read_json(&out_dir.join("results.json")).unwrap();
    assert!(results.interrupted && !results.passed);
    assert!(
        results
            .failures
            .iter()
            .any(|f| f.contains(&victim) && f.contains("during phase")),
        "{:?}",
        results.failures
    );
    let phase = &results.phases[0];
    assert!(phase.agents[1].failure.is_some());
    // The survivors were stopped and still delivered their figures.
    for i in [0, 2] {
        let t = phase.agents[i]
            .totals
            .as_ref()
            .expect("a survivor's totals");
        assert_eq!(t.connects_ok, 30);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&victim), "{stdout}");
}

#[test]
fn under_continue_the_others_finish_the_phase() {
    let server = server();
    let mut agents = [agent(), agent()];
    let dir = temp_dir();
    let body = "on_agent_failure: continue\nphases:\n  - name: p\n    duration: 6s\n    connections: 40\n    ramp: 1000\n    rooms: 2\n    chatters: 0.1\n    rate: 2\n    drain: 0s\n";
    let file = scenario(
        &dir,
        &server.url(),
        &agents.iter().collect::<Vec<_>>(),
        body,
    );
    let out_dir = dir.join("out");
    let killer = kill_later(agents[0].child.id(), Duration::from_secs(3));
    let (out, _) = run_scenario(&file, &out_dir, Duration::from_secs(45));
    killer.join().unwrap();
    agents[0].kill();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let results = Results::read_json(&out_dir.join("results.json")).unwrap();
    assert!(!results.interrupted, "continue does not cut the run short");
    let survivor = results.phases[0].agents[1].totals.as_ref().unwrap();
    assert_eq!(
        survivor.open_connections, 20,
        "the survivor held its share to the end"
    );
    assert!(results.phases[0].intervals.len() >= 6);
}

/// Which agents a run uses: the test's own, or a `--local` lab the
/// coordinator starts (and must stop) itself.
#[derive(Clone, Copy, PartialEq)]
enum Lab {
    Static,
    Local,
}

#[test]
fn ctrl_c_stops_every_agent_and_still_writes_the_results() {
    stopped_by_a_signal(libc::SIGINT, "SIGINT", Lab::Static);
}

/// `docker stop`, systemd and `timeout` send SIGTERM: the same as Ctrl-C,
/// here with a `--local` lab so the coordinator has children to stop.
#[test]
fn sigterm_stops_the_local_lab_and_still_writes_the_results() {
    stopped_by_a_signal(libc::SIGTERM, "SIGTERM", Lab::Local);
}

/// A 60 s phase stopped by `signal` a few seconds in: every connection is
/// closed politely and counted, results.json, report.html and the summary
/// are written and name the signal, the exit status is 1, and nothing the
/// coordinator started still runs.
fn stopped_by_a_signal(signal: i32, name: &str, lab: Lab) {
    let dir = temp_dir();
    let body = "phases:\n  - name: long\n    duration: 60s\n    connections: 40\n    ramp: 1000\n    rooms: 2\n    chatters: 0.1\n    rate: 2\n    drain: 0s\n";
    // Held until the end of the test: the static lab's processes.
    let (_server, _agents, file) = match lab {
        Lab::Static => {
            let server = server();
            let agents = [agent(), agent()];
            let file = scenario(
                &dir,
                &server.url(),
                &agents.iter().collect::<Vec<_>>(),
                body,
            );
            (Some(server), Some(agents), file)
        }
        Lab::Local => {
            let file = dir.join("scenario.yaml");
            let text = format!(
                "name: test\ntarget:\n  urls: []\n  workload: chat-binary\nagents:\n  local: 2\n{body}"
            );
            std::fs::write(&file, text).unwrap();
            (None, None, file)
        }
    };
    let out_dir = dir.join("out");
    let started = Instant::now();
    let mut command = Command::new(COORDINATOR);
    command
        .args([
            "run",
            file.to_str().unwrap(),
            "-o",
            out_dir.to_str().unwrap(),
            "--progress",
            "plain",
        ])
        .env("LOADGEN_AGENT_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if lab == Lab::Local {
        command.arg("--local");
    }
    let child = command.spawn().unwrap();
    let pid = child.id();
    let watchdog = kill_later(pid, Duration::from_secs(60));
    let _ = &watchdog;
    // The local lab is the server and two agents.
    let expected = if lab == Lab::Local { 3 } else { 0 };
    let mut children = testkit::procs::descendants(pid);
    while children.len() < expected && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
        children = testkit::procs::descendants(pid);
    }
    // Well into the phase: every connection is open.
    std::thread::sleep(Duration::from_secs(4));
    let children = testkit::procs::descendants(pid);
    // SAFETY: kill(2) on our own child, not yet waited for.
    unsafe { libc::kill(pid as i32, signal) };
    let out = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "{}",
        show(&out)
    );
    assert_eq!(children.len(), expected, "{children:?}\n{}", show(&out));
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let why = format!("interrupted by {name}");
    let results = Results::read_json(&out_dir.join("results.json")).unwrap();
    assert!(results.interrupted && !results.passed);
    assert!(
        results.failures.iter().any(|f| f.contains(&why)),
        "{:?}",
        results.failures
    );
    let t = &results.phases[0].totals;
    assert_eq!(t.connects_ok, 40, "what was measured is kept");
    assert_eq!(t.closes_by_us, 40, "every connection was closed politely");
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(html.contains(&why), "the report says why");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&why) && stdout.contains("run cut short"),
        "the summary says why: {}",
        show(&out)
    );
    for c in children {
        assert!(
            !testkit::procs::is_running(c),
            "process {c} outlived the coordinator"
        );
    }
}

#[test]
fn a_wrong_token_fails_before_the_run() {
    let a = AgentProcess::spawn(
        &testkit::workspace_bin("loadgen"),
        "another-token-entirely",
        &[],
    )
    .unwrap();
    let dir = temp_dir();
    let file = scenario(&dir, "ws://127.0.0.1:9/", &[&a], STEADY);
    let (out, _) = coordinator(
        &[
            "run",
            file.to_str().unwrap(),
            "-o",
            dir.join("out").to_str().unwrap(),
        ],
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("401") && stderr.contains(&a.addr.to_string()),
        "{stderr}"
    );
}

#[test]
fn an_agent_that_cannot_take_its_share_says_so_before_anything_connects() {
    let agents = [agent(), agent()];
    // Nothing may connect: the target accepts nothing and shows any attempt.
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    target.set_nonblocking(true).unwrap();
    let url = format!("ws://{}/", target.local_addr().unwrap());
    let dir = temp_dir();
    // The second phase needs a source address this host does not have.
    let text = format!(
        "name: refusal\ntarget:\n  urls: [\"{url}\"]\nagents:\n  static:\n    - \"{}\"\n    - addr: \"{}\"\n      source_ips: 192.0.2.1\nphases:\n  - name: fine\n    duration: 2s\n    connections: 10\n  - name: later\n    duration: 2s\n    connections: 10\n",
        agents[0].addr, agents[1].addr
    );
    let file = dir.join("s.yaml");
    std::fs::write(&file, text).unwrap();
    let out_dir = dir.join("out");
    let (out, _) = run_scenario(&file, &out_dir, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let results = Results::read_json(&out_dir.join("results.json")).unwrap();
    assert!(results.phases.is_empty(), "no phase started");
    let refused = results.agents[1].failure.as_deref().unwrap_or_default();
    assert!(
        refused.contains("cannot take its share") && refused.contains("192.0.2.1"),
        "{refused}"
    );
    assert!(
        matches!(target.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "a connection was attempted"
    );
}
