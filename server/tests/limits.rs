//! Configured limits: message size, idle timeout, connection count, rooms
//! per connection. Most tests set their limit small through the options so
//! they run in well under a second; the default message size and room count
//! are tested as well, since those are what PROTOCOL.md promises. Each
//! checks that connections within the limits are unaffected.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use protocol::frame::{encode_frame, OpCode};
use protocol::{binary, ChatMessage, MsgType, Proto};
use testkit::raw::MASK;
use testkit::{opts, start_server, upgrade_status, Client, RawClient};

async fn member(addr: SocketAddr, proto: Proto, name: &str, room: &str) -> Client {
    let mut c = Client::connect(addr, proto, &format!("username={name}&room={room}"))
        .await
        .unwrap();
    assert_eq!(c.recv_msg().await.unwrap().kind(), Some(MsgType::Join));
    c
}

#[tokio::test]
async fn a_message_over_max_message_size_closes_1009() {
    let mut o = opts();
    o.max_message_size = 2048;
    let server = start_server(o);
    let addr = server.local_addr();
    let mut h = member(addr, Proto::Binary, "h", "big").await;

    // Within the limit: relayed.
    let mut j = member(addr, Proto::Json, "j", "big").await;
    h.recv_msg().await.unwrap();
    let fits = vec![b'a'; 1900];
    j.chat_and_echo("big", &fits).await.unwrap();
    assert_eq!(h.recv_msg().await.unwrap().payload.len(), 1900);
    // Over it: closed, and not relayed.
    j.chat("big", &[b'b'; 3000]).await.unwrap();
    assert_eq!(j.expect_close_answered().await.unwrap(), Some(1009));
    let leave = h.recv_msg().await.unwrap();
    assert_eq!(
        (leave.kind(), leave.user_id),
        (Some(MsgType::Leave), j.id),
        "{leave:?}"
    );

    // Binary: a frame one byte over the limit.
    let mut b = member(addr, Proto::Binary, "b", "big").await;
    h.recv_msg().await.unwrap();
    let msg = ChatMessage::new(MsgType::Chat).with_room("big");
    let overhead = binary::to_vec(&msg).len();
    let msg = msg.with_payload(vec![0u8; 2049 - overhead]);
    assert_eq!(binary::to_vec(&msg).len(), 2049);
    b.send(&msg).await.unwrap();
    assert_eq!(b.expect_close_answered().await.unwrap(), Some(1009));
    let leave = h.recv_msg().await.unwrap();
    assert_eq!(
        (leave.kind(), leave.user_id),
        (Some(MsgType::Leave), b.id),
        "{leave:?}"
    );

    // Fragments count together: two 1500-byte halves of one text message.
    let mut raw = RawClient::connect(addr, "/?username=r&room=big")
        .await
        .unwrap();
    h.recv_msg().await.unwrap();
    let mut first = encode_frame(OpCode::Text, &[b'x'; 1500], Some(MASK)).to_vec();
    first[0] &= 0x7f; // FIN off
    raw.send_raw(&first).await.unwrap();
    raw.send_frame(OpCode::Continuation, &[b'y'; 1500])
        .await
        .unwrap();
    assert_eq!(raw.expect_close().await.unwrap(), Some(1009));
    assert_eq!(h.recv_msg().await.unwrap().kind(), Some(MsgType::Leave));

    h.chat_and_echo("big", b"still fine").await.unwrap();
}

