//! Graceful shutdown: every connection gets close 1001, new connections are
//! refused while the drain runs, and the server stops within the drain
//! timeout (sooner when every client has gone). The real binary with
//! SIGTERM, and in-process with `ServerHandle::shutdown`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use protocol::handshake::{client_request, generate_key};
use protocol::{MsgType, Proto};
use testkit::{opts, start_server, Client, RawClient, ServerProcess};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Whether a new connection is refused: no TCP connection, or an upgrade
/// answered with something other than 101 (or nothing at all).
async fn refused(addr: SocketAddr) -> Result<(), String> {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return Ok(());
    };
    let req = client_request(&addr.to_string(), "/?username=late", &generate_key(), &[]);
    if s.write_all(req.as_bytes()).await.is_err() {
        return Ok(());
    }
    let mut buf = vec![0u8; 1024];
    match tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await {
        Err(_) => Err("an upgrade during the drain got no answer in 3 s".into()),
        Ok(Err(_)) | Ok(Ok(0)) => Ok(()),
        Ok(Ok(n)) => {
            let head = String::from_utf8_lossy(&buf[..n]).into_owned();
            if head.starts_with("HTTP/1.1 101") {
                Err(format!(
                    "an upgrade during the drain was accepted: {head:?}"
                ))
            } else {
                Ok(())
            }
        }
    }
}

async fn closed_with(c: &mut Client) -> Option<u16> {
    c.expect_close_answered().await.unwrap()
}

async fn clients(addr: SocketAddr) -> Vec<Client> {
    let mut all = Vec::new();
    for (i, proto) in [Proto::Json, Proto::Binary, Proto::Json, Proto::Binary]
        .into_iter()
        .enumerate()
    {
        let room = if i % 2 == 0 { "even" } else { "odd" };
        let mut c = Client::connect(addr, proto, &format!("username=c{i}&room={room}"))
            .await
            .unwrap();
        assert_eq!(c.recv_kind(MsgType::Join).await.unwrap().user_id, c.id);
        all.push(c);
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_every_connection_1001_refuses_new_ones_and_exits_0() {
    let drain = Duration::from_secs(1);
    let mut server = ServerProcess::spawn(
        env!("CARGO_BIN_EXE_server"),
        &["--no-metrics", "--workers", "2", "--drain-timeout", "1s"],
    )
    .unwrap();
    let addr = server.ws;
    let mut all = clients(addr).await;
    // One client that never answers the close keeps the drain going to
    // its timeout.
    let mut mute = RawClient::connect(addr, "/?username=mute&room=even")
        .await
        .unwrap();

    let sent = Instant::now();
    let exit = tokio::task::spawn_blocking(move || {
        let status = server.terminate(Duration::from_secs(10));
        (status, sent.elapsed())
    });
    for c in &mut all {
        assert_eq!(closed_with(c).await, Some(1001));
    }
    refused(addr).await.unwrap();
    let (status, after) = exit.await.unwrap();
    let status = status.unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        after < drain + Duration::from_secs(1),
        "exited {after:?} after SIGTERM; the drain timeout is {drain:?}"
    );
    // The mute client got its 1001 too, then the connection ended.
    assert_eq!(mute.expect_close().await.unwrap(), Some(1001));
    mute.expect_eof_within(Duration::from_secs(1))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_shutdown_closes_1001_and_stops_once_every_client_has_gone() {
    let mut o = opts();
    o.drain_timeout = Duration::from_secs(5);
    let server = start_server(o);
    let addr = server.local_addr();
    let mut all = clients(addr).await;
    assert_eq!(server.open_connections(), 4);

    let start = Instant::now();
    server.shutdown();
    for c in &mut all {
        assert_eq!(closed_with(c).await, Some(1001));
    }
    tokio::time::timeout(Duration::from_secs(3), server.stopped())
        .await
        .expect("the server stops once every client has answered, well before the drain timeout");
    assert!(start.elapsed() < Duration::from_secs(3));
    refused(addr).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_drain_refuses_new_connections_and_ends_at_the_drain_timeout() {
    let mut o = opts();
    let drain = Duration::from_millis(1500);
    o.drain_timeout = drain;
    let server = start_server(o);
    let addr = server.local_addr();
    let mut polite = Client::connect(addr, Proto::Json, "username=p&room=r")
        .await
        .unwrap();
    let mut mute = RawClient::connect(addr, "/?username=mute&room=r")
        .await
        .unwrap();

    let start = Instant::now();
    server.shutdown();
    assert_eq!(closed_with(&mut polite).await, Some(1001));
    // The mute client holds the drain open: new connections are refused.
    for _ in 0..3 {
        refused(addr).await.unwrap();
    }
    assert!(
        start.elapsed() < drain,
        "the refusals were not tested during the drain"
    );
    tokio::time::timeout(drain + Duration::from_secs(2), server.stopped())
        .await
        .expect("the server stops at the drain timeout");
    assert_eq!(mute.expect_close().await.unwrap(), Some(1001));
}
