//! Servers that misbehave in ways a benchmark must measure rather than
//! hide: one that stalls (the open model keeps its timetable and the stall
//! shows as latency), one that drops frames (counted as lost, exactly),
//! one that never answers (every message lost, with a bounded list of awaited
//! ones), one that refuses upgrades (counted by HTTP status, exit
//! non-zero), and ones whose 101 a client must refuse (counted by cause).
//! The server keeps its own counts, and the report must agree with them.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::raw_server::{Behaviour, RawServer};
use common::run_json;
use loadgen::stats::{Latency, Totals};
use protocol::handshake::accept_response;

const LIMIT: Duration = Duration::from_secs(25);

/// Coordinated omission: the server stops reading and echoing for 1 s in
/// the middle of a 3 s run. An open-model sender keeps sending on its
/// timetable (a closed-loop one would have sent about a third fewer), and
/// the messages due during the stall are timed from when they were due,
/// so a whole second of them shows latencies up to the stall's length.
#[test]
fn a_stall_shows_as_latency_and_the_timetable_keeps_going() {
    const SENDERS: u64 = 10;
    const RATE: u64 = 20;
    const SECS: u64 = 3;
    let server = RawServer::start(Behaviour::StallOnce {
        after: Duration::from_secs(1),
        stall: Duration::from_secs(1),
    });
    let run = run_json(
        &[
            "run",
            &server.url(),
            "--workload",
            "echo",
            "-c",
            &SENDERS.to_string(),
            "--chatters",
            "1",
            "--rate",
            &RATE.to_string(),
            "--size",
            "32",
            "--duration",
            &format!("{SECS}s"),
            "--drain",
            "1s",
            "--progress",
            "never",
        ],
        LIMIT,
    );
    run.assert_code(0);
    let t = run.totals();
    let why = run.describe();

    // The timetable did not pause: close to rate × senders × duration
    // (the first sends wait for the ramp and a phase of up to one interval).
    let sent = t.u("messages_sent");
    let planned = SENDERS * RATE * SECS;
    assert!(
        sent <= planned && sent >= planned * 85 / 100,
        "sent {sent} of {planned} planned: {why}"
    );
    // Everything came back once the server woke up.
    assert_eq!(
        server.counters.echoed.load(Ordering::Relaxed),
        sent,
        "{why}"
    );
    assert_eq!(t.u("messages_lost"), 0, "{why}");
    assert_eq!(t.latency_count("echo"), sent, "{why}");

    // The stall is in the latencies: the worst waited about the whole
    // second, and half a second's worth of messages (≈ 100) waited more
    // than half a second. In a closed loop (each sender waiting for its
    // echo before the next send) only one message per sender would have.
    let max = t.latency_ms("echo", "max_ms");
    let p99 = t.latency_ms("echo", "p99_ms");
    assert!(max >= 900.0, "max {max} ms: {why}");
    assert!(p99 >= 800.0, "p99 {p99} ms: {why}");
    let parsed: Totals = serde_json::from_value(run.json.as_ref().unwrap()["totals"].clone())
        .expect("totals deserialize");
    let h = parsed.latency(Latency::Echo).expect("echo histogram");
    let h = h.histogram();
    let slow = h.count_between(500_000, h.max());
    let expected = SENDERS * RATE / 2;
    assert!(
        slow >= expected * 6 / 10,
        "{slow} echoes took 500 ms or more, expected about {expected}: {why}"
    );
}

