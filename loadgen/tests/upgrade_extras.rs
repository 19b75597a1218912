//! Custom headers and subprotocols on the upgrade, against a server that
//! records what it was sent and answers with a subprotocol of its choice.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{run, run_json};

/// Accepts upgrades on a thread, answering with `chosen` as the
/// subprotocol; returns its URL and the requests it saw.
fn recording_server(chosen: Option<&'static str>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let log = log.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                let (req, _) = loop {
                    let Ok(n) = stream.read(&mut chunk) else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Ok(Some(parsed)) = protocol::handshake::parse_request(&buf) {
                        break (String::from_utf8_lossy(&buf).into_owned(), parsed.1);
                    }
                };
                let key = req
                    .lines()
                    .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                let mut answer = protocol::handshake::accept_response(&key);
                if let Some(p) = chosen {
                    answer = answer.replace(
                        "\r\n\r\n",
                        &format!("\r\nSec-WebSocket-Protocol: {p}\r\n\r\n"),
                    );
                }
                log.lock().unwrap().push(req);
                let _ = stream.write_all(answer.as_bytes());
                // Hold the connection until the client goes.
                while matches!(stream.read(&mut chunk), Ok(n) if n > 0) {}
            });
        }
    });
    (url, seen)
}

#[test]
fn headers_and_offered_subprotocols_reach_the_server() {
    let (url, seen) = recording_server(Some("chat.v1"));
    let run = run_json(
        &[
            "run",
            &url,
            "--workload",
            "idle",
            "-c",
            "5",
            "--duration",
            "1s",
            "-H",
            "Authorization: Bearer t0k3n",
            "--header",
            "X-Run: 7",
            "--subprotocol",
            "chat.v2",
            "--subprotocol",
            "chat.v1",
            "--progress",
            "never",
        ],
        Duration::from_secs(20),
    );
    run.assert_code(0);
    assert_eq!(run.totals().u("connects_ok"), 5, "{}", run.describe());
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 5);
    for r in &requests {
        assert!(r.contains("\r\nAuthorization: Bearer t0k3n\r\n"), "{r}");
        assert!(r.contains("\r\nX-Run: 7\r\n"), "{r}");
        assert!(
            r.contains("\r\nSec-WebSocket-Protocol: chat.v2, chat.v1\r\n"),
            "{r}"
        );
    }
}

#[test]
fn a_subprotocol_not_offered_fails_the_upgrade() {
    let (url, _) = recording_server(Some("evil"));
    let run = run_json(
        &[
            "run",
            &url,
            "--workload",
            "idle",
            "-c",
            "3",
            "--duration",
            "1s",
            "--subprotocol",
            "chat.v1",
            "--progress",
            "never",
        ],
        Duration::from_secs(20),
    );
    run.assert_code(1);
    let errors = run.totals().labels("connect_errors");
    assert_eq!(
        errors.get("upgrade: server chose a subprotocol not offered"),
        Some(&3),
        "{}",
        run.describe()
    );
}

#[test]
fn malformed_headers_are_refused_before_connecting() {
    let (url, seen) = recording_server(None);
    for bad in [
        "no-colon-here",
        "Bad Name: x",
        "Host: elsewhere",
        // each used to reach the request as an extra header line (clap
        // split -H at line feeds; a trailing CR was trimmed away)
        "X-A: b\r\nX-Inject: 1",
        "X-A: b\nHost: elsewhere",
        "X-A: b\r\nSec-WebSocket-Protocol: evil",
        "X-A: b\x1b[2J",
        "Sec-WebSocket-Extensions: permessage-deflate",
    ] {
        let run = run(
            &["run", &url, "-c", "1", "--duration", "1s", "-H", bad],
            Duration::from_secs(20),
        );
        run.assert_code(2);
        assert!(
            run.describe().contains("--header"),
            "{bad}: {}",
            run.describe()
        );
    }
    for bad in ["chat\r\nX-Inject: 1", "chat\nv2", "two words"] {
        let run = run(
            &[
                "run",
                &url,
                "-c",
                "1",
                "--duration",
                "1s",
                "--subprotocol",
                bad,
            ],
            Duration::from_secs(20),
        );
        run.assert_code(2);
        assert!(
            run.describe().contains("--subprotocol"),
            "{bad:?}: {}",
            run.describe()
        );
    }
    // LOADGEN_HEADERS is one header too, not a list split at line feeds.
    let env = common::Loadgen::spawn_with(
        &["run", &url, "-c", "1", "--duration", "1s"],
        None,
        &[("LOADGEN_HEADERS", "X-A: b\nX-Inject: 1")],
    )
    .wait(Duration::from_secs(20));
    env.assert_code(2);
    assert!(env.describe().contains("--header"), "{}", env.describe());
    assert!(seen.lock().unwrap().is_empty(), "nothing may connect");
}
