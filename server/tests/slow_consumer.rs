//! A member that never reads must cost the server a bounded amount of
//! memory and nothing else: the others in its room get every message
//! promptly, it is cut off (close 1013) after `--max-drops` drops, and the
//! server's RSS stays flat. The real binary, for its metrics and its RSS.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use protocol::{binary, json, ChatMessage, MsgType, Proto};
use testkit::{rss_bytes, scrape, scrape_until, Client, RawClient, ServerProcess};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

const MESSAGES: usize = 600;
const SIZE: usize = 16 * 1024;
const MAX_DROPS: u32 = 20;
/// Chats the sender may have in flight beyond what both readers have
/// received: three 16 KiB frames fit in the 64 KiB queue of a member that
/// reads, so a member that keeps up never loses one.
const WINDOW: usize = 3;
/// A flood that takes longer than this is not "prompt" (debug build, two
/// cores shared with the other tests).
const PROMPT: Duration = Duration::from_secs(20);

fn spawn() -> ServerProcess {
    ServerProcess::spawn(
        env!("CARGO_BIN_EXE_server"),
        &[
            "--workers",
            "2",
            "--max-queued-bytes",
            "65536",
            "--max-drops",
            &MAX_DROPS.to_string(),
        ],
    )
    .unwrap()
}

/// The `i`th payload: its number, then filler.
fn payload(i: usize) -> Vec<u8> {
    let mut p = format!("{i:06}:").into_bytes();
    p.resize(SIZE, b'.');
    p
}

type Frames = std::pin::Pin<
    Box<
        dyn futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
            + Send,
    >,
>;

/// Reads a member's copies of the sender's chats, checks they come in
/// order and whole, and publishes how many arrived.
fn count_chats(
    mut frames: Frames,
    from: u64,
    seen: watch::Sender<usize>,
) -> tokio::task::JoinHandle<Frames> {
    tokio::spawn(async move {
        for i in 0..MESSAGES {
            let m = loop {
                let frame = tokio::time::timeout(PROMPT, frames.next())
                    .await
                    .unwrap_or_else(|_| panic!("chat {i} never arrived"))
                    .unwrap_or_else(|| panic!("stream ended before chat {i}"))
                    .unwrap_or_else(|e| panic!("error before chat {i}: {e}"));
                let m = match &frame {
                    Message::Text(t) => json::decode(t.as_str()).unwrap().into_owned(),
                    Message::Binary(b) => binary::decode(b).unwrap().into_owned(),
                    other => panic!("unexpected frame {other:?} before chat {i}"),
                };
                if m.kind() == Some(MsgType::Chat) && m.user_id == from {
                    break m;
                }
                // Join and leave notices may come in between.
                assert!(
                    matches!(m.kind(), Some(MsgType::Join | MsgType::Leave)),
                    "unexpected {m:?} before chat {i}"
                );
            };
            assert_eq!(m.payload.len(), SIZE, "chat {i} is whole");
            assert_eq!(
                &m.payload[..7],
                &payload(i)[..7],
                "chat {i} in order, none lost"
            );
            seen.send_replace(i + 1);
        }
        frames
    })
}

/// The healthy members after a flood, kept connected.
struct Flooded {
    took: Duration,
    _sender: (Box<dyn std::any::Any + Send>, Frames),
    _reader: Frames,
}

