//! `idle` holds connections with WebSocket pings at `--ping-interval`,
//! which keeps servers' idle timeouts away: the server counts the pings
//! each connection sent.

mod common;

use std::time::Duration;

use common::raw_server::{Behaviour, RawServer};
use common::run_json;

const N: usize = 5;

fn idle_run(server: &RawServer, ping_interval: &str) -> common::Finished {
    run_json(
        &[
            "run",
            &server.url(),
            "--workload",
            "idle",
            "-c",
            &N.to_string(),
            "--ping-interval",
            ping_interval,
            "--duration",
            "2s",
            "--progress",
            "never",
        ],
        Duration::from_secs(20),
    )
}

/// Every 200 ms for 2 s: about 9 pings per connection (the first is due
/// one interval after the connect), from every connection, and no flood.
#[test]
fn idle_connections_ping_at_the_interval() {
    let server = RawServer::start(Behaviour::Echo);
    let run = idle_run(&server, "200ms");
    run.assert_code(0);
    let why = run.describe();
    assert_eq!(run.totals().u("connects_ok"), N as u64, "{why}");
    let pings = server.counters.pings();
    assert_eq!(pings.len(), N, "every connection pinged: {pings:?} {why}");
    for (peer, n) in &pings {
        assert!(
            (5..=12).contains(n),
            "{peer} sent {n} pings in 2 s at 200 ms: {why}"
        );
    }
    // Pongs are no data messages.
    assert_eq!(run.totals().u("messages_received"), 0, "{why}");
}

/// `--ping-interval 0` turns pings off.
#[test]
fn a_zero_interval_sends_no_pings() {
    let server = RawServer::start(Behaviour::Echo);
    let run = idle_run(&server, "0s");
    run.assert_code(0);
    assert_eq!(run.totals().u("connects_ok"), N as u64);
    assert!(
        server.counters.pings().is_empty(),
        "{:?}: {}",
        server.counters.pings(),
        run.describe()
    );
}
