//! Property tests of the codecs and the frame reader: what the unit tests
//! show for a few hand-picked inputs, checked here for generated ones.

use std::borrow::Cow;

use proptest::collection::vec;
use proptest::prelude::*;
use protocol::frame::{
    close_frame, encode_frame, Flow, Message, MessageReader, OpCode, ProtocolViolation, Role,
};
use protocol::{binary, json, ChatMessage, DecodeError};

fn arb_message() -> impl Strategy<Value = ChatMessage<'static>> {
    (
        any::<u64>(),
        1u8..=6,
        any::<u64>(),
        any::<String>(),
        prop_oneof![
            3 => vec(any::<u8>(), 0..64),
            // valid UTF-8 payloads take the `payload` path in JSON
            2 => any::<String>().prop_map(String::into_bytes),
            1 => vec(any::<u8>(), 0..2048),
        ],
        any::<i64>(),
        any::<String>(),
    )
        .prop_map(
            |(id, msg_type, user_id, username, payload, timestamp, room)| ChatMessage {
                id,
                msg_type,
                user_id,
                username: Cow::Owned(username),
                payload: Cow::Owned(payload),
                timestamp,
                room: Cow::Owned(room),
            },
        )
}

proptest! {
    #[test]
    fn binary_round_trips(msg in arb_message()) {
        let bytes = binary::to_vec(&msg);
        prop_assert_eq!(bytes.len(), binary::encoded_len(&msg));
        prop_assert_eq!(binary::decode(&bytes), Ok(msg));
    }

    #[test]
    fn binary_is_bincode_1_default_layout(msg in arb_message()) {
        let ours = binary::to_vec(&msg);
        prop_assert_eq!(&ours, &bincode::serialize(&msg).unwrap());
        // and a stock bincode 1.x peer reads ours
        let theirs: ChatMessage<'_> = bincode::deserialize(&ours).unwrap();
        prop_assert_eq!(theirs, msg);
    }

    #[test]
    fn encode_appends_without_touching_what_is_there(
        msg in arb_message(),
        prefix in vec(any::<u8>(), 0..32),
    ) {
        let mut out = prefix.clone();
        binary::encode(&msg, &mut out);
        prop_assert_eq!(&out[..prefix.len()], &prefix[..]);
        prop_assert_eq!(&out[prefix.len()..], &binary::to_vec(&msg)[..]);
        let mut out = prefix.clone();
        json::encode(&msg, &mut out);
        prop_assert_eq!(&out[..prefix.len()], &prefix[..]);
        let text = json::to_string(&msg);
        prop_assert_eq!(&out[prefix.len()..], text.as_bytes());
    }

    #[test]
    fn json_round_trips(msg in arb_message()) {
        let text = json::to_string(&msg);
        let utf8 = std::str::from_utf8(&msg.payload).is_ok();
        prop_assert_eq!(text.contains("\"payload_base64\":"), !utf8, "{}", text);
        prop_assert_eq!(json::decode(&text), Ok(msg));
    }

    #[test]
    fn json_ignores_unknown_fields(msg in arb_message(), extra in any::<String>()) {
        let text = json::to_string(&msg);
        let with_extra = format!(
            "{{\"x_note\":{},{}",
            serde_json::Value::String(extra),
            &text[1..]
        );
        prop_assert_eq!(json::decode(&with_extra), Ok(msg));
    }

    #[test]
    fn binary_decoder_never_panics(bytes in vec(any::<u8>(), 0..256)) {
        check_binary_decode(&bytes)?;
    }

    /// Random bytes rarely get past the first length prefix; mutating a
    /// valid encoding reaches the later fields.
    #[test]
    fn binary_decoder_survives_mutated_messages(
        msg in arb_message(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = binary::to_vec(&msg);
        for (at, byte) in edits {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        check_binary_decode(&bytes)?;
        check_binary_decode(&bytes[..cut.index(bytes.len() + 1)])?;
    }

    #[test]
    fn json_decoder_never_panics(text in any::<String>()) {
        check_json_decode(&text)?;
    }

    #[test]
    fn json_decoder_survives_mutated_messages(
        msg in arb_message(),
        at in any::<prop::sample::Index>(),
        insert in "[\"{}\\[\\],:0-9a-z\\\\ -]{0,4}",
    ) {
        let text = json::to_string(&msg);
        let mut i = at.index(text.len() + 1);
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        check_json_decode(&format!("{}{}{}", &text[..i], insert, &text[i..]))?;
        check_json_decode(&text[..i])?;
    }
}

/// Whatever the input, decoding returns; when it succeeds, the input was
/// exactly the encoding of what it returned (the layout has one form per
/// message), and the type is one we speak.
fn check_binary_decode(bytes: &[u8]) -> Result<(), TestCaseError> {
    match binary::decode(bytes) {
        Ok(msg) => {
            prop_assert!(msg.kind().is_some());
            prop_assert_eq!(binary::to_vec(&msg), bytes);
        }
        Err(DecodeError::UnknownType(t)) => {
            let t: u8 = t.parse().unwrap();
            prop_assert!(!(1..=6).contains(&t));
        }
        Err(DecodeError::Binary(_)) => {}
        Err(e) => prop_assert!(false, "binary decoder returned {:?}", e),
    }
    Ok(())
}

/// Whatever the input, decoding returns; what it accepts re-encodes to a
/// form that decodes to the same message.
fn check_json_decode(text: &str) -> Result<(), TestCaseError> {
    match json::decode(text) {
        Ok(msg) => {
            prop_assert!(msg.kind().is_some());
            let again = json::to_string(&msg);
            prop_assert_eq!(json::decode(&again), Ok(msg));
        }
        Err(DecodeError::Json(_) | DecodeError::UnknownType(_)) => {}
        Err(e) => prop_assert!(false, "JSON decoder returned {:?}", e),
    }
    Ok(())
}

// ---- frame reader ----

/// What a reader delivered, owned so runs can be compared.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<(u16, String)>),
}

impl From<Message<'_>> for Event {
    fn from(m: Message<'_>) -> Event {
        match m {
            Message::Text(t) => Event::Text(t.to_owned()),
            Message::Binary(b) => Event::Binary(b.to_vec()),
            Message::Ping(b) => Event::Ping(b.to_vec()),
            Message::Pong(b) => Event::Pong(b.to_vec()),
            Message::Close(c) => Event::Close(c.map(|(code, r)| (code, r.to_owned()))),
        }
    }
}

