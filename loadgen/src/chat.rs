//! The client's side of the chat protocol, for loadgen and the benches:
//! the probe payload that carries a scheduled send time, masked client
//! frames, and decoding of what the server sends.

use bytes::Bytes;
use protocol::frame::{FrameWriter, OpCode};
use protocol::{ChatMessage, DecodeError, MsgType, Proto};

/// Hex digits of the scheduled time (16) and of the sender id (8).
pub const MIN_PAYLOAD: usize = 24;

/// A probe payload of `size` bytes (at least [`MIN_PAYLOAD`]): the
/// scheduled send time in ns since the host's boot ([`crate::clock`]) and
/// the sender id in
/// hex, padded with dots. ASCII so that it travels unchanged in JSON as
/// well as in bincode.
pub fn encode_payload(scheduled_ns: u64, sender: u32, size: usize) -> Vec<u8> {
    let mut p = format!("{scheduled_ns:016x}{sender:08x}").into_bytes();
    p.resize(size.max(MIN_PAYLOAD), b'.');
    p
}

/// The scheduled time and sender of a probe payload; `None` for anything
/// else (another client's chat, a corrupted relay).
pub fn decode_payload(p: &[u8]) -> Option<(u64, u32)> {
    let ns = u64::from_str_radix(hex_digits(p.get(..16)?)?, 16).ok()?;
    let sender = u32::from_str_radix(hex_digits(p.get(16..24)?)?, 16).ok()?;
    Some((ns, sender))
}

/// `from_str_radix` accepts a leading sign; a probe never has one.
fn hex_digits(b: &[u8]) -> Option<&str> {
    std::str::from_utf8(b)
        .ok()
        .filter(|s| s.bytes().all(|c| c.is_ascii_hexdigit()))
}

/// Frame masks only have to vary (RFC 6455 wants them unpredictable to
/// proxies; none sits between the bench and the server), so a xorshift is
/// plenty and costs nothing per frame.
#[derive(Debug, Clone)]
pub struct MaskSource(u64);

impl MaskSource {
    pub fn new(seed: u64) -> MaskSource {
        MaskSource(seed | 1)
    }

    pub fn next_mask(&mut self) -> [u8; 4] {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x as u32).to_le_bytes()
    }
}

/// One masked client frame carrying a chat message for `room`.
pub fn chat_frame(proto: Proto, room: &str, payload: &[u8], mask: [u8; 4]) -> Bytes {
    let msg = ChatMessage::new(MsgType::Chat)
        .with_room(room)
        .with_payload(payload);
    encode_frame(proto, &msg, mask)
}

/// Any message as one masked client frame in the encoding `proto`.
pub fn encode_frame(proto: Proto, msg: &ChatMessage<'_>, mask: [u8; 4]) -> Bytes {
    match proto {
        Proto::Binary => {
            let mut w = FrameWriter::new(
                OpCode::Binary,
                Some(mask),
                protocol::binary::encoded_len(msg),
            );
            w.encode_with(|out| protocol::binary::encode(msg, out));
            w.finish()
        }
        Proto::Json => {
            let mut w = FrameWriter::new(OpCode::Text, Some(mask), 128 + msg.payload.len());
            w.encode_with(|out| protocol::json::encode(msg, out));
            w.finish()
        }
    }
}

/// Decodes a data frame's message, whichever encoding the frame type says.
pub fn decode_message<'a>(
    frame: &protocol::frame::Message<'a>,
) -> Option<Result<ChatMessage<'a>, DecodeError>> {
    match *frame {
        protocol::frame::Message::Binary(b) => Some(protocol::binary::decode(b)),
        protocol::frame::Message::Text(t) => Some(protocol::json::decode(t)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use protocol::frame::{Flow, Message, MessageReader, Role};

    use super::*;

    #[test]
    fn payload_round_trips_and_pads() {
        let p = encode_payload(0x0123_4567_89ab_cdef, 42, 64);
        assert_eq!(p.len(), 64);
        assert!(p.is_ascii());
        assert_eq!(decode_payload(&p), Some((0x0123_4567_89ab_cdef, 42)));
        assert_eq!(encode_payload(5, 7, 3).len(), MIN_PAYLOAD);
        assert_eq!(
            decode_payload(&encode_payload(u64::MAX, u32::MAX, 0)),
            Some((u64::MAX, u32::MAX))
        );
        assert_eq!(decode_payload(b"short"), None);
        assert_eq!(decode_payload(b"+123456789abcdef00000001"), None);
        assert_eq!(decode_payload(b"0123456789abcdefzzzzzzzz"), None);
    }

    #[test]
    fn masks_vary() {
        let mut m = MaskSource::new(0);
        let a = m.next_mask();
        assert_ne!(a, m.next_mask());
    }

    /// The server's reader must accept our frames: masked, and decoding to
    /// the chat message we meant, in both encodings.
    #[test]
    fn chat_frames_decode_on_the_server_side() {
        for proto in [Proto::Binary, Proto::Json] {
            let payload = encode_payload(99, 3, 40);
            let mut wire = chat_frame(proto, "room-1", &payload, [1, 2, 3, 4]).to_vec();
            let mut reader = MessageReader::new(Role::Server, 65_536);
            let mut seen = 0;
            reader
                .feed(&mut wire, |m| {
                    let msg = decode_message(&m).unwrap().unwrap();
                    assert_eq!(msg.kind(), Some(MsgType::Chat));
                    assert_eq!(msg.room, "room-1");
                    assert_eq!(decode_payload(&msg.payload), Some((99, 3)));
                    assert!(matches!(
                        (proto, &m),
                        (Proto::Binary, Message::Binary(_)) | (Proto::Json, Message::Text(_))
                    ));
                    seen += 1;
                    Flow::Continue
                })
                .unwrap();
            assert_eq!(seen, 1);
        }
        assert!(decode_message(&Message::Ping(b"")).is_none());
    }
}
