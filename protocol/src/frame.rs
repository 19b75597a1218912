//! WebSocket framing (RFC 6455 section 5), sans-IO.
//!
//! The server keeps no read buffer for an idle connection: it reads into a
//! per-worker scratch buffer and hands the bytes to a [`MessageReader`],
//! which parses messages in place and copies only an unfinished frame's
//! bytes into a buffer of its own, released as soon as the frame completes.
//! Outgoing frames are built with [`FrameWriter`] in one allocation, header
//! and body together, so one broadcast buffer can be shared by every
//! recipient.

use bytes::Bytes;

/// RFC 6455 close codes used by the lab.
pub mod close_code {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const UNSUPPORTED_DATA: u16 = 1003;
    pub const INVALID_PAYLOAD: u16 = 1007;
    pub const POLICY_VIOLATION: u16 = 1008;
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    pub const INTERNAL_ERROR: u16 = 1011;
    pub const TRY_AGAIN_LATER: u16 = 1013;

    /// Whether a peer may send `code` in a close frame (RFC 6455 7.4).
    pub fn is_valid_on_wire(code: u16) -> bool {
        matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

/// The longest frame header: 2 bytes, 8 of extended length, 4 of mask.
pub const MAX_HEADER_LEN: usize = 14;
/// What an unfinished frame may reserve beyond the bytes that have arrived.
const PARTIAL_RESERVE: usize = 512;
/// Control frames carry at most this many payload bytes.
pub const MAX_CONTROL_PAYLOAD: usize = 125;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    Continuation = 0x0,
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
}

impl OpCode {
    pub fn from_u8(v: u8) -> Option<OpCode> {
        Some(match v {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    pub fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    pub opcode: OpCode,
    pub mask: Option<[u8; 4]>,
    pub payload_len: u64,
}

/// A violation of the framing rules, with the close code the peer gets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (close {code})")]
pub struct ProtocolViolation {
    pub code: u16,
    pub reason: &'static str,
}

impl ProtocolViolation {
    const fn protocol(reason: &'static str) -> ProtocolViolation {
        ProtocolViolation {
            code: close_code::PROTOCOL_ERROR,
            reason,
        }
    }
}

impl FrameHeader {
    /// Parses the header at the start of `buf`: `Ok(None)` until the whole
    /// header has arrived, else the header and its length in bytes.
    pub fn parse(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolViolation> {
        let [b0, b1, ..] = *buf else { return Ok(None) };
        if b0 & 0x70 != 0 {
            return Err(ProtocolViolation::protocol("reserved bits set"));
        }
        let fin = b0 & 0x80 != 0;
        let opcode =
            OpCode::from_u8(b0 & 0x0F).ok_or(ProtocolViolation::protocol("unknown opcode"))?;
        let masked = b1 & 0x80 != 0;
        let (payload_len, mut at) = match b1 & 0x7F {
            126 => match buf.get(2..4) {
                Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
                None => return Ok(None),
            },
            127 => match buf.get(2..10) {
                Some(b) => {
                    let mut be = [0u8; 8];
                    be.copy_from_slice(b);
                    (u64::from_be_bytes(be), 10)
                }
                None => return Ok(None),
            },
            n => (u64::from(n), 2),
        };
        if payload_len >> 63 != 0 {
            return Err(ProtocolViolation::protocol(
                "payload length has its top bit set",
            ));
        }
        if opcode.is_control() {
            if !fin {
                return Err(ProtocolViolation::protocol("fragmented control frame"));
            }
            if payload_len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(ProtocolViolation::protocol("control frame over 125 bytes"));
            }
        }
        let mask = if masked {
            let Some(m) = buf.get(at..at + 4) else {
                return Ok(None);
            };
            at += 4;
            Some([m[0], m[1], m[2], m[3]])
        } else {
            None
        };
        Ok(Some((
            FrameHeader {
                fin,
                opcode,
                mask,
                payload_len,
            },
            at,
        )))
    }

    pub fn encoded_len(payload_len: usize, masked: bool) -> usize {
        let len_bytes = match payload_len {
            0..=125 => 0,
            126..=0xFFFF => 2,
            _ => 8,
        };
        2 + len_bytes + if masked { 4 } else { 0 }
    }

    /// Writes the header into the front of `out` (at least
    /// [`MAX_HEADER_LEN`] bytes) and returns its length.
    pub fn write(&self, out: &mut [u8]) -> usize {
        out[0] = (u8::from(self.fin) << 7) | self.opcode as u8;
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut at = match self.payload_len {
            n @ 0..=125 => {
                out[1] = mask_bit | n as u8;
                2
            }
            n @ 126..=0xFFFF => {
                out[1] = mask_bit | 126;
                out[2..4].copy_from_slice(&(n as u16).to_be_bytes());
                4
            }
            n => {
                out[1] = mask_bit | 127;
                out[2..10].copy_from_slice(&n.to_be_bytes());
                10
            }
        };
        if let Some(mask) = self.mask {
            out[at..at + 4].copy_from_slice(&mask);
            at += 4;
        }
        at
    }
}

/// XORs `buf` with the masking key; masking and unmasking are the same.
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    // chunks of 8 keep the key aligned: the tail starts at key index 0
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// Builds one frame in a single allocation: the body is appended after a
/// reserved header gap and the header is written in front of it at the end,
/// so a codec encodes straight into the frame.
pub struct FrameWriter {
    buf: Vec<u8>,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
}

impl FrameWriter {
    /// `mask` is `None` for server-to-client frames; clients must mask.
    pub fn new(opcode: OpCode, mask: Option<[u8; 4]>, body_capacity: usize) -> FrameWriter {
        let mut buf = Vec::with_capacity(MAX_HEADER_LEN + body_capacity);
        buf.resize(MAX_HEADER_LEN, 0);
        FrameWriter { buf, opcode, mask }
    }

    /// Appends to the body; call as often as needed before `finish`.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Runs `encode` to append to the body (codecs write into a `Vec`).
    pub fn encode_with(&mut self, encode: impl FnOnce(&mut Vec<u8>)) {
        let mut body = std::mem::take(&mut self.buf);
        encode(&mut body);
        self.buf = body;
    }

    pub fn finish(mut self) -> Bytes {
        let body_len = self.buf.len() - MAX_HEADER_LEN;
        let header = FrameHeader {
            fin: true,
            opcode: self.opcode,
            mask: self.mask,
            payload_len: body_len as u64,
        };
        let start = MAX_HEADER_LEN - FrameHeader::encoded_len(body_len, self.mask.is_some());
        header.write(&mut self.buf[start..]);
        if let Some(mask) = self.mask {
            apply_mask(&mut self.buf[MAX_HEADER_LEN..], mask);
        }
        Bytes::from(self.buf).slice(start..)
    }
}

/// A whole frame with `payload` as its body (control frames, tests, clients).
pub fn encode_frame(opcode: OpCode, payload: &[u8], mask: Option<[u8; 4]>) -> Bytes {
    let mut w = FrameWriter::new(opcode, mask, payload.len());
    w.extend(payload);
    w.finish()
}

/// A close frame with a status code and a reason (cut to fit 125 bytes).
pub fn close_frame(code: u16, reason: &str, mask: Option<[u8; 4]>) -> Bytes {
    let mut cut = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut w = FrameWriter::new(OpCode::Close, mask, 2 + cut);
    w.extend(&code.to_be_bytes());
    w.extend(&reason.as_bytes()[..cut]);
    w.finish()
}

/// Parses a close frame's body: no body, or a valid code and a UTF-8 reason.
pub fn parse_close(payload: &[u8]) -> Result<Option<(u16, &str)>, ProtocolViolation> {
    match payload {
        [] => Ok(None),
        [_] => Err(ProtocolViolation::protocol(
            "close frame with a 1-byte body",
        )),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !close_code::is_valid_on_wire(code) {
                return Err(ProtocolViolation::protocol("invalid close code"));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| ProtocolViolation {
                code: close_code::INVALID_PAYLOAD,
                reason: "close reason is not UTF-8",
            })?;
            Ok(Some((code, reason)))
        }
    }
}

/// Which end of the connection a reader serves: clients must mask every
/// frame they send and servers must not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Server,
    Client,
}

/// A complete message or control frame, borrowed from the reader's input.
#[derive(Debug, PartialEq, Eq)]
pub enum Message<'a> {
    Text(&'a str),
    Binary(&'a [u8]),
    Ping(&'a [u8]),
    Pong(&'a [u8]),
    /// The peer's close code and reason, if it sent any.
    Close(Option<(u16, &'a str)>),
}

/// Whether the reader should go on delivering messages from this input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// Turns bytes from the socket into messages, assembling fragments and
/// enforcing the size limit and the masking rule of its role.
#[derive(Debug)]
pub struct MessageReader {
    role: Role,
    max_message: usize,
    /// Bytes of a frame that has not fully arrived; empty (unallocated)
    /// between frames.
    partial: Vec<u8>,
    /// A fragmented message in progress.
    fragments: Option<(OpCode, Vec<u8>)>,
}

impl MessageReader {
    pub fn new(role: Role, max_message: usize) -> MessageReader {
        MessageReader {
            role,
            max_message,
            partial: Vec::new(),
            fragments: None,
        }
    }

    /// Bytes held for unfinished frames or messages (0 when idle).
    pub fn buffered(&self) -> usize {
        self.partial.capacity() + self.fragments.as_ref().map_or(0, |(_, v)| v.capacity())
    }

    /// Feeds bytes just read. `input` is unmasked in place. Each complete
    /// message goes to `on_message`, which may stop delivery (after a close,
    /// say); bytes after that point are discarded.
    pub fn feed(
        &mut self,
        input: &mut [u8],
        mut on_message: impl FnMut(Message<'_>) -> Flow,
    ) -> Result<Flow, ProtocolViolation> {
        if self.partial.is_empty() {
            let (flow, used) = self.parse_frames(input, &mut on_message)?;
            if flow == Flow::Continue && used < input.len() {
                self.keep_partial(&input[used..])?;
            }
            return Ok(flow);
        }
        // An unfinished frame: complete it from the new bytes, then go on
        // in place with the rest.
        let mut input = input;
        loop {
            let mut partial = std::mem::take(&mut self.partial);
            // Until the header is whole, take a byte at a time (at most 14).
            let (needed, header) = match FrameHeader::parse(&partial)? {
                Some((h, hl)) => (self.check_header(&h)? + hl, Some((h, hl))),
                None => (partial.len() + 1, None),
            };
            let take = needed.saturating_sub(partial.len()).min(input.len());
            partial.extend_from_slice(&input[..take]);
            input = &mut input[take..];
            let Some((h, hl)) = header else {
                self.partial = partial;
                // The byte just taken may complete the header (and with it
                // a frame without payload): look again before waiting.
                if take == 0 {
                    return Ok(Flow::Continue);
                }
                continue;
            };
            if partial.len() < needed {
                // only when `input` ran out
                let new = take.min(partial.len() - hl);
                self.check_unfinished_text(&h, &partial[hl..], new)?;
                self.partial = partial;
                return Ok(Flow::Continue);
            }
            let (flow, used) = self.parse_frames(&mut partial, &mut on_message)?;
            debug_assert_eq!(used, partial.len());
            if flow == Flow::Stop {
                return Ok(Flow::Stop);
            }
            break;
        }
        let (flow, used) = self.parse_frames(input, &mut on_message)?;
        if flow == Flow::Continue && used < input.len() {
            self.keep_partial(&input[used..])?;
        }
        Ok(flow)
    }

    /// Keeps the start of a frame that has not fully arrived (its header,
    /// if whole, already passed `check_header` in `parse_frames`).
    fn keep_partial(&mut self, rest: &[u8]) -> Result<(), ProtocolViolation> {
        // Reserve no more than has arrived (the Vec grows as bytes come):
        // a header announcing 64 KiB costs its sender 14 bytes, and a
        // reservation for the whole frame would let a client make the
        // server allocate the maximum message size per connection.
        let want = match FrameHeader::parse(rest) {
            Ok(Some((h, hl))) => {
                self.check_unfinished_text(&h, &rest[hl..], rest.len() - hl)?;
                hl + h.payload_len as usize
            }
            _ => MAX_HEADER_LEN,
        };
        self.partial = Vec::with_capacity(want.min(rest.len().max(PARTIAL_RESERVE)));
        self.partial.extend_from_slice(rest);
        Ok(())
    }

    /// Whether `h`'s payload is (part of) a text message.
    fn is_text(&self, h: &FrameHeader) -> bool {
        match h.opcode {
            OpCode::Text => true,
            OpCode::Continuation => matches!(self.fragments, Some((OpCode::Text, _))),
            _ => false,
        }
    }

    /// Fails fast on invalid UTF-8 in a text frame still arriving: RFC
    /// 6455 8.1 says to fail the connection on finding invalid UTF-8, and
    /// Autobahn (6.4.3, 6.4.4) expects that as soon as the bytes that make
    /// it invalid arrive, not when the frame ends. `payload` is the
    /// (still masked) payload so far, of which the last `new` bytes just
    /// arrived: only those are unmasked (a copy) and checked, with the up
    /// to 3 bytes before them for a character they finish, so a large
    /// frame arriving in many reads is checked once, not once per read.
    /// The whole message is still validated when it completes.
    fn check_unfinished_text(
        &self,
        h: &FrameHeader,
        payload: &[u8],
        new: usize,
    ) -> Result<(), ProtocolViolation> {
        if new == 0 || !self.is_text(h) {
            return Ok(());
        }
        let old = payload.len() - new;
        let unmask = |bytes: &mut [u8], offset: usize| {
            if let Some(mask) = h.mask {
                apply_mask(bytes, rotate_mask(mask, offset));
            }
        };
        let mut before = [0u8; 3];
        let from_payload = old.min(3);
        let mut n = 0;
        if h.opcode == OpCode::Continuation {
            if let Some((_, data)) = &self.fragments {
                let from_fragments = (3 - from_payload).min(data.len());
                before[..from_fragments].copy_from_slice(&data[data.len() - from_fragments..]);
                n = from_fragments;
            }
        }
        before[n..n + from_payload].copy_from_slice(&payload[old - from_payload..old]);
        unmask(&mut before[n..n + from_payload], old - from_payload);
        n += from_payload;
        let mut fresh = payload[old..].to_vec();
        unmask(&mut fresh, old);
        check_utf8_continues(&before[..n], &fresh)
    }

    /// Checks a header as soon as it is whole, whether the frame arrives in
    /// one read or several, so how TCP cuts the stream never changes which
    /// violation is found or when; returns the payload length.
    fn check_header(&self, h: &FrameHeader) -> Result<usize, ProtocolViolation> {
        match (self.role, h.mask.is_some()) {
            (Role::Server, false) => Err(ProtocolViolation::protocol("client frame not masked")),
            (Role::Client, true) => Err(ProtocolViolation::protocol("server frame masked")),
            _ => self.check_size(h),
        }
    }

    /// Checks the frame against the limits; returns its payload length.
    fn check_size(&self, h: &FrameHeader) -> Result<usize, ProtocolViolation> {
        let held = self.fragments.as_ref().map_or(0, |(_, v)| v.len()) as u64;
        let total = if h.opcode == OpCode::Continuation {
            held + h.payload_len
        } else {
            h.payload_len
        };
        if total > self.max_message as u64 {
            return Err(ProtocolViolation {
                code: close_code::MESSAGE_TOO_BIG,
                reason: "message too big",
            });
        }
        Ok(h.payload_len as usize)
    }

    /// Delivers every complete frame at the start of `buf`; returns how many
    /// bytes were consumed.
    fn parse_frames(
        &mut self,
        buf: &mut [u8],
        on_message: &mut impl FnMut(Message<'_>) -> Flow,
    ) -> Result<(Flow, usize), ProtocolViolation> {
        let mut at = 0;
        while let Some((h, hl)) = FrameHeader::parse(&buf[at..])? {
            let len = self.check_header(&h)?;
            let end = at + hl + len;
            if buf.len() < end {
                break;
            }
            let payload = &mut buf[at + hl..end];
            if let Some(mask) = h.mask {
                apply_mask(payload, mask);
            }
            at = end;
            if self.deliver(h, payload, on_message)? == Flow::Stop {
                return Ok((Flow::Stop, at));
            }
        }
        Ok((Flow::Continue, at))
    }

    fn deliver(
        &mut self,
        h: FrameHeader,
        payload: &[u8],
        on_message: &mut impl FnMut(Message<'_>) -> Flow,
    ) -> Result<Flow, ProtocolViolation> {
        match h.opcode {
            OpCode::Ping => Ok(on_message(Message::Ping(payload))),
            OpCode::Pong => Ok(on_message(Message::Pong(payload))),
            OpCode::Close => Ok(on_message(Message::Close(parse_close(payload)?))),
            OpCode::Text | OpCode::Binary => {
                if self.fragments.is_some() {
                    return Err(ProtocolViolation::protocol(
                        "new message before the fragmented one finished",
                    ));
                }
                if h.fin {
                    return data_message(h.opcode, payload).map(on_message);
                }
                if h.opcode == OpCode::Text {
                    // fail fast: see `check_utf8_continues`
                    check_utf8_continues(&[], payload)?;
                }
                self.fragments = Some((h.opcode, payload.to_vec()));
                Ok(Flow::Continue)
            }
            OpCode::Continuation => {
                let Some((opcode, data)) = self.fragments.as_mut() else {
                    return Err(ProtocolViolation::protocol(
                        "continuation without a message",
                    ));
                };
                if *opcode == OpCode::Text && !h.fin {
                    // fail fast: see `check_utf8_continues` (a final
                    // fragment is checked with the whole message below)
                    check_utf8_continues(&data[data.len().saturating_sub(3)..], payload)?;
                }
                data.extend_from_slice(payload);
                if !h.fin {
                    return Ok(Flow::Continue);
                }
                let Some((opcode, data)) = self.fragments.take() else {
                    return Ok(Flow::Continue);
                };
                data_message(opcode, &data).map(on_message)
            }
        }
    }
}

/// `mask` as it applies from byte `offset` of a payload on.
fn rotate_mask(mask: [u8; 4], offset: usize) -> [u8; 4] {
    let r = offset % 4;
    [
        mask[r],
        mask[(r + 1) % 4],
        mask[(r + 2) % 4],
        mask[(r + 3) % 4],
    ]
}

/// The length of the UTF-8 sequence `lead` starts (1 for anything that is
/// not a multi-byte lead: the validator judges it).
fn utf8_sequence_len(lead: u8) -> usize {
    match lead {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xFF => 4,
        _ => 1,
    }
}

/// Where the character cut off at the end of `text` starts (`text.len()`
/// when none is), for text already checked to be valid so far.
fn unfinished_char_start(text: &[u8]) -> usize {
    for i in (text.len().saturating_sub(3)..text.len()).rev() {
        if text[i] & 0xC0 != 0x80 {
            return if utf8_sequence_len(text[i]) > text.len() - i {
                i
            } else {
                text.len()
            };
        }
    }
    text.len()
}

/// Whether `bytes` is valid UTF-8 or a valid start of it (cut inside its
/// last character).
fn utf8_prefix_ok(bytes: &[u8]) -> bool {
    match std::str::from_utf8(bytes) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    }
}

/// Checks that `fresh`, arriving after text whose last (up to 3) bytes
/// are `before` and which was valid so far, keeps the text valid UTF-8 or
/// a valid start of it. RFC 6455 8.1 fails the connection on invalid
/// UTF-8; checking each fragment (and each read of a frame) as it comes
/// fails it as soon as the bytes that make it invalid arrive (Autobahn
/// 6.4), instead of after the rest of a message that can only be refused.
fn check_utf8_continues(before: &[u8], fresh: &[u8]) -> Result<(), ProtocolViolation> {
    let pending = &before[unfinished_char_start(before)..];
    // Finish the character cut off in `before` with the first new bytes,
    // then check the rest on its own.
    let need = pending
        .first()
        .map_or(0, |&lead| utf8_sequence_len(lead) - pending.len())
        .min(fresh.len());
    let mut joined = [0u8; 4];
    joined[..pending.len()].copy_from_slice(pending);
    joined[pending.len()..pending.len() + need].copy_from_slice(&fresh[..need]);
    if utf8_prefix_ok(&joined[..pending.len() + need]) && utf8_prefix_ok(&fresh[need..]) {
        Ok(())
    } else {
        Err(ProtocolViolation {
            code: close_code::INVALID_PAYLOAD,
            reason: "text frame is not UTF-8",
        })
    }
}

fn data_message(opcode: OpCode, payload: &[u8]) -> Result<Message<'_>, ProtocolViolation> {
    if opcode == OpCode::Text {
        std::str::from_utf8(payload)
            .map(Message::Text)
            .map_err(|_| ProtocolViolation {
                code: close_code::INVALID_PAYLOAD,
                reason: "text frame is not UTF-8",
            })
    } else {
        Ok(Message::Binary(payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// Feeds `wire` split at every position into a server reader and
    /// collects what it delivers, in a comparable form.
    fn read_all(chunks: &[&[u8]], max: usize) -> Result<Vec<String>, ProtocolViolation> {
        let mut reader = MessageReader::new(Role::Server, max);
        let mut out = Vec::new();
        for chunk in chunks {
            let mut owned = chunk.to_vec();
            reader.feed(&mut owned, |m| {
                out.push(format!("{m:?}"));
                Flow::Continue
            })?;
        }
        Ok(out)
    }

    #[test]
    fn rfc_examples_parse() {
        // RFC 6455 5.7: a masked "Hello"
        let wire = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(read_all(&[&wire], 100).unwrap(), vec![r#"Text("Hello")"#]);
        assert_eq!(&encode_frame(OpCode::Text, b"Hello", Some(MASK))[..], &wire);
        // unmasked "Hello" from a server
        assert_eq!(
            &encode_frame(OpCode::Text, b"Hello", None)[..],
            &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
        );
    }

    #[test]
    fn every_split_point_gives_the_same_messages() {
        let mut wire = Vec::new();
        wire.extend_from_slice(&encode_frame(OpCode::Binary, &[7u8; 300], Some(MASK)));
        wire.extend_from_slice(&encode_frame(OpCode::Ping, b"p", Some(MASK)));
        wire.extend_from_slice(&encode_frame(OpCode::Text, &[b'x'; 70_000], Some(MASK)));
        let whole = read_all(&[&wire], 100_000).unwrap();
        assert_eq!(whole.len(), 3);
        for split in [1, 2, 3, 5, 150, 303, 310, 311, 320, 70_000, wire.len() - 1] {
            let (a, b) = wire.split_at(split);
            assert_eq!(read_all(&[a, b], 100_000).unwrap(), whole, "split {split}");
        }
        let bytes: Vec<&[u8]> = wire.chunks(1).take(400).collect();
        let mut reader = MessageReader::new(Role::Server, 100_000);
        let mut seen = 0;
        for b in bytes {
            reader
                .feed(&mut b.to_vec(), |_| {
                    seen += 1;
                    Flow::Continue
                })
                .unwrap();
        }
        assert_eq!(seen, 2);
    }

    #[test]
    fn a_bare_header_reserves_little() {
        let wire = encode_frame(OpCode::Binary, &[1u8; 60_000], Some(MASK));
        let mut reader = MessageReader::new(Role::Server, 65_536);
        reader
            .feed(&mut wire[..14].to_vec(), |_| Flow::Continue)
            .unwrap();
        assert!(
            reader.buffered() <= PARTIAL_RESERVE,
            "{}",
            reader.buffered()
        );
        let mut seen = 0;
        for chunk in wire[14..].chunks(7000) {
            reader
                .feed(&mut chunk.to_vec(), |m| {
                    assert!(matches!(m, Message::Binary(b) if b.len() == 60_000));
                    seen += 1;
                    Flow::Continue
                })
                .unwrap();
        }
        assert_eq!((seen, reader.buffered()), (1, 0));
    }

    #[test]
    fn idle_reader_holds_no_buffer() {
        let wire = encode_frame(OpCode::Binary, &[1u8; 1000], Some(MASK));
        let mut reader = MessageReader::new(Role::Server, 4096);
        reader
            .feed(&mut wire[..500].to_vec(), |_| Flow::Continue)
            .unwrap();
        assert!(reader.buffered() >= 500);
        reader
            .feed(&mut wire[500..].to_vec(), |_| Flow::Continue)
            .unwrap();
        assert_eq!(reader.buffered(), 0);
    }

    #[test]
    fn fragments_are_assembled_around_control_frames() {
        let mut wire = Vec::new();
        let mut first = encode_frame(OpCode::Text, b"hel", Some(MASK)).to_vec();
        first[0] &= 0x7F; // fin off
        wire.extend_from_slice(&first);
        wire.extend_from_slice(&encode_frame(OpCode::Ping, b"", Some(MASK)));
        wire.extend_from_slice(&encode_frame(OpCode::Continuation, b"lo", Some(MASK)));
        assert_eq!(
            read_all(&[&wire], 100).unwrap(),
            vec![r#"Ping([])"#, r#"Text("hello")"#]
        );
    }

    #[test]
    fn violations_carry_their_close_codes() {
        let code = |wire: &[u8], max| read_all(&[wire], max).unwrap_err().code;
        assert_eq!(
            code(&encode_frame(OpCode::Binary, &[0; 200], Some(MASK)), 100),
            1009
        );
        assert_eq!(code(&encode_frame(OpCode::Binary, b"x", None), 100), 1002);
        assert_eq!(
            code(&encode_frame(OpCode::Text, &[0xff, 0xfe], Some(MASK)), 100),
            1007
        );
        assert_eq!(
            code(&encode_frame(OpCode::Continuation, b"x", Some(MASK)), 100),
            1002
        );
        assert_eq!(code(&[0x83, 0x80, 0, 0, 0, 0], 100), 1002); // opcode 3
        assert_eq!(code(&[0xC2, 0x80, 0, 0, 0, 0], 100), 1002); // RSV1
        assert_eq!(code(&[0x09, 0x80, 0, 0, 0, 0], 100), 1002); // ping without fin
                                                                // a too-big length is refused from the header alone
        assert_eq!(
            code(&[0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4], 100),
            1009
        );
        assert_eq!(
            code(&encode_frame(OpCode::Close, &[3, 0xe7], Some(MASK)), 100),
            1002
        );
    }

    /// A text frame that is not the last of its message.
    fn text_fragment(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        let mut frame = encode_frame(opcode, payload, Some(MASK)).to_vec();
        frame[0] &= 0x7F; // fin off
        frame
    }

    /// Autobahn 6.4.1: valid UTF-8, then a fragment holding U+110000's
    /// encoding (F4 90 80 80), then more. The second fragment is refused
    /// as it arrives, not when the message ends.
    #[test]
    fn invalid_utf8_fails_at_the_fragment_that_makes_it() {
        let mut reader = MessageReader::new(Role::Server, 1000);
        let first = text_fragment(OpCode::Text, "κόσμε".as_bytes());
        assert!(reader.feed(&mut first.clone(), |_| Flow::Continue).is_ok());
        let second = text_fragment(OpCode::Continuation, &[0xF4, 0x90, 0x80, 0x80]);
        let err = reader.feed(&mut second.clone(), |_| Flow::Continue);
        assert_eq!(err.map_err(|e| e.code), Err(close_code::INVALID_PAYLOAD));
        // Autobahn 6.4.2: only up to the byte that makes it invalid
        let mut reader = MessageReader::new(Role::Server, 1000);
        assert!(reader.feed(&mut first.clone(), |_| Flow::Continue).is_ok());
        let second = text_fragment(OpCode::Continuation, &[0xF4, 0x90]);
        let err = reader.feed(&mut second.clone(), |_| Flow::Continue);
        assert_eq!(err.map_err(|e| e.code), Err(close_code::INVALID_PAYLOAD));
    }

    /// Autobahn 6.4.3: one frame arriving in chops; the chop that makes
    /// the text invalid is refused before the frame is complete.
    #[test]
    fn invalid_utf8_fails_at_the_read_that_makes_it() {
        let mut payload = "κόσμε".as_bytes().to_vec();
        let part2 = payload.len();
        payload.extend_from_slice(&[0xF4, 0x90, 0x80, 0x80]);
        payload.extend_from_slice(b"edited");
        let wire = encode_frame(OpCode::Text, &payload, Some(MASK));
        let hl = 6;
        let mut reader = MessageReader::new(Role::Server, 1000);
        let ok = reader.feed(&mut wire[..hl + part2].to_vec(), |_| Flow::Continue);
        assert!(ok.is_ok());
        let err = reader.feed(&mut wire[hl + part2..hl + part2 + 2].to_vec(), |_| {
            Flow::Continue
        });
        assert_eq!(err.map_err(|e| e.code), Err(close_code::INVALID_PAYLOAD));
        // the same in a continuation frame, the invalid byte right after
        // the header arrived in an earlier read
        let mut reader = MessageReader::new(Role::Server, 1000);
        let mut first = text_fragment(OpCode::Text, &[0xF4]);
        assert!(reader.feed(&mut first, |_| Flow::Continue).is_ok());
        let wire = encode_frame(OpCode::Continuation, &[0x90, 0x80, 0x80, b'x'], Some(MASK));
        let ok = reader.feed(&mut wire[..hl].to_vec(), |_| Flow::Continue);
        assert!(ok.is_ok());
        let err = reader.feed(&mut wire[hl..hl + 1].to_vec(), |_| Flow::Continue);
        assert_eq!(err.map_err(|e| e.code), Err(close_code::INVALID_PAYLOAD));
    }

    /// The early checks never refuse valid text, wherever fragments and
    /// reads cut its characters.
    #[test]
    fn valid_text_cut_anywhere_is_accepted() {
        let text = "aé€𝄞κόσμε𝄞";
        let bytes = text.as_bytes();
        let expected = vec![format!("{:?}", Message::Text(text))];
        for cut in 0..=bytes.len() {
            let one = encode_frame(OpCode::Text, bytes, Some(MASK));
            for read in 1..one.len() {
                let (a, b) = one.split_at(read);
                assert_eq!(read_all(&[a, b], 100).unwrap(), expected, "read cut {read}");
            }
            let mut wire = text_fragment(OpCode::Text, &bytes[..cut]);
            wire.extend_from_slice(&encode_frame(
                OpCode::Continuation,
                &bytes[cut..],
                Some(MASK),
            ));
            assert_eq!(
                read_all(&[&wire], 100).unwrap(),
                expected,
                "fragment cut {cut}"
            );
            for read in 1..wire.len() {
                let (a, b) = wire.split_at(read);
                assert_eq!(
                    read_all(&[a, b], 100).unwrap(),
                    expected,
                    "fragment cut {cut}, read cut {read}"
                );
            }
            // three fragments: every second cut point
            for cut2 in cut..=bytes.len() {
                let mut wire = text_fragment(OpCode::Text, &bytes[..cut]);
                wire.extend(text_fragment(OpCode::Continuation, &bytes[cut..cut2]));
                wire.extend_from_slice(&encode_frame(
                    OpCode::Continuation,
                    &bytes[cut2..],
                    Some(MASK),
                ));
                let bytes1: Vec<&[u8]> = wire.chunks(1).collect();
                assert_eq!(read_all(&bytes1, 100).unwrap(), expected, "{cut} {cut2}");
            }
        }
    }

    #[test]
    fn close_frames_round_trip() {
        let frame = close_frame(1009, "too big", None);
        let (h, hl) = FrameHeader::parse(&frame).unwrap().unwrap();
        assert_eq!(h.opcode, OpCode::Close);
        assert_eq!(parse_close(&frame[hl..]).unwrap(), Some((1009, "too big")));
        let long = "é".repeat(100);
        let frame = close_frame(1000, &long, None);
        assert!(frame.len() <= 2 + MAX_CONTROL_PAYLOAD);
        let (_, hl) = FrameHeader::parse(&frame).unwrap().unwrap();
        assert!(parse_close(&frame[hl..]).is_ok());
    }

    #[test]
    fn mask_is_its_own_inverse_for_every_length() {
        for len in 0..40 {
            let data: Vec<u8> = (0..len as u8).collect();
            let mut m = data.clone();
            apply_mask(&mut m, MASK);
            if len > 0 {
                assert_ne!(m, data);
            }
            apply_mask(&mut m, MASK);
            assert_eq!(m, data);
        }
    }
}
