//! Churn against the real server: connections retire and reconnect at the
//! asked rate, every close is polite, and the server saw exactly the
//! connections loadgen counted.

mod common;

use std::time::Duration;

use common::run_json;
use testkit::ServerProcess;

#[test]
fn churn_reconnects_at_the_asked_rate_and_the_server_agrees() {
    const N: u64 = 100;
    let bin = testkit::server_bin();
    let server = ServerProcess::spawn(bin.to_str().expect("UTF-8 path"), &["--workers", "2"])
        .expect("the server starts");
    // Mean lifetime N / churn = 0.5 s over a 3 s run.
    let run = run_json(
        &[
            "run",
            &server.url(),
            "--connections",
            &N.to_string(),
            "--churn",
            "200",
            "--chatters",
            "0.1",
            "--rate",
            "5",
            "--duration",
            "3s",
            "--drain",
            "500ms",
            "--progress",
            "never",
        ],
        Duration::from_secs(30),
    );
    run.assert_code(0);
    let t = run.totals();
    let why = run.describe();
    let churned = t.u("churned");
    // About churn × duration (600); the ramp and the drain trim it. A run
    // without churn would show 0, a runaway one far more.
    assert!((250..=800).contains(&churned), "churned {churned}: {why}");
    assert_eq!(t.u("connects_ok"), N + churned, "{why}");
    assert_eq!(t.u("closes_by_us"), N, "{why}");
    assert!(t.labels("closes_unexpected").is_empty(), "{why}");
    assert!(t.labels("connect_errors").is_empty(), "{why}");
    assert_eq!(t.u("open_connections"), N, "held at end: {why}");
    assert_eq!(t.u("messages_lost"), 0, "{why}");

    // The server's own counts: every connection loadgen made, all closed
    // by the client's close frame.
    let metrics = server.metrics.expect("metrics endpoint");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let exposition = runtime
        .block_on(testkit::prom::scrape_until(
            metrics,
            Duration::from_secs(5),
            |e| e.get("chat_connections_open", &[]) == Some(0.0),
        ))
        .expect("the server drains");
    let accepted = exposition
        .value("chat_connections_accepted_total", &[])
        .expect("accepted counter");
    let client_closes = exposition
        .value(
            "chat_connections_closed_total",
            &[("reason", "client_close")],
        )
        .expect("closed counter");
    assert_eq!(accepted as u64, N + churned, "{why}");
    assert_eq!(client_closes as u64, N + churned, "{why}");
}
