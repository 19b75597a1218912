//! The one message type of the chat protocol.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// What a message means. The numeric values are the `msg_type` byte on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MsgType {
    Chat = 1,
    Join = 2,
    Leave = 3,
    System = 4,
    Ping = 5,
    Pong = 6,
}

impl MsgType {
    pub const ALL: [MsgType; 6] = [
        MsgType::Chat,
        MsgType::Join,
        MsgType::Leave,
        MsgType::System,
        MsgType::Ping,
        MsgType::Pong,
    ];

    pub fn from_u8(v: u8) -> Option<MsgType> {
        MsgType::ALL.get(usize::from(v).wrapping_sub(1)).copied()
    }

    /// The JSON `type` string, also used as a metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            MsgType::Chat => "chat",
            MsgType::Join => "join",
            MsgType::Leave => "leave",
            MsgType::System => "system",
            MsgType::Ping => "ping",
            MsgType::Pong => "pong",
        }
    }

    pub fn from_name(name: &str) -> Option<MsgType> {
        MsgType::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// Which encoding a connection speaks: binary frames carry bincode, text
/// frames carry JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum Proto {
    #[default]
    Json = 0,
    Binary = 1,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Json => "json",
            Proto::Binary => "binary",
        }
    }

    pub fn from_name(name: &str) -> Option<Proto> {
        match name {
            "json" => Some(Proto::Json),
            "binary" | "bincode" => Some(Proto::Binary),
            _ => None,
        }
    }

    pub fn from_u8(v: u8) -> Proto {
        if v == Proto::Binary as u8 {
            Proto::Binary
        } else {
            Proto::Json
        }
    }
}

/// A chat message. The fields are in wire order: bincode encodes them in
/// exactly this sequence. Strings and payload borrow from the input frame
/// when decoded, so relaying a message copies its bytes only into the
/// outgoing frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ChatMessage<'a> {
    pub id: u64,
    pub msg_type: u8,
    pub user_id: u64,
    #[serde(borrow)]
    pub username: Cow<'a, str>,
    #[serde(borrow, with = "serde_bytes")]
    pub payload: Cow<'a, [u8]>,
    /// Unix time in milliseconds.
    pub timestamp: i64,
    #[serde(borrow)]
    pub room: Cow<'a, str>,
}

/// The start of every error message's payload (PROTOCOL.md, "Error
/// messages"): stable, unlike the reason that follows it, so clients can
/// tell an error from other `system` messages.
pub const ERROR_PREFIX: &str = "error: ";

impl<'a> ChatMessage<'a> {
    pub fn new(kind: MsgType) -> ChatMessage<'a> {
        ChatMessage {
            msg_type: kind as u8,
            ..ChatMessage::default()
        }
    }

    /// An error message: a `system` message whose payload is
    /// [`ERROR_PREFIX`] and `why`.
    pub fn error(why: &str) -> ChatMessage<'static> {
        ChatMessage::new(MsgType::System).with_payload(format!("{ERROR_PREFIX}{why}").into_bytes())
    }

    /// Whether this is an error message ([`ChatMessage::error`]).
    pub fn is_error(&self) -> bool {
        self.kind() == Some(MsgType::System) && self.payload.starts_with(ERROR_PREFIX.as_bytes())
    }

    /// The decoded type; `None` for a byte outside 1..=6 (decoders reject
    /// those, so only hand-built messages can hold one).
    pub fn kind(&self) -> Option<MsgType> {
        MsgType::from_u8(self.msg_type)
    }

    pub fn with_room(mut self, room: impl Into<Cow<'a, str>>) -> Self {
        self.room = room.into();
        self
    }

    pub fn with_username(mut self, username: impl Into<Cow<'a, str>>) -> Self {
        self.username = username.into();
        self
    }

    pub fn with_payload(mut self, payload: impl Into<Cow<'a, [u8]>>) -> Self {
        self.payload = payload.into();
        self
    }

    /// The payload as text when it is UTF-8 (System messages always are).
    pub fn payload_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.payload).ok()
    }

    pub fn into_owned(self) -> ChatMessage<'static> {
        ChatMessage {
            id: self.id,
            msg_type: self.msg_type,
            user_id: self.user_id,
            username: Cow::Owned(self.username.into_owned()),
            payload: Cow::Owned(self.payload.into_owned()),
            timestamp: self.timestamp,
            room: Cow::Owned(self.room.into_owned()),
        }
    }
}

/// Milliseconds since the Unix epoch, the unit of `timestamp`.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msg_type_numbers_and_names_round_trip() {
        for t in MsgType::ALL {
            assert_eq!(MsgType::from_u8(t as u8), Some(t));
            assert_eq!(MsgType::from_name(t.as_str()), Some(t));
        }
        assert_eq!(MsgType::from_u8(0), None);
        assert_eq!(MsgType::from_u8(7), None);
        assert_eq!(MsgType::from_u8(255), None);
        assert_eq!(MsgType::from_name("Chat"), None);
    }
}
