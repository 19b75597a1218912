//! `loadgen agent` as a real process: the token is required on every
//! control connection, targets outside --allow-target are refused before
//! anything connects, one coordinator at a time, and a prepared phase runs
//! against the real server and reports its seconds and its histograms.

mod common;

use std::time::Duration;

use clap::Parser;
use common::{chat_server, no_connections, silent_listener, LOADGEN};
use futures_util::{SinkExt, StreamExt};
use loadgen::control::{Order, PhaseJob, Report, PATH, VERSION};
use loadgen::opts::{Cli, Command};
use testkit::AgentProcess;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const TOKEN: &str = "agent-test-token-0123456789";

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn agent(args: &[&str]) -> AgentProcess {
    AgentProcess::spawn(std::path::Path::new(LOADGEN), TOKEN, args).expect("the agent starts")
}

/// Opens a control connection with `auth` as the Authorization header.
async fn control(agent: &AgentProcess, auth: Option<&str>) -> Result<Ws, WsError> {
    let mut req = format!("ws://{}{PATH}", agent.addr)
        .into_client_request()
        .unwrap();
    if let Some(auth) = auth {
        req.headers_mut()
            .insert("authorization", auth.parse().unwrap());
    }
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

fn status(err: WsError) -> u16 {
    match err {
        WsError::Http(resp) => resp.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

async fn recv(ws: &mut Ws) -> Report {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("a report within 30 s")
            .expect("the connection is open")
            .expect("a frame");
        if let Message::Text(t) = msg {
            return serde_json::from_str(t.as_str()).expect("a readable report");
        }
    }
}

async fn send(ws: &mut Ws, order: &Order) {
    ws.send(Message::text(serde_json::to_string(order).unwrap()))
        .await
        .unwrap();
}

/// A connected, greeted session.
async fn session(agent: &AgentProcess) -> Ws {
    let mut ws = control(agent, Some(&format!("Bearer {TOKEN}")))
        .await
        .expect("the right token is accepted");
    match recv(&mut ws).await {
        Report::Hello { agent } => {
            assert_eq!(agent.version, VERSION);
            assert!(agent.nofile > 0);
        }
        other => panic!("expected hello, got {other:?}"),
    }
    send(&mut ws, &Order::Hello { version: VERSION }).await;
    ws
}

/// Prepares `job` as phase 0 and starts it.
async fn start_phase(ws: &mut Ws, job: PhaseJob) {
    send(
        ws,
        &Order::Prepare {
            phase: 0,
            job: Box::new(job),
        },
    )
    .await;
    assert!(matches!(recv(ws).await, Report::Ready { .. }));
    send(ws, &Order::Start { phase: 0 }).await;
}

fn job(url: &str, connections: u64, first: u64, count: u64, extra: &[&str]) -> PhaseJob {
    let mut args = vec!["loadgen", "run", url, "-c"];
    let c = connections.to_string();
    args.push(&c);
    args.extend_from_slice(extra);
    let Some(Command::Run(opts)) = Cli::parse_from(args).command else {
        panic!("run options");
    };
    PhaseJob {
        opts: *opts,
        first,
        count,
        host_clock: None,
    }
}

#[tokio::test]
async fn the_token_is_required() {
    let a = agent(&[]);
    assert_eq!(status(control(&a, None).await.unwrap_err()), 401);
    assert_eq!(
        status(control(&a, Some("Bearer wrong-token")).await.unwrap_err()),
        401
    );
    assert_eq!(
        status(
            control(&a, Some(&format!("Bearer {TOKEN}x")))
                .await
                .unwrap_err()
        ),
        401
    );
    assert_eq!(
        status(control(&a, Some(TOKEN)).await.unwrap_err()),
        401,
        "the Bearer scheme is required"
    );
    // The right token works, and only one coordinator at a time.
    let _first = session(&a).await;
    assert_eq!(
        status(
            control(&a, Some(&format!("Bearer {TOKEN}")))
                .await
                .unwrap_err()
        ),
        409
    );
}

#[tokio::test]
async fn targets_outside_the_allow_list_are_refused_before_connecting() {
    let (listener, addr) = silent_listener();
    // 127.0.0.1 is loopback: allowed by default, so narrow the list to a
    // block that excludes it.
    let a = agent(&["--allow-target", "10.0.0.0/8,example.test"]);
    let mut ws = session(&a).await;
    let url = format!("ws://{addr}/");
    send(
        &mut ws,
        &Order::Prepare {
            phase: 0,
            job: Box::new(job(&url, 10, 0, 10, &[])),
        },
    )
    .await;
    match recv(&mut ws).await {
        Report::Refused { phase: 0, error } => {
            assert!(error.contains("allow-target"), "{error}");
            assert!(error.contains("127.0.0.1"), "{error}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Start without a prepared phase is an error, and nothing connects.
    send(&mut ws, &Order::Start { phase: 0 }).await;
    assert!(matches!(recv(&mut ws).await, Report::Error { .. }));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(no_connections(&listener));
}

#[tokio::test]
async fn bad_orders_are_answered_and_the_session_goes_on() {
    let a = agent(&[]);
    let mut ws = session(&a).await;
    ws.send(Message::text("{\"type\":\"launch\"}"))
        .await
        .unwrap();
    assert!(matches!(recv(&mut ws).await, Report::Error { .. }));
    ws.send(Message::text("not json")).await.unwrap();
    assert!(matches!(recv(&mut ws).await, Report::Error { .. }));
    // A slice outside the phase, and a share this host cannot hold.
    let (_l, addr) = silent_listener();
    let url = format!("ws://{addr}/");
    send(
        &mut ws,
        &Order::Prepare {
            phase: 1,
            job: Box::new(job(&url, 10, 5, 10, &[])),
        },
    )
    .await;
    match recv(&mut ws).await {
        Report::Refused { phase: 1, error } => assert!(error.contains("slice"), "{error}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    send(
        &mut ws,
        &Order::Prepare {
            phase: 2,
            job: Box::new(job(&url, 100, 0, 100, &["--source-ips", "192.0.2.1"])),
        },
    )
    .await;
    match recv(&mut ws).await {
        Report::Refused { phase: 2, error } => assert!(error.contains("192.0.2.1"), "{error}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_prepared_phase_runs_and_reports_its_histograms() {
    let server = chat_server();
    let a = agent(&[]);
    let mut ws = session(&a).await;
    // This agent holds connections 100..150 of a 200-connection phase.
    let j = job(
        &server.url(),
        200,
        100,
        50,
        &[
            "--duration",
            "2s",
            "--drain",
            "1s",
            "--rooms",
            "5",
            "--chatters",
            "0.2",
            "--rate",
            "5",
            "--json",
            "/tmp/agent-must-not-write-this.json",
        ],
    );
    send(
        &mut ws,
        &Order::Prepare {
            phase: 0,
            job: Box::new(j),
        },
    )
    .await;
    assert!(matches!(
        recv(&mut ws).await,
        Report::Ready {
            phase: 0,
            processes: 1
        }
    ));
    send(&mut ws, &Order::Start { phase: 0 }).await;
    assert!(matches!(
        recv(&mut ws).await,
        Report::Started { phase: 0, .. }
    ));
    let mut seconds = 0;
    let mut sent = 0;
    let outcome = loop {
        match recv(&mut ws).await {
            Report::Interval { phase: 0, interval } => {
                seconds += 1;
                sent += interval.messages_sent;
            }
            Report::Done { phase: 0, outcome } => break outcome,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(seconds >= 2, "{seconds} seconds reported");
    let t = &outcome.totals;
    assert_eq!(t.connects_ok, 50);
    assert_eq!(t.open_connections, 50);
    assert_eq!(t.messages_sent, sent, "the seconds add up to the totals");
    assert!(t.messages_sent > 0);
    assert_eq!(t.messages_lost, 0);
    let rtt = t.latency(loadgen::stats::Latency::RoundTrip).unwrap();
    assert_eq!(rtt.count, t.messages_sent);
    assert!(rtt.to_histogram().is_ok(), "the histogram travels whole");
    assert!(
        !std::path::Path::new("/tmp/agent-must-not-write-this.json").exists(),
        "an order may not make the agent write files"
    );
}

#[tokio::test]
async fn a_vanished_coordinator_stops_the_phase() {
    let server = chat_server();
    let a = agent(&[]);
    let mut ws = session(&a).await;
    let j = job(
        &server.url(),
        20,
        0,
        20,
        &["--duration", "60s", "--drain", "0s"],
    );
    start_phase(&mut ws, j).await;
    assert!(matches!(recv(&mut ws).await, Report::Started { .. }));
    assert!(matches!(recv(&mut ws).await, Report::Interval { .. }));
    drop(ws);
    // The agent stops the 60 s phase and takes the next coordinator.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        match control(&a, Some(&format!("Bearer {TOKEN}"))).await {
            Ok(_) => break,
            Err(e) => {
                assert_eq!(status(e), 409);
                assert!(
                    std::time::Instant::now() < deadline,
                    "the phase never stopped"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// SIGTERM (`docker stop`, systemd) ends an agent as its coordinator going
/// away does: the running phase stops, its connections close politely, the
/// coordinator still gets what was measured, and the agent exits 0.
#[tokio::test]
async fn sigterm_stops_the_phase_reports_it_and_exits_0() {
    let server = chat_server();
    let mut a = agent(&[]);
    let mut ws = session(&a).await;
    let j = job(
        &server.url(),
        20,
        0,
        20,
        &["--duration", "60s", "--drain", "0s"],
    );
    start_phase(&mut ws, j).await;
    assert!(matches!(recv(&mut ws).await, Report::Started { .. }));
    assert!(matches!(recv(&mut ws).await, Report::Interval { .. }));
    // SAFETY: kill(2) on our own child, not yet waited for.
    unsafe { libc::kill(a.child.id() as i32, libc::SIGTERM) };
    let outcome = loop {
        match recv(&mut ws).await {
            Report::Interval { .. } => {}
            Report::Done { phase: 0, outcome } => break outcome,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(outcome.interrupted, "cut short, and says so");
    assert_eq!(outcome.totals.connects_ok, 20);
    assert_eq!(outcome.totals.closes_by_us, 20, "closed politely");
    assert!(outcome.totals.closes_unexpected.is_empty());
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = a.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the agent did not exit"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0), "{status:?}");
}

/// Whoever started an agent may stop it as soon as it has read the ready
/// line (the coordinator's `--local` lab does when another part fails to
/// start): the handlers are in place by then, so it exits 0, not killed.
#[test]
fn sigterm_right_after_the_ready_line_is_handled() {
    // A few times: a handler installed late loses this race only sometimes.
    for _ in 0..5 {
        let mut a = agent(&[]);
        // SAFETY: kill(2) on our own child, not yet waited for.
        unsafe { libc::kill(a.child.id() as i32, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(status) = a.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the agent did not exit"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(status.code(), Some(0), "{status:?}");
    }
}

#[tokio::test]
async fn the_metrics_endpoint_outlives_phases() {
    let server = chat_server();
    let a = agent(&["--metrics-listen", "127.0.0.1:0"]);
    let metrics = a.metrics.expect("the ready line names the metrics address");
    let scrape = || async move {
        let (status, text) = testkit::http_get(metrics, "/metrics").await.unwrap();
        assert_eq!(status, 200);
        assert!(promhttp::promtool::assert_valid(&text));
        testkit::prom::Exposition::parse(&text).unwrap()
    };
    let idle = scrape().await;
    assert_eq!(idle.value("loadgen_agent_phase", &[]).unwrap(), 0.0);
    assert!(idle.value("loadgen_agent_cores", &[]).unwrap() >= 1.0);
    assert!(!idle.has("loadgen_connections_open"), "no run yet");

    let mut ws = session(&a).await;
    let j = job(
        &server.url(),
        30,
        0,
        30,
        &["--duration", "4s", "--drain", "0s"],
    );
    start_phase(&mut ws, j).await;
    // Within the phase the endpoint shows it, every 2 s.
    let during = testkit::prom::scrape_until(metrics, Duration::from_secs(10), |e| {
        e.get("loadgen_connections_open", &[]) == Some(30.0)
    })
    .await
    .expect("the phase's figures while it runs");
    assert_eq!(during.value("loadgen_agent_phase", &[]).unwrap(), 1.0);
    assert_eq!(during.value("loadgen_agent_busy", &[]).unwrap(), 1.0);
    loop {
        if let Report::Done { .. } = recv(&mut ws).await {
            break;
        }
    }
    drop(ws);
    // Afterwards: idle again, the last phase's figures kept.
    let after = testkit::prom::scrape_until(metrics, Duration::from_secs(5), |e| {
        e.get("loadgen_agent_phase", &[]) == Some(0.0)
    })
    .await
    .expect("idle after the phase");
    assert_eq!(after.value("loadgen_connects_total", &[]).unwrap(), 30.0);
    assert_eq!(after.value("loadgen_agent_phases_total", &[]).unwrap(), 1.0);
}
