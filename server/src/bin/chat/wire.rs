//! Chat messages in and out of WebSocket messages: bincode in binary frames,
//! JSON in text frames. We send in our chosen encoding but read both, since
//! the server may answer in either.

use protocol::{ChatMessage, DecodeError, Proto};
use tokio_tungstenite::tungstenite::Message;

pub fn encode(msg: &ChatMessage<'_>, proto: Proto) -> Message {
    match proto {
        Proto::Json => Message::text(protocol::json::to_string(msg)),
        Proto::Binary => Message::binary(protocol::binary::to_vec(msg)),
    }
}

#[derive(Debug)]
pub enum Incoming<'a> {
    Chat(ChatMessage<'a>),
    Undecodable(DecodeError),
    /// The close code and reason, if the peer sent any.
    Close(Option<(u16, String)>),
    /// Ping/pong control frames: tungstenite answers pings itself.
    Control,
}

pub fn decode(msg: &Message) -> Incoming<'_> {
    let decoded = match msg {
        Message::Text(text) => protocol::json::decode(text.as_str()),
        Message::Binary(bytes) => protocol::binary::decode(bytes),
        Message::Close(frame) => {
            return Incoming::Close(
                frame
                    .as_ref()
                    .map(|f| (u16::from(f.code), f.reason.as_str().to_owned())),
            )
        }
        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => return Incoming::Control,
    };
    match decoded {
        Ok(msg) => Incoming::Chat(msg),
        Err(e) => Incoming::Undecodable(e),
    }
}

#[cfg(test)]
mod tests {
    use protocol::MsgType;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;

    use super::*;

    fn sample() -> ChatMessage<'static> {
        let mut msg = ChatMessage::new(MsgType::Chat)
            .with_room("lobby")
            .with_username("alice")
            .with_payload(b"hello".to_vec());
        msg.id = 9;
        msg.user_id = 4;
        msg.timestamp = 1_700_000_000_000;
        msg
    }

    #[test]
    fn json_goes_in_text_frames_and_binary_in_binary_frames() {
        let text = encode(&sample(), Proto::Json);
        assert!(matches!(text, Message::Text(_)));
        let bin = encode(&sample(), Proto::Binary);
        assert!(matches!(bin, Message::Binary(_)));
        for frame in [text, bin] {
            match decode(&frame) {
                Incoming::Chat(msg) => assert_eq!(msg, sample()),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn garbage_is_reported_not_fatal() {
        assert!(matches!(
            decode(&Message::text("{nope")),
            Incoming::Undecodable(_)
        ));
        assert!(matches!(
            decode(&Message::binary(vec![1, 2, 3])),
            Incoming::Undecodable(_)
        ));
    }

    #[test]
    fn close_frames_carry_code_and_reason() {
        let close = Message::Close(Some(CloseFrame {
            code: CloseCode::Away,
            reason: "shutting down".into(),
        }));
        assert!(matches!(
            decode(&close),
            Incoming::Close(Some((1001, ref reason))) if reason == "shutting down"
        ));
        assert!(matches!(
            decode(&Message::Close(None)),
            Incoming::Close(None)
        ));
        assert!(matches!(
            decode(&Message::Ping(Vec::new().into())),
            Incoming::Control
        ));
    }
}
