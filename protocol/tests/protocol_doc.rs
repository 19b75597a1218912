//! Keeps PROTOCOL.md and the code in step: every example block the document
//! marks with `<!-- check: NAME -->` is compared here with what the code
//! produces, and the rules the document states are tried on the code.
//!
//! To regenerate an example after a deliberate change to the wire format:
//! `cargo test -p protocol --test protocol_doc -- --ignored --nocapture`
//! prints the code's bytes for each example.

use std::borrow::Cow;
use std::collections::BTreeSet;

use protocol::frame::{
    close_code, close_frame, encode_frame, Flow, Message, MessageReader, OpCode, Role,
    MAX_CONTROL_PAYLOAD,
};
use protocol::handshake::{
    accept_response, client_request, error_response, parse_request, parse_response, MAX_REQUEST_LEN,
};
use protocol::{binary, json, ChatMessage, DecodeError, MsgType, Proto};

const DOC: &str = include_str!("../../PROTOCOL.md");
const RFC_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Every example the document marks, so a new one cannot go unchecked.
const CHECKED: &[&str] = &[
    "upgrade-request",
    "upgrade-response",
    "frame-server-binary",
    "frame-client-text",
    "frame-header-16",
    "frame-header-64",
    "close-server-1009",
    "close-client-1000",
    "binary-chat",
    "json-chat",
    "json-base64",
    "json-client-join",
    "json-client-leave",
    "json-client-chat",
    "json-client-ping",
];

/// The worked example of sections 4.1 and 4.2.
fn alice() -> ChatMessage<'static> {
    ChatMessage {
        id: 1001,
        msg_type: MsgType::Chat as u8,
        user_id: 42,
        username: "alice".into(),
        payload: Cow::Borrowed(b"hello"),
        timestamp: 1_700_000_000_000,
        room: "lobby".into(),
    }
}

/// The non-UTF-8 payload example of section 4.2.
fn bob() -> ChatMessage<'static> {
    ChatMessage {
        id: 1002,
        msg_type: MsgType::Chat as u8,
        user_id: 43,
        username: "bob".into(),
        payload: Cow::Borrowed(&[0xff, 0x00, 0x80]),
        timestamp: 1_700_000_000_123,
        room: "lobby".into(),
    }
}

/// The lines of the fenced block after `<!-- check: NAME -->`.
fn block(name: &str) -> Vec<&'static str> {
    let marker = format!("<!-- check: {name} -->");
    let at = DOC
        .find(&marker)
        .unwrap_or_else(|| panic!("PROTOCOL.md has no {marker}"));
    let mut lines = DOC[at + marker.len()..].lines().skip(1);
    let fence = lines.next().unwrap_or_default();
    assert!(
        fence.starts_with("```"),
        "{marker} is not followed by a ``` block"
    );
    lines.take_while(|l| !l.starts_with("```")).collect()
}

/// The bytes of a hex block: two-digit hex bytes, then optionally `|` and
/// a note. Anything else in the byte part is a typo and fails the test.
fn hex_block(name: &str) -> Vec<u8> {
    block(name)
        .iter()
        .flat_map(|line| {
            line.split('|')
                .next()
                .unwrap_or_default()
                .split_whitespace()
        })
        .map(|tok| {
            assert_eq!(tok.len(), 2, "{name}: {tok:?} is not a byte");
            u8::from_str_radix(tok, 16).unwrap_or_else(|_| panic!("{name}: {tok:?} is not hex"))
        })
        .collect()
}

/// The one line of a JSON block.
fn json_block(name: &str) -> &'static str {
    let lines = block(name);
    assert_eq!(lines.len(), 1, "{name} should be one line");
    lines[0]
}

