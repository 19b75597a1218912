//! The broadcast bench's accounting against a minimal in-process chat
//! server (rooms joined by URL or `join` message, join notices, chat relay) that can drop or stall messages
//! on purpose: lost copies and stalls must show in the figures.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bench::broadcast::{self, BroadcastConfig, BroadcastResult};
use bytes::Bytes;
use protocol::frame::{encode_frame, Flow, Message, MessageReader, OpCode, Role};
use protocol::{handshake, ChatMessage, MsgType, Proto};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

#[derive(Clone, Copy, Default)]
struct Faults {
    /// Relay no copy of every n-th chat message.
    drop_every: Option<u64>,
    /// Hold the n-th chat message this long before relaying it.
    stall: Option<(u64, Duration)>,
}

type Rooms = Arc<Mutex<HashMap<String, Vec<(Proto, Outbox)>>>>;

struct Mock {
    rooms: Rooms,
    chats: AtomicU64,
    next_id: AtomicU64,
    faults: Faults,
}

fn frame(proto: Proto, msg: &ChatMessage<'_>) -> Bytes {
    match proto {
        Proto::Binary => encode_frame(OpCode::Binary, &protocol::binary::to_vec(msg), None),
        Proto::Json => encode_frame(
            OpCode::Text,
            protocol::json::to_string(msg).as_bytes(),
            None,
        ),
    }
}

impl Mock {
    fn broadcast(&self, room: &str, msg: &ChatMessage<'_>) {
        let rooms = self.rooms.lock().unwrap();
        let (mut bin, mut json) = (None, None);
        for (proto, tx) in rooms.get(room).into_iter().flatten() {
            let f = match proto {
                Proto::Binary => bin.get_or_insert_with(|| frame(*proto, msg)),
                Proto::Json => json.get_or_insert_with(|| frame(*proto, msg)),
            };
            let _ = tx.send(f.clone());
        }
    }
}

impl Mock {
    /// Puts the connection in `room` and tells every member, the joiner
    /// included, as the real server does.
    fn join(&self, room: &str, username: &str, id: u64, proto: Proto, tx: &Outbox) {
        self.rooms
            .lock()
            .unwrap()
            .entry(room.to_string())
            .or_default()
            .push((proto, tx.clone()));
        let mut join = ChatMessage::new(MsgType::Join)
            .with_room(room.to_string())
            .with_username(username.to_string());
        join.user_id = id;
        self.broadcast(room, &join);
    }
}

type Outbox = mpsc::UnboundedSender<Bytes>;

/// One connection: the upgrade, then joins (from the upgrade URL's
/// `room`, or `join` messages, loadgen's default) and chats relayed to
/// the connection's room.
async fn serve(mock: Arc<Mock>, mut sock: TcpStream) {
    let mut buf = Vec::new();
    let (key, mut room, mut username, proto, used) = loop {
        if sock.read_buf(&mut buf).await.unwrap_or(0) == 0 {
            return;
        }
        if let Some((req, used)) = handshake::parse_request(&buf).unwrap() {
            let p: HashMap<_, _> = req.params().collect();
            let proto = Proto::from_name(p.get("proto").map_or("json", |v| v)).unwrap();
            break (
                req.key.to_string(),
                p.get("room").map(|r| r.to_string()),
                p.get("username")
                    .map_or_else(String::new, |u| u.to_string()),
                proto,
                used,
            );
        }
    };
    buf.drain(..used);
    let id = mock.next_id.fetch_add(1, Ordering::Relaxed) + 1;
    let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
    let (mut rd, mut wr) = sock.into_split();
    wr.write_all(handshake::accept_response(&key).as_bytes())
        .await
        .unwrap();
    tokio::spawn(async move {
        while let Some(f) = rx.recv().await {
            if wr.write_all(&f).await.is_err() {
                return;
            }
        }
    });
    let mut welcome = ChatMessage::new(MsgType::System).with_payload(&b"welcome"[..]);
    welcome.user_id = id;
    let _ = tx.send(frame(proto, &welcome));
    if let Some(r) = &room {
        mock.join(r, &username, id, proto, &tx);
    }

    let mut reader = MessageReader::new(Role::Server, 65_536);
    loop {
        let mut received = Vec::new();
        let fed = reader.feed(&mut buf, |m| {
            let msg = match m {
                Message::Binary(b) => protocol::binary::decode(b).unwrap(),
                Message::Text(t) => protocol::json::decode(t).unwrap(),
                _ => return Flow::Continue,
            };
            received.push(msg.into_owned());
            Flow::Continue
        });
        fed.unwrap();
        for mut msg in received {
            match msg.kind() {
                Some(MsgType::Join) => {
                    if !msg.username.is_empty() {
                        username = msg.username.to_string();
                    }
                    mock.join(&msg.room, &username, id, proto, &tx);
                    room = Some(msg.room.to_string());
                    continue;
                }
                Some(MsgType::Chat) => {}
                other => panic!("the mock got {other:?}"),
            }
            let n = mock.chats.fetch_add(1, Ordering::Relaxed) + 1;
            if let Some((at, pause)) = mock.faults.stall {
                if n == at {
                    tokio::time::sleep(pause).await;
                }
            }
            if mock
                .faults
                .drop_every
                .is_some_and(|every| n.is_multiple_of(every))
            {
                continue;
            }
            msg.user_id = id;
            msg.username = username.clone().into();
            msg.id = n;
            let target = if msg.room.is_empty() {
                room.clone().expect("a chat before any join")
            } else {
                msg.room.to_string()
            };
            mock.broadcast(&target, &msg);
        }
        buf.clear();
        buf.resize(8192, 0);
        match rd.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.truncate(n),
        }
    }
}

