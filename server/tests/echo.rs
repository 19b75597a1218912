//! The `/echo` endpoint (`--echo`): messages come back in their own frame
//! type, pings get pongs, a close is answered with its code; without the
//! flag `/echo` stays a chat upgrade, and with it every other path does.
//! (Its RFC 6455 conformance is server/tests/autobahn.rs.)

use std::time::Duration;

use protocol::frame::OpCode;
use protocol::Proto;
use testkit::raw::{RawClient, RawFrame};
use testkit::{opts, start_server, Client};

fn echo_opts() -> server::Opts {
    let mut opts = opts();
    opts.echo = true;
    opts.echo_max_message_size = 100_000;
    opts
}

#[tokio::test]
async fn echo_answers_in_kind_and_echoes_the_close_code() {
    let server = start_server(echo_opts());
    let mut c = RawClient::connect(server.local_addr(), "/echo?room=ignored")
        .await
        .unwrap();
    c.send_frame(OpCode::Text, "héllo".as_bytes())
        .await
        .unwrap();
    c.send_frame(OpCode::Binary, &[0, 255, 7]).await.unwrap();
    c.send_frame(OpCode::Ping, b"p").await.unwrap();
    // Bigger than --max-message-size's floor but within the echo limit.
    let big = vec![b'x'; 70_000];
    c.send_frame(OpCode::Binary, &big).await.unwrap();
    // No welcome: the first frame back is the first echo.
    assert_eq!(
        c.recv().await.unwrap(),
        Some(RawFrame::Text("héllo".into()))
    );
    assert_eq!(
        c.recv().await.unwrap(),
        Some(RawFrame::Binary(vec![0, 255, 7]))
    );
    assert_eq!(c.recv().await.unwrap(), Some(RawFrame::Pong(b"p".to_vec())));
    assert_eq!(c.recv().await.unwrap(), Some(RawFrame::Binary(big)));
    c.send_close(4321).await.unwrap();
    assert_eq!(c.recv().await.unwrap(), Some(RawFrame::Close(Some(4321))));
    c.expect_eof_within(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn echo_has_its_own_size_limit() {
    let server = start_server(echo_opts());
    let mut c = RawClient::connect(server.local_addr(), "/echo")
        .await
        .unwrap();
    c.send_frame(OpCode::Binary, &vec![1; 100_001])
        .await
        .unwrap();
    assert_eq!(c.expect_close().await.unwrap(), Some(1009));
}

#[tokio::test]
async fn other_paths_stay_chat_with_echo_on() {
    let server = start_server(echo_opts());
    // `connect_path` fails unless the first message is the chat welcome.
    Client::connect_path(server.local_addr(), Proto::Json, "/")
        .await
        .unwrap();
    Client::connect_path(server.local_addr(), Proto::Json, "/echo/more")
        .await
        .unwrap();
}

#[tokio::test]
async fn without_echo_the_echo_path_is_chat() {
    let server = start_server(opts());
    Client::connect_path(server.local_addr(), Proto::Json, "/echo")
        .await
        .unwrap();
}

#[test]
fn echo_is_off_by_default_with_a_16_mib_limit() {
    use clap::Parser;
    let defaults = server::Opts::defaults();
    assert!(!defaults.echo);
    assert_eq!(defaults.echo_max_message_size, 16 << 20);
    let set = server::Opts::parse_from(["server", "--echo", "--echo-max-message-size", "2048"]);
    assert!(set.echo);
    assert_eq!(set.echo_max_message_size, 2048);
    let zero = server::Opts::parse_from(["server", "--echo-max-message-size", "0"]);
    assert!(zero.validate().is_err(), "a zero limit is refused");
}
