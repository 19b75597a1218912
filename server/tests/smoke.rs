use protocol::{MsgType, Proto};
use testkit::{opts, start_server, Client};

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
