//! Text frames: one JSON object per frame.
//!
//! The payload travels as a UTF-8 string in `payload`. A payload that is not
//! UTF-8 (a binary client's bytes relayed to a JSON client) travels as
//! standard base64 in `payload_base64` instead, so relaying never alters it.

use std::borrow::Cow;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::{ChatMessage, DecodeError, MsgType};

#[derive(Serialize)]
struct JsonOut<'m> {
    #[serde(rename = "type")]
    kind: &'static str,
    room: &'m str,
    username: &'m str,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<&'m str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_base64: Option<String>,
    id: u64,
    user_id: u64,
    timestamp: i64,
}

#[derive(Deserialize)]
struct JsonIn<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    room: Cow<'a, str>,
    #[serde(default, borrow)]
    username: Cow<'a, str>,
    #[serde(default, borrow)]
    payload: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    payload_base64: Option<Cow<'a, str>>,
    #[serde(default)]
    id: u64,
    #[serde(default)]
    user_id: u64,
    #[serde(default)]
    timestamp: i64,
}

/// Appends the JSON form of `msg` to `out`.
pub fn encode(msg: &ChatMessage<'_>, out: &mut Vec<u8>) {
    let (payload, payload_base64) = match std::str::from_utf8(&msg.payload) {
        Ok(text) => (Some(text), None),
        Err(_) => (
            None,
            Some(base64::engine::general_purpose::STANDARD.encode(&msg.payload)),
        ),
    };
    let wire = JsonOut {
        kind: msg.kind().map_or("unknown", MsgType::as_str),
        room: &msg.room,
        username: &msg.username,
        payload,
        payload_base64,
        id: msg.id,
        user_id: msg.user_id,
        timestamp: msg.timestamp,
    };
    // Serializing plain strings and integers into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &wire);
}

pub fn to_string(msg: &ChatMessage<'_>) -> String {
    let mut out = Vec::with_capacity(96 + msg.payload.len() + msg.username.len() + msg.room.len());
    encode(msg, &mut out);
    // serde_json writes UTF-8 only.
    String::from_utf8(out).unwrap_or_default()
}

/// Decodes one message. Every field but `type` may be omitted; unknown
/// fields are ignored so clients may carry their own annotations.
pub fn decode(input: &str) -> Result<ChatMessage<'_>, DecodeError> {
    // serde would also take the fields as an array; the protocol is objects.
    if !input.trim_start().starts_with('{') {
        return Err(DecodeError::Json("expected a JSON object".into()));
    }
    let wire: JsonIn<'_> =
        serde_json::from_str(input).map_err(|e| DecodeError::Json(e.to_string()))?;
    let kind = MsgType::from_name(&wire.kind)
        .ok_or_else(|| DecodeError::UnknownType(format!("{:?}", wire.kind)))?;
    let payload: Cow<'_, [u8]> = match (wire.payload, wire.payload_base64) {
        (Some(_), Some(_)) => {
            return Err(DecodeError::Json(
                "both payload and payload_base64 are set".into(),
            ))
        }
        (Some(Cow::Borrowed(text)), None) => Cow::Borrowed(text.as_bytes()),
        (Some(Cow::Owned(text)), None) => Cow::Owned(text.into_bytes()),
        (None, Some(b64)) => Cow::Owned(
            base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .map_err(|e| DecodeError::Json(format!("payload_base64: {e}")))?,
        ),
        (None, None) => Cow::Borrowed(&[]),
    };
    Ok(ChatMessage {
        id: wire.id,
        msg_type: kind as u8,
        user_id: wire.user_id,
        username: wire.username,
        payload,
        timestamp: wire.timestamp,
        room: wire.room,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_fields_in_documented_order() {
        let msg = ChatMessage {
            id: 7,
            msg_type: MsgType::Chat as u8,
            user_id: 3,
            username: "alice".into(),
            payload: Cow::Borrowed(b"hello"),
            timestamp: 1700000000000,
            room: "lobby".into(),
        };
        assert_eq!(
            to_string(&msg),
            r#"{"type":"chat","room":"lobby","username":"alice","payload":"hello","id":7,"user_id":3,"timestamp":1700000000000}"#
        );
    }

    #[test]
    fn minimal_client_frame_decodes_with_defaults() {
        let msg = decode(r#"{"type":"join"}"#).unwrap();
        assert_eq!(msg.kind(), Some(MsgType::Join));
        assert_eq!(msg.room, "");
        assert!(msg.payload.is_empty());
        assert_eq!(msg.id, 0);
    }

    #[test]
    fn non_utf8_payload_travels_as_base64_and_back() {
        let msg = ChatMessage::new(MsgType::Chat).with_payload(vec![0xff, 0x00, 0x80]);
        let text = to_string(&msg);
        assert!(text.contains(r#""payload_base64":"/wCA""#), "{text}");
        assert!(!text.contains(r#""payload":"#));
        assert_eq!(decode(&text).unwrap(), msg);
    }

    #[test]
    fn escaped_strings_round_trip() {
        let msg = ChatMessage::new(MsgType::Chat)
            .with_room("a\"b")
            .with_username("\u{1F600}\n")
            .with_payload(b"quote \" backslash \\".to_vec());
        assert_eq!(decode(&to_string(&msg)).unwrap(), msg);
    }

    #[test]
    fn errors_are_classified() {
        assert!(matches!(decode("{"), Err(DecodeError::Json(_))));
        assert!(matches!(decode("{}"), Err(DecodeError::Json(_))));
        assert!(matches!(decode("[1,2]"), Err(DecodeError::Json(_))));
        assert!(matches!(
            decode(r#"["chat","lobby"]"#),
            Err(DecodeError::Json(_))
        ));
        assert!(matches!(
            decode(r#"{"type":"dance"}"#),
            Err(DecodeError::UnknownType(_))
        ));
        assert!(matches!(
            decode(r#"{"type":"chat","id":-1}"#),
            Err(DecodeError::Json(_))
        ));
        assert!(matches!(
            decode(r#"{"type":"chat","payload":"a","payload_base64":"YQ=="}"#),
            Err(DecodeError::Json(_))
        ));
        assert!(matches!(
            decode(r#"{"type":"chat","payload_base64":"***"}"#),
            Err(DecodeError::Json(_))
        ));
    }
}
