//! Binary frames: bincode 1.x's default layout (fixed-width little-endian
//! integers, u64 length prefixes), the fields in `ChatMessage` order.

use bincode::Options;

use crate::{ChatMessage, DecodeError, MsgType};

/// bincode 1.x's `serialize` layout. Decoding adds a byte limit equal to the
/// input length, so a forged length prefix fails before anything is
/// allocated for it, and rejects trailing bytes so one frame is one message.
fn options(limit: u64) -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .with_limit(limit)
        .reject_trailing_bytes()
}

/// The number of bytes `encode` appends for `msg`.
pub fn encoded_len(msg: &ChatMessage<'_>) -> usize {
    // id, msg_type, user_id, 3 length prefixes, timestamp
    8 + 1 + 8 + 8 + msg.username.len() + 8 + msg.payload.len() + 8 + 8 + msg.room.len()
}

/// Appends the bincode form of `msg` to `out`.
pub fn encode(msg: &ChatMessage<'_>, out: &mut Vec<u8>) {
    out.reserve(encoded_len(msg));
    // Writing into a Vec cannot fail and the message has no maps or
    // unsized sequences bincode could reject.
    let _ = options(u64::MAX).serialize_into(&mut *out, msg);
}

pub fn to_vec(msg: &ChatMessage<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(msg));
    encode(msg, &mut out);
    out
}

/// Decodes one message, borrowing its strings and payload from `input`.
pub fn decode(input: &[u8]) -> Result<ChatMessage<'_>, DecodeError> {
    let msg: ChatMessage<'_> = options(input.len() as u64)
        .deserialize(input)
        .map_err(|e| DecodeError::Binary(e.to_string()))?;
    if MsgType::from_u8(msg.msg_type).is_none() {
        return Err(DecodeError::UnknownType(msg.msg_type.to_string()));
    }
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    fn sample() -> ChatMessage<'static> {
        ChatMessage {
            id: 0x0102030405060708,
            msg_type: MsgType::Chat as u8,
            user_id: 42,
            username: "al".into(),
            payload: Cow::Borrowed(b"hi!"),
            timestamp: -2,
            room: "r".into(),
        }
    }

    #[test]
    fn layout_is_byte_exact() {
        let bytes = to_vec(&sample());
        #[rustfmt::skip]
        let expected: Vec<u8> = [
            &[0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01][..], // id
            &[0x01],                                                // msg_type
            &[42, 0, 0, 0, 0, 0, 0, 0],                             // user_id
            &[2, 0, 0, 0, 0, 0, 0, 0], b"al",                       // username
            &[3, 0, 0, 0, 0, 0, 0, 0], b"hi!",                      // payload
            &[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],      // timestamp
            &[1, 0, 0, 0, 0, 0, 0, 0], b"r",                        // room
        ]
        .concat();
        assert_eq!(bytes, expected);
        assert_eq!(bytes.len(), encoded_len(&sample()));
    }

    #[test]
    fn matches_bincode_serialize_and_borrows_on_decode() {
        let msg = sample();
        assert_eq!(bincode::serialize(&msg).unwrap(), to_vec(&msg));
        let bytes = to_vec(&msg);
        let back = decode(&bytes).unwrap();
        assert!(matches!(back.payload, Cow::Borrowed(_)));
        assert!(matches!(back.username, Cow::Borrowed(_)));
        assert_eq!(back, msg);
    }

    #[test]
    fn forged_length_fails_without_allocating() {
        let mut bytes = to_vec(&sample());
        // username length prefix → 2^62
        bytes[17..25].copy_from_slice(&(1u64 << 62).to_le_bytes());
        assert!(matches!(decode(&bytes), Err(DecodeError::Binary(_))));
    }

    #[test]
    fn rejects_truncation_trailing_bytes_bad_utf8_and_unknown_type() {
        let bytes = to_vec(&sample());
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(decode(&long).is_err());

        let mut bad_utf8 = bytes.clone();
        bad_utf8[25] = 0xff; // first byte of username
        assert!(matches!(decode(&bad_utf8), Err(DecodeError::Binary(_))));

        let mut unknown = bytes;
        unknown[8] = 9;
        assert_eq!(decode(&unknown), Err(DecodeError::UnknownType("9".into())));
    }
}
