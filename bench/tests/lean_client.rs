//! The lean client and the holder against a minimal upgrade server built
//! from the protocol crate, over real loopback sockets.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bench::holder::{self, HoldPlan, HolderEvent};
use loadgen::conn::{self, ConnectError, ConnectOptions};
use protocol::frame::{encode_frame, Flow, Message, MessageReader, OpCode, Role};
use protocol::handshake;
use protocol::{ChatMessage, MsgType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

#[derive(Clone, Copy)]
enum Answer {
    Upgrade,
    Status503,
    Silence,
}

/// Accepts upgrades and reports each peer's address and request target.
async fn mock_server(
    answer: Answer,
) -> (SocketAddr, mpsc::UnboundedReceiver<(SocketAddr, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, peer)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let key = loop {
                    if sock.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if let Some((req, _)) = handshake::parse_request(&buf).unwrap() {
                        let target = match req.query {
                            Some(q) => format!("{}?{q}", req.path),
                            None => req.path.to_string(),
                        };
                        let _ = tx.send((peer, target));
                        break req.key.to_string();
                    }
                };
                let mut out = Vec::new();
                match answer {
                    Answer::Upgrade => {
                        out.extend_from_slice(handshake::accept_response(&key).as_bytes());
                        let welcome =
                            ChatMessage::new(MsgType::System).with_payload(&b"welcome"[..]);
                        out.extend_from_slice(&encode_frame(
                            OpCode::Binary,
                            &protocol::binary::to_vec(&welcome),
                            None,
                        ));
                    }
                    Answer::Status503 => {
                        out.extend_from_slice(handshake::error_response(503, "full").as_bytes())
                    }
                    Answer::Silence => {}
                }
                let _ = sock.write_all(&out).await;
                // hold the connection until the client goes away
                let mut sink = [0u8; 256];
                while sock.read(&mut sink).await.unwrap_or(0) > 0 {}
            });
        }
    });
    (addr, rx)
}

fn options(server: SocketAddr, source: Option<&str>) -> ConnectOptions {
    ConnectOptions {
        server,
        source: source.map(|s| s.parse().unwrap()),
        path_and_query: "/?room=r&username=u".into(),
        host: None,
        extra: Default::default(),
        tls: None,
        timeout: Duration::from_secs(10),
        nodelay: true,
    }
}

#[tokio::test]
async fn upgrade_binds_the_source_and_keeps_the_welcome() {
    let (addr, mut peers) = mock_server(Answer::Upgrade).await;
    let up = conn::connect(&options(addr, Some("127.0.0.4")))
        .await
        .unwrap();
    let (peer, target) = peers.recv().await.unwrap();
    assert_eq!(peer.ip(), "127.0.0.4".parse::<IpAddr>().unwrap());
    assert_ne!(peer.port(), 0);
    assert_eq!(target, "/?room=r&username=u");

    // The welcome frame is in `leftover` or still on the socket.
    let mut stream = up
        .stream
        .into_plain()
        .expect("a ws:// connection is plain TCP");
    let mut bytes = up.leftover;
    let mut reader = MessageReader::new(Role::Client, 65_536);
    let mut welcome = None;
    loop {
        reader
            .feed(&mut bytes, |m| {
                if let Message::Binary(b) = m {
                    welcome = Some(protocol::binary::decode(b).unwrap().into_owned());
                }
                Flow::Continue
            })
            .unwrap();
        if welcome.is_some() {
            break;
        }
        bytes.clear();
        assert!(
            stream.read_buf(&mut bytes).await.unwrap() > 0,
            "closed early"
        );
    }
    let welcome = welcome.unwrap();
    assert_eq!(welcome.kind(), Some(MsgType::System));
    assert_eq!(welcome.payload_str(), Some("welcome"));
}

#[tokio::test]
async fn failures_are_classified() {
    let (addr, _peers) = mock_server(Answer::Status503).await;
    let err = conn::connect(&options(addr, None)).await.unwrap_err();
    assert_eq!(err.kind(), "HTTP 503", "{err}");

    // a port nobody listens on: bind one, learn it, close it
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let err = conn::connect(&options(closed, None)).await.unwrap_err();
    assert!(matches!(err, ConnectError::Connect(_)), "{err}");
    assert!(err.kind().contains("refused"), "{}", err.kind());

    let (addr, _peers) = mock_server(Answer::Silence).await;
    let mut opts = options(addr, None);
    opts.timeout = Duration::from_millis(300);
    let err = conn::connect(&opts).await.unwrap_err();
    assert_eq!(err.kind(), "timeout");

    let err = conn::connect(&options(addr, Some("192.0.2.1")))
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::Bind { .. }), "{err}");
}

#[tokio::test]
async fn holder_splits_connections_exactly() {
    let (a, mut peers_a) = mock_server(Answer::Upgrade).await;
    let (b, mut peers_b) = mock_server(Answer::Upgrade).await;
    let plan = HoldPlan {
        servers: vec![a, b],
        source_ips: loadgen::source_ips::parse("127.0.0.2-127.0.0.4").unwrap(),
        first: 7,
        count: 60,
        concurrency: 8,
        connect_timeout: Duration::from_secs(10),
        path_and_query: "/".into(),
    };
    let mut events = Vec::new();
    let held = holder::establish(&plan, |e| events.push(e)).await;
    assert_eq!(held.len(), 60);
    assert!(matches!(events.first(), Some(HolderEvent::Started { .. })));
    match events.last() {
        Some(HolderEvent::Done {
            held,
            failed,
            errors,
            ..
        }) => {
            assert_eq!((*held, *failed), (60, 0));
            assert!(errors.is_empty());
        }
        other => panic!("last event {other:?}"),
    }
    let count = |rx: &mut mpsc::UnboundedReceiver<(SocketAddr, String)>| {
        let mut ips = std::collections::BTreeMap::<IpAddr, usize>::new();
        while let Ok((peer, _)) = rx.try_recv() {
            *ips.entry(peer.ip()).or_default() += 1;
        }
        ips
    };
    let (on_a, on_b) = (count(&mut peers_a), count(&mut peers_b));
    assert_eq!(on_a.values().sum::<usize>(), 30);
    assert_eq!(on_b.values().sum::<usize>(), 30);
    // 2 servers and 3 sources: every server sees every source 10 times
    assert_eq!(on_a.values().copied().collect::<Vec<_>>(), vec![10, 10, 10]);
    assert_eq!(on_b.len(), 3);
}

#[tokio::test]
async fn holder_reports_failures_by_kind() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let plan = HoldPlan {
        servers: vec![closed],
        source_ips: vec![],
        first: 0,
        count: 5,
        concurrency: 2,
        connect_timeout: Duration::from_secs(10),
        path_and_query: "/".into(),
    };
    let mut last = None;
    let held = holder::establish(&plan, |e| last = Some(e)).await;
    assert!(held.is_empty());
    match last {
        Some(HolderEvent::Done {
            held: 0,
            failed: 5,
            errors,
            first_error,
            ..
        }) => {
            assert_eq!(errors.len(), 1);
            assert!(errors.keys().all(|k| k.contains("refused")), "{errors:?}");
            assert!(first_error.is_some());
        }
        other => panic!("{other:?}"),
    }
}
