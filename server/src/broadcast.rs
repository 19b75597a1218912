//! Fan-out: a message is encoded at most once per encoding, into a complete
//! WebSocket frame, and every recipient's queue gets a reference to the
//! same bytes.

use bytes::Bytes;
use protocol::frame::{FrameWriter, OpCode};
use protocol::{binary, json, ChatMessage, MsgType, Proto};

use crate::conn::{Conn, Push};
use crate::shared::Shared;

/// One complete server-to-client frame holding `msg` in `proto`.
pub fn encode(msg: &ChatMessage<'_>, proto: Proto) -> Bytes {
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