async fn start_mock(faults: Faults) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mock = Arc::new(Mock {
        rooms: Rooms::default(),
        chats: AtomicU64::new(0),
        next_id: AtomicU64::new(0),
        faults,
    });
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(serve(mock.clone(), sock));
        }
    });
    addr
}

fn config(proto: Proto) -> BroadcastConfig {
    BroadcastConfig {
        rooms: 2,
        members: 5,
        senders: 2,
        rate: 50.0,
        size: 40,
        warmup: Duration::from_millis(200),
        duration: Duration::from_secs(1),
        drain: Duration::from_secs(1),
        proto,
        source_ips: loadgen::source_ips::parse("127.0.0.2-127.0.0.3").unwrap(),
        connect_timeout: Duration::from_secs(10),
        concurrency: 4,
    }
}

/// 4 senders × 50/s over the seconds of sending, on a fixed timetable:
/// each sender's first slot may fall just before sending starts.
fn assert_on_timetable(r: &BroadcastResult) {
    let planned = 4.0 * 50.0 * r.sending_secs;
    assert!(
        (r.sent as f64 - planned).abs() <= 4.0 + planned * 0.02,
        "sent {} in {:.3} s, planned {planned:.0}",
        r.sent,
        r.sending_secs
    );
    assert!(r.sending_secs > 0.8, "sending {} s", r.sending_secs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_copy_is_counted_in_both_encodings() {
    for proto in [Proto::Binary, Proto::Json] {
        let addr = start_mock(Faults::default()).await;
        let r = broadcast::measure(&config(proto), addr, std::process::id())
            .await
            .unwrap();
        assert_on_timetable(&r);
        assert_eq!(r.expected_deliveries, r.sent * 5);
        assert_eq!(r.received_deliveries, r.expected_deliveries);
        assert_eq!(r.lost, 0);
        // the sender's own copy is the round trip, the 4 others fan-out
        assert_eq!(r.round_trip.count, r.sent);
        assert_eq!(r.fanout.count, r.sent * 4);
        // the headline: every copy, the sender's own and the room's
        assert_eq!(r.delivery.count, r.sent * 5);
        assert!(r.delivery.max_ms >= r.fanout.max_ms.max(r.round_trip.max_ms));
        assert_eq!(r.shape.deliveries_per_sec, 4.0 * 50.0 * 5.0);
        assert!(r.saturation.cores >= 1 && r.saturation.judged_secs >= 1);
        assert_eq!((r.held, r.connect_errors, r.unexpected_closes), (10, 0, 0));
        assert!(r.fanout.p50_ms > 0.0 && r.fanout.max_ms >= r.fanout.p50_ms);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_messages_show_as_lost_copies() {
    let addr = start_mock(Faults {
        drop_every: Some(10),
        ..Faults::default()
    })
    .await;
    let r = broadcast::measure(&config(Proto::Binary), addr, std::process::id())
        .await
        .unwrap();
    assert!(r.lost >= 5 * 15, "lost {}", r.lost);
    // a dropped message loses the copy of every member of its room
    assert_eq!(r.lost % 5, 0);
    assert_eq!(
        r.received_deliveries as i64 + r.lost,
        r.expected_deliveries as i64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_shows_as_latency_not_as_fewer_sends() {
    // chat 120 is due ~0.6 s in, inside the window
    let pause = Duration::from_millis(400);
    let addr = start_mock(Faults {
        stall: Some((120, pause)),
        ..Faults::default()
    })
    .await;
    let r = broadcast::measure(&config(Proto::Binary), addr, std::process::id())
        .await
        .unwrap();
    assert_eq!(r.lost, 0);
    assert_on_timetable(&r);
    assert!(r.fanout.max_ms >= 400.0, "max {} ms", r.fanout.max_ms);
    assert!(
        r.round_trip.max_ms >= 400.0,
        "max {} ms",
        r.round_trip.max_ms
    );
}
