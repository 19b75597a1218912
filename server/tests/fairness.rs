//! Fairness of fan-out (issue 10): the sender's own copy of a chat is
//! written in the same pass as every other member's, not ahead of them.
//! Round trip (the sender's copy) and fan-out (everyone else's) are both
//! measured; a head start for the sender would make the first look better
//! than what the room gets.
//!
//! Observed through kernel receive stamps, not wall-clock races: with one
//! worker, a single server thread writes every copy, and on loopback each
//! write is stamped (`SO_TIMESTAMPNS`) as it enters the stack, inside the
//! write call. So sorting the members' stamps gives the order the server
//! wrote in, however slowly the test gets round to reading them.
#![cfg(target_os = "linux")]

use std::time::Duration;

use protocol::{json, ChatMessage, MsgType};
use testkit::{opts, raw, start_server, RawClient, RawFrame};

const MEMBERS: usize = 30;
const ROOM: &str = "fair";

#[tokio::test]
async fn the_senders_own_copy_is_written_after_the_other_members_copies() {
    let mut o = opts();
    o.workers = Some(1);
    let server = start_server(o);
    let addr = server.local_addr();

    let mut members = Vec::with_capacity(MEMBERS);
    for i in 0..MEMBERS {
        let c = RawClient::connect(addr, &format!("/?room={ROOM}&username=m{i}&proto=json"))
            .await
            .unwrap();
        members.push(c);
    }
    // Member i gets its welcome, its own join and the join of each later
    // member; after those its socket is quiet, so the next frame is the
    // round's chat and its stamp is that frame's.
    for (i, c) in members.iter_mut().enumerate() {
        for _ in 0..1 + MEMBERS - i {
            c.recv().await.unwrap().expect("a setup frame");
        }
        c.stamp_receives().unwrap();
    }
    raw::await_receive_stamps().await.unwrap();

    let mut rounds = Vec::new();
    // Senders among the first, the last and the middle joiners.
    for (round, sender) in [0, MEMBERS - 1, MEMBERS / 2, 7, 22].into_iter().enumerate() {
        let payload = format!("round {round}");
        members[sender]
            .send_json(
                &ChatMessage::new(MsgType::Chat)
                    .with_room(ROOM)
                    .with_payload(payload.as_bytes()),
            )
            .await
            .unwrap();
        let mut written: Vec<(Duration, usize)> = Vec::with_capacity(MEMBERS);
        for (i, c) in members.iter_mut().enumerate() {
            let (frame, stamp) = c.recv_stamped().await.unwrap();
            let RawFrame::Text(text) = frame else {
                panic!("member {i} got {frame:?}, expected the chat");
            };
            let msg = json::decode(&text).unwrap();
            assert_eq!(
                (msg.kind(), &msg.payload[..]),
                (Some(MsgType::Chat), payload.as_bytes()),
                "member {i}: {text}"
            );
            written.push((stamp, i));
        }
        written.sort();
        let order: Vec<usize> = written.iter().map(|&(_, i)| i).collect();
        let position = order.iter().position(|&i| i == sender).unwrap();
        rounds.push((sender, position, order));
    }
    // One thread, one run queue: the members the broadcast woke are
    // polled before the sender takes its own copy, so it is written last.
    let early: Vec<_> = rounds
        .iter()
        .filter(|(_, position, _)| *position != MEMBERS - 1)
        .collect();
    assert!(
        early.is_empty(),
        "the sender's copy was written before other members' (sender, its \
         position of {MEMBERS} with 0 first, write order): {early:?}"
    );
}
