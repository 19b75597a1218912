//! The two encodings side by side, how the server picks the one it answers
//! in, and both kinds of ping (PROTOCOL.md sections 1, 2, 4 and 5).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use protocol::{json, ChatMessage, MsgType, Proto};
use testkit::{opts, start_server, Client, Received};
use tokio_tungstenite::tungstenite::Message;

/// The next message and the encoding it came in.
async fn recv_with_proto(c: &mut Client) -> (ChatMessage<'static>, Proto) {
    match c.recv().await.unwrap() {
        Received::Chat(m, proto) => (m, proto),
        other => panic!("expected a chat-protocol message, got {other:?}"),
    }
}

#[tokio::test]
async fn every_member_of_a_mixed_room_gets_its_own_encoding() {
    let server = start_server(opts());
    let addr = server.local_addr();
    let mut j = Client::connect(addr, Proto::Json, "username=j&room=mix")
        .await
        .unwrap();
    let mut b = Client::connect(addr, Proto::Binary, "username=b&room=mix")
        .await
        .unwrap();
    // No proto parameter: answered in JSON until it sends something.
    let mut u = Client::connect_path(addr, Proto::Json, "/?username=u&room=mix")
        .await
        .unwrap();
    for (c, n) in [(&mut j, 3), (&mut b, 2), (&mut u, 1)] {
        for _ in 0..n {
            let (m, proto) = recv_with_proto(c).await;
            assert_eq!((m.kind(), proto), (Some(MsgType::Join), c.proto), "{m:?}");
        }
    }
    for sender in 0..3 {
        let payload = format!("from {sender}");
        let clients = [&mut j, &mut b, &mut u];
        clients[sender]
            .chat("mix", payload.as_bytes())
            .await
            .unwrap();
        for c in clients {
            let (m, proto) = recv_with_proto(c).await;
            assert_eq!(proto, c.proto, "{m:?}");
            assert_eq!(
                (m.kind(), &m.payload[..]),
                (Some(MsgType::Chat), payload.as_bytes())
            );
        }
    }
}