/// An HTTP head block: its lines joined with CRLF, ended by an empty line.
fn http_block(name: &str) -> String {
    let mut head = block(name).join("\r\n");
    head.push_str("\r\n\r\n");
    head
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a reader of `role` makes of `wire`, fed in one piece.
fn read(role: Role, max: usize, wire: &[u8]) -> Result<Vec<String>, u16> {
    let mut reader = MessageReader::new(role, max);
    let mut out = Vec::new();
    reader
        .feed(&mut wire.to_vec(), |m| {
            out.push(format!("{m:?}"));
            Flow::Continue
        })
        .map_err(|v| v.code)?;
    Ok(out)
}

#[test]
fn every_marked_block_is_checked_here() {
    let marked: BTreeSet<&str> = DOC
        .match_indices("<!-- check: ")
        .map(|(at, m)| {
            let rest = &DOC[at + m.len()..];
            &rest[..rest.find(" -->").unwrap()]
        })
        .collect();
    let checked: BTreeSet<&str> = CHECKED.iter().copied().collect();
    assert_eq!(marked, checked);
}

#[test]
fn upgrade_request_and_answer() {
    let request = http_block("upgrade-request");
    assert_eq!(
        request,
        client_request(
            "127.0.0.1:8080",
            "/?username=alice&room=lobby&proto=binary",
            RFC_KEY,
            &[]
        )
    );
    let (parsed, len) = parse_request(request.as_bytes()).unwrap().unwrap();
    assert_eq!(len, request.len());
    assert_eq!(parsed.path, "/");
    let params: Vec<(String, String)> = parsed
        .params()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    assert_eq!(
        params,
        [
            ("username", "alice"),
            ("room", "lobby"),
            ("proto", "binary")
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
    assert_eq!(Proto::from_name("binary"), Some(Proto::Binary));
    assert_eq!(Proto::from_name("bincode"), Some(Proto::Binary));
    assert_eq!(Proto::from_name("json"), Some(Proto::Json));

    let answer = http_block("upgrade-response");
    assert_eq!(answer, accept_response(RFC_KEY));
    assert_eq!(
        parse_response(answer.as_bytes(), RFC_KEY),
        Ok(Some(answer.len()))
    );
}

#[test]
fn query_parameters_are_form_decoded() {
    let req = client_request("h", "/?username=al%20ice&room=a+b", RFC_KEY, &[]);
    let (parsed, _) = parse_request(req.as_bytes()).unwrap().unwrap();
    let params: Vec<_> = parsed.params().collect();
    assert_eq!(params[0], ("username".into(), "al ice".into()));
    assert_eq!(params[1], ("room".into(), "a b".into()));
}

#[test]
fn upgrade_refusals_have_the_documented_statuses() {
    let good = client_request("h", "/", RFC_KEY, &[]);
    // Ok(true): accepted, Ok(false): waiting for more, Err: the status
    let status = |req: &str| {
        parse_request(req.as_bytes())
            .map(|r| r.is_some())
            .map_err(|e| e.status())
    };
    assert!(matches!(status(&good), Ok(true)));
    // tokens are found in lists, case-insensitively
    let lenient = good
        .replace("Connection: Upgrade", "Connection: keep-alive, UPGRADE")
        .replace("Upgrade: websocket", "upgrade: WebSocket");
    assert!(matches!(status(&lenient), Ok(true)));
    // 5 headers of its own + 27 = 32, the most there may be
    let full = good.replace(
        "Host: h\r\n",
        &format!("Host: h\r\n{}", "X-A: b\r\n".repeat(27)),
    );
    assert!(matches!(status(&full), Ok(true)));

    for (what, req) in [
        ("POST", good.replacen("GET", "POST", 1)),
        ("HTTP/1.0", good.replace("HTTP/1.1", "HTTP/1.0")),
        ("no Upgrade", good.replace("Upgrade: websocket\r\n", "")),
        ("no Connection", good.replace("Connection: Upgrade\r\n", "")),
        ("no Host", good.replace("Host: h\r\n", "")),
        (
            "two Hosts",
            good.replace("Host: h\r\n", "Host: h\r\nHost: i\r\n"),
        ),
        ("short key", good.replace(RFC_KEY, &RFC_KEY[1..])),
        (
            "key not base64 of 16 bytes",
            good.replace(RFC_KEY, "AAAAAAAAAAAAAAAAAAAAAAA="),
        ),
        (
            "no key",
            good.replace(&format!("Sec-WebSocket-Key: {RFC_KEY}\r\n"), ""),
        ),
        (
            "33 headers",
            good.replace(
                "Host: h\r\n",
                &format!("Host: h\r\n{}", "X-A: b\r\n".repeat(28)),
            ),
        ),
        ("not HTTP", "\x16\x03\x01 hello\r\n\r\n".to_owned()),
    ] {
        assert_eq!(status(&req), Err(400), "{what}");
    }
    assert_eq!(status(&good.replace("Version: 13", "Version: 8")), Err(426));
    assert_eq!(
        status(&good.replace("Sec-WebSocket-Version: 13\r\n", "")),
        Err(426)
    );
    assert!(error_response(426, "x").contains("\r\nSec-WebSocket-Version: 13\r\n"));

    // 431 once 8192 bytes have come without the end of the head
    let head_start = good.trim_end_matches("\r\n");
    let mut long = format!("{head_start}\r\nX-Pad: ");
    long.push_str(&"a".repeat(MAX_REQUEST_LEN - long.len() - 1));
    assert_eq!(status(&long), Ok(false));
    long.push('a');
    assert_eq!(long.len(), MAX_REQUEST_LEN);
    assert_eq!(status(&long), Err(431));
    assert!(DOC.contains(&format!("{MAX_REQUEST_LEN} bytes")));

    for (code, reason) in [
        (400, "Bad Request"),
        (426, "Upgrade Required"),
        (431, "Request Header Fields Too Large"),
        (503, "Service Unavailable"),
    ] {
        let row = format!("| `{code} {reason}` |");
        assert!(DOC.contains(&row), "PROTOCOL.md lacks {row}");
        let answer = error_response(code, "why");
        assert!(answer.starts_with(&format!("HTTP/1.1 {code} {reason}\r\n")));
        assert!(answer.contains("\r\nContent-Type: text/plain\r\n"));
        assert!(answer.contains("\r\nConnection: close\r\n"));
    }
}

#[test]
fn binary_worked_example() {
    let bytes = hex_block("binary-chat");
    assert_eq!(hex(&bytes), hex(&binary::to_vec(&alice())));
    assert_eq!(binary::decode(&bytes), Ok(alice()));
    // the length formula of section 4.1
    assert_eq!(bytes.len(), 49 + 5 + 5 + 5);
    assert_eq!(binary::encoded_len(&alice()), bytes.len());
}

#[test]
fn binary_decoding_rules() {
    let bytes = binary::to_vec(&alice());
    let malformed = |b: &[u8]| matches!(binary::decode(b), Err(DecodeError::Binary(_)));
    assert!(malformed(&bytes[..bytes.len() - 1]), "short");
    assert!(malformed(&[&bytes[..], &[0]].concat()), "left over");
    let mut bad = bytes.clone();
    bad[17] = 6; // username length claims one byte more
    assert!(malformed(&bad), "length beyond the end");
    let mut bad = bytes.clone();
    bad[25] = 0xc3; // "alice" → invalid UTF-8
    assert!(malformed(&bad), "username not UTF-8");
    let mut bad = bytes.clone();
    bad[8] = 7;
    assert!(matches!(
        binary::decode(&bad),
        Err(DecodeError::UnknownType(_))
    ));
    assert!(binary::decode(&bad).unwrap_err().is_unsupported());
}

#[test]
fn json_worked_examples() {
    let text = json_block("json-chat");
    assert_eq!(text, json::to_string(&alice()));
    assert_eq!(json::decode(text), Ok(alice()));
    let text = json_block("json-base64");
    assert_eq!(text, json::to_string(&bob()));
    assert_eq!(json::decode(text), Ok(bob()));
}

#[test]
fn json_decoding_rules() {
    let ok = |s: &str| match json::decode(s) {
        Ok(m) => m.into_owned(),
        Err(e) => panic!("{s}: {e}"),
    };
    let malformed = |s: &str| matches!(json::decode(s), Err(DecodeError::Json(_)));

    // defaults
    let m = ok(r#"{"type":"pong"}"#);
    assert_eq!(m, ChatMessage::new(MsgType::Pong));
    // any order, unknown members ignored, whitespace around
    let m = ok(" {\"sent_at\":[1,{}],\"id\":5,\"type\":\"chat\"}\n");
    assert_eq!((m.kind(), m.id), (Some(MsgType::Chat), 5));
    // payload rules
    assert_eq!(
        ok(r#"{"type":"chat","payload":"\u00e9"}"#).payload[..],
        [0xc3, 0xa9]
    );
    assert_eq!(
        ok(r#"{"type":"chat","payload":null,"payload_base64":"/wCA"}"#).payload[..],
        [0xff, 0x00, 0x80]
    );
    assert_eq!(
        ok(r#"{"type":"chat","payload_base64":null}"#).payload[..],
        [] as [u8; 0]
    );
    assert!(malformed(
        r#"{"type":"chat","payload":"","payload_base64":""}"#
    ));
    assert!(malformed(r#"{"type":"chat","payload_base64":"/wC"}"#)); // no padding
    assert_eq!(
        ok(r#"{"type":"chat","payload_base64":"/w=="}"#).payload[..],
        [0xff]
    );
    assert!(malformed(r#"{"type":"chat","payload_base64":"/x=="}"#)); // unused bits set
    assert!(malformed(r#"{"type":"chat","payload_base64":"-_8="}"#)); // URL alphabet
                                                                      // integers
    assert_eq!(
        ok(r#"{"type":"chat","id":18446744073709551615}"#).id,
        u64::MAX
    );
    assert_eq!(
        ok(r#"{"type":"chat","timestamp":-9223372036854775808}"#).timestamp,
        i64::MIN
    );
    for bad in [
        r#"{"type":"chat","id":1.0}"#,
        r#"{"type":"chat","id":1e3}"#,
        r#"{"type":"chat","id":-1}"#,
        r#"{"type":"chat","id":18446744073709551616}"#,
        r#"{"type":"chat","room":null}"#,
        r#"{"type":"chat","username":7}"#,
        r#"{"type":"chat","type":"chat"}"#,
        r#"{"type":"chat","payload":"\ud800"}"#,
        r#"{"type":"chat"} x"#,
        r#"{"room":"lobby"}"#,
        r#"{"type":null}"#,
        "",
    ] {
        assert!(malformed(bad), "{bad} should be malformed");
    }
    // a surrogate pair is one character
    assert_eq!(
        ok(r#"{"type":"chat","payload":"\ud83d\ude00"}"#).payload_str(),
        Some("\u{1F600}")
    );
    for unsupported in [r#"{"type":"Chat"}"#, r#"{"type":"dance"}"#] {
        assert!(json::decode(unsupported).unwrap_err().is_unsupported());
    }
    // only objects: serde would take the members as an array too
    for not_object in [
        r#"["chat","lobby","al",null,null,1,2,3]"#,
        r#""chat""#,
        "7",
        "null",
    ] {
        assert!(malformed(not_object), "{not_object}");
    }
}

#[test]
fn client_examples_decode_as_described() {
    let join = json::decode(json_block("json-client-join")).unwrap();
    assert_eq!(join.kind(), Some(MsgType::Join));
    assert_eq!((&*join.room, &*join.username), ("lobby", "alice"));

    let leave = json::decode(json_block("json-client-leave")).unwrap();
    assert_eq!(leave.kind(), Some(MsgType::Leave));
    assert_eq!(&*leave.room, "lobby");

    let chat = json::decode(json_block("json-client-chat")).unwrap();
    assert_eq!(chat.kind(), Some(MsgType::Chat));
    assert_eq!((&*chat.room, chat.payload_str()), ("lobby", Some("hello")));

    let ping = json::decode(json_block("json-client-ping")).unwrap();
    assert_eq!(ping.kind(), Some(MsgType::Ping));
    assert_eq!((ping.id, ping.payload_str()), (99, Some("t=1")));
}

#[test]
fn frame_examples() {
    let body = binary::to_vec(&alice());
    let wire = hex_block("frame-server-binary");
    assert_eq!(hex(&wire), hex(&encode_frame(OpCode::Binary, &body, None)));
    assert_eq!(
        read(Role::Client, 65536, &wire),
        Ok(vec![format!("{:?}", Message::Binary(&body))])
    );

    // the client's text frame carries the chat of section 5
    let text = json_block("json-client-chat");
    assert!(DOC.contains(&format!("`{text}`")));
    assert_eq!(text.len(), 48);
    let wire = hex_block("frame-client-text");
    assert_eq!(
        hex(&wire),
        hex(&encode_frame(OpCode::Text, text.as_bytes(), Some(MASK)))
    );
    assert_eq!(
        read(Role::Server, 65536, &wire),
        Ok(vec![format!("{:?}", Message::Text(text))])
    );

    let header = hex_block("frame-header-16");
    let frame = encode_frame(OpCode::Binary, &[0; 300], Some(MASK));
    assert_eq!(hex(&header), hex(&frame[..header.len()]));
    assert_eq!(frame.len(), header.len() + 300);

    let header = hex_block("frame-header-64");
    let frame = encode_frame(OpCode::Binary, &[0; 70_000], None);
    assert_eq!(hex(&header), hex(&frame[..header.len()]));
    assert_eq!(frame.len(), header.len() + 70_000);

    let wire = hex_block("close-server-1009");
    assert_eq!(hex(&wire), hex(&close_frame(1009, "message too big", None)));
    assert_eq!(
        read(Role::Client, 65536, &wire),
        Ok(vec![r#"Close(Some((1009, "message too big")))"#.to_owned()])
    );
    let wire = hex_block("close-client-1000");
    assert_eq!(hex(&wire), hex(&close_frame(1000, "", Some(MASK))));
    assert_eq!(
        read(Role::Server, 65536, &wire),
        Ok(vec![r#"Close(Some((1000, "")))"#.to_owned()])
    );
}

#[test]
fn framing_rules_have_the_documented_close_codes() {
    let masked = |op, payload: &[u8]| encode_frame(op, payload, Some(MASK)).to_vec();
    let unfin = |op, payload: &[u8]| {
        let mut f = masked(op, payload);
        f[0] &= 0x7f;
        f
    };
    let max = 65536;
    let err = |wire: &[u8]| read(Role::Server, max, wire).unwrap_err();

    assert_eq!(err(&encode_frame(OpCode::Binary, b"x", None)), 1002);
    assert_eq!(
        read(Role::Client, max, &masked(OpCode::Binary, b"x")),
        Err(1002)
    );
    assert_eq!(err(&[0xc2, 0x80, 0, 0, 0, 0]), 1002); // RSV1
    for opcode in [3u8, 7, 0xb, 0xf] {
        assert_eq!(err(&[0x80 | opcode, 0x80, 0, 0, 0, 0]), 1002);
    }
    assert_eq!(
        err(&[0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]),
        1002
    ); // 64-bit length with the top bit set
    assert_eq!(err(&unfin(OpCode::Ping, b"")), 1002);
    let control = vec![0u8; MAX_CONTROL_PAYLOAD];
    assert!(read(Role::Server, max, &masked(OpCode::Ping, &control)).is_ok());
    let mut long_ping = vec![0x89, 0x80 | 126, 0, 126];
    long_ping.extend_from_slice(&MASK);
    long_ping.extend_from_slice(&[0; 126]);
    assert_eq!(err(&long_ping), 1002);
    assert!(DOC.contains(&format!("at most {MAX_CONTROL_PAYLOAD} bytes")));

    // fragments, with a ping between them
    let fragmented = [
        unfin(OpCode::Text, b"he"),
        masked(OpCode::Ping, b"p"),
        unfin(OpCode::Continuation, b"l"),
        masked(OpCode::Continuation, b"lo"),
    ]
    .concat();
    assert_eq!(
        read(Role::Server, max, &fragmented),
        Ok(vec![
            r#"Ping([112])"#.to_owned(),
            r#"Text("hello")"#.to_owned()
        ])
    );
    let interleaved = [unfin(OpCode::Text, b"he"), masked(OpCode::Binary, b"x")].concat();
    assert_eq!(err(&interleaved), 1002);
    assert_eq!(err(&masked(OpCode::Continuation, b"x")), 1002);

    // the size limit counts whole messages and is checked from headers
    assert!(read(Role::Server, max, &masked(OpCode::Binary, &vec![0; max])).is_ok());
    assert_eq!(err(&masked(OpCode::Binary, &vec![0; max + 1])), 1009);
    let split = [
        unfin(OpCode::Binary, &vec![0; max / 2]),
        masked(OpCode::Continuation, &vec![0; max / 2 + 1]),
    ]
    .concat();
    assert_eq!(err(&split), 1009);
    let too_big = masked(OpCode::Binary, &vec![0; max + 1]);
    assert_eq!(err(&too_big[..14]), 1009, "refused from the header alone");

    assert_eq!(err(&masked(OpCode::Text, &[b'a', 0xff])), 1007);
    let broken_utf8 = [
        unfin(OpCode::Text, &[0xc3]),
        masked(OpCode::Continuation, &[0xa9]),
    ]
    .concat();
    assert_eq!(
        read(Role::Server, max, &broken_utf8),
        Ok(vec![r#"Text("é")"#.to_owned()]),
        "UTF-8 is checked on the joined message"
    );

    // close frames
    assert_eq!(err(&masked(OpCode::Close, &[0x03])), 1002);
    for bad_code in [999u16, 1004, 1005, 1006, 1015, 2999, 5000] {
        assert_eq!(
            err(&masked(OpCode::Close, &bad_code.to_be_bytes())),
            1002,
            "{bad_code}"
        );
    }
    for good_code in [1000u16, 1003, 1007, 1014, 3000, 4999] {
        assert!(read(
            Role::Server,
            max,
            &masked(OpCode::Close, &good_code.to_be_bytes())
        )
        .is_ok());
    }
    assert_eq!(err(&masked(OpCode::Close, &[0x03, 0xe8, 0xff])), 1007);

    // a longer length form than needed is accepted
    let mut roomy = vec![0x82, 0x80 | 126, 0, 5];
    roomy.extend_from_slice(&MASK);
    roomy.extend_from_slice(b"hello");
    assert!(read(Role::Server, max, &roomy).is_ok());
}

#[test]
fn tables_match_the_code() {
    for t in MsgType::ALL {
        let row = format!("| {} | {:?} | `{}` |", t as u8, t, t.as_str());
        assert!(DOC.contains(&row), "PROTOCOL.md lacks the row {row}");
    }
    for code in [
        close_code::NORMAL,
        close_code::GOING_AWAY,
        close_code::PROTOCOL_ERROR,
        close_code::UNSUPPORTED_DATA,
        close_code::INVALID_PAYLOAD,
        close_code::MESSAGE_TOO_BIG,
        close_code::TRY_AGAIN_LATER,
    ] {
        assert!(
            DOC.contains(&format!("\n| {code} | ")),
            "PROTOCOL.md's close table lacks {code}"
        );
    }
    assert!(DOC.contains(&format!("`{}`", hex(b"error: "))));
}

/// Prints the code's form of each example, to paste into PROTOCOL.md after
/// a deliberate change to the wire format.
#[test]
#[ignore]
fn print_examples() {
    let body = binary::to_vec(&alice());
    println!("binary-chat:         {}", hex(&body));
    println!("json-chat:           {}", json::to_string(&alice()));
    println!("json-base64:         {}", json::to_string(&bob()));
    println!(
        "frame-server-binary: {}",
        hex(&encode_frame(OpCode::Binary, &body, None))
    );
    println!(
        "frame-client-text:   {}",
        hex(&encode_frame(
            OpCode::Text,
            json_block("json-client-chat").as_bytes(),
            Some(MASK)
        ))
    );
    println!(
        "close-server-1009:   {}",
        hex(&close_frame(1009, "message too big", None))
    );
    println!(
        "close-client-1000:   {}",
        hex(&close_frame(1000, "", Some(MASK)))
    );
}
