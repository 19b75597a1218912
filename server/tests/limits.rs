//! Configured limits: message size, idle timeout, connection count. Each
//! test sets its limit small through the options so it runs in well under a
//! second, and checks that connections within the limits are unaffected.

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
