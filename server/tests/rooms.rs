//! Rooms and what the server does with each message (PROTOCOL.md section 5):
//! the welcome, joins and leaves with their notices, where a chat goes and
//! what the server fills in. In-process servers on ephemeral ports.

use std::time::Duration;

use protocol::message::now_millis;
use protocol::{ChatMessage, MsgType, Proto};
use testkit::{opts, start_server, Client};

/// Asserts `m` is a notice of `kind` about connection `user_id` named
/// `username` in `room`.
fn assert_notice(m: &ChatMessage<'_>, kind: MsgType, room: &str, username: &str, user_id: u64) {
    assert_eq!(m.kind(), Some(kind), "{m:?}");
    assert_eq!(
        (m.room.as_ref(), m.username.as_ref(), m.user_id),
        (room, username, user_id),
        "{m:?}"
    );
}

/// Chats in `room` and asserts the very next message `c` receives is that
/// chat: nothing else was queued for it before.
async fn next_is_own_chat(c: &mut Client, room: &str, payload: &[u8]) -> ChatMessage<'static> {
    c.chat(room, payload).await.unwrap();
    let m = c.recv_msg().await.unwrap();
    assert_eq!(
        (m.kind(), m.user_id, m.room.as_ref(), &m.payload[..]),
        (Some(MsgType::Chat), c.id, room, payload),
        "expected the client's own chat next, got {m:?}"
    );
    m
}

#[tokio::test]
async fn welcome_carries_each_connections_own_user_id() {
    let server = start_server(opts());
    let addr = server.local_addr();
    let mut a = Client::connect(addr, Proto::Json, "").await.unwrap();
    let mut b = Client::connect(addr, Proto::Binary, "").await.unwrap();
    assert_ne!(a.id, 0);
    assert_ne!(b.id, 0);
    assert_ne!(a.id, b.id, "two connections got the same id");
    // The id in the welcome is the one the server uses for this connection.
    a.join("w").await.unwrap();
    let own = a.recv_msg().await.unwrap();
    assert_eq!((own.kind(), own.user_id), (Some(MsgType::Join), a.id));
    b.join("w").await.unwrap();
    let seen_by_a = a.recv_msg().await.unwrap();
    assert_eq!(
        (seen_by_a.kind(), seen_by_a.user_id),
        (Some(MsgType::Join), b.id)
    );
    let own = b.recv_msg().await.unwrap();
    assert_eq!((own.kind(), own.user_id), (Some(MsgType::Join), b.id));
}

#[tokio::test]
async fn url_username_and_room_join_on_connect() {
    let server = start_server(opts());
    let addr = server.local_addr();
    // Percent-decoded, as the query is form-urlencoded.
    let mut alice = Client::connect(addr, Proto::Json, "username=al%20ice&room=lob+by")
        .await
        .unwrap();
    let join = alice.recv_msg().await.unwrap();
    assert_notice(&join, MsgType::Join, "lob by", "al ice", alice.id);

    let mut bob = Client::connect(addr, Proto::Binary, "username=bob&room=lob%20by")
        .await
        .unwrap();
    assert_notice(
        &bob.recv_msg().await.unwrap(),
        MsgType::Join,
        "lob by",
        "bob",
        bob.id,
    );
    assert_notice(
        &alice.recv_msg().await.unwrap(),
        MsgType::Join,
        "lob by",
        "bob",
        bob.id,
    );

    // Already members: no join message needed to chat.
    bob.chat("lob by", b"hi").await.unwrap();
    let got = alice.recv_msg().await.unwrap();
    assert_eq!(
        (got.kind(), got.username.as_ref(), &got.payload[..]),
        (Some(MsgType::Chat), "bob", &b"hi"[..])
    );
}