/// A server that drops every second frame of each connection: each dropped
/// frame is one message lost, exactly, and only the echoed ones are timed.
#[test]
fn dropped_frames_are_counted_as_lost() {
    let server = RawServer::start(Behaviour::DropEverySecond);
    let run = run_json(
        &[
            "run",
            &server.url(),
            "--workload",
            "echo",
            "-c",
            "10",
            "--chatters",
            "1",
            "--rate",
            "20",
            "--size",
            "32",
            "--duration",
            "2s",
            "--drain",
            "1s",
            "--loss-timeout",
            "300ms",
            "--progress",
            "never",
            "--max-loss",
            "0.6",
        ],
        LIMIT,
    );
    // Losses within --max-loss are measured, not a failure: the note says so.
    run.assert_code(0);
    let t = run.totals();
    let why = run.describe();
    let c = &server.counters;
    let (echoed, dropped) = (
        c.echoed.load(Ordering::Relaxed),
        c.dropped.load(Ordering::Relaxed),
    );
    let sent = t.u("messages_sent");
    assert!(sent >= 200, "{why}");
    assert_eq!(echoed + dropped, sent, "the server saw every frame: {why}");
    // Each connection drops the even ones of its frames: half, rounded down.
    assert!(dropped <= sent / 2 && dropped + 10 >= sent / 2, "{why}");
    assert_eq!(t.u("messages_lost"), dropped, "{why}");
    assert_eq!(t.latency_count("echo"), echoed, "{why}");
    assert_eq!(t.u("messages_received"), echoed, "{why}");
    assert_eq!(t.u("copies_received"), echoed, "{why}");
    let json = run.json.as_ref().unwrap();
    let notes = json["run"]["notes"].to_string();
    assert!(notes.contains(&format!("{dropped} messages lost")), "{why}");
    // Counted as they happen, --loss-timeout after each was due, not only
    // when the run ends: most of them show in the seconds of sending.
    let sending = json["run"]["sending_secs"].as_f64().unwrap();
    assert!((1.5..=2.0).contains(&sending), "sending {sending} s: {why}");
    let during: u64 = json["intervals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|iv| iv["at_secs"].as_f64().unwrap() < 2.5)
        .map(|iv| iv["lost"].as_u64().unwrap())
        .sum();
    assert!(
        during >= dropped / 3,
        "{during} of {dropped} lost during the run: {why}"
    );
}

/// A server that refuses every upgrade with 403: each connect is counted
/// as a failure under a label naming the status, the run goes on to its
/// end, and it exits non-zero saying it held none of the connections.
#[test]
fn a_refused_upgrade_is_counted_by_its_status() {
    const N: u64 = 10;
    let server = RawServer::start(Behaviour::Reject("403 Forbidden"));
    let run = run_json(
        &[
            "run",
            &server.url(),
            "--workload",
            "idle",
            "-c",
            &N.to_string(),
            "--duration",
            "1s",
            "--progress",
            "never",
        ],
        LIMIT,
    );
    run.assert_code(1);
    run.assert_no_panic();
    let t = run.totals();
    let why = run.describe();
    assert_eq!(t.u("connects_attempted"), N, "{why}");
    assert_eq!(t.u("connects_ok"), 0, "{why}");
    assert_eq!(
        t.labels("connect_errors"),
        [("HTTP 403".to_string(), N)].into(),
        "{why}"
    );
    assert_eq!(server.counters.upgrades.load(Ordering::Relaxed), 0);
    assert!(run.stderr.contains("held 0 of 10"), "{why}");
    assert!(run.stderr.contains("HTTP 403"), "{why}");
}

/// A server that takes every frame and answers none: a sender awaits at
/// most 65,536 of its messages at once, and the older ones count as lost as
/// the list overflows (a 60 s loss timeout would otherwise keep them all,
/// 8 bytes each, for a minute, whatever the rate).
#[test]
fn a_server_that_never_answers_costs_a_bounded_list_of_awaited_messages() {
    const CAP: u64 = 65_536;
    let server = RawServer::start(Behaviour::SendAfter(Duration::ZERO, Vec::new()));
    let run = run_json(
        &[
            "run",
            &server.url(),
            "--workload",
            "echo",
            "-c",
            "1",
            "--chatters",
            "1",
            "--rate",
            "100000",
            "--size",
            "24",
            "--duration",
            "2s",
            "--drain",
            "200ms",
            "--loss-timeout",
            "60s",
            "--progress",
            "never",
        ],
        LIMIT,
    );
    // Losing everything fails the run, with the reason.
    run.assert_code(1);
    let t = run.totals();
    let why = run.describe();
    let sent = t.u("messages_sent");
    assert!(sent > CAP + 10_000, "sent {sent}: {why}");
    assert_eq!(t.u("messages_lost"), sent, "{why}");
    assert!(
        run.stdout.contains(&format!(
            "lost {sent} of {sent} messages sent (100.0 %), more than --max-loss 0 allows"
        )),
        "{why}"
    );
    // All but the last CAP were written off while the run went on, long
    // before their 60 s were up; the last CAP at the end.
    let intervals = run.json.as_ref().unwrap()["intervals"]
        .as_array()
        .unwrap()
        .clone();
    let (last, before) = intervals.split_last().unwrap();
    let early: u64 = before.iter().map(|iv| iv["lost"].as_u64().unwrap()).sum();
    assert!(early + last["lost"].as_u64().unwrap() == sent, "{why}");
    assert!(
        early >= sent - CAP - 1_000,
        "{early} of {sent} early: {why}"
    );
}

/// A chat server that does not take the room from the URL answers every
/// chat with an error (as a uWebSockets.js chat server expecting a join
/// message did): the run fails, names the error, and suggests `--join`.
#[test]
fn errors_from_the_server_fail_the_run_and_are_named() {
    let error = br#"{"type":"system","id":0,"user_id":1,"username":"","room":"","payload":"error: not in room \"room-0\"","timestamp":0}"#;
    let mut frame = vec![0x81, 126];
    frame.extend_from_slice(&(error.len() as u16).to_be_bytes());
    frame.extend_from_slice(error);
    let server = RawServer::start(Behaviour::SendAfter(Duration::from_millis(300), frame));
    let run = run_json(
        &[
            "run",
            &server.url(),
            "--workload",
            "chat-json",
            "-c",
            "4",
            "--chatters",
            "0",
            "--duration",
            "1s",
            "--drain",
            "100ms",
            "--progress",
            "never",
            "--join",
            "url",
        ],
        LIMIT,
    );
    run.assert_code(1);
    let t = run.totals();
    let why = run.describe();
    assert_eq!(
        t.u("messages_unexpected"),
        4,
        "one error per connection: {why}"
    );
    assert_eq!(t.u("copies_received"), 0, "{why}");
    assert!(
        run.stdout.contains(
            "received 4 messages that were not the run's (e.g. an error from the server: \"error: not in room \\\"room-0\\\"\")"
        ),
        "{why}"
    );
    assert!(
        run.stdout.contains("--join message works with any server"),
        "{why}"
    );
}

/// RFC 6455 4.1: a client fails the connection when the 101 lacks
/// `Upgrade: websocket` or `Connection: Upgrade`, or chooses an extension
/// or subprotocol it did not ask for. Each is a connect error under its
/// own label, and nothing counts as connected; a 101 that is right in
/// another spelling (other case, Connection a list) still connects.
#[test]
fn a_bad_101_is_refused_under_its_cause() {
    const N: u64 = 3;
    fn with(key: &str, from: &str, to: &str) -> String {
        accept_response(key).replace(from, to)
    }
    const EXT: &str = "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n";
    const PROTO: &str = "\r\nSec-WebSocket-Protocol: chat\r\n\r\n";
    // what the server does wrong, its answer, the label loadgen counts
    type Case = (&'static str, fn(&str) -> String, &'static str);
    let cases: [Case; 6] = [
        (
            "no Upgrade",
            |k| with(k, "Upgrade: websocket\r\n", ""),
            "upgrade: server's 101 has no Upgrade: websocket header",
        ),
        (
            "Upgrade: h2c",
            |k| with(k, "Upgrade: websocket", "Upgrade: h2c"),
            "upgrade: server's 101 has no Upgrade: websocket header",
        ),
        (
            "no Connection",
            |k| with(k, "Connection: Upgrade\r\n", ""),
            "upgrade: server's 101 has no Connection: Upgrade header",
        ),
        (
            "Connection: close",
            |k| with(k, "Connection: Upgrade", "Connection: close"),
            "upgrade: server's 101 has no Connection: Upgrade header",
        ),
        (
            "an extension",
            |k| with(k, "\r\n\r\n", EXT),
            "upgrade: server chose an extension not requested",
        ),
        (
            "a subprotocol when none was offered",
            |k| with(k, "\r\n\r\n", PROTO),
            "upgrade: server chose a subprotocol not offered",
        ),
    ];
    for (what, answer, label) in cases {
        let server = RawServer::start(Behaviour::Answer(answer));
        let run = run_json(
            &[
                "run",
                &server.url(),
                "--workload",
                "idle",
                "-c",
                &N.to_string(),
                "--duration",
                "1s",
                "--progress",
                "never",
            ],
            LIMIT,
        );
        let why = format!("{what}: {}", run.describe());
        assert_eq!(run.code(), Some(1), "{why}");
        run.assert_no_panic();
        let t = run.totals();
        assert_eq!(t.u("connects_ok"), 0, "{why}");
        assert_eq!(
            t.labels("connect_errors"),
            [(label.to_string(), N)].into(),
            "{why}"
        );
    }

    let lenient = RawServer::start(Behaviour::Answer(|k| {
        with(k, "Upgrade: websocket", "upgrade: WebSocket")
            .replace("Connection: Upgrade", "connection: keep-alive, UPGRADE")
    }));
    let run = run_json(
        &[
            "run",
            &lenient.url(),
            "--workload",
            "idle",
            "-c",
            &N.to_string(),
            "--duration",
            "1s",
            "--progress",
            "never",
        ],
        LIMIT,
    );
    run.assert_code(0);
    assert_eq!(run.totals().u("connects_ok"), N, "{}", run.describe());
}
