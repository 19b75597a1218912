//! A member that never reads must cost the server a bounded amount of
//! memory and nothing else: the others in its room get every message
//! promptly, it is cut off (close 1013) after `--max-drops` drops, and the
//! server's RSS stays flat. The real binary, for its metrics and its RSS.
//!
//! What a cut-off member can see depends on when it reads again. The
//! server queues its close frame behind the bytes already in the socket
//! (the kernel's send buffer, the client's receive window) and gives it
//! `CLOSE_GRACE` (2 s, server/src/session.rs) to get out. A member that
//! reads again within that time gets the close 1013 (and must); one that
//! stays stalled longer cannot, as the frame never left the server: for
//! it the observable facts are the server's `slow_consumer` close in the
//! metrics and the end of the TCP connection after the bytes in flight.

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
/// Waits longer than this are hangs, not slowness (debug build, two cores
/// shared with the other tests): the bound that fails a test instead of
/// blocking it.
const PROMPT: Duration = Duration::from_secs(20);
/// "Not slowed": every chat reaches each healthy member within this of its
/// send. A member held up by the slow one would wait for its socket or
/// for its close grace (2 s); a debug build on two busy cores takes a
/// few milliseconds, so this leaves room for a busy machine.
const LATENCY: Duration = Duration::from_millis(1500);

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
/// order and whole, and publishes how many arrived. Returns the stream and
/// when each chat arrived.
fn count_chats(
    mut frames: Frames,
    from: u64,
    seen: watch::Sender<usize>,
) -> tokio::task::JoinHandle<(Frames, Vec<Instant>)> {
    tokio::spawn(async move {
        let mut arrived = Vec::with_capacity(MESSAGES);
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
            arrived.push(Instant::now());
            seen.send_replace(i + 1);
        }
        (frames, arrived)
    })
}

/// The healthy members after a flood, kept connected.
struct Flooded {
    took: Duration,
    _sender: (Box<dyn std::any::Any + Send>, Frames),
    _reader: Frames,
}

/// Floods `room` with MESSAGES chats of SIZE bytes from a JSON sender
/// while a binary member reads; both must get every one, each within
/// LATENCY of its send.
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
    let mut sent = Vec::with_capacity(MESSAGES);
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
        let text = Message::text(json::to_string(&msg));
        sent.push(Instant::now());
        tx.send(text).await.unwrap();
    }
    let (own, own_arrived) = own.await.unwrap();
    let (other, other_arrived) = other.await.unwrap();
    let took = start.elapsed();
    // Per message, so one stall cannot hide in the average of a flood.
    for (who, arrived) in [("sender", own_arrived), ("reader", other_arrived)] {
        let mut latencies: Vec<(Duration, usize)> = sent
            .iter()
            .zip(&arrived)
            .map(|(s, a)| a.duration_since(*s))
            .zip(0..)
            .collect();
        latencies.sort();
        let (worst, at) = latencies[MESSAGES - 1];
        let median = latencies[MESSAGES / 2].0;
        eprintln!("{who}: chat latency median {median:?}, worst {worst:?} (chat {at})");
        assert!(
            worst < LATENCY,
            "chat {at} reached the {who} {worst:?} after its send (median {median:?})"
        );
    }
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

    // When it finally reads, long after its close grace, it finds a part
    // of the flood, then the end of the connection (`drain_until_end`
    // errs unless the server ends it). The close frame is there only if
    // the kernel had room for it (see the module comment); when it is,
    // it says 1013.
    let seen = slow.drain_until_end(Duration::from_secs(10)).await.unwrap();
    eprintln!("the slow member saw {seen:?}");
    assert!(seen.data_frames < MESSAGES, "{seen:?}");
    assert!(matches!(seen.close, None | Some(Some(1013))), "{seen:?}");
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
    // The server ended the connection; a close frame, if the kernel had
    // room for it, says 1013.
    let seen = seen.unwrap();
    eprintln!("the slow member saw {seen:?}");
    assert!(matches!(seen.close, None | Some(Some(1013))), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_that_reads_again_within_the_close_grace_gets_1013() {
    let server = spawn();
    let (addr, maddr) = (server.ws, server.metrics.unwrap());
    let mut slow = RawClient::connect_with_rcvbuf(addr, "/?username=slow&room=brief", 4096)
        .await
        .unwrap();
    let mut sender = Client::connect(addr, Proto::Json, "username=fast&room=brief")
        .await
        .unwrap();
    sender.recv_kind(MsgType::Join).await.unwrap();
    // Chat, one round trip at a time, until the server has dropped
    // MAX_DROPS chats for `slow`: the last drop is the moment it decides
    // to close it and starts its close grace.
    let dropped = |e: &testkit::Exposition| {
        e.get(
            "chat_messages_dropped_total",
            &[("reason", "slow_consumer")],
        )
        .unwrap_or(0.0)
    };
    let mut i = 0;
    loop {
        assert!(i < MESSAGES, "{MESSAGES} chats and `slow` was not cut off");
        sender.chat_and_echo("brief", &payload(i)).await.unwrap();
        i += 1;
        if dropped(&scrape(maddr).await.unwrap()) >= f64::from(MAX_DROPS) {
            break;
        }
    }
    // At most one round trip and one scrape later, `slow` reads again:
    // the rest of the frame in flight, then the close, which it must get.
    let seen = slow.drain_until_end(Duration::from_secs(10)).await.unwrap();
    eprintln!("after {i} chats the slow member saw {seen:?}");
    assert_eq!(seen.close, Some(Some(1013)), "after {i} chats: {seen:?}");
    assert!(seen.data_frames < i, "{seen:?}");
    let e = scrape_until(maddr, Duration::from_secs(5), |e| {
        e.get(
            "chat_connections_closed_total",
            &[("reason", "slow_consumer")],
        ) == Some(1.0)
    })
    .await
    .unwrap();
    assert_eq!(dropped(&e), f64::from(MAX_DROPS));
    // The sender noticed nothing but the leave.
    sender.chat_and_echo("brief", b"after").await.unwrap();
}
