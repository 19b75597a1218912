//! `--processes N`: one run spread over worker processes, merged into one
//! exact result.

mod common;

use std::time::Duration;

use common::{chat_server, run_json};

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
    // Rooms span the workers, but fan-out is timed only between
    // connections of one worker (one clock): each message is timed by the
    // sender's room-mates inside its worker's slice of 20 indices.
    let senders: Vec<u64> = (0..60u64)
        .filter(|&i| ((i + 1) as f64 * 0.25).floor() > (i as f64 * 0.25).floor())
        .collect();
    let local_mates = |s: u64| {
        let slice = (s / 20) * 20..(s / 20) * 20 + 20;
        slice.filter(|j| j % 3 == s % 3 && *j != s).count() as u64
    };
    let fewest = senders.iter().map(|&s| local_mates(s)).min().unwrap();
    let most = senders.iter().map(|&s| local_mates(s)).max().unwrap();
    let fanout = t.latency_count("fanout");
    assert!(
        (sent * fewest..=sent * most).contains(&fanout),
        "fan-out {fanout} outside {fewest}..={most} per message: {why}"
    );
}
