//! `--processes N`: one run spread over worker processes, merged into one
//! exact result.

mod common;

use std::time::Duration;

use common::{chat_server, run_json, Loadgen};

#[test]
fn three_workers_add_up_to_one_run() {
    let server = chat_server();
    let run = run_json(
        &[
            "run",
            &server.url(),
            "--processes",
            "3",
            "-c",
            "60",
            "--rooms",
            "3",
            "--chatters",
            "0.25",
            "--rate",
            "5",
            "--duration",
            "2s",
            "--drain",
            "1s",
            "--progress",
            "never",
        ],
        Duration::from_secs(30),
    );
    run.assert_code(0);
    let t = run.totals();
    let why = run.describe();
    assert_eq!(t.u("connects_ok"), 60, "{why}");
    assert_eq!(t.u("closes_by_us"), 60, "{why}");
    assert_eq!(t.u("open_connections"), 60, "held at end: {why}");
    assert_eq!(t.latency_count("connect"), 60, "{why}");
    // Every sender's own copy came back, in whichever worker it lives.
    let sent = t.u("messages_sent");
    assert!(sent > 0, "{why}");
    assert_eq!(t.latency_count("round_trip"), sent, "{why}");
    assert_eq!(t.u("messages_lost"), 0, "{why}");
    // Rooms span the workers, and the workers share one payload clock:
    // every other member of the sender's room (20 of them, in all three
    // workers) times each message.
    assert_eq!(t.latency_count("fanout"), sent * 19, "{why}");
}

/// SIGTERM to the parent alone, as `docker stop` or `kill` send it: the
/// parent stops its workers and merges what they measured.
#[test]
fn sigterm_to_the_parent_stops_the_workers_and_keeps_their_figures() {
    sigterm_with_workers(false);
}

/// SIGTERM to the whole process group, as `timeout` and systemd send it:
/// the workers get it too, and treat it as they treat Ctrl-C.
#[test]
fn sigterm_to_the_whole_group_keeps_every_workers_figures() {
    sigterm_with_workers(true);
}

/// A `--processes 2` run stopped by SIGTERM mid-run ends as Ctrl-C ends
/// it: every connection closed politely, the merged report written and the
/// summary printed, both naming the signal, exit status 1, and no worker
/// left running.
fn sigterm_with_workers(to_group: bool) {
    let server = chat_server();
    let lg = Loadgen::spawn_json_in_own_group(&[
        "run",
        &server.url(),
        "--processes",
        "2",
        "-c",
        "40",
        "--rooms",
        "2",
        "--chatters",
        "0.25",
        "--rate",
        "5",
        "--duration",
        "30s",
        "--progress",
        "never",
    ]);
    std::thread::sleep(Duration::from_millis(2500));
    let workers = testkit::procs::descendants(lg.pid() as u32);
    if workers.len() != 2 {
        lg.fail(&format!("expected 2 worker processes, found {workers:?}"));
    }
    if to_group {
        lg.signal_group(libc::SIGTERM);
    } else {
        lg.signal(libc::SIGTERM);
    }
    let run = lg.wait(Duration::from_secs(30));
    let why = run.describe();
    run.assert_no_panic();
    // Promptly: the workers' connections close within their grace.
    assert!(run.elapsed < Duration::from_secs(12), "{why}");
    run.assert_code(1);
    assert!(run.stderr.contains("interrupted by SIGTERM"), "{why}");
    assert!(run.stdout.contains("interrupted by SIGTERM"), "{why}");
    assert!(
        !run.stderr.contains("without a result"),
        "every worker reported: {why}"
    );
    let t = run.totals();
    assert_eq!(t.u("connects_ok"), 40, "both workers' figures: {why}");
    assert_eq!(t.u("closes_by_us"), 40, "every connection closed: {why}");
    assert_eq!(t.u("open_connections"), 40, "held until we closed: {why}");
    assert!(t.labels("closes_unexpected").is_empty(), "{why}");
    assert!(t.u("messages_sent") > 0, "{why}");
    for w in workers {
        assert!(
            !testkit::procs::is_running(w),
            "worker {w} still runs: {why}"
        );
    }
}