/// Everything a reader did with a stream: the events in order, then how it
/// ended (`Ok(Stop)` after a close, `Ok(Continue)` when it wants more
/// bytes, or the violation).
type Outcome = (Vec<Event>, Result<Flow, ProtocolViolation>);

/// Feeds `wire` cut at `cuts` (sorted offsets), stopping at a close when
/// `stop_at_close`, as the server does.
fn run(role: Role, max: usize, wire: &[u8], cuts: &[usize], stop_at_close: bool) -> Outcome {
    let mut reader = MessageReader::new(role, max);
    let mut events = Vec::new();
    let mut start = 0;
    let mut flow = Ok(Flow::Continue);
    for end in cuts.iter().copied().chain([wire.len()]) {
        let mut chunk = wire[start..end].to_vec();
        start = end;
        flow = reader.feed(&mut chunk, |m| {
            let stop = matches!(m, Message::Close(_)) && stop_at_close;
            events.push(Event::from(m));
            if stop {
                Flow::Stop
            } else {
                Flow::Continue
            }
        });
        if flow != Ok(Flow::Continue) {
            break;
        }
    }
    (events, flow)
}

fn sorted_cuts(len: usize, picks: &[prop::sample::Index]) -> Vec<usize> {
    let mut cuts: Vec<usize> = picks.iter().map(|p| p.index(len + 1)).collect();
    cuts.sort_unstable();
    cuts
}

/// Cuts that feed the reader one byte at a time: every header boundary
/// falls between two reads.
fn every_byte(wire: &[u8]) -> Vec<usize> {
    (1..wire.len()).collect()
}

fn frame(opcode: OpCode, fin: bool, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut f = encode_frame(opcode, payload, Some(mask)).to_vec();
    if !fin {
        f[0] &= 0x7F;
    }
    f
}

