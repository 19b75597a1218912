//! A server's close frame is answered before loadgen drops the connection
//! (RFC 6455 5.5.1: the endpoint that receives a close MUST send one back).
//! The Autobahn testee answers closes with its own loop; this checks the
//! load connection's (`connection::Client`), which once queued its answer
//! and returned without writing it.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use protocol::frame::{close_frame, Flow, Message, MessageReader, Role};
use protocol::handshake::{accept_response, parse_request};

/// Accepts one connection, upgrades it, sends a close with code 1001 and
/// returns the close codes the client sent back before ending TCP.
fn closing_server(listener: TcpListener) -> Vec<Option<u16>> {
    let Ok((mut s, _)) = listener.accept() else {
        return Vec::new();
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let rest = loop {
        if Instant::now() > deadline {
            return Vec::new();
        }
        match s.read(&mut chunk) {
            Ok(0) => return Vec::new(),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => continue,
        }
        if let Ok(Some((req, len))) = parse_request(&buf) {
            let answer = accept_response(req.key);
            if s.write_all(answer.as_bytes()).is_err() {
                return Vec::new();
            }
            break buf.split_off(len);
        }
    };
    std::thread::sleep(Duration::from_millis(300));
    if s.write_all(&close_frame(1001, "going away", None)).is_err() {
        return Vec::new();
    }
    let mut reader = MessageReader::new(Role::Server, 1 << 20);
    let mut closes = Vec::new();
    let mut pending = rest;
    loop {
        let _ = reader.feed(&mut pending, |m| {
            if let Message::Close(c) = m {
                closes.push(c.map(|(code, _)| code));
            }
            Flow::Continue
        });
        if Instant::now() > deadline {
            return closes;
        }
        match s.read(&mut chunk) {
            Ok(0) => return closes,
            Ok(n) => pending = chunk[..n].to_vec(),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => pending.clear(),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => pending.clear(),
            Err(_) => return closes,
        }
    }
}

#[test]
fn a_servers_close_is_answered_with_its_code() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || closing_server(listener));
    let run = common::run(
        &[
            "run",
            &url,
            "-c",
            "1",
            "--duration",
            "2s",
            "--progress",
            "never",
        ],
        Duration::from_secs(20),
    );
    run.assert_no_panic();
    let closes = server.join().unwrap();
    assert_eq!(closes, vec![Some(1001)], "{}", run.describe());
}