#[tokio::test]
async fn join_and_leave_notices_reach_the_right_members() {
    let server = start_server(opts());
    let addr = server.local_addr();
    let mut a = Client::connect(addr, Proto::Json, "username=a&room=r")
        .await
        .unwrap();
    assert_notice(&a.recv_msg().await.unwrap(), MsgType::Join, "r", "a", a.id);

    // A join by message, which also names the connection.
    let mut b = Client::connect(addr, Proto::Binary, "").await.unwrap();
    b.send(
        &ChatMessage::new(MsgType::Join)
            .with_room("r")
            .with_username("b"),
    )
    .await
    .unwrap();
    assert_notice(&b.recv_msg().await.unwrap(), MsgType::Join, "r", "b", b.id);
    assert_notice(&a.recv_msg().await.unwrap(), MsgType::Join, "r", "b", b.id);

    // Leave: the leaver and the remaining members are told.
    b.send(&ChatMessage::new(MsgType::Leave).with_room("r"))
        .await
        .unwrap();
    assert_notice(&b.recv_msg().await.unwrap(), MsgType::Leave, "r", "b", b.id);
    assert_notice(&a.recv_msg().await.unwrap(), MsgType::Leave, "r", "b", b.id);

    // No longer a member: chatting there is an error, and `a` hears nothing.
    b.chat("r", b"still here?").await.unwrap();
    b.expect_error().await.unwrap();

    // Disconnects, with a close frame and without one, are leaves too.
    let mut c = Client::connect(addr, Proto::Json, "username=c&room=r")
        .await
        .unwrap();
    assert_notice(&a.recv_msg().await.unwrap(), MsgType::Join, "r", "c", c.id);
    let d = Client::connect(addr, Proto::Json, "username=d&room=r")
        .await
        .unwrap();
    assert_notice(&a.recv_msg().await.unwrap(), MsgType::Join, "r", "d", d.id);
    assert_eq!(c.close_and_wait().await.unwrap(), Some(1000));
    assert_notice(&a.recv_msg().await.unwrap(), MsgType::Leave, "r", "c", c.id);
    let d_id = d.id;
    drop(d); // TCP goes away without a close frame
    assert_notice(&a.recv_msg().await.unwrap(), MsgType::Leave, "r", "d", d_id);

    // Nothing else was sent to `a` meanwhile: its next message is its own.
    let own = next_is_own_chat(&mut a, "r", b"alone").await;
    assert_eq!(own.username, "a");
    a.expect_silence(Duration::from_millis(100)).await.unwrap();
}

#[tokio::test]
async fn a_message_in_one_room_never_reaches_another() {
    let server = start_server(opts());
    let addr = server.local_addr();
    let mut a = Client::connect(addr, Proto::Json, "username=a&room=red")
        .await
        .unwrap();
    a.recv_msg().await.unwrap();
    let mut b = Client::connect(addr, Proto::Json, "username=b&room=blue")
        .await
        .unwrap();
    b.recv_msg().await.unwrap();
    // A room whose name extends the other's, in case names are matched loosely.
    let mut c = Client::connect(addr, Proto::Binary, "username=c&room=red2")
        .await
        .unwrap();
    c.recv_msg().await.unwrap();

    next_is_own_chat(&mut a, "red", b"for red only").await;
    // The server has handled a's chat; b's and c's next messages are their own.
    next_is_own_chat(&mut b, "blue", b"blue").await;
    next_is_own_chat(&mut c, "red2", b"red2").await;
    b.expect_silence(Duration::from_millis(100)).await.unwrap();
    c.expect_silence(Duration::from_millis(10)).await.unwrap();
    // And nothing of theirs reached a.
    a.expect_silence(Duration::from_millis(10)).await.unwrap();
}