/// A data message with its wire form: split into fragments with control
/// frames between them, each frame with its own mask.
#[derive(Debug, Clone)]
struct WireMessage {
    text: bool,
    body: Vec<u8>,
    /// Fragment boundaries inside `body`.
    splits: Vec<prop::sample::Index>,
    /// A ping or pong (payload ≤ 125 bytes) after each fragment but the last.
    controls: Vec<(bool, Vec<u8>)>,
    masks: Vec<[u8; 4]>,
}

fn arb_body() -> impl Strategy<Value = (bool, Vec<u8>)> {
    let len = prop_oneof![
        8 => 0usize..126,
        // 16-bit extended length
        3 => 126usize..700,
        // 64-bit extended length
        1 => 65_536usize..66_000,
    ];
    prop_oneof![
        len.clone()
            .prop_flat_map(|n| vec(any::<u8>(), n))
            .prop_map(|b| (false, b)),
        // text: arbitrary unicode, padded to reach the longer length classes
        (any::<String>(), len).prop_map(|(s, n)| {
            let mut t = s.into_bytes();
            t.resize(t.len().max(n), b'x');
            (true, t)
        }),
    ]
}

fn arb_wire_message() -> impl Strategy<Value = WireMessage> {
    (
        arb_body(),
        vec(any::<prop::sample::Index>(), 0..4),
        vec((any::<bool>(), vec(any::<u8>(), 0..=125)), 4),
        vec(any::<[u8; 4]>(), 8),
    )
        .prop_map(|((text, body), splits, controls, masks)| WireMessage {
            text,
            body,
            splits,
            controls,
            masks,
        })
}

impl WireMessage {
    /// Appends the frames to `wire` and what a reader must deliver to
    /// `expected`.
    fn write(&self, wire: &mut Vec<u8>, expected: &mut Vec<Event>) {
        let mut cuts = sorted_cuts(self.body.len(), &self.splits);
        cuts.push(self.body.len());
        let mut start = 0;
        for (i, &end) in cuts.iter().enumerate() {
            let last = i + 1 == cuts.len();
            let opcode = match (i, self.text) {
                (0, true) => OpCode::Text,
                (0, false) => OpCode::Binary,
                _ => OpCode::Continuation,
            };
            wire.extend(frame(opcode, last, &self.body[start..end], self.masks[i]));
            start = end;
            if !last {
                let (ping, payload) = &self.controls[i];
                let op = if *ping { OpCode::Ping } else { OpCode::Pong };
                wire.extend(frame(op, true, payload, self.masks[i + 4]));
                expected.push(if *ping {
                    Event::Ping(payload.clone())
                } else {
                    Event::Pong(payload.clone())
                });
            }
        }
        expected.push(if self.text {
            Event::Text(String::from_utf8(self.body.clone()).unwrap())
        } else {
            Event::Binary(self.body.clone())
        });
    }
}

const MAX: usize = 70_000;