/// Floods `room` with MESSAGES chats of SIZE bytes from a JSON sender
/// while a binary member reads; both must get every one, promptly.
async fn flood(addr: SocketAddr, room: &str) -> Flooded {
    let mut sender = Client::connect(addr, Proto::Json, &format!("username=fast&room={room}"))
        .await
        .unwrap();
    sender.recv_kind(MsgType::Join).await.unwrap();
    let mut reader = Client::connect(addr, Proto::Binary, &format!("username=reader&room={room}"))
        .await
        .unwrap();
    reader.recv_kind(MsgType::Join).await.unwrap();
    let sender_id = sender.id;
    let (mut tx, rx) = sender.ws.split();
    let (own_tx, mut own_seen) = watch::channel(0);
    let (reader_tx, mut reader_seen) = watch::channel(0);
    let own = count_chats(Box::pin(rx), sender_id, own_tx);
    let other = count_chats(Box::pin(reader.ws), sender_id, reader_tx);

    let start = Instant::now();
    for i in 0..MESSAGES {
        let wait = async {
            own_seen.wait_for(|n| n + WINDOW > i).await.is_ok()
                && reader_seen.wait_for(|n| n + WINDOW > i).await.is_ok()
        };
        let ok = tokio::time::timeout(PROMPT, wait).await;
        assert!(
            matches!(ok, Ok(true)),
            "stalled at chat {i}: sender has {}, reader has {}",
            *own_seen.borrow(),
            *reader_seen.borrow()
        );
        let msg = ChatMessage::new(MsgType::Chat)
            .with_room(room)
            .with_payload(payload(i));
        tx.send(Message::text(json::to_string(&msg))).await.unwrap();
    }
    let own = own.await.unwrap();
    let other = other.await.unwrap();
    let took = start.elapsed();
    assert!(took < PROMPT, "{MESSAGES} chats took {took:?}");
    Flooded {
        took,
        _sender: (Box::new(tx), own),
        _reader: other,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_cut_off_without_hurting_the_room_or_the_memory() {
    let server = spawn();
    let (addr, maddr) = (server.ws, server.metrics.unwrap());
    // A small receive buffer keeps the TCP window small, so the server's
    // writes to it stall after a few KiB.
    let mut slow = RawClient::connect_with_rcvbuf(addr, "/?username=slow&room=flood", 4096)
        .await
        .unwrap();
    let rss_before = rss_bytes(server.child.id()).unwrap();

    let room = flood(addr, "flood").await;
    let took = room.took;
    let rss_after = rss_bytes(server.child.id()).unwrap();
    eprintln!("flood of {MESSAGES} took {took:?}; server RSS {rss_before} -> {rss_after}");

    let e = scrape_until(maddr, Duration::from_secs(5), |e| {
        e.get(
            "chat_messages_dropped_total",
            &[("reason", "slow_consumer")],
        ) >= Some(f64::from(MAX_DROPS))
    })
    .await
    .unwrap();
    // Dropped for the slow member only, and only until its allowance ran out.
    assert_eq!(
        e.value(
            "chat_messages_dropped_total",
            &[("reason", "slow_consumer")]
        )
        .unwrap(),
        f64::from(MAX_DROPS)
    );
    assert_eq!(
        e.value(
            "chat_messages_received_total",
            &[("type", "chat"), ("encoding", "json")]
        )
        .unwrap(),
        MESSAGES as f64
    );
    // The flood offered the slow member 9.6 MB; the kernel's send buffer
    // takes at most 4 MiB of it, so a server that queued the rest would
    // grow by more than 5 MB. Bounded, it grows by well under 1 MB.
    let growth = rss_after.saturating_sub(rss_before);
    assert!(
        growth < 4 << 20,
        "RSS grew by {growth} bytes during the flood"
    );

    // When it finally reads, it finds a part of the flood, then the end.
    let seen = slow.drain_until_end(Duration::from_secs(10)).await.unwrap();
    assert!(seen.data_frames < MESSAGES, "{seen:?}");
    if let Some(code) = seen.close {
        assert_eq!(code, Some(1013), "{seen:?}");
    }
    let e = scrape_until(maddr, Duration::from_secs(5), |e| {
        e.get(
            "chat_connections_closed_total",
            &[("reason", "slow_consumer")],
        ) >= Some(1.0)
    })
    .await
    .unwrap();
    assert_eq!(
        e.sum("chat_connections_closed_total", &[]),
        1.0,
        "only the slow member was closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_closed_even_while_it_never_reads() {
    let server = spawn();
    let (addr, maddr) = (server.ws, server.metrics.unwrap());
    let mut slow = RawClient::connect_with_rcvbuf(addr, "/?username=slow&room=stuck", 4096)
        .await
        .unwrap();
    let _room = flood(addr, "stuck").await;
    // Nothing read from `slow` yet: the server must let go of it anyway
    // (a peer that never reads again must not hold a connection, its room
    // membership and its buffers forever).
    let closed = scrape_until(maddr, Duration::from_secs(5), |e| {
        e.get(
            "chat_connections_closed_total",
            &[("reason", "slow_consumer")],
        ) == Some(1.0)
    })
    .await
    .is_ok();
    let e = scrape(maddr).await.unwrap();
    let figure = |name, labels: &[(&str, &str)]| e.value(name, labels).unwrap();
    let open = figure("chat_connections_open", &[]);
    let dropped = figure(
        "chat_messages_dropped_total",
        &[("reason", "slow_consumer")],
    );
    // Read now, so the connection ends either way before the asserts.
    let seen = slow.drain_until_end(Duration::from_secs(10)).await;
    assert!(
        closed,
        "the non-reading member was not closed within 5 s of the flood's end \
         (dropped {dropped}, open {open}, closed {})",
        e.sum("chat_connections_closed_total", &[])
    );
    assert_eq!(open, 2.0, "sender and reader remain");
    let seen = seen.unwrap();
    if let Some(code) = seen.close {
        assert_eq!(code, Some(1013), "{seen:?}");
    }
}