#[tokio::test]
async fn a_silent_client_is_closed_after_the_idle_timeout_and_a_talking_one_is_not() {
    let mut o = opts();
    o.idle_timeout = Duration::from_millis(300);
    let server = start_server(o);
    let addr = server.local_addr();

    let start = Instant::now();
    let mut silent = Client::connect(addr, Proto::Json, "").await.unwrap();
    let mut talker = Client::connect(addr, Proto::Binary, "").await.unwrap();
    let chatter = async {
        // A ping every 100 ms for 1.2 s: four times the timeout.
        for i in 0..12u64 {
            let mut ping = ChatMessage::new(MsgType::Ping);
            ping.id = i;
            talker.send(&ping).await.unwrap();
            let pong = talker.recv_msg().await.unwrap();
            assert_eq!((pong.kind(), pong.id), (Some(MsgType::Pong), i));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let watcher = async {
        let code = silent.expect_close().await.unwrap();
        (code, start.elapsed())
    };
    let ((code, after), ()) = tokio::join!(watcher, chatter);
    assert_eq!(code, Some(1000));
    assert!(
        after >= Duration::from_millis(290) && after < Duration::from_millis(1000),
        "silent client closed after {after:?}; the timeout is 300 ms"
    );
    // The talker outlived four timeouts and is still served.
    talker.send(&ChatMessage::new(MsgType::Ping)).await.unwrap();
    assert_eq!(talker.recv_msg().await.unwrap().kind(), Some(MsgType::Pong));
}

#[tokio::test]
async fn past_max_connections_upgrades_get_503_and_the_others_keep_working() {
    let mut o = opts();
    o.max_connections = 3;
    let server = start_server(o);
    let addr = server.local_addr();
    let mut a = member(addr, Proto::Json, "a", "full").await;
    let mut b = member(addr, Proto::Json, "b", "full").await;
    let mut c = member(addr, Proto::Binary, "c", "full").await;
    a.recv_msg().await.unwrap();
    a.recv_msg().await.unwrap();
    b.recv_msg().await.unwrap();

    for _ in 0..3 {
        assert_eq!(
            upgrade_status(addr, "/?username=d&room=full")
                .await
                .unwrap(),
            503
        );
    }
    // The three are unaffected: no join of a fourth, chat goes round.
    a.chat("full", b"all here").await.unwrap();
    for x in [&mut a, &mut b, &mut c] {
        let m = x.recv_msg().await.unwrap();
        assert_eq!(
            (m.kind(), &m.payload[..]),
            (Some(MsgType::Chat), &b"all here"[..]),
            "{m:?}"
        );
    }

    // One leaves: a new one gets in (once the server has let go of it).
    assert_eq!(c.close_and_wait().await.unwrap(), Some(1000));
    let deadline = Instant::now() + testkit::WAIT;
    let mut d = loop {
        match Client::connect(addr, Proto::Json, "username=d&room=full").await {
            Ok(d) => break d,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("no slot freed after a close: {e:#}"),
        }
    };
    assert_eq!(d.recv_msg().await.unwrap().kind(), Some(MsgType::Join));
    // ... and it is full again.
    assert_eq!(upgrade_status(addr, "/?username=e").await.unwrap(), 503);
    d.chat_and_echo("full", b"in").await.unwrap();
    a.chat_and_echo("full", b"still fine").await.unwrap();
}

#[tokio::test]
async fn the_default_message_limit_relays_60000_bytes_and_closes_70000_with_1009() {
    // The other tests configure a small limit; this one checks the default
    // PROTOCOL.md documents (65536 bytes).
    let o = opts();
    assert_eq!(o.max_message_size, 65536, "the documented default");
    let server = start_server(o);
    let addr = server.local_addr();
    let mut h = member(addr, Proto::Binary, "h", "default").await;
    let mut j = member(addr, Proto::Json, "j", "default").await;
    h.recv_msg().await.unwrap();

    let fits = vec![b'a'; 60_000];
    j.chat_and_echo("default", &fits).await.unwrap();
    let m = h.recv_msg().await.unwrap();
    assert_eq!((m.kind(), &m.payload[..]), (Some(MsgType::Chat), &fits[..]));

    j.chat("default", &[b'b'; 70_000]).await.unwrap();
    assert_eq!(j.expect_close_answered().await.unwrap(), Some(1009));
    let leave = h.recv_msg().await.unwrap();
    assert_eq!(
        (leave.kind(), leave.user_id),
        (Some(MsgType::Leave), j.id),
        "the next thing the member saw was the leave, not the big chat: {leave:?}"
    );
    h.chat_and_echo("default", b"still fine").await.unwrap();
}

#[tokio::test]
async fn one_room_past_max_rooms_per_connection_is_refused_and_the_connection_stays_usable() {
    // The default (16), as PROTOCOL.md documents it.
    let o = opts();
    let limit = o.max_rooms_per_connection;
    assert_eq!(limit, 16, "the documented default");
    let server = start_server(o);
    let addr = server.local_addr();
    let mut c = Client::connect(addr, Proto::Json, "username=many")
        .await
        .unwrap();
    for i in 0..limit {
        c.join(&format!("r{i}")).await.unwrap();
        let m = c.recv_msg().await.unwrap();
        assert_eq!(
            (m.kind(), m.room.as_ref()),
            (Some(MsgType::Join), &*format!("r{i}"))
        );
    }
    // A member of the room one too many sees no join.
    let mut w = member(addr, Proto::Binary, "w", "extra").await;
    c.join("extra").await.unwrap();
    let err = c.expect_error().await.unwrap();
    assert!(err.contains("rooms"), "the error says why: {err:?}");
    w.expect_silence(Duration::from_millis(100)).await.unwrap();

    // Still usable: joining a room it is already in is no new room, chat
    // works, and after a leave the extra room has space.
    c.join("r0").await.unwrap();
    let m = c.recv_msg().await.unwrap();
    assert_eq!((m.kind(), m.room.as_ref()), (Some(MsgType::Join), "r0"));
    c.chat_and_echo("r3", b"still here").await.unwrap();
    c.send(&ChatMessage::new(MsgType::Leave).with_room("r1"))
        .await
        .unwrap();
    assert_eq!(c.recv_msg().await.unwrap().kind(), Some(MsgType::Leave));
    c.join("extra").await.unwrap();
    let m = c.recv_msg().await.unwrap();
    assert_eq!((m.kind(), m.room.as_ref()), (Some(MsgType::Join), "extra"));
    let m = w.recv_msg().await.unwrap();
    assert_eq!((m.kind(), m.user_id), (Some(MsgType::Join), c.id));
}
