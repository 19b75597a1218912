//! Text frames come straight from peers: decoding must never panic, and
//! whatever it accepts must survive re-encoding in both encodings, since
//! the server relays it to JSON and binary receivers alike.

#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::{binary, json};

fuzz_target!(|data: &[u8]| {
    // Text frames are UTF-8 by the time they reach the decoder (the frame
    // reader refuses others with 1007).
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(msg) = json::decode(text) else {
        return;
    };
    assert!(msg.kind().is_some(), "decoded an unknown type");
    let again = json::to_string(&msg);
    assert_eq!(json::decode(&again).as_ref(), Ok(&msg));
    let bytes = binary::to_vec(&msg);
    assert_eq!(binary::decode(&bytes).as_ref(), Ok(&msg));
});
