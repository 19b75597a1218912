//! The README's main command, `coordinator run scenarios/smoke.yaml
//! --local`, exactly as shipped: it starts the server and its agents, runs,
//! passes, samples the server's own metrics, writes a report, serves its
//! live figures to Prometheus, and leaves nothing running behind.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use coordinator::results::{Results, ServerSample};
use loadgen::stats::Latency;
use testkit::prom::Exposition;

const COORDINATOR: &str = env!("CARGO_BIN_EXE_coordinator");

fn smoke() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios/smoke.yaml")
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[test]
fn the_smoke_scenario_runs_the_whole_lab_locally() {
    let out_dir = std::env::temp_dir().join(format!("coordinator-local-{}", std::process::id()));
    let metrics = free_port();
    let started = Instant::now();
    let child = Command::new(COORDINATOR)
        .args([
            "run",
            smoke().to_str().unwrap(),
            "--local",
            "--progress",
            "plain",
        ])
        .args(["-o", out_dir.to_str().unwrap()])
        .args(["--metrics-listen", &metrics.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Scrape while the phase runs: the run's own figures, valid for the
    // real promtool.
    let scraped = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if let Ok((200, text)) = testkit::http_get(metrics, "/metrics").await {
                    let Ok(exp) = Exposition::parse(&text) else {
                        continue;
                    };
                    if exp.get("coordinator_phase", &[]) == Some(1.0)
                        && exp.get("coordinator_open_connections", &[]).unwrap_or(0.0) > 0.0
                    {
                        return Some((exp, text));
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            None
        })
    });
    let watchdog = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(120));
        // SAFETY: kill(2) on our own child; after it exited this fails.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    });
    let _ = &watchdog;
    let out = child.wait_with_output().unwrap();
    let took = started.elapsed();
    let show = format!(
        "{:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{show}");
    assert!(took < Duration::from_secs(100), "took {took:?}");

    let (exp, text) = scraped
        .join()
        .unwrap()
        .expect("live metrics during the phase");
    assert_eq!(
        exp.value("coordinator_target_connections", &[]).unwrap(),
        3000.0
    );
    assert!(exp.has("coordinator_messages_sent_total"));
    assert_eq!(exp.value("coordinator_run_passed", &[]).unwrap(), -1.0);
    assert!(promhttp::promtool::assert_valid(&text));

    let results = Results::read_json(&out_dir.join("results.json")).unwrap();
    assert!(results.passed && results.scenario.local);
    assert!(results.agents.len() >= 3);
    assert!(results.thresholds.len() >= 4 && results.thresholds.iter().all(|t| t.passed));
    let totals = &results.phases[0].totals;
    assert_eq!(totals.connects_ok, 3000);
    // The three agents share this host's clock, so every copy is timed:
    // a sender's own as a round trip, every other member's as fan-out,
    // whichever agent holds the member.
    let count = |kind| totals.latency(kind).map_or(0, |l| l.count);
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert_eq!(totals.messages_lost, 0);
    assert!(totals.copies_received > 0);
    assert_eq!(
        count(Latency::RoundTrip) + count(Latency::Fanout),
        totals.copies_received
    );
    // The ramp asked (the scenario's) beside the ramp the agents achieved
    // together, in results.json and the summary.
    let phase = &results.phases[0];
    assert_eq!(phase.ramp_asked, Some(1500.0));
    let achieved = phase.ramp_achieved.expect("the ramp achieved");
    assert!(achieved > 0.0 && achieved <= 3000.0, "{achieved}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("asked 1,500/s"),
        "{show}"
    );
    // The three agents share this host's cores: the phase's CPU figures
    // are against them, not against three times them.
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(results.phases[0].saturation.cores, cores);
    assert_eq!(results.phases[0].saturation.host_cores, cores);
    // and delivery, the headline, is every one of them
    assert_eq!(count(Latency::Delivery), totals.copies_received);
    assert_eq!(totals.timed_share(), Some(1.0));

    // One definition of each rate: copies (never notices) per second of
    // sending, the same in results.json, the summary, the report and the
    // live lines.
    let phase = &results.phases[0];
    let copies_per_sec = phase.figures["copies_received_per_sec"];
    // (to the last bit but one: serde_json's default float parsing may
    // be one ulp off)
    let recomputed = totals.copies_received as f64 / phase.sending_secs;
    assert!(
        (copies_per_sec - recomputed).abs() <= recomputed * 1e-12,
        "{copies_per_sec} vs {recomputed}"
    );
    assert!(
        totals.notices_received() > 0,
        "the joins' notices, counted apart"
    );
    let shown = loadgen::printer::int(copies_per_sec.round() as u64);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary_row = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("copies received"))
        .unwrap_or_else(|| panic!("no copies row: {show}"));
    assert!(
        summary_row.ends_with(&format!(" {shown}/s")),
        "summary {summary_row:?} vs results.json {shown}/s"
    );
    assert!(
        html.contains(&format!("{shown}/s")),
        "the report shows {shown}/s: {show}"
    );
    let sent_per_sec = phase.figures["messages_sent_per_sec"];
    assert!(stdout.contains(&format!(
        " {}/s",
        loadgen::printer::int(sent_per_sec.round() as u64)
    )));
    // The merged seconds add up to the totals, and the live lines, one per
    // second, add up to them within the rounding of each line.
    let summed: u64 = phase.intervals.iter().map(|iv| iv.copies_received).sum();
    assert_eq!(summed, totals.copies_received);
    let live: f64 = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| l.split(" copies ").nth(1)?.split("/s").next())
        .filter_map(|n| n.replace(',', "").parse::<f64>().ok())
        .sum();
    let whole = totals.copies_received as f64;
    assert!(
        (live - whole).abs() <= whole * 0.05,
        "live lines sum to {live}, the run received {whole} copies"
    );

    // The server's side: scraped from the server the run started, once a
    // second over the phase (10 s, a 2 s drain, the closes).
    let server = results.phases[0]
        .server
        .as_ref()
        .expect("results.json has the server's samples");
    assert!(
        server.url.starts_with("http://127.0.0.1:") && server.url.ends_with("/metrics"),
        "{}",
        server.url
    );
    let samples = &server.samples;
    assert!(
        samples.len() >= 10 && server.scrape_failures * 4 <= server.scrapes,
        "{server:?}"
    );
    assert!(samples[0].at_secs < 1.0, "{:?}", samples[0]);
    assert!(samples.windows(2).all(|w| w[0].at_secs < w[1].at_secs));
    let last_interval = results.phases[0].intervals.last().unwrap().at_secs;
    assert!(
        samples.last().unwrap().at_secs < last_interval + 3.0,
        "the samples share the clients' clock: {:?} vs {last_interval}",
        samples.last()
    );
    let highest =
        |f: fn(&ServerSample) -> Option<f64>| samples.iter().filter_map(f).fold(0.0, f64::max);
    assert_eq!(
        highest(|s| s.connections.map(|c| c as f64)),
        3000.0,
        "{server:?}"
    );
    assert!(highest(|s| s.cpu_percent) > 0.0, "{server:?}");
    assert!(
        highest(|s| s.rss_bytes.map(|b| b as f64)) > 1e6,
        "{server:?}"
    );
    assert!(highest(|s| s.messages_in_per_sec) > 0.0, "{server:?}");
    // 600 messages a second to rooms of 100: tens of thousands of copies
    assert!(highest(|s| s.messages_out_per_sec) > 10_000.0, "{server:?}");
    assert!(server.totals.messages_out.unwrap() >= totals.messages_received as f64 * 0.5);
    assert!(
        server.totals.drops.is_some(),
        "the drop counter was read: {server:?}"
    );

    assert!(html.contains("<svg"));
    let server_part = html
        .split("id=\"phase-0-server\"")
        .nth(1)
        .expect("the report has the server section")
        .split("<h3>Latency distributions</h3>")
        .next()
        .unwrap();
    assert_eq!(server_part.matches("<svg").count(), 6, "{server_part}");
    assert!(server_part.contains(&format!("<code>{}</code>", server.url)));
    assert!(stdout.contains("\nServer  cpu max "), "{stdout}");
    for log in ["server.log", "local-1.log"] {
        assert!(out_dir.join("logs").join(log).is_file(), "{log}");
    }
    // Everything it started is gone: the agents' control ports are closed.
    for a in &results.agents {
        let addr: SocketAddr = a.addr.parse().unwrap();
        assert!(
            TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err(),
            "agent {} still listening",
            a.addr
        );
    }
    let _ = std::fs::remove_dir_all(&out_dir);
}