proptest! {
    #[test]
    fn reader_delivers_the_same_messages_however_the_stream_is_cut(
        messages in vec(arb_wire_message(), 1..5),
        close in prop::option::of((1000u16..1004, "[a-zé]{0,20}", any::<[u8; 4]>())),
        trailer in vec(any::<u8>(), 0..16),
        picks in vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        for m in &messages {
            m.write(&mut wire, &mut expected);
        }
        let mut end_flow = Flow::Continue;
        if let Some((code, reason, mask)) = &close {
            wire.extend_from_slice(&close_frame(*code, reason, Some(*mask)));
            expected.push(Event::Close(Some((*code, reason.clone()))));
            // whatever follows a close is never looked at
            wire.extend_from_slice(&trailer);
            end_flow = Flow::Stop;
        }
        let cuts = sorted_cuts(wire.len(), &picks);
        let whole = run(Role::Server, MAX, &wire, &[], true);
        prop_assert_eq!(&whole, &(expected, Ok(end_flow)));
        prop_assert_eq!(&run(Role::Server, MAX, &wire, &cuts, true), &whole);
        if wire.len() < 4096 {
            prop_assert_eq!(run(Role::Server, MAX, &wire, &every_byte(&wire), true), whole);
        }
    }

    #[test]
    fn reader_holds_no_buffer_between_messages(
        messages in vec(arb_wire_message(), 1..4),
        picks in vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let mut wire = Vec::new();
        for m in &messages {
            m.write(&mut wire, &mut Vec::new());
        }
        let mut reader = MessageReader::new(Role::Server, MAX);
        let mut start = 0;
        for end in sorted_cuts(wire.len(), &picks).into_iter().chain([wire.len()]) {
            reader.feed(&mut wire[start..end].to_vec(), |_| Flow::Continue).unwrap();
            start = end;
        }
        prop_assert_eq!(reader.buffered(), 0);
    }

    /// On any input the reader returns, and how the bytes are cut never
    /// changes what it delivers or which close code it ends with.
    #[test]
    fn reader_on_arbitrary_bytes_is_total_and_cut_independent(
        wire in vec(any::<u8>(), 0..200),
        picks in vec(any::<prop::sample::Index>(), 0..8),
        server in any::<bool>(),
        max in 0usize..300,
    ) {
        let role = if server { Role::Server } else { Role::Client };
        let whole = run(role, max, &wire, &[], false);
        let cut = run(role, max, &wire, &sorted_cuts(wire.len(), &picks), false);
        prop_assert_eq!(&cut, &whole);
        prop_assert_eq!(run(role, max, &wire, &every_byte(&wire), false), whole);
    }

    /// Random bytes seldom form a frame; corrupting a valid stream reaches
    /// the fragment, UTF-8, size and close checks.
    #[test]
    fn reader_on_corrupted_streams_is_total_and_cut_independent(
        messages in vec(arb_wire_message(), 1..3),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        picks in vec(any::<prop::sample::Index>(), 0..8),
        max in prop_oneof![Just(MAX), 0usize..200],
    ) {
        let mut wire = Vec::new();
        for m in &messages {
            m.write(&mut wire, &mut Vec::new());
        }
        for (at, byte) in edits {
            let i = at.index(wire.len());
            wire[i] = byte;
        }
        let whole = run(Role::Server, max, &wire, &[], true);
        let cut = run(Role::Server, max, &wire, &sorted_cuts(wire.len(), &picks), true);
        prop_assert_eq!(&cut, &whole);
        if wire.len() < 4096 {
            prop_assert_eq!(run(Role::Server, max, &wire, &every_byte(&wire), true), whole);
        }
    }
}

// ---- regressions the properties found (kept as plain tests: they name the
// behaviour, and they run even if the seed file is lost) ----

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A frame without payload whose header arrives in pieces is delivered by
/// the read that completes it, not held until more bytes come: an empty
/// close or ping from a client must not wait for the idle timeout.
#[test]
fn empty_frame_is_delivered_by_the_read_that_completes_its_header() {
    for (opcode, event) in [
        (OpCode::Ping, Event::Ping(vec![])),
        (OpCode::Close, Event::Close(None)),
        (OpCode::Binary, Event::Binary(vec![])),
    ] {
        let wire = frame(opcode, true, b"", MASK);
        assert_eq!(wire.len(), 6);
        for cut in 1..wire.len() {
            assert_eq!(
                run(Role::Server, 100, &wire, &[cut], false),
                (vec![event.clone()], Ok(Flow::Continue)),
                "{opcode:?} cut at {cut}"
            );
        }
    }
}

/// An unmasked client frame is refused as soon as its header is whole,
/// whether or not the header came in one read.
#[test]
fn unmasked_frame_is_refused_by_the_read_that_completes_its_header() {
    let wire = [0x82, 0x05, b'a'];
    for cuts in [&[][..], &[1], &[1, 2]] {
        let (events, flow) = run(Role::Server, 100, &wire, cuts, false);
        assert!(events.is_empty());
        assert_eq!(flow.unwrap_err().code, 1002, "cuts {cuts:?}");
    }
    // the same for a masked frame sent to a client
    let wire = frame(OpCode::Binary, true, b"abc", MASK);
    let (_, flow) = run(Role::Client, 100, &wire[..6], &[1], false);
    assert_eq!(flow.unwrap_err().code, 1002);
}
