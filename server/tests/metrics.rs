//! The Prometheus endpoint of the real binary. A process per test: the
//! recorder is process-global, so in-process servers would share counters
//! and no value could be asserted exactly.

use std::time::Duration;

use protocol::frame::FrameHeader;
use protocol::{binary, json, ChatMessage, MsgType, Proto};
use testkit::{
    http_exchange, http_get, scrape, scrape_until, upgrade_status, Client, Exposition, Received,
    ServerProcess,
};

const SERVER: &str = env!("CARGO_BIN_EXE_server");

/// Bytes of the frame carrying `msg` in `proto`; clients mask, the server
/// does not.
fn frame_len(msg: &ChatMessage<'_>, proto: Proto, masked: bool) -> u64 {
    let body = match proto {
        Proto::Json => json::to_string(msg).len(),
        Proto::Binary => binary::encoded_len(msg),
    };
    (body + FrameHeader::encoded_len(body, masked)) as u64
}

/// Receives `n` messages and returns the bytes of their frames.
async fn receive(c: &mut Client, n: usize, kind: MsgType) -> u64 {
    let mut bytes = 0;
    for _ in 0..n {
        match c.recv().await.unwrap() {
            Received::Chat(m, proto) => {
                assert_eq!(m.kind(), Some(kind), "{m:?}");
                bytes += frame_len(&m, proto, false);
            }
            other => panic!("expected a {kind:?}, got {other:?}"),
        }
    }
    bytes
}

/// Sends `msg` and returns the bytes of its frame.
async fn send(c: &mut Client, msg: &ChatMessage<'_>) -> u64 {
    c.send(msg).await.unwrap();
    frame_len(msg, c.proto, true)
}

fn v(e: &Exposition, name: &str, labels: &[(&str, &str)]) -> f64 {
    e.value(name, labels).unwrap()
}

fn msgs(e: &Exposition, dir: &str, kind: &str, encoding: &str) -> f64 {
    v(
        e,
        &format!("chat_messages_{dir}_total"),
        &[("type", kind), ("encoding", encoding)],
    )
}

