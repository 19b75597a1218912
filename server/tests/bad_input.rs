//! Bad input after the upgrade: each offence gets its documented answer
//! (PROTOCOL.md sections 2, 5 and 6), and a healthy member of the same room
//! notices nothing but the offender's leave.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use protocol::frame::OpCode;
use protocol::{binary, ChatMessage, MsgType, Proto};
use testkit::{opts, start_server, Client, RawClient, Received};
use tokio_tungstenite::tungstenite::Message;

const MAX_BAD: u32 = 3;

/// A healthy client in `room`, its own join consumed.
async fn healthy(addr: SocketAddr, room: &str) -> Client {
    let mut h = Client::connect(
        addr,
        Proto::Binary,
        &format!("username=healthy&room={room}"),
    )
    .await
    .unwrap();
    let join = h.recv_msg().await.unwrap();
    assert_eq!(join.kind(), Some(MsgType::Join));
    h
}

/// The offending client in `room`, its own join consumed.
async fn offender(addr: SocketAddr, proto: Proto, room: &str) -> Client {
    let mut c = Client::connect(addr, proto, &format!("username=bad&room={room}"))
        .await
        .unwrap();
    let join = c.recv_msg().await.unwrap();
    assert_eq!((join.kind(), join.user_id), (Some(MsgType::Join), c.id));
    c
}

/// The healthy client saw the offender `id` join and then leave, and
/// still chats in `room`.
async fn still_healthy(h: &mut Client, room: &str, offender: u64) {
    let join = h.recv_msg().await.unwrap();
    assert_eq!(
        (join.kind(), join.user_id),
        (Some(MsgType::Join), offender),
        "{join:?}"
    );
    let leave = h.recv_msg().await.unwrap();
    assert_eq!(
        (leave.kind(), leave.user_id),
        (Some(MsgType::Leave), offender),
        "{leave:?}"
    );
    let m = h.chat_and_echo(room, b"still fine").await.unwrap();
    assert_eq!(m.room, room);
}

/// Sends the MAX_BAD messages of `bad` in turn: each but the last gets an
/// error and the connection stays usable; the last gets its error too
/// (PROTOCOL.md section 5: "each gets the error message"), and then,
/// with nothing in between, the close with `code`.
async fn bad_until_closed(c: &mut Client, bad: [Message; MAX_BAD as usize], code: u16) {
    let [rest @ .., last] = bad;
    for (i, msg) in rest.into_iter().enumerate() {
        c.ws.send(msg).await.unwrap();
        let err = c
            .expect_error()
            .await
            .unwrap_or_else(|e| panic!("bad message {}: {e:#}", i + 1));
        assert!(err.len() > "error: ".len(), "the error says why: {err:?}");
        // Still open and answering.
        c.send(&ChatMessage::new(MsgType::Ping)).await.unwrap();
        assert_eq!(c.recv_msg().await.unwrap().kind(), Some(MsgType::Pong));
    }
    c.ws.send(last).await.unwrap();
    let err = c
        .expect_error()
        .await
        .unwrap_or_else(|e| panic!("bad message {MAX_BAD}, the last: {e:#}"));
    assert!(err.len() > "error: ".len(), "the error says why: {err:?}");
    // `expect_close` would skip frames: the very next one must be the close.
    match c.recv().await.unwrap() {
        Received::Close(got, _) => assert_eq!(got, Some(code)),
        other => panic!("expected the close {code} right after the last error, got {other:?}"),
    }
    // Answer the close, as a well-behaved client does.
    let _ = tokio::time::timeout(testkit::WAIT, c.ws.next()).await;
}

fn server() -> server::ServerHandle {
    let mut o = opts();
    o.max_bad_messages = MAX_BAD;
    start_server(o)
}

#[tokio::test]
async fn undecodable_binary_is_an_error_and_repeated_closes_1007() {
    let server = server();
    let addr = server.local_addr();
    let mut h = healthy(addr, "bin").await;
    let mut c = offender(addr, Proto::Binary, "bin").await;
    // Truncated bincode: a length prefix claiming more bytes than follow.
    let mut truncated = binary::to_vec(&ChatMessage::new(MsgType::Chat).with_room("bin"));
    truncated.truncate(30);
    let bad = Message::binary(truncated);
    bad_until_closed(&mut c, [bad.clone(), bad.clone(), bad], 1007).await;
    still_healthy(&mut h, "bin", c.id).await;
}

