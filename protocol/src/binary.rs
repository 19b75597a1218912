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

/// Walks the fixed layout before bincode sees the bytes, so that a message
/// that is too short, or a length prefix that claims more bytes than the
/// message holds, is refused with a reason naming the field. bincode's own
/// error for these is an I/O `UnexpectedEof` with an empty text (its slice
/// reader builds it so), which reached clients as `io error: ` and nothing
/// else.
fn check_layout(input: &[u8]) -> Result<(), String> {
    let mut at = 0usize;
    let fixed = |at: &mut usize, n: usize, field: &str| {
        let left = input.len() - *at;
        if left < n {
            return Err(format!(
                "the message ends inside {field}: it needs {n} bytes, {left} are left"
            ));
        }
        *at += n;
        Ok(())
    };
    let counted = |at: &mut usize, field: &str| -> Result<&[u8], String> {
        fixed(at, 8, &format!("the length of {field}"))?;
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&input[*at - 8..*at]);
        let claimed = u64::from_le_bytes(prefix);
        let left = input.len() - *at;
        match usize::try_from(claimed) {
            Ok(n) if n <= left => {
                *at += n;
                Ok(&input[*at - n..*at])
            }
            _ => Err(format!(
                "{field} claims {claimed} bytes, more than the message holds ({left} bytes left)"
            )),
        }
    };
    fixed(&mut at, 8, "id")?;
    fixed(&mut at, 1, "msg_type")?;
    fixed(&mut at, 8, "user_id")?;
    // Names are short: checking them here too costs little, and the
    // error can say which one is not UTF-8 (bincode's does not).
    let text = |field: &str, bytes: &[u8]| {
        std::str::from_utf8(bytes)
            .map(drop)
            .map_err(|e| format!("{field} is not valid UTF-8: {e}"))
    };
    text("username", counted(&mut at, "username")?)?;
    counted(&mut at, "payload")?;
    fixed(&mut at, 8, "timestamp")?;
    text("room", counted(&mut at, "room")?)?;
    if at < input.len() {
        return Err(format!(
            "{} bytes follow the room, where the message must end",
            input.len() - at
        ));
    }
    Ok(())
}

/// Decodes one message, borrowing its strings and payload from `input`.
pub fn decode(input: &[u8]) -> Result<ChatMessage<'_>, DecodeError> {
    check_layout(input).map_err(DecodeError::Binary)?;
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
    fn a_huge_length_prefix_is_named_in_the_error() {
        // The empty chat message with its username length claiming 2^60
        // bytes: bincode alone said "io error: " and nothing more.
        #[rustfmt::skip]
        let bytes: Vec<u8> = [
            &[0u8; 8][..],                           // id
            &[1],                                    // msg_type: chat
            &[0; 8],                                 // user_id
            &[0, 0, 0, 0, 0, 0, 0, 0x10],            // username length 2^60
            &[0; 8],                                 // payload length 0
            &[0; 8],                                 // timestamp
            &[0; 8],                                 // room length 0
        ]
        .concat();
        let err = decode(&bytes).unwrap_err().to_string();
        assert_eq!(
            err,
            "malformed binary message: username claims 1152921504606846976 bytes, \
             more than the message holds (24 bytes left)"
        );
    }

    #[test]
    fn every_truncation_says_where_the_message_ended() {
        let bytes = to_vec(&sample());
        for cut in 0..bytes.len() {
            let err = decode(&bytes[..cut]).unwrap_err().to_string();
            assert!(
                err.contains("ends inside") || err.contains("more than the message holds"),
                "cut at {cut}: {err}"
            );
        }
        let mut long = bytes;
        long.extend_from_slice(b"xy");
        assert_eq!(
            decode(&long).unwrap_err().to_string(),
            "malformed binary message: 2 bytes follow the room, where the message must end"
        );
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
        let err = decode(&bad_utf8).unwrap_err();
        assert!(matches!(err, DecodeError::Binary(_)));
        assert!(
            err.to_string().contains("username is not valid UTF-8"),
            "{err}"
        );
        let mut bad_room = bytes.clone();
        let last = bad_room.len() - 1;
        bad_room[last] = 0x80; // the room's only byte
        let err = decode(&bad_room).unwrap_err().to_string();
        assert!(err.contains("room is not valid UTF-8"), "{err}");

        let mut unknown = bytes;
        unknown[8] = 9;
        assert_eq!(decode(&unknown), Err(DecodeError::UnknownType("9".into())));
    }
}
