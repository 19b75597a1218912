//! What each connection does, decided from its index alone so that every
//! process (and later every agent) agrees on the plan without talking.

use std::sync::Arc;
use std::time::Duration;

use protocol::Proto;

pub use crate::opts::RoomDist;
use crate::opts::{BadValue, JoinMode, RunOpts, WorkloadKind};

/// The run-wide shape of the load.
#[derive(Debug, Clone)]
pub struct Workload {
    pub kind: WorkloadKind,
    pub rooms: u64,
    pub room_dist: RoomDist,
    /// For a zipf spread: entry k is the share of connections in rooms
    /// 0..=k (the last is exactly 1), built once and shared by clones.
    cumulative: Option<Arc<[f64]>>,
    /// Room names are `{room_prefix}room-{k}`.
    pub room_prefix: String,
    /// Fraction of connections that send.
    pub senders: f64,
    /// Time between one sender's messages.
    pub interval: Duration,
    pub size: usize,
    pub ping_interval: Option<Duration>,
    /// Mean connection lifetime under churn.
    pub mean_lifetime: Option<Duration>,
    /// How chat connections join their room.
    pub join: JoinMode,
}

/// One connection's part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// Global connection index (stable across processes).
    pub index: u64,
    /// The chat room, for chat workloads.
    pub room: Option<String>,
    /// Whether this connection sends messages on a timetable.
    pub sends: bool,
}

/// Why options cannot make a workload: a value outside loadgen's limits.
pub type WorkloadError = BadValue;

impl Workload {
    /// The workload of `opts`, which may be one process's or agent's share
    /// of a run: every value is checked ([`RunOpts::bad_values_but_ramp`])
    /// whoever sent it, so none can overflow a timer or an allocation.
    pub fn from_opts(opts: &RunOpts) -> Result<Workload, WorkloadError> {
        if let Some(bad) = opts.bad_values_but_ramp().into_iter().next() {
            return Err(bad);
        }
        let rooms = opts.room_count();
        let cumulative = match opts.room_dist {
            RoomDist::Uniform => None,
            RoomDist::Zipf(exponent) => Some(zipf_cumulative(rooms, exponent)),
        };
        Ok(Workload {
            kind: opts.workload,
            rooms,
            room_dist: opts.room_dist,
            cumulative,
            room_prefix: opts.room_prefix.clone().unwrap_or_default(),
            senders: if opts.workload == WorkloadKind::Idle {
                0.0
            } else {
                opts.chatters
            },
            interval: Duration::from_secs_f64(1.0 / opts.rate),
            size: opts.size,
            ping_interval: (!opts.ping_interval.is_zero()).then_some(opts.ping_interval),
            mean_lifetime: (opts.churn > 0.0)
                .then(|| Duration::from_secs_f64(opts.connections.max(1) as f64 / opts.churn)),
            join: opts.join,
        })
    }

    pub fn proto(&self) -> Option<Proto> {
        match self.kind {
            WorkloadKind::ChatBinary => Some(Proto::Binary),
            WorkloadKind::ChatJson => Some(Proto::Json),
            WorkloadKind::Echo | WorkloadKind::Idle => None,
        }
    }

    /// Connection `index`'s role. Senders are spread evenly over each room:
    /// with uniform rooms, the member at position p = index / rooms of room
    /// r sends when floor((p+1)·f + o) > floor(p·f + o), where o is the
    /// room's own offset frac(r·0.618...), so every room of n members has
    /// floor or ceil of n·f senders, and any prefix of the numbering its
    /// share. (Picking every 1/f-th index instead would put all the senders
    /// in a few rooms whenever 1/f and the room count share a factor: with
    /// a tenth chatting in 30 rooms, 3 rooms of senders only and 27 silent.)
    /// Zipf rooms follow the golden-ratio sequence, which does not line up
    /// with the numbering, so there index i itself is the position.
    pub fn role(&self, index: u64) -> Role {
        let (position, offset) = match &self.cumulative {
            None => {
                let room = index % self.rooms;
                (index / self.rooms, golden(room))
            }
            Some(_) => (index, 0.0),
        };
        let f = self.senders;
        let sends =
            ((position + 1) as f64 * f + offset).floor() > (position as f64 * f + offset).floor();
        let room = self
            .proto()
            .map(|_| format!("{}room-{}", self.room_prefix, self.room_of(index)));
        Role { index, room, sends }
    }