#[tokio::test]
async fn metrics_count_connections_messages_bytes_and_fanout_exactly() {
    let server = ServerProcess::spawn(SERVER, &["--workers", "2"]).unwrap();
    let (addr, maddr) = (server.ws, server.metrics.expect("metrics enabled"));

    let mut a = Client::connect(addr, Proto::Json, "username=a&room=m1")
        .await
        .unwrap();
    receive(&mut a, 1, MsgType::Join).await;
    let mut b = Client::connect(addr, Proto::Binary, "username=b&room=m1")
        .await
        .unwrap();
    receive(&mut b, 1, MsgType::Join).await;
    receive(&mut a, 1, MsgType::Join).await;
    let mut c = Client::connect(addr, Proto::Json, "username=c&room=m2")
        .await
        .unwrap();
    receive(&mut c, 1, MsgType::Join).await;
    assert_eq!(http_get(addr, "/").await.unwrap().0, 400);

    // The byte counters are counted just after each write: a client can
    // read a frame before the server has added its bytes, so the baseline
    // is taken once they hold still across two scrapes.
    let mut last_sent = None;
    let s1 = scrape_until(maddr, Duration::from_secs(5), |e| {
        let sent = e.get("chat_sent_bytes_total", &[]);
        let settled = sent.is_some() && sent == last_sent;
        last_sent = sent;
        settled
            && e.get(
                "chat_connections_rejected_total",
                &[("reason", "bad_request")],
            ) == Some(1.0)
    })
    .await
    .unwrap();
    assert_eq!(v(&s1, "chat_connections_accepted_total", &[]), 3.0);
    assert_eq!(v(&s1, "chat_connections_open", &[]), 3.0);
    assert_eq!(v(&s1, "chat_rooms", &[]), 2.0);
    assert_eq!(v(&s1, "chat_handshake_duration_seconds_count", &[]), 3.0);
    assert_eq!(
        v(
            &s1,
            "chat_handshake_duration_seconds_bucket",
            &[("le", "+Inf")]
        ),
        3.0
    );
    assert!(v(&s1, "chat_handshake_duration_seconds_sum", &[]) > 0.0);
    assert_eq!(msgs(&s1, "sent", "system", "json"), 2.0, "welcomes");
    assert_eq!(msgs(&s1, "sent", "system", "binary"), 1.0, "welcome");
    assert_eq!(msgs(&s1, "sent", "join", "json"), 3.0);
    assert_eq!(msgs(&s1, "sent", "join", "binary"), 1.0);
    assert_eq!(s1.sum("chat_connections_closed_total", &[]), 0.0);
    for reason in ["max_connections", "handshake_timeout", "shutting_down"] {
        assert_eq!(
            v(
                &s1,
                "chat_connections_rejected_total",
                &[("reason", reason)]
            ),
            0.0
        );
    }

    // Traffic: 3 JSON chats of 10000 bytes from a, 2 binary chats from b,
    // one ping from c. Byte counts are the frames on the wire.
    let mut client_bytes = 0;
    let big = vec![b'x'; 10_000];
    for _ in 0..3 {
        client_bytes += send(
            &mut a,
            &ChatMessage::new(MsgType::Chat)
                .with_room("m1")
                .with_payload(&big[..]),
        )
        .await;
    }
    for _ in 0..2 {
        client_bytes += send(
            &mut b,
            &ChatMessage::new(MsgType::Chat)
                .with_room("m1")
                .with_payload(&b"hi"[..]),
        )
        .await;
    }
    let mut ping = ChatMessage::new(MsgType::Ping).with_payload(&b"p"[..]);
    ping.id = 5;
    client_bytes += send(&mut c, &ping).await;
    let mut server_bytes = receive(&mut a, 5, MsgType::Chat).await;
    server_bytes += receive(&mut b, 5, MsgType::Chat).await;
    server_bytes += receive(&mut c, 1, MsgType::Pong).await;
    assert!(server_bytes > 60_000);

    let rx1 = v(&s1, "chat_received_bytes_total", &[]);
    let tx1 = v(&s1, "chat_sent_bytes_total", &[]);
    let s2 = scrape_until(maddr, Duration::from_secs(5), |e| {
        e.get("chat_received_bytes_total", &[]).unwrap_or(0.0) >= rx1 + client_bytes as f64
            && e.get("chat_sent_bytes_total", &[]).unwrap_or(0.0) >= tx1 + server_bytes as f64
    })
    .await
    .unwrap();
    assert_eq!(
        v(&s2, "chat_received_bytes_total", &[]) - rx1,
        client_bytes as f64
    );
    assert_eq!(
        v(&s2, "chat_sent_bytes_total", &[]) - tx1,
        server_bytes as f64
    );
    assert_eq!(msgs(&s2, "received", "chat", "json"), 3.0);
    assert_eq!(msgs(&s2, "received", "chat", "binary"), 2.0);
    assert_eq!(msgs(&s2, "received", "ping", "json"), 1.0);
    assert_eq!(msgs(&s2, "received", "ping", "binary"), 0.0);
    assert_eq!(msgs(&s2, "sent", "chat", "json"), 5.0);
    assert_eq!(msgs(&s2, "sent", "chat", "binary"), 5.0);
    assert_eq!(msgs(&s2, "sent", "pong", "json"), 1.0);
    // Fan-out: joins of 1, 2 and 1 recipients, then 5 chats to 2.
    let fanout = "chat_broadcast_recipients";
    assert_eq!(v(&s2, &format!("{fanout}_count"), &[]), 8.0);
    assert_eq!(v(&s2, &format!("{fanout}_sum"), &[]), 14.0);
    let bucket = |le| v(&s2, &format!("{fanout}_bucket"), &[("le", le)]);
    assert_eq!(
        (bucket("1"), bucket("2"), bucket("5"), bucket("+Inf")),
        (2.0, 8.0, 8.0, 8.0)
    );
    assert_eq!(s2.sum("chat_messages_dropped_total", &[]), 0.0);

    // Closes: a politely, c by dropping TCP.
    assert_eq!(a.close_and_wait().await.unwrap(), Some(1000));
    drop(c);
    let s3 = scrape_until(maddr, Duration::from_secs(5), |e| {
        e.sum("chat_connections_closed_total", &[]) >= 2.0
    })
    .await
    .unwrap();
    assert_eq!(
        v(
            &s3,
            "chat_connections_closed_total",
            &[("reason", "client_close")]
        ),
        1.0
    );
    assert_eq!(
        v(
            &s3,
            "chat_connections_closed_total",
            &[("reason", "peer_gone")]
        ),
        1.0
    );
    assert_eq!(s3.sum("chat_connections_closed_total", &[]), 2.0);
    assert_eq!(v(&s3, "chat_connections_open", &[]), 1.0);
    assert_eq!(v(&s3, "chat_connections_accepted_total", &[]), 3.0);
    assert_eq!(v(&s3, "chat_rooms", &[]), 1.0, "m2 emptied, m1 still has b");
    let leave = b.recv_msg().await.unwrap();
    assert_eq!((leave.kind(), leave.user_id), (Some(MsgType::Leave), a.id));

    // Process figures.
    let rss = v(&s3, "process_resident_memory_bytes", &[]);
    assert!(rss > 1e6 && rss < 1e10, "rss {rss}");
    let rss_now = testkit::rss_bytes(server.child.id()).unwrap() as f64;
    assert!(
        (rss / rss_now - 1.0).abs() < 0.5,
        "process_resident_memory_bytes {rss} vs VmRSS {rss_now}"
    );
    let cpu1 = v(&s1, "process_cpu_seconds_total", &[]);
    let cpu3 = v(&s3, "process_cpu_seconds_total", &[]);
    assert!(cpu1 >= 0.0 && cpu3 >= cpu1, "cpu {cpu1} then {cpu3}");
}