#[tokio::test]
async fn one_connection_in_several_rooms_hears_each_and_chats_without_room_to_the_last_joined() {
    let server = start_server(opts());
    let addr = server.local_addr();
    let mut one = Client::connect(addr, Proto::Json, "username=one&room=r1")
        .await
        .unwrap();
    one.recv_msg().await.unwrap();
    let mut two = Client::connect(addr, Proto::Json, "username=two&room=r2")
        .await
        .unwrap();
    two.recv_msg().await.unwrap();
    let mut multi = Client::connect(addr, Proto::Binary, "username=multi")
        .await
        .unwrap();
    multi.join("r1").await.unwrap();
    assert_notice(
        &multi.recv_msg().await.unwrap(),
        MsgType::Join,
        "r1",
        "multi",
        multi.id,
    );
    assert_notice(
        &one.recv_msg().await.unwrap(),
        MsgType::Join,
        "r1",
        "multi",
        multi.id,
    );
    multi.join("r2").await.unwrap();
    assert_notice(
        &multi.recv_msg().await.unwrap(),
        MsgType::Join,
        "r2",
        "multi",
        multi.id,
    );
    assert_notice(
        &two.recv_msg().await.unwrap(),
        MsgType::Join,
        "r2",
        "multi",
        multi.id,
    );

    // It hears both rooms, each message labelled with its room.
    one.chat("r1", b"from one").await.unwrap();
    let m = multi.recv_msg().await.unwrap();
    assert_eq!(
        (m.room.as_ref(), &m.payload[..], m.user_id),
        ("r1", &b"from one"[..], one.id)
    );
    two.chat("r2", b"from two").await.unwrap();
    let m = multi.recv_msg().await.unwrap();
    assert_eq!(
        (m.room.as_ref(), &m.payload[..], m.user_id),
        ("r2", &b"from two"[..], two.id)
    );
    assert_eq!(one.recv_msg().await.unwrap().payload.as_ref(), b"from one");
    assert_eq!(two.recv_msg().await.unwrap().payload.as_ref(), b"from two");

    // Chat naming a room goes there only.
    multi.chat("r1", b"to r1").await.unwrap();
    let m = one.recv_msg().await.unwrap();
    assert_eq!((m.room.as_ref(), &m.payload[..]), ("r1", &b"to r1"[..]));
    assert_eq!(multi.recv_msg().await.unwrap().room, "r1");

    // Chat without a room goes to the room joined last: r2.
    multi
        .send(&ChatMessage::new(MsgType::Chat).with_payload(&b"default"[..]))
        .await
        .unwrap();
    let m = two.recv_msg().await.unwrap();
    assert_eq!(
        (m.room.as_ref(), &m.payload[..], m.user_id),
        ("r2", &b"default"[..], multi.id)
    );
    let m = multi.recv_msg().await.unwrap();
    assert_eq!((m.room.as_ref(), &m.payload[..]), ("r2", &b"default"[..]));
    // r1 got neither the r2 message nor the default one: one's next is its own.
    next_is_own_chat(&mut one, "r1", b"check").await;
    one.expect_silence(Duration::from_millis(50)).await.unwrap();
}

#[tokio::test]
async fn chat_to_a_room_not_joined_is_an_error_and_goes_nowhere() {
    let server = start_server(opts());
    let addr = server.local_addr();
    let mut member = Client::connect(addr, Proto::Json, "username=m&room=club")
        .await
        .unwrap();
    member.recv_msg().await.unwrap();
    let mut outsider = Client::connect(addr, Proto::Json, "username=o&room=street")
        .await
        .unwrap();
    outsider.recv_msg().await.unwrap();

    outsider.chat("club", b"let me in").await.unwrap();
    let err = outsider.expect_error().await.unwrap();
    assert!(err.len() > "error: ".len(), "the error says why: {err:?}");
    // A room nobody is in is no different.
    outsider.chat("nowhere", b"hello?").await.unwrap();
    outsider.expect_error().await.unwrap();
    // The member got nothing: its next message is its own.
    next_is_own_chat(&mut member, "club", b"mine").await;

    // A chat without a room from a connection in no room is an error too.
    let mut roomless = Client::connect(addr, Proto::Binary, "username=x")
        .await
        .unwrap();
    roomless
        .send(&ChatMessage::new(MsgType::Chat).with_payload(&b"anyone?"[..]))
        .await
        .unwrap();
    roomless.expect_error().await.unwrap();
    // Errors do not close the connection.
    roomless.join("club").await.unwrap();
    assert_notice(
        &roomless.recv_msg().await.unwrap(),
        MsgType::Join,
        "club",
        "x",
        roomless.id,
    );
}

#[tokio::test]
async fn the_server_fills_in_id_user_id_username_and_timestamp() {
    let server = start_server(opts());
    let addr = server.local_addr();
    let mut alice = Client::connect(addr, Proto::Json, "username=alice&room=r")
        .await
        .unwrap();
    alice.recv_msg().await.unwrap();
    let mut bob = Client::connect(addr, Proto::Binary, "username=bob&room=r")
        .await
        .unwrap();
    bob.recv_msg().await.unwrap();
    alice.recv_msg().await.unwrap();

    // The client's own values in those fields are ignored.
    let payload = "hello \u{1F600} \"quoted\" \\ \n end".as_bytes();
    let mut forged = ChatMessage::new(MsgType::Chat)
        .with_room("r")
        .with_payload(payload);
    forged.id = 777_777;
    forged.user_id = 999_999;
    forged.timestamp = 1;
    let before = now_millis();
    alice.send(&forged).await.unwrap();
    let own = alice.recv_msg().await.unwrap();
    let other = bob.recv_msg().await.unwrap();
    let after = now_millis();
    for m in [&own, &other] {
        assert_eq!(m.kind(), Some(MsgType::Chat));
        assert_eq!(&m.payload[..], payload, "payload relayed byte for byte");
        assert_eq!(
            (m.user_id, m.username.as_ref(), m.room.as_ref()),
            (alice.id, "alice", "r")
        );
        assert!(
            (before..=after).contains(&m.timestamp),
            "timestamp {} not in [{before}, {after}]",
            m.timestamp
        );
        assert_ne!(m.id, 777_777, "the server numbers what it relays");
    }
    assert_eq!(own.id, other.id, "one message, one id, for every recipient");

    // The next message gets another id; an empty payload is relayed as empty.
    alice.chat("r", b"").await.unwrap();
    let next = bob.recv_msg().await.unwrap();
    assert_eq!((next.kind(), next.payload.len()), (Some(MsgType::Chat), 0));
    assert_ne!(next.id, own.id);
}