#[tokio::test]
async fn non_utf8_payloads_cross_encodings_unchanged() {
    let server = start_server(opts());
    let addr = server.local_addr();
    let mut j = Client::connect(addr, Proto::Json, "username=j&room=bytes")
        .await
        .unwrap();
    j.recv_msg().await.unwrap();
    let mut b = Client::connect(addr, Proto::Binary, "username=b&room=bytes")
        .await
        .unwrap();
    b.recv_msg().await.unwrap();
    j.recv_msg().await.unwrap();

    let raw = [0xff, 0x00, 0x80, 0xfe, b'a'];
    b.chat("bytes", &raw).await.unwrap();
    let frame = tokio::time::timeout(testkit::WAIT, j.ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let Message::Text(text) = frame else {
        panic!("expected a text frame, got {frame:?}")
    };
    assert!(
        text.contains(r#""payload_base64":"/wCA/mE=""#) && !text.contains(r#""payload":"#),
        "{text}"
    );
    assert_eq!(&json::decode(text.as_str()).unwrap().payload[..], &raw);
    assert_eq!(&b.recv_msg().await.unwrap().payload[..], &raw);

    // And back: a JSON client's payload_base64 reaches the binary client as
    // the bytes it stands for.
    let back = [0x00, 0xc3, 0x28, 0xf0, 0x9f];
    j.chat("bytes", &back).await.unwrap();
    assert_eq!(&b.recv_msg().await.unwrap().payload[..], &back);
    assert_eq!(&j.recv_msg().await.unwrap().payload[..], &back);
}

#[tokio::test]
async fn without_proto_a_client_is_answered_in_the_encoding_it_last_sent() {
    let server = start_server(opts());
    let addr = server.local_addr();
    let mut other = Client::connect(addr, Proto::Json, "username=o&room=sw")
        .await
        .unwrap();
    other.recv_msg().await.unwrap();
    let mut s = Client::connect_path(addr, Proto::Json, "/?username=s&room=sw")
        .await
        .unwrap();
    let (join, proto) = recv_with_proto(&mut s).await;
    assert_eq!(
        (join.kind(), proto),
        (Some(MsgType::Join), Proto::Json),
        "JSON before anything is sent"
    );
    other.recv_msg().await.unwrap();

    s.chat("sw", b"in json").await.unwrap();
    assert_eq!(recv_with_proto(&mut s).await.1, Proto::Json);
    other.recv_msg().await.unwrap();

    // Switches to binary frames: answered in binary from then on, messages
    // caused by others included.
    s.proto = Proto::Binary;
    s.chat("sw", b"in binary").await.unwrap();
    let (m, proto) = recv_with_proto(&mut s).await;
    assert_eq!((&m.payload[..], proto), (&b"in binary"[..], Proto::Binary));
    assert_eq!(
        other.recv_msg().await.unwrap().payload.as_ref(),
        b"in binary"
    );
    for i in 0..3 {
        other
            .chat("sw", format!("to s {i}").as_bytes())
            .await
            .unwrap();
        let (m, proto) = recv_with_proto(&mut s).await;
        assert_eq!((m.user_id, proto), (other.id, Proto::Binary), "{m:?}");
        other.recv_msg().await.unwrap();
    }
    // Back to text frames: back to JSON.
    s.proto = Proto::Json;
    s.send(&ChatMessage::new(MsgType::Ping)).await.unwrap();
    let (m, proto) = recv_with_proto(&mut s).await;
    assert_eq!((m.kind(), proto), (Some(MsgType::Pong), Proto::Json));
}

#[tokio::test]
async fn default_proto_binary_applies_until_the_client_sends() {
    let mut o = opts();
    o.default_proto = Proto::Binary;
    let server = start_server(o);
    let addr = server.local_addr();
    let mut c = Client::connect_path(addr, Proto::Json, "/?username=c&room=d")
        .await
        .unwrap();
    let (join, proto) = recv_with_proto(&mut c).await;
    assert_eq!((join.kind(), proto), (Some(MsgType::Join), Proto::Binary));
    c.chat("d", b"text now").await.unwrap();
    assert_eq!(recv_with_proto(&mut c).await.1, Proto::Json);
    // ?proto= overrides the default.
    let mut p = Client::connect(addr, Proto::Json, "username=p&room=d")
        .await
        .unwrap();
    assert_eq!(recv_with_proto(&mut p).await.1, Proto::Json);
}

#[tokio::test]
async fn the_proto_parameter_sets_the_encoding_until_the_client_sends() {
    let server = start_server(opts());
    let addr = server.local_addr();
    // PROTOCOL.md section 1: `proto` sets the answer encoding up front;
    // from the client's first message on, its last frame type decides.
    let mut c = Client::connect(addr, Proto::Binary, "username=c&room=p")
        .await
        .unwrap();
    assert_eq!(recv_with_proto(&mut c).await.1, Proto::Binary);
    c.proto = Proto::Json;
    c.chat("p", b"sent as json").await.unwrap();
    let (m, proto) = recv_with_proto(&mut c).await;
    assert_eq!((&m.payload[..], proto), (&b"sent as json"[..], Proto::Json));

    let mut d = Client::connect(addr, Proto::Json, "username=d&room=p")
        .await
        .unwrap();
    // d's join notice comes to d in JSON, as its URL asked
    assert_eq!(recv_with_proto(&mut d).await.1, Proto::Json);
    recv_with_proto(&mut c).await;
    d.proto = Proto::Binary;
    d.chat("p", b"sent as binary").await.unwrap();
    let (m, proto) = recv_with_proto(&mut d).await;
    assert_eq!(
        (&m.payload[..], proto),
        (&b"sent as binary"[..], Proto::Binary)
    );
    // and c, who switched to JSON, gets d's message in JSON
    let (m, proto) = recv_with_proto(&mut c).await;
    assert_eq!(
        (&m.payload[..], proto),
        (&b"sent as binary"[..], Proto::Json)
    );
}

#[tokio::test]
async fn application_ping_gets_a_pong_with_the_same_id_and_payload() {
    let server = start_server(opts());
    let addr = server.local_addr();
    let mut j = Client::connect(addr, Proto::Json, "username=j&room=pp")
        .await
        .unwrap();
    j.recv_msg().await.unwrap();
    let mut b = Client::connect(addr, Proto::Binary, "username=b&room=pp")
        .await
        .unwrap();
    b.recv_msg().await.unwrap();
    j.recv_msg().await.unwrap();

    let mut ping = ChatMessage::new(MsgType::Ping).with_payload(&b"t=1"[..]);
    ping.id = 99;
    j.send(&ping).await.unwrap();
    let pong = j.recv_msg().await.unwrap();
    assert_eq!(
        (pong.kind(), pong.id, &pong.payload[..]),
        (Some(MsgType::Pong), 99, &b"t=1"[..])
    );

    let mut ping = ChatMessage::new(MsgType::Ping)
        .with_payload(vec![0xff, 0, 1, 2, 0xfe])
        .with_room("pp");
    ping.id = u64::MAX - 1;
    b.send(&ping).await.unwrap();
    let pong = b.recv_msg().await.unwrap();
    assert_eq!(
        (pong.kind(), pong.id, &pong.payload[..]),
        (
            Some(MsgType::Pong),
            u64::MAX - 1,
            &[0xff, 0, 1, 2, 0xfe][..]
        )
    );
    // Only the sender gets the answer, even with a room in the ping.
    j.chat("pp", b"next").await.unwrap();
    let m = j.recv_msg().await.unwrap();
    assert_eq!((m.kind(), m.user_id), (Some(MsgType::Chat), j.id), "{m:?}");
    b.recv_msg().await.unwrap();
    b.expect_silence(Duration::from_millis(50)).await.unwrap();
}

#[tokio::test]
async fn websocket_ping_frames_get_pongs_with_the_same_payload() {
    let server = start_server(opts());
    let addr = server.local_addr();
    let mut c = Client::connect(addr, Proto::Json, "").await.unwrap();
    for payload in [&b"abc"[..], &[], &[0xa5; 125][..]] {
        c.ws.send(Message::Ping(payload.to_vec().into()))
            .await
            .unwrap();
        match c.recv().await.unwrap() {
            Received::Other(Message::Pong(p)) => assert_eq!(&p[..], payload),
            other => panic!("expected a pong, got {other:?}"),
        }
    }
    // The connection is still fine.
    c.send(&ChatMessage::new(MsgType::Ping)).await.unwrap();
    assert_eq!(c.recv_msg().await.unwrap().kind(), Some(MsgType::Pong));
}