#[tokio::test]
async fn refusals_and_close_reasons_are_counted_by_reason() {
    let server = ServerProcess::spawn(
        SERVER,
        &[
            "--workers",
            "2",
            "--max-connections",
            "2",
            "--handshake-timeout",
            "300ms",
            "--idle-timeout",
            "600ms",
            "--max-message-size",
            "2048",
        ],
    )
    .unwrap();
    let (addr, maddr) = (server.ws, server.metrics.expect("metrics enabled"));
    let mut big = Client::connect(addr, Proto::Json, "").await.unwrap();
    let mut idle = Client::connect(addr, Proto::Binary, "").await.unwrap();
    assert_eq!(upgrade_status(addr, "/").await.unwrap(), 503);
    let v8 = protocol::handshake::client_request(
        &addr.to_string(),
        "/",
        &protocol::handshake::generate_key(),
        &[],
    )
    .replace("Version: 13", "Version: 8");
    assert_eq!(http_exchange(addr, v8.as_bytes()).await.unwrap().0, 426);
    let _silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    big.chat("", &[b'z'; 3000]).await.unwrap();
    assert_eq!(big.expect_close_answered().await.unwrap(), Some(1009));
    assert_eq!(idle.expect_close_answered().await.unwrap(), Some(1000));

    let e = scrape_until(maddr, Duration::from_secs(5), |e| {
        e.sum("chat_connections_closed_total", &[]) >= 2.0
            && e.sum("chat_connections_rejected_total", &[]) >= 3.0
    })
    .await
    .unwrap();
    let closed = |r| v(&e, "chat_connections_closed_total", &[("reason", r)]);
    let rejected = |r| v(&e, "chat_connections_rejected_total", &[("reason", r)]);
    assert_eq!((closed("too_big"), closed("idle_timeout")), (1.0, 1.0));
    assert_eq!(e.sum("chat_connections_closed_total", &[]), 2.0);
    assert_eq!(
        (
            rejected("max_connections"),
            rejected("bad_request"),
            rejected("handshake_timeout")
        ),
        (1.0, 1.0, 1.0)
    );
    assert_eq!(e.sum("chat_connections_rejected_total", &[]), 3.0);
    assert_eq!(v(&e, "chat_connections_accepted_total", &[]), 2.0);
    assert_eq!(v(&e, "chat_connections_open", &[]), 0.0);
}