    /// The room (0-based; under zipf, its rank minus one) that connection
    /// `index` joins, from the index alone. Uniform: index mod rooms.
    /// Zipf: the golden-ratio sequence u = frac((index + 0.5)·0.618...)
    /// through the inverse of the rooms' cumulative shares. That sequence
    /// spreads every prefix of the numbering evenly over [0, 1), so the
    /// first n connections (one process's, a ramp's first second) fill the
    /// rooms in their proportions too, within a few members.
    pub fn room_of(&self, index: u64) -> u64 {
        match &self.cumulative {
            None => index % self.rooms,
            Some(cumulative) => {
                let u = golden(index);
                let k = cumulative.partition_point(|&c| c <= u);
                k.min(cumulative.len() - 1) as u64
            }
        }
    }

    /// Which of `targets` targets and which of `sources` source addresses
    /// (None: the kernel picks) connection `index` uses, from the index
    /// alone.
    /// - The target: in chat workloads, the room's (room mod targets), so
    ///   every member of a room meets on one server. Separate server
    ///   processes keep separate rooms, and with `index mod targets` a room
    ///   of 100 spread over six servers would be six rooms of about 17, and
    ///   the fan-out a sixth of what was asked. Otherwise index mod targets.
    /// - The source turns once per round of targets, so every (source,
    ///   target) pair carries its share: with `index mod sources`, two
    ///   sources and two targets would only ever make two of the four
    ///   pairs, and the capacity check, which counts every pair's ports,
    ///   would promise twice what the run can hold.
    pub fn endpoints(&self, index: u64, targets: usize, sources: usize) -> (usize, Option<usize>) {
        let t = targets.max(1) as u64;
        let slot = match self.proto() {
            Some(_) => self.room_of(index),
            None => index,
        };
        let target = (slot % t) as usize;
        let source = (sources > 0).then(|| ((index / t) % sources as u64) as usize);
        (target, source)
    }

    /// How many of the first `connections` connections go to each of
    /// `targets` targets by [`Workload::endpoints`], so that port planning
    /// counts what the run will really do: in chat the rooms decide, and a
    /// room count that `targets` does not divide, or a zipf spread, loads
    /// the targets unevenly. Exact for idle, echo and uniform rooms; for
    /// zipf rooms the expected share of each target, rounded up (the
    /// spread meets it within a few connections).
    pub fn target_counts(&self, connections: u64, targets: usize) -> Vec<u64> {
        let t = targets.max(1) as u64;
        // Of the slots 0..k, those that go to target `to` (slot mod t).
        let below = |k: u64, to: u64| k / t + u64::from(to < k % t);
        match (self.proto(), &self.cumulative) {
            (None, _) => (0..t).map(|to| below(connections, to)).collect(),
            (Some(_), None) => {
                // Room r holds base members, one more when r < extra.
                let (base, extra) = (connections / self.rooms, connections % self.rooms);
                (0..t)
                    .map(|to| {
                        base.saturating_mul(below(self.rooms, to))
                            .saturating_add(below(extra, to))
                    })
                    .collect()
            }
            (Some(_), Some(cumulative)) => {
                let mut shares = vec![0.0; t as usize];
                let mut previous = 0.0;
                for (room, &c) in cumulative.iter().enumerate() {
                    shares[room % t as usize] += c - previous;
                    previous = c;
                }
                shares
                    .iter()
                    .map(|share| ((connections as f64 * share).ceil() as u64).min(connections))
                    .collect()
            }
        }
    }

    /// How many of the first `connections` connections the largest room
    /// (room 0) gets: exact for uniform, ceil(connections / rooms); for
    /// zipf the expected connections × its share, which the spread meets
    /// within a few members.
    pub fn largest_room(&self, connections: u64) -> u64 {
        match &self.cumulative {
            None => connections.div_ceil(self.rooms),
            Some(cumulative) => (connections as f64 * cumulative[0]).round() as u64,
        }
    }

