//! Binary frames come straight from peers: decoding must never panic, and
//! whatever it accepts must be exactly the encoding of what it returns (the
//! layout has one form per message), so relaying re-encoded messages never
//! alters them.

#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::{binary, json};

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = binary::decode(data) else {
        return;
    };
    assert!(msg.kind().is_some(), "decoded an unknown msg_type");
    assert_eq!(binary::to_vec(&msg), data);
    assert_eq!(binary::encoded_len(&msg), data.len());
    // a binary sender's message reaches JSON receivers unchanged
    let text = json::to_string(&msg);
    assert_eq!(json::decode(&text).as_ref(), Ok(&msg));
});
