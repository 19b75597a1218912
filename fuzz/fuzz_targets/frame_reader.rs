//! The frame reader parses whatever a peer sends, in whatever pieces TCP
//! delivers it. It must never panic, and how the stream is cut must never
//! change what it delivers or which close code it ends with.
//!
//! The first input byte picks the reader's role, its size limit and the
//! chunk size; the rest is the stream.

#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::frame::{Flow, Message, MessageReader, Role};

/// The messages delivered (as text, to compare runs) and how the run ended:
/// `None` still reading, `Some(0)` stopped at a close, else the close code.
fn run(role: Role, max: usize, wire: &[u8], chunk: usize) -> (Vec<String>, Option<u16>) {
    let mut reader = MessageReader::new(role, max);
    let mut seen = Vec::new();
    for piece in wire.chunks(chunk) {
        let mut piece = piece.to_vec();
        let flow = reader.feed(&mut piece, |m| {
            let close = matches!(m, Message::Close(_));
            seen.push(format!("{m:?}"));
            if close {
                Flow::Stop
            } else {
                Flow::Continue
            }
        });
        match flow {
            Ok(Flow::Continue) => {}
            Ok(Flow::Stop) => return (seen, Some(0)),
            Err(violation) => return (seen, Some(violation.code)),
        }
    }
    (seen, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&config, wire)) = data.split_first() else {
        return;
    };
    let role = if config & 1 == 0 {
        Role::Server
    } else {
        Role::Client
    };
    let max = [0, 1, 125, 126, 65_535, 65_536, 1 << 20, 1 << 24][usize::from(config >> 1) & 7];
    let chunk = usize::from(config >> 4) + 1;
    let whole = run(role, max, wire, wire.len().max(1));
    assert_eq!(
        run(role, max, wire, chunk),
        whole,
        "cut into {chunk}-byte pieces"
    );
    assert_eq!(run(role, max, wire, 1), whole, "cut into single bytes");
});