    /// How long the `generation`-th connection of slot `index` lives under
    /// churn: exponential with the mean lifetime, from a hash of both, so a
    /// run's churn is the same every time.
    pub fn lifetime(&self, index: u64, generation: u64) -> Option<Duration> {
        let mean = self.mean_lifetime?;
        let mut x = index
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(generation.wrapping_mul(0xBF58_476D_1CE4_E5B9))
            | 1;
        for _ in 0..3 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        // uniform in (0, 1]: never 0, so the logarithm is finite
        let u = ((x >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        Some(mean.mul_f64(-u.ln()))
    }

    /// The query a chat connection adds to the target URL: its encoding,
    /// and with `--join url` its room and name.
    pub fn query(&self, role: &Role) -> Option<String> {
        let proto = self.proto()?;
        let room = role.room.as_deref()?;
        Some(match self.join {
            // The room name carries the user's --room-prefix into the
            // request line: encoded, so a space, `&` or line break in it
            // stays part of the name instead of splitting the request.
            JoinMode::Url => format!(
                "room={}&username={}&proto={}",
                form_urlencoded::byte_serialize(room.as_bytes()).collect::<String>(),
                username(role.index),
                proto.as_str()
            ),
            JoinMode::Message => format!("proto={}", proto.as_str()),
        })
    }

    /// The `join` message a chat connection sends first with `--join
    /// message`, as one masked frame.
    pub fn join_frame(&self, role: &Role, mask: [u8; 4]) -> Option<bytes::Bytes> {
        let proto = self.proto()?;
        let room = role.room.as_deref()?;
        (self.join == JoinMode::Message).then(|| {
            let msg = protocol::ChatMessage::new(protocol::MsgType::Join)
                .with_room(room)
                .with_username(username(role.index));
            crate::chat::encode_frame(proto, &msg, mask)
        })
    }
}

/// The name connection `index` chats under.
fn username(index: u64) -> String {
    format!("u{index}")
}

/// frac((index + 0.5)·(√5 − 1)/2) in [0, 1), computed in 64-bit fixed
/// point: the same bits on every machine, and no precision lost at large
/// indices.
fn golden(index: u64) -> f64 {
    /// 2^64 · (√5 − 1)/2.
    const PHI: u64 = 0x9E37_79B9_7F4A_7C15;
    let x = index.wrapping_mul(PHI).wrapping_add(PHI >> 1);
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// Cumulative shares of `rooms` rooms weighted 1/k^exponent (k from 1).
/// The last entry is exactly 1, so every u in [0, 1) finds a room.
fn zipf_cumulative(rooms: u64, exponent: f64) -> Arc<[f64]> {
    let weights: Vec<f64> = (1..=rooms).map(|k| (k as f64).powf(-exponent)).collect();
    let total: f64 = weights.iter().sum();
    let mut sum = 0.0;
    let mut cumulative: Vec<f64> = weights
        .iter()
        .map(|w| {
            sum += w;
            (sum / total).min(1.0)
        })
        .collect();
    if let Some(last) = cumulative.last_mut() {
        *last = 1.0;
    }
    cumulative.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::collections::HashMap;

    fn workload(args: &[&str]) -> Workload {
        let cli = crate::opts::Cli::parse_from(["loadgen", "run", "ws://h:1/"].iter().chain(args));
        Workload::from_opts(&cli.into_run().unwrap()).unwrap()
    }

    /// Senders per room, over the first `n` connections.
    fn senders_by_room(w: &Workload, n: u64) -> Vec<u64> {
        let mut by_room = vec![0; w.rooms as usize];
        for i in (0..n).filter(|&i| w.role(i).sends) {
            by_room[w.room_of(i) as usize] += 1;
        }
        by_room
    }

    /// (target, source) → connections, over the first `n`.
    fn pairs(w: &Workload, n: u64, t: usize, s: usize) -> HashMap<(usize, usize), u64> {
        let mut pairs = HashMap::new();
        for i in 0..n {
            let (target, source) = w.endpoints(i, t, s);
            *pairs.entry((target, source.unwrap())).or_default() += 1;
        }
        pairs
    }

    #[test]
    fn every_source_meets_every_target_evenly() {
        let idle = workload(&["--workload", "idle"]);
        for (t, s) in [(2, 2), (3, 2), (2, 4), (4, 6), (1, 3), (3, 1)] {
            let p = pairs(&idle, (t * s * 5) as u64, t, s);
            assert_eq!(p.len(), t * s, "{t}×{s}");
            assert!(p.values().all(|&n| n == 5), "{p:?}");
        }
        assert_eq!(idle.endpoints(7, 3, 0), (1, None));
        // Chat: the README's 100,000 over 6 servers and 8 sources, 1,000
        // rooms: every pair is used, within 1 % of an even share.
        let chat = workload(&["-c", "100000", "--rooms", "1000"]);
        let p = pairs(&chat, 100_000, 6, 8);
        assert_eq!(p.len(), 48);
        let even = 100_000 / 48;
        assert!(p.values().all(|&n| n.abs_diff(even) <= even / 100), "{p:?}");
    }

    /// Connections per target counted one by one through `endpoints`.
    fn counted(w: &Workload, n: u64, t: usize) -> Vec<u64> {
        let mut counts = vec![0; t];
        for i in 0..n {
            counts[w.endpoints(i, t, 3).0] += 1;
        }
        counts
    }

    #[test]
    fn target_counts_are_what_endpoints_does() {
        // Exact where the spread is: round robin, and uniform rooms that
        // the targets divide or not (3 rooms on 2 targets: rooms 0 and 2
        // meet on the first, which takes two thirds).
        for (args, n, t) in [
            (&["--workload", "idle"][..], 10_007u64, 3usize),
            (&["--workload", "echo"], 5, 8),
            (&["-c", "100000", "--rooms", "1000"], 100_000, 6),
            (&["-c", "300", "--rooms", "3"], 300, 2),
            (&["-c", "10000", "--rooms", "7"], 9_999, 3),
            (&["-c", "10", "--rooms", "50"], 10, 4),
        ] {
            let w = workload(args);
            let counts = w.target_counts(n, t);
            assert_eq!(counts, counted(&w, n, t), "{args:?} {n} over {t}");
            assert_eq!(counts.iter().sum::<u64>(), n, "{args:?}");
        }
        let w = workload(&["-c", "300", "--rooms", "3"]);
        assert_eq!(w.target_counts(300, 2), vec![200, 100]);
        assert_eq!(w.target_counts(0, 2), vec![0, 0]);
        // Zipf: the target of the largest room takes far more than its
        // sixth (room 1 of 100 alone is 19 %); the expectation is within a
        // few connections of the spread.
        let w = workload(&["-c", "100000", "--rooms", "100", "--room-dist", "zipf:1"]);
        let counts = w.target_counts(100_000, 6);
        let real = counted(&w, 100_000, 6);
        for (c, r) in counts.iter().zip(&real) {
            assert!(c.abs_diff(*r) <= 20, "{counts:?} against {real:?}");
        }
        assert!(counts[0] > 28_000, "{counts:?}");
        assert_eq!(w.target_counts(100_000, 0).len(), 1);
    }

    #[test]
    fn a_room_meets_on_one_target() {
        for args in [
            &["-c", "100000", "--rooms", "1000"][..],
            &["-c", "10000", "--rooms", "7"],
            &["-c", "10000", "--rooms", "50", "--room-dist", "zipf:1.1"],
        ] {
            let w = workload(args);
            let mut target_of_room = HashMap::new();
            for i in 0..10_000 {
                let (t, _) = w.endpoints(i, 6, 8);
                let seen = *target_of_room.entry(w.room_of(i)).or_insert(t);
                assert_eq!(seen, t, "room {} on two targets ({args:?})", w.room_of(i));
            }
            // and the rooms use every target
            let used: std::collections::HashSet<usize> = target_of_room.values().copied().collect();
            assert_eq!(used.len(), 6, "{args:?}");
        }
    }

    #[test]
    fn senders_are_an_exact_evenly_spread_share() {
        // 10 rooms of 100: 10 senders in each, so 100 in all.
        let w = workload(&["--chatters", "0.1", "-c", "1000", "--rooms", "10"]);
        assert_eq!(senders_by_room(&w, 1000), vec![10; 10]);
        // A tenth chatting in 30 rooms (the smoke scenario's shape): every
        // room has its 10, where every tenth index would fill 3 rooms with
        // senders and leave 27 silent.
        let w = workload(&["--chatters", "0.1", "-c", "3000", "--rooms", "30"]);
        assert_eq!(senders_by_room(&w, 3000), vec![10; 30]);
        // Rooms smaller than 1/f: each gets floor or ceil of its share, and
        // the whole run about n·f (here 1,000 rooms of 10 at 5 %: 500).
        let w = workload(&["--chatters", "0.05", "-c", "10000", "--rooms", "1000"]);
        let by_room = senders_by_room(&w, 10_000);
        assert!(by_room.iter().all(|&n| n <= 1), "{by_room:?}");
        let total: u64 = by_room.iter().sum();
        assert!((480..=520).contains(&total), "{total}");
        // Any prefix holds its share: the first 500 of 3,000 connections
        // (a ramp's first moments, or one agent's slice).
        let w = workload(&["--chatters", "0.1", "-c", "3000", "--rooms", "30"]);
        let first: u64 = senders_by_room(&w, 500).iter().sum();
        assert!((40..=60).contains(&first), "{first}");
        let all = workload(&["--chatters", "1"]);
        assert!((0..50).all(|i| all.role(i).sends));
        let none = workload(&["--chatters", "0"]);
        assert!((0..50).all(|i| !none.role(i).sends));
    }

    #[test]
    fn rooms_default_to_one_per_hundred_and_roles_say_where() {
        let w = workload(&["-c", "250", "--room-prefix", "", "--join", "url"]);
        assert_eq!(w.rooms, 3);
        assert_eq!(w.role(4).room.as_deref(), Some("room-1"));
        assert_eq!(
            w.query(&w.role(4)).unwrap(),
            "room=room-1&username=u4&proto=binary"
        );
        assert_eq!(w.join_frame(&w.role(4), [0; 4]), None);
        let idle = workload(&["--workload", "idle"]);
        assert_eq!(idle.query(&idle.role(4)), None);
        assert!(!idle.role(9).sends);
    }

    #[test]
    fn by_default_a_chat_connection_joins_with_a_join_message() {
        let w = workload(&["-c", "250", "--room-prefix", "", "--workload", "chat-json"]);
        assert_eq!(w.query(&w.role(4)).unwrap(), "proto=json");
        let frame = w.join_frame(&w.role(4), [0; 4]).unwrap();
        // an unmasked-equivalent text frame (mask 0) holding the join
        let mut reader =
            protocol::frame::MessageReader::new(protocol::frame::Role::Server, 1 << 16);
        let mut bytes = frame.to_vec();
        let mut seen = Vec::new();
        reader
            .feed(&mut bytes, |m| {
                if let protocol::frame::Message::Text(t) = m {
                    seen.push(t.to_string());
                }
                protocol::frame::Flow::Continue
            })
            .unwrap();
        assert_eq!(seen.len(), 1);
        let msg = protocol::json::decode(&seen[0]).unwrap();
        assert_eq!(msg.kind(), Some(protocol::MsgType::Join));
        assert_eq!((&*msg.room, &*msg.username), ("room-1", "u4"));
        assert_eq!(
            workload(&["--workload", "echo"]).join_frame(&w.role(4), [0; 4]),
            None
        );
    }

    #[test]
    fn the_room_prefix_separates_runs() {
        let w = workload(&["--room-prefix", "lg1a2b3c-"]);
        assert_eq!(w.role(4).room.as_deref(), Some("lg1a2b3c-room-4"));
    }

    #[test]
    fn the_room_prefix_is_encoded_in_the_url() {
        let w = workload(&[
            "--join",
            "url",
            "--room-prefix",
            "a b&x=1\r\nX-Inject: 1\n-",
        ]);
        let q = w.query(&w.role(4)).unwrap();
        assert!(
            q.starts_with("room=a+b%26x%3D1%0D%0AX-Inject%3A+1%0A-room-4&username="),
            "{q}"
        );
        let room: Vec<_> = form_urlencoded::parse(q.as_bytes()).collect();
        assert_eq!(room[0].1, "a b&x=1\r\nX-Inject: 1\n-room-4");
    }

    #[test]
    fn churn_lifetimes_average_the_mean() {
        let w = workload(&["-c", "1000", "--churn", "100"]);
        assert_eq!(w.mean_lifetime, Some(Duration::from_secs(10)));
        let n = 20_000u64;
        let total: f64 = (0..n)
            .map(|i| w.lifetime(i, i % 7).unwrap().as_secs_f64())
            .sum();
        let mean = total / n as f64;
        assert!((9.5..10.5).contains(&mean), "mean lifetime {mean}");
        assert_eq!(w.lifetime(3, 1), w.lifetime(3, 1));
        assert_ne!(w.lifetime(3, 1), w.lifetime(3, 2));
        assert_eq!(workload(&[]).lifetime(3, 1), None);
    }

    /// Options parsed but not checked, as a worker or agent gets them.
    fn unchecked(args: &[&str]) -> RunOpts {
        let cli = crate::opts::Cli::parse_from(["loadgen", "run", "ws://h/"].iter().chain(args));
        cli.into_unchecked_run().unwrap()
    }

    #[test]
    fn bad_knobs_are_refused() {
        let e = Workload::from_opts(&unchecked(&["--chatters", "1.5"])).unwrap_err();
        assert_eq!(e.to_string(), "--chatters must be between 0 and 1, not 1.5");
        let e = Workload::from_opts(&unchecked(&["--size", "8"])).unwrap_err();
        assert_eq!(e.flag, "size");
        let e = Workload::from_opts(&unchecked(&["--rate", "1e-20"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--rate must be 0.001 to 1000000 messages per second, not 1e-20"
        );
        // A share's ramp may be below the run's minimum: not checked here.
        assert!(Workload::from_opts(&unchecked(&["--ramp", "1e-9"])).is_ok());
        let mut both = unchecked(&["--rooms", "3"]);
        both.room_size = Some(5);
        let e = Workload::from_opts(&both).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("--room-size cannot be used with --rooms"));
    }

    /// Members of each room among the first `n` connections.
    fn members(w: &Workload, n: u64) -> Vec<u64> {
        let mut counts = vec![0; w.rooms as usize];
        for i in 0..n {
            counts[w.room_of(i) as usize] += 1;
        }
        counts
    }

    #[test]
    fn uniform_is_index_mod_rooms() {
        let w = workload(&["-c", "1000", "--rooms", "7", "--room-prefix", "p-"]);
        assert_eq!(w.room_dist, RoomDist::Uniform);
        assert!((0..5000).all(|i| w.room_of(i) == i % 7));
        assert_eq!(w.role(12).room.as_deref(), Some("p-room-5"));
        assert_eq!(w.largest_room(1000), 143);
        assert_eq!(*members(&w, 1000).iter().max().unwrap(), 143);
        let explicit = workload(&["-c", "1000", "--rooms", "7", "--room-dist", "uniform"]);
        assert!((0..5000).all(|i| explicit.room_of(i) == i % 7));
    }

    #[test]
    fn room_size_gives_enough_rooms_of_at_most_that_size() {
        for (n, k) in [
            (1000u64, 30u64),
            (1000, 1),
            (1000, 1000),
            (1000, 5000),
            (999, 10),
            (1, 7),
        ] {
            let w = workload(&["-c", &n.to_string(), "--room-size", &k.to_string()]);
            assert_eq!(w.rooms, n.div_ceil(k).max(1), "{n} / {k}");
            let counts = members(&w, n);
            assert!(counts.iter().all(|&c| c <= k), "{n} / {k}: {counts:?}");
            assert_eq!(w.largest_room(n), *counts.iter().max().unwrap());
        }
        // Zero connections still make one room.
        assert_eq!(workload(&["-c", "0", "--room-size", "10"]).rooms, 1);
    }

    #[test]
    fn room_size_and_rooms_conflict() {
        let e = crate::opts::Cli::try_parse_from([
            "loadgen",
            "run",
            "ws://h/",
            "--rooms",
            "3",
            "--room-size",
            "4",
        ])
        .unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict);
        let text = e.to_string();
        assert!(
            text.contains("--room-size") && text.contains("--rooms"),
            "{text}"
        );
    }

    #[test]
    fn zipf_follows_its_weights_in_every_prefix() {
        let n = 100_000u64;
        let w = workload(&[
            "-c",
            &n.to_string(),
            "--rooms",
            "100",
            "--room-dist",
            "zipf:1",
        ]);
        assert_eq!(w.room_dist, RoomDist::Zipf(1.0));
        let harmonic: f64 = (1..=100).map(|k| 1.0 / k as f64).sum();
        let share = |k: u64| 1.0 / ((k + 1) as f64 * harmonic);
        for prefix in [100u64, 1000, 10_000, n] {
            let counts = members(&w, prefix);
            for (k, &c) in counts.iter().enumerate() {
                let expected = prefix as f64 * share(k as u64);
                assert!(
                    (c as f64 - expected).abs() <= 3.0 + expected * 0.01,
                    "first {prefix}: room {k} has {c}, expected {expected:.1}"
                );
            }
        }
        let counts = members(&w, n);
        // Room 1 gets about N·w1 = 19279; largest_room says so.
        assert_eq!(w.largest_room(n), (n as f64 * share(0)).round() as u64);
        assert!(counts[0].abs_diff(w.largest_room(n)) <= 3, "{}", counts[0]);
        // Counts fall with rank: every decile of rooms holds fewer than the last.
        let deciles: Vec<u64> = counts.chunks(10).map(|c| c.iter().sum()).collect();
        assert!(deciles.windows(2).all(|d| d[0] > d[1]), "{deciles:?}");
        assert!(
            counts.windows(2).take(20).all(|c| c[0] >= c[1]),
            "{counts:?}"
        );
    }

    #[test]
    fn zipf_is_deterministic_and_always_in_range() {
        let args = ["-c", "5000", "--room-size", "50", "--room-dist", "zipf:1.2"];
        let (a, b) = (workload(&args), workload(&args));
        assert_eq!(a.rooms, 100);
        let far = [u64::MAX, u64::MAX - 1, 1 << 40, 1 << 63, 123_456_789_012];
        for i in 0..20_000 {
            assert_eq!(a.role(i), b.role(i));
        }
        for i in (0..20_000).chain(far) {
            assert_eq!(a.room_of(i), b.room_of(i));
            assert!(a.room_of(i) < 100, "{i}");
        }
        // The golden sequence: the same bits whatever the index's size.
        assert!((golden(0) - (5f64.sqrt() - 1.0) / 4.0).abs() < 1e-15);
        assert!((golden(3) - (3.5 * (5f64.sqrt() - 1.0) / 2.0).fract()).abs() < 1e-15);
        assert!(far.iter().all(|&i| (0.0..1.0).contains(&golden(i))));
    }

    #[test]
    fn zipf_exponent_extremes() {
        // Huge: everyone in the first room.
        let w = workload(&["-c", "1000", "--rooms", "10", "--room-dist", "zipf:1e300"]);
        assert_eq!(members(&w, 1000)[0], 1000);
        assert_eq!(w.largest_room(1000), 1000);
        // Tiny: as good as uniform.
        let w = workload(&["-c", "1000", "--rooms", "10", "--room-dist", "zipf:1e-9"]);
        assert!(members(&w, 1000).iter().all(|&c| c.abs_diff(100) <= 2));
        // One room: everyone in it.
        let w = workload(&["-c", "10", "--rooms", "1", "--room-dist", "zipf:2"]);
        assert!((0..100).all(|i| w.room_of(i) == 0));
    }

    #[test]
    fn room_dist_parses_and_says_what_it_wants() {
        for (text, dist) in [
            ("uniform", RoomDist::Uniform),
            ("zipf:1", RoomDist::Zipf(1.0)),
            ("zipf:1.2", RoomDist::Zipf(1.2)),
            ("zipf:0.001", RoomDist::Zipf(0.001)),
        ] {
            assert_eq!(text.parse::<RoomDist>(), Ok(dist));
            assert_eq!(dist.to_string().parse::<RoomDist>(), Ok(dist));
        }
        for bad in [
            "", "zipf", "zipf:", "zipf:0", "zipf:-1", "zipf:nan", "zipf:inf", "Zipf:1", "normal",
        ] {
            let e = bad.parse::<RoomDist>().unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("expected uniform or zipf:S with S > 0, got {bad:?}")
            );
        }
        let e = crate::opts::Cli::try_parse_from([
            "loadgen",
            "run",
            "ws://h/",
            "--room-dist",
            "zipf:0",
        ])
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("--room-dist")
                && e.contains("expected uniform or zipf:S with S > 0, got \"zipf:0\""),
            "{e}"
        );
        // Through JSON (to workers and agents) as its spelling.
        let json = serde_json::to_string(&RoomDist::Zipf(1.5)).unwrap();
        assert_eq!(json, "\"zipf:1.5\"");
        assert_eq!(
            serde_json::from_str::<RoomDist>(&json).unwrap(),
            RoomDist::Zipf(1.5)
        );
        assert!(serde_json::from_str::<RoomDist>("\"zipf:-2\"").is_err());
    }

    #[test]
    fn zipf_rooms_are_bounded() {
        let mut opts = unchecked(&["--rooms", "20000000", "--room-dist", "zipf:1"]);
        let e = Workload::from_opts(&opts).unwrap_err();
        assert_eq!(e.flag, "rooms");
        opts.room_dist = RoomDist::Uniform;
        assert!(Workload::from_opts(&opts).is_ok());
    }
}
