//! The echo workload against a minimal echo server written here from the
//! protocol crate's sans-IO pieces: every frame sent comes back and is
//! timed once.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::raw_server::{Behaviour, RawServer};
use common::run_json;

#[test]
fn every_echo_comes_back_and_is_timed() {
    const SIZE: u64 = 32;
    let server = RawServer::start(Behaviour::Echo);
    let run = run_json(
        &[
            "run",
            &server.url(),
            "--workload",
            "echo",
            "-c",
            "50",
            "--chatters",
            "0.2",
            "--rate",
            "20",
            "--size",
            &SIZE.to_string(),
            "--duration",
            "2s",
            "--drain",
            "1s",
            "--progress",
            "never",
        ],
        Duration::from_secs(20),
    );
    run.assert_code(0);
    let t = run.totals();
    let why = run.describe();
    assert_eq!(t.u("connects_ok"), 50, "{why}");
    assert_eq!(server.counters.upgrades.load(Ordering::Relaxed), 50);
    assert!(t.labels("closes_unexpected").is_empty(), "{why}");

    // 10 senders at 20/s for 2 s.
    let sent = t.u("messages_sent");
    assert!((280..=400).contains(&sent), "{why}");
    assert_eq!(
        server.counters.echoed.load(Ordering::Relaxed),
        sent,
        "the server saw every frame: {why}"
    );
    assert_eq!(t.u("messages_lost"), 0, "{why}");
    assert_eq!(t.latency_count("echo"), sent, "{why}");
    assert_eq!(
        t.u("messages_received"),
        sent,
        "the echo server sends nothing else: {why}"
    );
    assert_eq!(t.latency_count("round_trip"), 0, "{why}");
    assert_eq!(t.latency_count("fanout"), 0, "{why}");

    // Bytes are wire bytes both ways: every frame, headers included. Out:
    // data frames (2-byte header + 4-byte mask) and each connection's close
    // (2 + 4 + a 2-byte code); in: the echoes (2-byte header) and the
    // server's close answers (2 + 2).
    let bytes = (t.u("bytes_sent"), t.u("bytes_received"));
    let wire = (sent * (SIZE + 6) + 50 * 8, sent * (SIZE + 2) + 50 * 4);
    assert_eq!(bytes, wire, "{why}");
}
