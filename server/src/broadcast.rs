//! Fan-out: a message is encoded at most once per encoding, into a complete
//! WebSocket frame, and every recipient's queue gets a reference to the
//! same bytes.

use bytes::Bytes;
use protocol::frame::{FrameWriter, OpCode};
use protocol::{binary, json, ChatMessage, MsgType, Proto};

use crate::conn::{Conn, Push};
use crate::shared::Shared;

#[cfg(test)]
thread_local! {
    /// Calls of `encode` on this thread, for the tests of encode-once.
    static ENCODES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// One complete server-to-client frame holding `msg` in `proto`.
pub fn encode(msg: &ChatMessage<'_>, proto: Proto) -> Bytes {
    #[cfg(test)]
    ENCODES.set(ENCODES.get() + 1);
    match proto {
        Proto::Binary => {
            let mut w = FrameWriter::new(OpCode::Binary, None, binary::encoded_len(msg));
            w.encode_with(|body| binary::encode(msg, body));
            w.finish()
        }
        Proto::Json => {
            let hint = 112 + msg.username.len() + msg.room.len() + msg.payload.len();
            let mut w = FrameWriter::new(OpCode::Text, None, hint);
            w.encode_with(|body| json::encode(msg, body));
            w.finish()
        }
    }
}

/// Frames of one message, made on first use per encoding.
struct EncodedOnce<'m> {
    msg: &'m ChatMessage<'m>,
    frames: [Option<Bytes>; 2],
}

impl<'m> EncodedOnce<'m> {
    fn frame(&mut self, proto: Proto) -> &Bytes {
        self.frames[proto as usize].get_or_insert_with(|| encode(self.msg, proto))
    }
}

/// Queues `msg` to every member of `room`; returns the recipient count.
pub fn to_room(shared: &Shared, room: &str, msg: &ChatMessage<'_>) -> usize {
    let mut encoded = EncodedOnce {
        msg,
        frames: [None, None],
    };
    let mut per_proto = [0u64; 2];
    let mut dropped = 0u64;
    let limits = shared.limits.queue;
    let recipients = shared.rooms.for_each_member(room, |member| {
        let proto = member.proto();
        match member.push(encoded.frame(proto), limits) {
            Push::Queued => per_proto[proto as usize] += 1,
            Push::Dropped | Push::DroppedAndClosed => dropped += 1,
            Push::Closing => {}
        }
    });
    let kind = msg.kind().unwrap_or(MsgType::System);
    for proto in [Proto::Json, Proto::Binary] {
        if per_proto[proto as usize] > 0 {
            shared
                .metrics
                .sent(kind, proto)
                .increment(per_proto[proto as usize]);
        }
    }
    if dropped > 0 {
        shared.metrics.dropped.increment(dropped);
    }
    shared.metrics.fanout.record(recipients as f64);
    recipients
}

/// Queues `msg` to one connection in its own encoding.
pub fn to_conn(shared: &Shared, conn: &Conn, msg: &ChatMessage<'_>) {
    let proto = conn.proto();
    match conn.push(&encode(msg, proto), shared.limits.queue) {
        Push::Queued => shared
            .metrics
            .sent(msg.kind().unwrap_or(MsgType::System), proto)
            .increment(1),
        Push::Dropped | Push::DroppedAndClosed => shared.metrics.dropped.increment(1),
        Push::Closing => {}
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::conn::Taken;
    use crate::shared::Limits;

    fn shared() -> Shared {
        Shared::new(Limits::from_opts(&crate::Opts::defaults(), 100), 4)
    }

    /// The one frame queued for `conn`.
    fn queued(conn: &Conn) -> Bytes {
        match conn.take() {
            Taken::Frames(frames) => {
                assert_eq!(frames.len(), 1);
                frames[0].clone()
            }
            _ => panic!("nothing queued for {}", conn.id),
        }
    }

    #[test]
    fn a_broadcast_encodes_once_per_encoding_and_every_recipient_shares_the_bytes() {
        let shared = shared();
        let protos = [
            Proto::Json,
            Proto::Binary,
            Proto::Json,
            Proto::Binary,
            Proto::Json,
        ];
        let members: Vec<Arc<Conn>> = (1..)
            .zip(protos)
            .map(|(id, proto)| Arc::new(Conn::new(id, proto, 0)))
            .collect();
        for m in &members {
            shared.rooms.join("mixed", m);
        }
        let msg = ChatMessage::new(MsgType::Chat)
            .with_room("mixed")
            .with_payload(vec![7u8; 1000]);

        ENCODES.set(0);
        assert_eq!(to_room(&shared, "mixed", &msg), members.len());
        assert_eq!(ENCODES.get(), 2, "one encoding per encoding in use");

        let frames: Vec<(Proto, Bytes)> = members.iter().map(|m| (m.proto(), queued(m))).collect();
        for proto in [Proto::Json, Proto::Binary] {
            let mut same = frames.iter().filter(|(p, _)| *p == proto).map(|(_, f)| f);
            let first = same.next().unwrap();
            assert_eq!(first, &encode(&msg, proto), "a whole {proto:?} frame");
            for other in same {
                // Not equal bytes: the same bytes.
                assert_eq!(other.as_ptr(), first.as_ptr(), "{proto:?} frame copied");
                assert_eq!(other.len(), first.len());
            }
        }
        assert_ne!(frames[0].1.as_ptr(), frames[1].1.as_ptr());

        // A room of one encoding pays for one.
        let json_only = Arc::new(Conn::new(99, Proto::Json, 0));
        shared.rooms.join("json", &json_only);
        shared.rooms.join("json", &members[0]);
        ENCODES.set(0);
        assert_eq!(to_room(&shared, "json", &msg), 2);
        assert_eq!(ENCODES.get(), 1);
        assert_eq!(queued(&json_only).as_ptr(), queued(&members[0]).as_ptr());
    }
}
