//! The shortest way through: two encodings chat in one room, in-process
//! and as the real binary with the performance options on.

use std::time::{Duration, Instant};

use protocol::{MsgType, Proto};
use testkit::{opts, start_server, Client, ServerProcess};

#[tokio::test]
async fn two_encodings_chat_in_one_room() {
    let server = start_server(opts());
    let addr = server.local_addr();
    let mut alice = Client::connect(addr, Proto::Json, "username=alice&room=lobby")
        .await
        .unwrap();
    let join = alice.recv_kind(MsgType::Join).await.unwrap();
    assert_eq!(join.username, "alice");
    let mut bob = Client::connect(addr, Proto::Binary, "username=bob&room=lobby")
        .await
        .unwrap();
    let join = alice.recv_kind(MsgType::Join).await.unwrap();
    assert_eq!((join.username.as_ref(), join.user_id), ("bob", bob.id));
    bob.recv_kind(MsgType::Join).await.unwrap();
    bob.chat("lobby", b"hi alice").await.unwrap();
    let got = alice.recv_kind(MsgType::Chat).await.unwrap();
    assert_eq!(
        (got.username.as_ref(), &got.payload[..], got.user_id),
        ("bob", &b"hi alice"[..], bob.id)
    );
    let echo = bob.recv_kind(MsgType::Chat).await.unwrap();
    assert_eq!(echo.id, got.id);
}

/// `Cpus_allowed_list` of each `worker-*` thread of `pid`, and of the
/// process itself.
fn worker_cpus(pid: u32) -> (Vec<(String, String)>, String) {
    let allowed = |status: String| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .map(|v| v.trim().to_owned())
            .unwrap()
    };
    let mut workers = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let path = task.unwrap().path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap();
        if name.starts_with("worker-") {
            let status = std::fs::read_to_string(path.join("status")).unwrap();
            workers.push((name.trim_end().to_owned(), allowed(status)));
        }
    }
    workers.sort();
    let process = allowed(std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap());
    (workers, process)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_workers_with_a_sized_room_registry_relay_chat() {
    let server = ServerProcess::spawn(
        env!("CARGO_BIN_EXE_server"),
        &[
            "--no-metrics",
            "--pin-cores",
            "--workers",
            "2",
            "--room-shards",
            "4",
        ],
    )
    .unwrap();
    let addr = server.ws;
    // A few connections, so both workers (SO_REUSEPORT spreads them by
    // port) are likely to serve some; every pair chats across them.
    let mut clients = Vec::new();
    for i in 0..4 {
        let proto = if i % 2 == 0 {
            Proto::Json
        } else {
            Proto::Binary
        };
        let mut c = Client::connect(addr, proto, &format!("username=p{i}&room=pinned"))
            .await
            .unwrap();
        assert_eq!(c.recv_kind(MsgType::Join).await.unwrap().user_id, c.id);
        clients.push(c);
    }
    for i in 0..clients.len() {
        let from = clients[i].id;
        clients[i]
            .chat("pinned", format!("from {i}").as_bytes())
            .await
            .unwrap();
        for c in &mut clients {
            let m = c.recv_kind(MsgType::Chat).await.unwrap();
            assert_eq!(
                (m.user_id, m.payload_str()),
                (from, Some(&*format!("from {i}")))
            );
        }
    }

    // Each worker is pinned to one CPU, and to different ones where the
    // process may use several (the workers start after the ready line,
    // but serve only once started: they are all up by now).
    let deadline = Instant::now() + testkit::WAIT;
    let (workers, process) = loop {
        let (workers, process) = worker_cpus(server.child.id());
        if workers.len() == 2 || Instant::now() > deadline {
            break (workers, process);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(workers.len(), 2, "{workers:?}");
    for (name, cpus) in &workers {
        assert!(
            cpus.parse::<usize>().is_ok(),
            "{name} may run on CPUs {cpus}, not one (process: {process})"
        );
    }
    if process.parse::<usize>().is_err() {
        assert_ne!(workers[0].1, workers[1].1, "both workers on one CPU");
    }
}
