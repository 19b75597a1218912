//! The ramp as the server sees it: connections arrive at the asked rate,
//! not all at once, and no more upgrades are in flight at once than
//! `--max-inflight` allows. Both are what protects a server (and the
//! measurement) from a connect storm nobody asked for.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::raw_server::{Behaviour, RawServer};
use common::run_json;

/// 300 connections at 100/s take about 3 s to arrive, and no second of
/// the ramp carries much more than 100 of them: the rate is a rate, not a
/// target reached in one burst.
#[test]
fn the_ramp_spreads_connects_at_the_asked_rate() {
    const N: usize = 300;
    const RAMP: f64 = 100.0;
    let server = RawServer::start(Behaviour::Echo);
    let run = run_json(
        &[
            "run",
            &server.url(),
            "--workload",
            "idle",
            "-c",
            &N.to_string(),
            "--ramp",
            &RAMP.to_string(),
            "--duration",
            "3500ms",
            "--progress",
            "never",
        ],
        Duration::from_secs(25),
    );
    run.assert_code(0);
    let why = run.describe();
    assert_eq!(run.totals().u("connects_ok"), N as u64, "{why}");

    let mut at: Vec<_> = server.counters.accepted().iter().map(|a| a.at).collect();
    assert_eq!(at.len(), N, "{why}");
    at.sort();
    let span = at[N - 1] - at[0];
    // Ideally 2.99 s (the n-th connect is due at n / RAMP).
    assert!(
        span >= Duration::from_millis(2500),
        "{N} connects at {RAMP}/s arrived within {span:?}: {why}"
    );
    // The busiest second anywhere in the ramp (a sliding window, so a
    // burst cannot hide across a boundary).
    let busiest = (0..N)
        .map(|i| at[i..].partition_point(|&t| t - at[i] < Duration::from_secs(1)))
        .max()
        .unwrap();
    assert!(
        busiest as f64 <= 1.5 * RAMP,
        "{busiest} connects arrived within one second at --ramp {RAMP}: {why}"
    );
}

/// Upgrades the server holds for 200 ms pile up unless the client caps
/// them: with `--max-inflight 5` and a ramp too fast to matter, the server
/// never has more than 5 handshakes waiting, yet all 40 connect in the end.
#[test]
fn upgrades_in_flight_never_exceed_the_cap() {
    const N: u64 = 40;
    const CAP: u64 = 5;
    const HOLD: Duration = Duration::from_millis(200);
    let server = RawServer::start(Behaviour::SlowUpgrade(HOLD));
    let run = run_json(
        &[
            "run",
            &server.url(),
            "--workload",
            "idle",
            "-c",
            &N.to_string(),
            "--max-inflight",
            &CAP.to_string(),
            "--ramp",
            "1000000",
            "--duration",
            "3s",
            "--progress",
            "never",
        ],
        Duration::from_secs(25),
    );
    let why = run.describe();
    let c = &server.counters;
    let most = c.max_pending.load(Ordering::SeqCst);
    assert!(
        most <= CAP,
        "{most} upgrades pending at once with --max-inflight {CAP}: {why}"
    );
    // The cap was reached, so the test did test something.
    assert!(
        most >= CAP - 2,
        "only {most} upgrades pending at once: {why}"
    );
    run.assert_code(0);
    let t = run.totals();
    assert_eq!(t.u("connects_ok"), N, "{why}");
    assert_eq!(c.upgrades.load(Ordering::SeqCst), N, "{why}");
    // N / CAP rounds of HOLD each: 1.6 s from the first answer to the
    // last, ideally 1.4 s.
    let mut at: Vec<_> = c.accepted().iter().map(|a| a.at).collect();
    at.sort();
    let span = at[at.len() - 1] - at[0];
    assert!(
        span >= HOLD * (N / CAP - 2) as u32,
        "{N} slow upgrades {CAP} at a time answered within {span:?}: {why}"
    );
}

/// The summary's ramp line, e.g. `ramp  asked 200/s  achieved 198/s over
/// 1.5 s`, split into (asked, achieved, seconds).
fn ramp_line(stdout: &str) -> Option<(String, f64, f64)> {
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("ramp "))?;
    let rest = line.trim_start().strip_prefix("ramp")?.trim_start();
    let (asked, rest) = rest.split_once("achieved")?;
    let (achieved, secs) = rest.split_once("/s over")?;
    let number = |s: &str| s.trim().replace(',', "").parse::<f64>().ok();
    Some((
        asked.trim().to_string(),
        number(achieved)?,
        number(secs.trim().strip_suffix(" s")?)?,
    ))
}

/// The ramp asked is shown beside the ramp achieved, in the summary and
/// in `--json`, for one process and for two (whose attempts add up over
/// the longest of their ramps: 300 at 200/s is 200/s, not each worker's
/// 100/s). 300 connections from loopback stay far below half the port
/// range, so no source addresses are picked.
#[test]
fn the_summary_and_the_report_show_the_asked_and_the_achieved_ramp() {
    const N: u64 = 300;
    const RAMP: f64 = 200.0;
    let server = RawServer::start(Behaviour::Echo);
    for processes in ["1", "2"] {
        let run = run_json(
            &[
                "run",
                &server.url(),
                "--workload",
                "idle",
                "-c",
                &N.to_string(),
                "--ramp",
                &RAMP.to_string(),
                "--duration",
                "3s",
                "--processes",
                processes,
                "--progress",
                "never",
            ],
            Duration::from_secs(30),
        );
        run.assert_code(0);
        let why = run.describe();
        let (asked, achieved, secs) =
            ramp_line(&run.stdout).unwrap_or_else(|| panic!("no ramp line: {why}"));
        assert_eq!(asked, "asked 200/s", "{why}");
        // Ideally 300 over 1.495 s plus the last connect.
        assert!((150.0..=215.0).contains(&achieved), "{achieved}: {why}");
        assert!((1.3..=2.0).contains(&secs), "{secs}: {why}");
        let report = run.json.as_ref().unwrap();
        let info = &report["run"];
        assert_eq!(info["ramp_asked"].as_f64(), Some(RAMP), "{why}");
        let in_json = info["ramp_achieved"].as_f64().unwrap_or(0.0);
        assert!((in_json - achieved).abs() <= 1.0, "{in_json}: {why}");
        assert!(
            run.stdout
                .contains("from the kernel's choice of source address"),
            "{why}"
        );
        assert!(!run.stdout.contains("picked automatically"), "{why}");
        assert!(!run.stdout.contains("the ramp achieved"), "{why}");
    }
}
