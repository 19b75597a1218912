//! Each bad input of the spec gives a clear message and a correct summary:
//! no panic, no hang. Mistakes in the command line are refused before any
//! connection is attempted (exit 2); trouble during the run is counted and
//! judged (exit 1).

mod common;

use std::time::Duration;

use common::raw_server::{garbage, oversized_frame, Behaviour, RawServer};
use common::{chat_server, closed_port, no_connections, run, run_json, silent_listener, Loadgen};

const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn an_unreachable_target_is_counted_as_refused() {
    let url = format!("ws://127.0.0.1:{}/", closed_port());
    let run = run_json(
        &[
            "run",
            &url,
            "-c",
            "10",
            "--duration",
            "1s",
            "--connect-timeout",
            "2s",
            "--progress",
            "never",
        ],
        LIMIT,
    );
    run.assert_code(1);
    run.assert_no_panic();
    let t = run.totals();
    assert_eq!(t.u("connects_attempted"), 10, "{}", run.describe());
    assert_eq!(t.u("connects_ok"), 0);
    let errors = t.labels("connect_errors");
    assert_eq!(errors.len(), 1, "one kind of failure: {errors:?}");
    let (label, n) = errors.iter().next().unwrap();
    assert!(label.to_lowercase().contains("refused"), "{label}");
    assert_eq!(*n, 10);
    // stderr says why the run failed
    assert!(run.stderr.contains("refused"), "{}", run.describe());
    assert!(run.stderr.contains("0 of 10"), "{}", run.describe());
    // Nothing was timed, so no second is judged for saturation: the closing
    // sliver's CPU (a clock tick over a few milliseconds reads as hundreds
    // of percent) is no peak, and nothing warns.
    let run_info = &run.json.as_ref().unwrap()["run"]["saturation"];
    assert_eq!(run_info["judged_secs"], 0, "{}", run.describe());
    assert_eq!(run_info["loadgen_cpu_max"], 0.0, "{}", run.describe());
    assert!(
        run.stdout
            .contains("CPU in the measured seconds: loadgen max 0 % of one core"),
        "{}",
        run.describe()
    );
    assert!(!run.stdout.contains("WARNING"), "{}", run.describe());
}

#[test]
fn urls_that_are_not_websocket_are_refused_before_connecting() {
    let (listener, addr) = silent_listener();
    for url in [
        format!("http://{addr}/"),
        format!("https://{addr}/"),
        format!("{addr}"),
    ] {
        let run = run(&["run", &url, "-c", "5", "--duration", "1s"], LIMIT);
        run.assert_code(2);
        assert!(run.stderr.contains("ws://"), "{url}: {}", run.describe());
        assert!(
            run.stdout.trim().is_empty(),
            "no summary for a run that never started: {}",
            run.describe()
        );
    }
    assert!(no_connections(&listener));
}

#[test]
fn a_wss_target_that_never_speaks_tls_times_out_cleanly() {
    // TCP connects, the TLS handshake gets no answer: every connect fails
    // within --connect-timeout with a clear label, and the run ends.
    let (_listener, addr) = silent_listener();
    let run = run_json(
        &[
            "run",
            &format!("wss://{addr}/"),
            "-c",
            "5",
            "--duration",
            "1s",
            "--connect-timeout",
            "500ms",
            "--progress",
            "never",
        ],
        LIMIT,
    );
    run.assert_code(1);
    let errors = run.totals().labels("connect_errors");
    assert_eq!(errors.get("timeout"), Some(&5), "{}", run.describe());
    assert!(run.stderr.contains("held 0 of 5"), "{}", run.describe());
}

#[test]
fn a_source_address_not_on_this_host_is_named_before_the_run() {
    let (listener, addr) = silent_listener();
    let url = format!("ws://{addr}/");
    // TEST-NET-1 is never assigned to a host; alone and in a list.
    for spec in ["192.0.2.1", "127.0.0.2,192.0.2.1"] {
        let run = run(
            &[
                "run",
                &url,
                "-c",
                "4",
                "--duration",
                "1s",
                "--source-ips",
                spec,
            ],
            LIMIT,
        );
        run.assert_code(2);
        assert!(
            run.stderr.contains("192.0.2.1"),
            "{spec}: {}",
            run.describe()
        );
        assert!(
            !run.stderr.contains("127.0.0.2"),
            "names only the bad one: {}",
            run.describe()
        );
    }
    assert!(no_connections(&listener));
}

#[test]
fn a_server_that_shuts_down_mid_run_is_reported() {
    let mut server = chat_server();
    let lg = Loadgen::spawn_json(&[
        "run",
        &server.url(),
        "--workload",
        "chat-json",
        "-c",
        "50",
        "--rooms",
        "2",
        "--chatters",
        "0.2",
        "--rate",
        "10",
        "--duration",
        "3s",
        "--drain",
        "1s",
        "--progress",
        "never",
    ]);
    std::thread::sleep(Duration::from_millis(1200));
    let status = server.terminate(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "server exit {status:?}");
    let run = lg.wait(LIMIT);
    run.assert_no_panic();
    let t = run.totals();
    assert_eq!(t.u("connects_ok"), 50, "{}", run.describe());
    assert_eq!(
        t.u("open_connections"),
        0,
        "none held to the end: {}",
        run.describe()
    );
    assert_eq!(t.u("closes_by_us"), 0, "{}", run.describe());
    // Every connection was told "going away" by the server.
    let closes = t.labels("closes_unexpected");
    assert_eq!(closes.get("1001"), Some(&50), "{}", run.describe());
    assert_eq!(closes.values().sum::<u64>(), 50, "{}", run.describe());
    // The run could not hold its connections for the time asked: that is
    // a failure, and stderr says what happened.
    run.assert_code(1);
    assert!(run.stderr.contains("1001"), "{}", run.describe());
}