#[tokio::test]
async fn undecodable_json_is_an_error_and_repeated_closes_1007() {
    let server = server();
    let addr = server.local_addr();
    let mut h = healthy(addr, "js").await;
    let mut c = offender(addr, Proto::Json, "js").await;
    // Several kinds of malformed, all counted together.
    let bad = [
        Message::text(r#"{"type":"chat","id":-1}"#),
        Message::text(r#"{"room":"js"}"#),
        Message::text("{not json"),
    ];
    bad_until_closed(&mut c, bad, 1007).await;
    still_healthy(&mut h, "js", c.id).await;
}

#[tokio::test]
async fn unknown_binary_msg_type_is_an_error_and_repeated_closes_1003() {
    let server = server();
    let addr = server.local_addr();
    let mut h = healthy(addr, "t9").await;
    let mut c = offender(addr, Proto::Binary, "t9").await;
    let mut msg = ChatMessage::new(MsgType::Chat).with_room("t9");
    msg.msg_type = 9;
    let bad = Message::binary(binary::to_vec(&msg));
    bad_until_closed(&mut c, [bad.clone(), bad.clone(), bad], 1003).await;
    still_healthy(&mut h, "t9", c.id).await;
}

#[tokio::test]
async fn unknown_json_type_is_an_error_and_repeated_closes_1003() {
    let server = server();
    let addr = server.local_addr();
    let mut h = healthy(addr, "dance").await;
    let mut c = offender(addr, Proto::Json, "dance").await;
    let bad = Message::text(r#"{"type":"dance","room":"dance"}"#);
    bad_until_closed(&mut c, [bad.clone(), bad.clone(), bad], 1003).await;
    still_healthy(&mut h, "dance", c.id).await;
}

#[tokio::test]
async fn system_and_pong_from_a_client_are_answered_with_errors() {
    // PROTOCOL.md section 5: "system, pong ... are answered with an error message".
    let server = start_server(opts());
    let addr = server.local_addr();
    let mut c = Client::connect(addr, Proto::Json, "username=c&room=sp")
        .await
        .unwrap();
    c.recv_msg().await.unwrap();
    c.send(
        &ChatMessage::new(MsgType::System)
            .with_payload(&b"welcome"[..])
            .with_room("sp"),
    )
    .await
    .unwrap();
    c.expect_error().await.unwrap();
    c.send(&ChatMessage::new(MsgType::Pong)).await.unwrap();
    // Ignoring it (no answer at all) is the failure to catch: wait briefly.
    match c.recv_within(Duration::from_secs(1)).await {
        Ok(Received::Chat(m, _))
            if m.kind() == Some(MsgType::System)
                && m.payload_str().is_some_and(|p| p.starts_with("error: ")) => {}
        other => panic!("a pong from the client should get an error message, got {other:?}"),
    }
    c.chat_and_echo("sp", b"ok").await.unwrap();
}

#[tokio::test]
async fn over_long_username_and_room_in_messages_are_refused() {
    let mut o = opts();
    o.max_username_len = 8;
    o.max_room_len = 8;
    o.max_bad_messages = MAX_BAD;
    let server = start_server(o);
    let addr = server.local_addr();
    let mut h = healthy(addr, "ok").await;
    let mut c = Client::connect(addr, Proto::Json, "username=name&room=ok")
        .await
        .unwrap();
    c.recv_msg().await.unwrap();
    h.recv_msg().await.unwrap();

    // Refusals are not decoding errors: more than MAX_BAD of them do not close.
    for _ in 0..=MAX_BAD {
        // 9 bytes of username
        c.send(
            &ChatMessage::new(MsgType::Join)
                .with_room("x")
                .with_username("ninechars"),
        )
        .await
        .unwrap();
        c.expect_error().await.unwrap();
        // 10 bytes of room (5 two-byte characters): the limit counts bytes
        c.join("ééééé").await.unwrap();
        c.expect_error().await.unwrap();
        c.chat("123456789", b"hi").await.unwrap();
        c.expect_error().await.unwrap();
    }
    // Nothing was carried out: same name, no new room.
    let m = c.chat_and_echo("ok", b"same name?").await.unwrap();
    assert_eq!(m.username, "name");
    let m = h.recv_msg().await.unwrap();
    assert_eq!(
        (m.username.as_ref(), &m.payload[..]),
        ("name", &b"same name?"[..])
    );
    c.chat("x", b"in x?").await.unwrap();
    c.expect_error().await.unwrap();

    // Exactly at the limits is fine (8 bytes each).
    c.send(
        &ChatMessage::new(MsgType::Join)
            .with_room("éééé")
            .with_username("eightchr"),
    )
    .await
    .unwrap();
    let m = c.recv_msg().await.unwrap();
    assert_eq!(
        (m.kind(), m.room.as_ref(), m.username.as_ref()),
        (Some(MsgType::Join), "éééé", "eightchr")
    );
    h.chat_and_echo("ok", b"fine").await.unwrap();
}

#[tokio::test]
async fn invalid_utf8_in_a_text_frame_closes_1007() {
    let server = server();
    let addr = server.local_addr();
    let mut h = healthy(addr, "utf").await;
    let mut raw = RawClient::connect(addr, "/?username=raw&room=utf")
        .await
        .unwrap();
    let welcome = raw.recv().await.unwrap();
    let id = match welcome {
        Some(testkit::RawFrame::Text(t)) => protocol::json::decode(&t).unwrap().user_id,
        other => panic!("expected the welcome, got {other:?}"),
    };
    // "h", then a lone continuation byte and an invalid byte.
    raw.send_frame(OpCode::Text, &[b'h', 0x80, 0xfe])
        .await
        .unwrap();
    assert_eq!(raw.expect_close().await.unwrap(), Some(1007));
    still_healthy(&mut h, "utf", id).await;
}

#[tokio::test]
async fn an_unmasked_client_frame_closes_1002() {
    let server = server();
    let addr = server.local_addr();
    let mut h = healthy(addr, "mask").await;
    let mut raw = RawClient::connect(addr, "/?username=raw&room=mask")
        .await
        .unwrap();
    let id = match raw.recv().await.unwrap() {
        Some(testkit::RawFrame::Text(t)) => protocol::json::decode(&t).unwrap().user_id,
        other => panic!("expected the welcome, got {other:?}"),
    };
    raw.send_unmasked(
        OpCode::Text,
        br#"{"type":"chat","room":"mask","payload":"x"}"#,
    )
    .await
    .unwrap();
    assert_eq!(raw.expect_close().await.unwrap(), Some(1002));
    still_healthy(&mut h, "mask", id).await;
    // The unmasked chat was not relayed: the healthy client's last message
    // was its own.
    h.expect_silence(Duration::from_millis(50)).await.unwrap();
}

#[tokio::test]
async fn refused_and_unsupported_messages_do_not_rename_the_connection() {
    // PROTOCOL.md section 5: a refused request gets only the error message,
    // and a bad message is not carried out either; a name rides along
    // only with a join, leave or chat the server carries out.
    let mut o = opts();
    o.max_bad_messages = MAX_BAD;
    o.max_rooms_per_connection = 1;
    let server = start_server(o);
    let addr = server.local_addr();
    let mut h = healthy(addr, "names").await;
    let mut c = Client::connect(addr, Proto::Json, "username=old&room=names")
        .await
        .unwrap();
    c.recv_msg().await.unwrap();
    h.recv_msg().await.unwrap();

    let refused_and_bad = [
        // Refused: not a member of that room.
        r#"{"type":"chat","room":"nope","username":"X"}"#,
        r#"{"type":"leave","room":"nope","username":"X2"}"#,
        // Refused inside the join: one room too many (the limit is 1 here).
        r#"{"type":"join","room":"second","username":"X3"}"#,
        // Unsupported: server-to-client types (two bad messages of MAX_BAD).
        r#"{"type":"system","username":"Y"}"#,
        r#"{"type":"pong","username":"Z"}"#,
    ];
    for text in refused_and_bad {
        c.ws.send(Message::text(text)).await.unwrap();
        c.expect_error()
            .await
            .unwrap_or_else(|e| panic!("{text}: {e:#}"));
    }
    let m = c.chat_and_echo("names", b"who am I?").await.unwrap();
    assert_eq!(m.username, "old", "{m:?}");
    let m = h.recv_msg().await.unwrap();
    assert_eq!(
        (m.kind(), m.username.as_ref(), &m.payload[..]),
        (Some(MsgType::Chat), "old", &b"who am I?"[..]),
        "{m:?}"
    );
}

#[tokio::test]
async fn a_forged_binary_length_is_named_in_the_error() {
    // Issue 11: a string claiming 2^60 bytes got "malformed binary message:
    // io error: " with nothing after it.
    let server = server();
    let addr = server.local_addr();
    let mut c = offender(addr, Proto::Binary, "forged").await;
    let mut bytes = binary::to_vec(&ChatMessage::new(MsgType::Chat).with_room("forged"));
    // The username's length prefix (offset 17, section 4.1) → 2^60.
    bytes[17..25].copy_from_slice(&(1u64 << 60).to_le_bytes());
    c.ws.send(Message::binary(bytes)).await.unwrap();
    let err = c.expect_error().await.unwrap();
    assert!(
        err.contains("username claims 1152921504606846976 bytes")
            && err.contains("more than the message holds"),
        "{err:?}"
    );
}

#[tokio::test]
async fn control_characters_in_names_in_messages_are_refused_in_both_encodings() {
    // Issue 11: a newline or NUL in a username or room passed. Now refused
    // like an over-long name: an error, nothing carried out, nothing
    // renamed, and refusals do not count toward closing.
    let mut o = opts();
    o.max_bad_messages = MAX_BAD;
    let server = start_server(o);
    let addr = server.local_addr();
    let mut h = healthy(addr, "cc").await;
    for proto in [Proto::Json, Proto::Binary] {
        let mut c = Client::connect(addr, proto, "username=name&room=cc")
            .await
            .unwrap();
        c.recv_msg().await.unwrap();
        h.recv_msg().await.unwrap();
        let bad_names = ["a\nb", "\0", "x\r", "del\x7f", "\x1b[2J", "tab\t"];
        for bad in bad_names {
            for kind in [MsgType::Join, MsgType::Leave, MsgType::Chat] {
                // The bad name as a username (room fine), then as a room.
                let as_user = ChatMessage::new(kind)
                    .with_room("cc")
                    .with_username(bad.to_owned())
                    .with_payload(&b"x"[..]);
                c.send(&as_user).await.unwrap();
                let err = c.expect_error().await.unwrap();
                assert!(
                    err.starts_with("error: username holds the control character"),
                    "{proto:?} {kind:?} {bad:?}: {err}"
                );
                let as_room = ChatMessage::new(kind)
                    .with_room(bad.to_owned())
                    .with_payload(&b"x"[..]);
                c.send(&as_room).await.unwrap();
                let err = c.expect_error().await.unwrap();
                assert!(
                    err.starts_with("error: room holds the control character"),
                    "{proto:?} {kind:?} {bad:?}: {err}"
                );
            }
        }
        // Nothing was carried out: same name, same single room, still open.
        let m = c.chat_and_echo("cc", b"same?").await.unwrap();
        assert_eq!(m.username, "name");
        let m = h.recv_msg().await.unwrap();
        assert_eq!(
            (m.username.as_ref(), &m.payload[..]),
            ("name", &b"same?"[..])
        );
        c.send(&ChatMessage::new(MsgType::Leave).with_room("cc"))
            .await
            .unwrap();
        assert_eq!(c.recv_msg().await.unwrap().kind(), Some(MsgType::Leave));
        assert_eq!(h.recv_msg().await.unwrap().kind(), Some(MsgType::Leave));
        c.chat("", b"no room").await.unwrap();
        let err = c.expect_error().await.unwrap();
        assert!(err.contains("not in any room"), "{err}");
    }
    h.chat_and_echo("cc", b"fine").await.unwrap();
}