#[tokio::test]
async fn healthz_answers_200_and_unknown_paths_404() {
    let server = ServerProcess::spawn(SERVER, &["--workers", "1"]).unwrap();
    let maddr = server.metrics.expect("metrics enabled");
    assert_eq!(http_get(maddr, "/healthz").await.unwrap().0, 200);
    assert_eq!(http_get(maddr, "/nope").await.unwrap().0, 404);
    assert_eq!(http_get(maddr, "/metricsx").await.unwrap().0, 404);
    let (status, body) = http_get(maddr, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    let e = Exposition::parse(&body).unwrap();
    for name in [
        "chat_connections_open",
        "chat_connections_accepted_total",
        "chat_connections_closed_total",
        "chat_connections_rejected_total",
        "chat_messages_received_total",
        "chat_messages_sent_total",
        "chat_received_bytes_total",
        "chat_sent_bytes_total",
        "chat_messages_dropped_total",
        "chat_rooms",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
    ] {
        assert!(e.has(name), "{name} missing from a fresh server's /metrics");
    }
    // Another scrape works the same (one connection per request).
    scrape(maddr).await.unwrap();
}

#[tokio::test]
async fn no_metrics_means_no_endpoint() {
    let server = ServerProcess::spawn(SERVER, &["--workers", "1", "--no-metrics"]).unwrap();
    assert_eq!(server.metrics, None);
    let c = Client::connect(server.ws, Proto::Json, "").await.unwrap();
    assert_ne!(c.id, 0);
}

/// The real `promtool check metrics` accepts the exposition once every kind
/// of series has values: histograms with samples, closes, process figures.
/// Skipped with a note without promtool, a failure with REQUIRE_PROMTOOL=1.
#[tokio::test]
async fn promtool_accepts_the_exposition() {
    let server = ServerProcess::spawn(SERVER, &["--workers", "1"]).unwrap();
    let (addr, maddr) = (server.ws, server.metrics.expect("metrics enabled"));
    let mut a = Client::connect(addr, Proto::Json, "username=a&room=p")
        .await
        .unwrap();
    receive(&mut a, 1, MsgType::Join).await;
    let mut b = Client::connect(addr, Proto::Binary, "username=b&room=p")
        .await
        .unwrap();
    receive(&mut b, 1, MsgType::Join).await;
    receive(&mut a, 1, MsgType::Join).await;
    send(
        &mut a,
        &ChatMessage::new(MsgType::Chat)
            .with_room("p")
            .with_payload(&b"hello"[..]),
    )
    .await;
    receive(&mut a, 1, MsgType::Chat).await;
    receive(&mut b, 1, MsgType::Chat).await;
    assert_eq!(a.close_and_wait().await.unwrap(), Some(1000));
    scrape_until(maddr, Duration::from_secs(5), |e| {
        e.sum("chat_connections_closed_total", &[]) >= 1.0
            && e.get("chat_broadcast_recipients_count", &[]) >= Some(3.0)
    })
    .await
    .unwrap();

    let (status, body) = http_get(maddr, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    for family in [
        "# TYPE chat_handshake_duration_seconds histogram",
        "# TYPE chat_broadcast_recipients histogram",
        "# TYPE process_cpu_seconds_total counter",
    ] {
        assert!(body.contains(family), "{family} missing:\n{body}");
    }
    promhttp::promtool::assert_valid(&body);
}
