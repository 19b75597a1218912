//! The HTTP upgrade and its refusals (PROTOCOL.md section 1): each bad
//! request gets its status, a connection that never finishes its upgrade is
//! dropped, and a client already connected notices none of it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use protocol::handshake::{client_request, generate_key};
use protocol::{MsgType, Proto};
use testkit::{http_exchange, http_get, opts, start_server, upgrade_status, Client};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn healthy(addr: SocketAddr) -> Client {
    let mut h = Client::connect(addr, Proto::Json, "username=h&room=hs")
        .await
        .unwrap();
    assert_eq!(h.recv_msg().await.unwrap().kind(), Some(MsgType::Join));
    h
}

fn request(addr: SocketAddr, path_and_query: &str) -> String {
    client_request(&addr.to_string(), path_and_query, &generate_key(), &[])
}

#[tokio::test]
async fn a_plain_http_get_is_400() {
    let server = start_server(opts());
    let addr = server.local_addr();
    let mut h = healthy(addr).await;
    let (status, body) = http_get(addr, "/").await.unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(!body.trim().is_empty(), "the body says why");
    let (status, _) = http_get(addr, "/?username=a&room=hs").await.unwrap();
    assert_eq!(status, 400);
    // Not GET
    let post = request(addr, "/").replacen("GET", "POST", 1);
    assert_eq!(http_exchange(addr, post.as_bytes()).await.unwrap().0, 400);
    // No key
    let no_key = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    assert_eq!(http_exchange(addr, no_key.as_bytes()).await.unwrap().0, 400);
    h.chat_and_echo("hs", b"fine").await.unwrap();
}

/// RFC 6455 4.1: a request must carry one Host, and a key that is the
/// base64 of 16 bytes; each refusal says which, and the server serves on.
#[tokio::test]
async fn no_host_or_a_key_not_of_16_bytes_is_400_saying_why() {
    let server = start_server(opts());
    let addr = server.local_addr();
    let mut h = healthy(addr).await;
    let good = request(addr, "/");
    let host = format!("Host: {addr}\r\n");
    let key = good
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
        .unwrap()
        .to_string();
    for (what, req, says) in [
        ("no Host", good.replace(&host, ""), "no Host header"),
        (
            "two Hosts",
            good.replace(&host, &format!("{host}{host}")),
            "more than one Host",
        ),
        (
            "key of 17 bytes",
            good.replace(&key, "AAAAAAAAAAAAAAAAAAAAAAA="),
            "base64 encoding of 16 bytes",
        ),
        (
            "key not base64",
            good.replace(&key, "!!!!!!!!!!!!!!!!!!!!!!!!"),
            "base64 encoding of 16 bytes",
        ),
    ] {
        let (status, answer) = http_exchange(addr, req.as_bytes()).await.unwrap();
        assert_eq!(status, 400, "{what}: {answer}");
        assert!(answer.contains(says), "{what}: {answer}");
    }
    assert_eq!(upgrade_status(addr, "/").await.unwrap(), 101);
    h.chat_and_echo("hs", b"fine").await.unwrap();
}

