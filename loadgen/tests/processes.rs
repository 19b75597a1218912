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
    // Rooms span the workers, and the workers share one payload clock:
    // every other member of the sender's room (20 of them, in all three
    // workers) times each message.
    assert_eq!(t.latency_count("fanout"), sent * 19, "{why}");
}