/// A server that upgrades, then sends bytes no client may accept: every
/// connection ends as a protocol error, promptly, without a panic.
fn protocol_breakage(bytes: Vec<u8>) {
    let server = RawServer::start(Behaviour::SendAfter(Duration::from_millis(500), bytes));
    let run = run_json(
        &[
            "run",
            &server.url(),
            "--workload",
            "idle",
            "-c",
            "20",
            "--duration",
            "3s",
            "--progress",
            "never",
        ],
        LIMIT,
    );
    run.assert_no_panic();
    let t = run.totals();
    assert_eq!(t.u("connects_ok"), 20, "{}", run.describe());
    assert_eq!(
        server
            .counters
            .upgrades
            .load(std::sync::atomic::Ordering::Relaxed),
        20
    );
    assert_eq!(
        t.u("open_connections"),
        0,
        "none held to the end: {}",
        run.describe()
    );
    assert_eq!(t.u("closes_by_us"), 0, "{}", run.describe());
    let closes = t.labels("closes_unexpected");
    assert_eq!(closes.values().sum::<u64>(), 20, "{}", run.describe());
    assert!(
        closes.keys().all(|k| k.contains("protocol")),
        "{}",
        run.describe()
    );
    // The server holds the sockets open: loadgen must give up by itself,
    // well before its 3 s run plus grace would force it.
    assert!(run.elapsed < Duration::from_secs(9), "{}", run.describe());
    // Connections lost mid-run: the run did not do what was asked.
    run.assert_code(1);
}

#[test]
fn garbage_after_the_upgrade_is_a_protocol_error() {
    protocol_breakage(garbage());
}

#[test]
fn an_oversized_frame_is_a_protocol_error() {
    protocol_breakage(oversized_frame());
}

#[test]
fn ctrl_c_ends_the_run_with_what_was_measured() {
    stopped_by_a_signal(libc::SIGINT, "SIGINT");
}

/// `docker stop`, systemd and `timeout` send SIGTERM: the same as Ctrl-C.
#[test]
fn sigterm_ends_the_run_with_what_was_measured() {
    stopped_by_a_signal(libc::SIGTERM, "SIGTERM");
}

/// Stopped mid-run by `signal`: the connections close politely, the
/// summary is printed, the report written with what was measured, and the
/// exit status says the run was cut short, naming the signal.
fn stopped_by_a_signal(signal: i32, name: &str) {
    let server = chat_server();
    let lg = Loadgen::spawn_json(&[
        "run",
        &server.url(),
        "--workload",
        "chat-binary",
        "-c",
        "50",
        "--rooms",
        "1",
        "--chatters",
        "0.2",
        "--rate",
        "10",
        "--duration",
        "30s",
        "--progress",
        "never",
    ]);
    std::thread::sleep(Duration::from_millis(1500));
    lg.signal(signal);
    let run = lg.wait(LIMIT);
    run.assert_no_panic();
    // Promptly: connections close within their close grace, not at 30 s.
    assert!(run.elapsed < Duration::from_secs(6), "{}", run.describe());
    // Interrupted is not "did what was asked".
    run.assert_code(1);
    let why = format!("interrupted by {name}");
    assert!(run.stderr.contains(&why), "{}", run.describe());
    let notes = run.json.as_ref().and_then(|j| j.pointer("/run/notes"));
    assert!(
        notes.and_then(|n| n.as_array()).is_some_and(|n| n
            .iter()
            .any(|n| n.as_str().is_some_and(|n| n.contains(&why)))),
        "the report says why: {}",
        run.describe()
    );
    assert!(
        run.stdout.contains(&why),
        "the summary is printed and says why: {}",
        run.describe()
    );
    let t = run.totals();
    assert_eq!(t.u("connects_ok"), 50, "{}", run.describe());
    assert!(t.u("messages_sent") > 0, "{}", run.describe());
    assert!(t.latency_count("round_trip") > 0, "{}", run.describe());
    assert!(t.latency_count("fanout") > 0, "{}", run.describe());
    assert!(
        t.labels("closes_unexpected").is_empty(),
        "we closed them: {}",
        run.describe()
    );
    // Held until we closed them: "held at end" counts them all.
    assert_eq!(t.u("open_connections"), 50, "{}", run.describe());
    assert_eq!(t.u("closes_by_us"), 50, "{}", run.describe());
    let elapsed = t.f("elapsed_secs");
    assert!((1.0..6.0).contains(&elapsed), "{}", run.describe());
}