#[tokio::test]
async fn a_bad_version_is_426_and_garbage_is_400() {
    let server = start_server(opts());
    let addr = server.local_addr();
    let mut h = healthy(addr).await;
    let v8 = request(addr, "/").replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8");
    let (status, answer) = http_exchange(addr, v8.as_bytes()).await.unwrap();
    assert_eq!(status, 426, "{answer}");
    let head = answer
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .to_ascii_lowercase();
    assert!(head.contains("\r\nsec-websocket-version: 13"), "{answer}");

    // A TLS ClientHello-like start, and binary junk without any line end.
    let (status, answer) = http_exchange(addr, b"\x16\x03\x01\x02\x00garbage\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = http_exchange(addr, &[0u8, 1, 2, 3, 0xff, 0xfe, b' ', b'x'])
        .await
        .unwrap();
    assert_eq!(status, 400, "{answer}");
    h.chat_and_echo("hs", b"fine").await.unwrap();
}

#[tokio::test]
async fn bad_query_parameters_are_400() {
    let mut o = opts();
    o.max_username_len = 8;
    o.max_room_len = 8;
    let server = start_server(o);
    let addr = server.local_addr();
    let mut h = healthy(addr).await;
    assert_eq!(
        upgrade_status(addr, "/?username=ninechars&room=hs")
            .await
            .unwrap(),
        400
    );
    assert_eq!(
        upgrade_status(addr, "/?username=a&room=123456789")
            .await
            .unwrap(),
        400
    );
    // Bytes, not characters, after percent-decoding: 5 × 2 bytes.
    assert_eq!(
        upgrade_status(addr, "/?room=%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9")
            .await
            .unwrap(),
        400
    );
    assert_eq!(upgrade_status(addr, "/?proto=xml").await.unwrap(), 400);
    // At the limits: accepted.
    assert_eq!(
        upgrade_status(addr, "/?username=eightchr&room=12345678")
            .await
            .unwrap(),
        101
    );
    assert_eq!(upgrade_status(addr, "/?proto=bincode").await.unwrap(), 101);
    h.chat_and_echo("hs", b"fine").await.unwrap();
}

#[tokio::test]
async fn an_unfinished_handshake_is_dropped_after_the_handshake_timeout() {
    let mut o = opts();
    o.handshake_timeout = Duration::from_millis(300);
    let server = start_server(o);
    let addr = server.local_addr();
    let mut h = healthy(addr).await;

    let start = Instant::now();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut partial = TcpStream::connect(addr).await.unwrap();
    let req = request(addr, "/");
    partial
        .write_all(&req.as_bytes()[..req.len() / 2])
        .await
        .unwrap();

    for (name, s) in [("silent", &mut silent), ("partial", &mut partial)] {
        let mut buf = [0u8; 256];
        let read = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("{name}: still open after 3 s"));
        let elapsed = start.elapsed();
        // EOF (or a reset), and no answer: the client never asked for one.
        assert!(matches!(read, Ok(0) | Err(_)), "{name}: got {read:?}");
        assert!(
            elapsed >= Duration::from_millis(250) && elapsed < Duration::from_millis(1500),
            "{name}: dropped after {elapsed:?}, the timeout is 300 ms"
        );
    }
    // The upgraded client is not subject to the handshake timeout.
    h.chat_and_echo("hs", b"fine").await.unwrap();
}

#[tokio::test]
async fn names_that_are_not_utf8_or_hold_control_characters_are_400_naming_the_parameter() {
    // Issue 11: `%ff` used to become U+FFFD silently, and a newline or a
    // NUL passed into the name other users see.
    let server = start_server(opts());
    let addr = server.local_addr();
    let mut h = healthy(addr).await;
    for (query, param, why) in [
        ("username=%00%ff", "username", "not valid UTF-8"),
        ("username=al%ffice", "username", "not valid UTF-8"),
        ("username=a%0Ab", "username", "control character U+000A"),
        ("username=%00", "username", "control character U+0000"),
        (
            "username=ok&room=lob%0Dby",
            "room",
            "control character U+000D",
        ),
        ("room=x%7F", "room", "control character U+007F"),
        ("room=%1B%5B2J", "room", "control character U+001B"),
        ("room=%C2%85", "room", "control character U+0085"),
    ] {
        let (status, answer) = http_exchange(addr, request(addr, &format!("/?{query}")).as_bytes())
            .await
            .unwrap();
        assert_eq!(status, 400, "{query}: {answer}");
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
        assert!(
            body.starts_with(param) && body.contains(why),
            "{query}: {body:?}"
        );
    }
    // Valid UTF-8 without control characters still passes, escaped or not,
    // and so does an escaped U+FFFD that the client really meant.
    for query in [
        "username=zo%C3%AB&room=caf%C3%A9",
        "username=%EF%BF%BD",
        "username=a+b",
    ] {
        assert_eq!(
            upgrade_status(addr, &format!("/?{query}")).await.unwrap(),
            101,
            "{query}"
        );
    }
    h.chat_and_echo("hs", b"fine").await.unwrap();
}