/// JSON client "first" and client "b" (in `b_proto`) in room "r", each past
/// its welcome and the join notices.
async fn first_and_b_in_r(addr: std::net::SocketAddr, b_proto: Proto) -> (Client, Client) {
    let mut a = Client::connect(addr, Proto::Json, "username=first&room=r")
        .await
        .unwrap();
    a.recv_msg().await.unwrap();
    let mut b = Client::connect(addr, b_proto, "username=b&room=r")
        .await
        .unwrap();
    b.recv_msg().await.unwrap();
    a.recv_msg().await.unwrap();
    (a, b)
}

#[tokio::test]
async fn a_later_join_with_a_username_renames_the_connection() {
    let server = start_server(opts());
    let (mut a, mut b) = first_and_b_in_r(server.local_addr(), Proto::Json).await;

    a.chat("r", b"before").await.unwrap();
    assert_eq!(b.recv_msg().await.unwrap().username, "first");
    a.recv_msg().await.unwrap();

    a.send(
        &ChatMessage::new(MsgType::Join)
            .with_room("other")
            .with_username("second"),
    )
    .await
    .unwrap();
    assert_notice(
        &a.recv_msg().await.unwrap(),
        MsgType::Join,
        "other",
        "second",
        a.id,
    );
    a.chat("r", b"after").await.unwrap();
    let m = b.recv_msg().await.unwrap();
    assert_eq!(
        (m.username.as_ref(), &m.payload[..], m.user_id),
        ("second", &b"after"[..], a.id)
    );
    // Leave notices carry the new name as well.
    drop(a);
    let m = b.recv_msg().await.unwrap();
    assert_eq!(
        (m.kind(), m.username.as_ref()),
        (Some(MsgType::Leave), "second")
    );
}

#[tokio::test]
async fn a_later_chat_or_leave_with_a_username_renames_the_connection() {
    let server = start_server(opts());
    let (mut a, mut b) = first_and_b_in_r(server.local_addr(), Proto::Binary).await;

    // The chat that carries the new name is itself sent under it.
    a.send(
        &ChatMessage::new(MsgType::Chat)
            .with_room("r")
            .with_payload(&b"renamed"[..])
            .with_username("second"),
    )
    .await
    .unwrap();
    for m in [b.recv_msg().await.unwrap(), a.recv_msg().await.unwrap()] {
        assert_eq!(
            (m.kind(), m.username.as_ref(), &m.payload[..], m.user_id),
            (Some(MsgType::Chat), "second", &b"renamed"[..], a.id),
            "{m:?}"
        );
    }
    // And it sticks: a chat without a name is sent under the new one.
    let own = next_is_own_chat(&mut a, "r", b"later").await;
    assert_eq!(own.username, "second");
    let m = b.recv_msg().await.unwrap();
    assert_eq!(
        (m.username.as_ref(), &m.payload[..]),
        ("second", &b"later"[..])
    );

    // A leave carrying a name renames too; its notice carries the new name.
    a.send(
        &ChatMessage::new(MsgType::Leave)
            .with_room("r")
            .with_username("third"),
    )
    .await
    .unwrap();
    assert_notice(
        &a.recv_msg().await.unwrap(),
        MsgType::Leave,
        "r",
        "third",
        a.id,
    );
    assert_notice(
        &b.recv_msg().await.unwrap(),
        MsgType::Leave,
        "r",
        "third",
        a.id,
    );
}
