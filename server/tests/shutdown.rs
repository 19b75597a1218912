//! Graceful shutdown: every connection gets close 1001, new connections are
//! refused while the drain runs, and the server stops within the drain
//! timeout (sooner when every client has gone). The real binary with
//! SIGTERM, and with SIGINT configured only from the environment (as in a
//! container), and in-process with `ServerHandle::shutdown`.

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

/// The names of `pid`'s threads (`worker-0`, `control`, ...).
fn thread_names(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|task| {
            let comm = task.unwrap().path().join("comm");
            std::fs::read_to_string(comm).unwrap().trim_end().to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_only_by_environment_sigint_closes_1001_and_exits_0() {
    const SERVER: &str = env!("CARGO_BIN_EXE_server");
    // A boolean flag from the environment: no metrics endpoint.
    let quiet = ServerProcess::spawn_with_env(
        SERVER,
        &[],
        &[
            ("SERVER_LISTEN", "127.0.0.1:0"),
            ("SERVER_NO_METRICS", "true"),
        ],
    )
    .unwrap();
    assert_eq!(quiet.metrics, None, "SERVER_NO_METRICS was not read");
    drop(quiet);

    // Values no default has: loopback ports, three workers on a machine
    // whose default would be its core count, a drain of 200 ms instead of
    // 5 s.
    let drain = Duration::from_millis(200);
    let mut server = ServerProcess::spawn_with_env(
        SERVER,
        &[],
        &[
            ("SERVER_LISTEN", "127.0.0.1:0"),
            ("SERVER_METRICS_LISTEN", "127.0.0.1:0"),
            ("SERVER_WORKERS", "3"),
            ("SERVER_DRAIN_TIMEOUT", "200ms"),
        ],
    )
    .unwrap();
    assert!(server.ws.ip().is_loopback(), "SERVER_LISTEN: {}", server.ws);
    let metrics = server.metrics.expect("SERVER_METRICS_LISTEN: metrics on");
    assert!(
        metrics.ip().is_loopback(),
        "SERVER_METRICS_LISTEN: {metrics}"
    );
    // Workers start after the ready line: give them a moment.
    let pid = server.child.id();
    let count_workers = || {
        thread_names(pid)
            .iter()
            .filter(|name| name.starts_with("worker-"))
            .count()
    };
    let deadline = Instant::now() + testkit::WAIT;
    while count_workers() != 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(count_workers(), 3, "SERVER_WORKERS");

    let addr = server.ws;
    let mut polite = Client::connect(addr, Proto::Json, "username=p&room=r")
        .await
        .unwrap();
    // A client that never answers the close holds the drain to its timeout.
    let mut mute = RawClient::connect(addr, "/?username=mute&room=r")
        .await
        .unwrap();

    let sent = Instant::now();
    let exit = tokio::task::spawn_blocking(move || {
        let status = server.interrupt(Duration::from_secs(10));
        (status, sent.elapsed())
    });
    assert_eq!(closed_with(&mut polite).await, Some(1001));
    let (status, after) = exit.await.unwrap();
    let status = status.unwrap();
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    // The mute client would hold the server until its close grace (2 s,
    // server/src/session.rs) ran out, or the 5 s default drain: the drain
    // of SERVER_DRAIN_TIMEOUT cut it short.
    assert!(
        after < Duration::from_millis(1500),
        "exited {after:?} after SIGINT; SERVER_DRAIN_TIMEOUT is {drain:?}"
    );
    assert_eq!(mute.expect_close().await.unwrap(), Some(1001));
}
