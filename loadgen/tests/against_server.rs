//! The `loadgen` binary against the real chat server (a child process on
//! ephemeral ports): exact counts for the chat workloads, fan-out over
//! zipf-sized rooms, source address spreading seen from the kernel's
//! socket table, and the seed's shortcut.

mod common;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use clap::Parser;
use common::{chat_server, run_json, Loadgen};
use loadgen::stats::{Latency, Totals};
use loadgen::workload::Workload;
use protocol::Proto;

const N: u64 = 200;
const ROOMS: u64 = 4;
const MEMBERS: u64 = N / ROOMS;
const CHATTERS: f64 = 0.1;
const RATE: u64 = 5;
const DURATION_SECS: u64 = 2;
const SIZE: usize = 64;

/// The senders, as loadgen's own plan chooses them: `Workload::role` is
/// the documented rule (each room's share, spread evenly over its members).
fn senders() -> Vec<u64> {
    let rooms = ROOMS.to_string();
    let chatters = CHATTERS.to_string();
    let n = N.to_string();
    let args = [
        "run",
        "ws://127.0.0.1:1/",
        "-c",
        &n,
        "--rooms",
        &rooms,
        "--chatters",
        &chatters,
    ];
    let cli = loadgen::opts::Cli::try_parse_from(std::iter::once("loadgen").chain(args))
        .expect("the test's own arguments parse");
    let workload = Workload::from_opts(&cli.into_run().expect("within limits")).unwrap();
    (0..N).filter(|&i| workload.role(i).sends).collect()
}

/// 200 connections in 4 rooms of 50, 20 of them chatting at 5/s for 2 s:
/// every figure that does not depend on timing must come out exact, with
/// either way of joining (`join`: "message" or "url").
fn exact_chat_counts(workload: &str, proto: Proto, join: &str) {
    let server = chat_server();
    let run = run_json(
        &[
            "run",
            &server.url(),
            "--workload",
            workload,
            "--connections",
            &N.to_string(),
            "--rooms",
            &ROOMS.to_string(),
            "--chatters",
            &CHATTERS.to_string(),
            "--rate",
            &RATE.to_string(),
            "--size",
            &SIZE.to_string(),
            "--duration",
            &format!("{DURATION_SECS}s"),
            "--drain",
            "1s",
            "--room-prefix",
            "t-",
            "--progress",
            "never",
            "--join",
            join,
        ],
        Duration::from_secs(25),
    );
    run.assert_code(0);
    let t = run.totals();
    let why = run.describe();

    // Every connection made it and was held to the end, then closed by us.
    assert_eq!(t.u("connects_attempted"), N, "{why}");
    assert_eq!(t.u("connects_ok"), N, "{why}");
    assert!(t.labels("connect_errors").is_empty(), "{why}");
    assert_eq!(t.u("peak_connections"), N, "{why}");
    // "Held at end": connections that lasted until we closed them.
    assert_eq!(t.u("open_connections"), N, "{why}");
    assert_eq!(t.u("closes_by_us"), N, "{why}");
    assert!(t.labels("closes_unexpected").is_empty(), "{why}");
    assert_eq!(t.latency_count("connect"), N, "{why}");

    // The senders sent on their timetable: each one at most RATE × duration
    // messages, and not many fewer (they start within one interval of
    // their connect, which takes milliseconds here).
    let senders = senders();
    assert_eq!(senders.len(), 20);
    let s = senders.len() as u64;
    let sent = t.u("messages_sent");
    let most = s * RATE * DURATION_SECS;
    assert!(
        sent <= most && sent >= most * 7 / 10,
        "sent {sent}, expected about {most}: {why}"
    );

    // Every room has its share of the senders (5 of its 50 members), and
    // every chat frame has the same size: the rooms' names ("t-room-0" ..
    // "t-room-3") are of equal length. Bytes are wire bytes: the chat
    // frames plus each connection's masked close frame (2-byte header,
    // 4-byte mask, 2-byte code).
    for room in 0..ROOMS {
        let in_room = senders.iter().filter(|&&i| i % ROOMS == room).count();
        assert_eq!(in_room, 5, "senders in room {room}: {senders:?}");
    }
    let payload = loadgen::chat::encode_payload(0, senders[0] as u32, SIZE);
    let frame = loadgen::chat::chat_frame(proto, "t-room-1", &payload, [0; 4]).len() as u64;
    // With `--join message` each connection sent a join message first,
    // whose size varies with its name.
    let joins: u64 = (0..N)
        .filter(|_| join == "message")
        .map(|i| {
            let msg = protocol::ChatMessage::new(protocol::MsgType::Join)
                .with_room(format!("t-room-{}", i % ROOMS))
                .with_username(format!("u{i}"));
            loadgen::chat::encode_frame(proto, &msg, [0; 4]).len() as u64
        })
        .sum();
    assert_eq!(
        t.u("bytes_sent"),
        sent * frame + N * 8 + joins,
        "{frame}-byte frames: {why}"
    );

    // Nothing dropped: each message came back to its sender once and
    // reached the 49 other members of its room once.
    assert_eq!(t.u("messages_lost"), 0, "{why}");
    assert_eq!(t.latency_count("round_trip"), sent, "{why}");
    assert_eq!(t.latency_count("fanout"), sent * (MEMBERS - 1), "{why}");
    assert_eq!(t.latency_count("echo"), 0, "{why}");
    // and the summary's "of which copies" is exactly that: sent × room size
    assert_eq!(t.u("copies_received"), sent * MEMBERS, "{why}");

    // Received: a welcome per connection; in each room the k-th member to
    // join sees its own and the k-1 earlier joins (at least m(m+1)/2
    // notices per room, whatever the order); every chat × room size; and,
    // at the end, leave notices of members that closed before it
    // (0 ..= m(m-1)/2). The server's workers run in parallel, so two
    // members joining at the same instant may both be in the room when
    // each one's notice goes out: a member sees at most every join of its
    // room, m² in all, which bounds the extra notices by m(m-1)/2.
    let welcomes = N;
    let joins = ROOMS * MEMBERS * (MEMBERS + 1) / 2;
    let chats = sent * MEMBERS;
    let least = welcomes + joins + chats;
    let concurrent_joins_at_most = ROOMS * MEMBERS * (MEMBERS - 1) / 2;
    let leaves_at_most = ROOMS * MEMBERS * (MEMBERS - 1) / 2;
    let most = least + concurrent_joins_at_most + leaves_at_most;
    let received = t.u("messages_received");
    assert!(
        (least..=most).contains(&received),
        "received {received}, expected {least} ..= {most} (join races and leave notices): {why}"
    );

    // The per-second intervals add up to the totals.
    let json = run.json.as_ref().unwrap();
    let intervals = json["intervals"].as_array().expect("intervals array");
    assert!(intervals.len() >= DURATION_SECS as usize, "{why}");
    let sum = |key: &str| -> u64 { intervals.iter().map(|iv| iv[key].as_u64().unwrap()).sum() };
    assert_eq!(sum("messages_sent"), sent, "{why}");
    assert_eq!(sum("messages_received"), received, "{why}");
    assert_eq!(sum("connects_ok"), N, "{why}");

    // The report reads back as mergeable totals whose histograms agree with
    // the printed figures (deserializing recomputes them from the HDR data).
    let parsed: Totals =
        serde_json::from_value(json["totals"].clone()).expect("totals deserialize");
    let rt = parsed
        .latency(Latency::RoundTrip)
        .expect("round_trip histogram");
    assert_eq!(rt.count, sent);
    assert_eq!(rt.p99_ms, t.latency_ms("round_trip", "p99_ms"), "{why}");
    assert_eq!(rt.max_ms, t.latency_ms("round_trip", "max_ms"), "{why}");
    assert!(
        rt.min_ms > 0.0
            && rt.min_ms <= rt.p50_ms
            && rt.p50_ms <= rt.p99_ms
            && rt.p99_ms <= rt.max_ms
    );
    // Copies are timed from their scheduled send: none can have taken
    // longer than the run plus the drain and still be counted.
    assert!(rt.max_ms < 3000.0, "{why}");

    // The summary table went to stdout.
    assert!(!run.stdout.trim().is_empty(), "{why}");
}

#[test]
fn chat_binary_counts_are_exact() {
    exact_chat_counts("chat-binary", Proto::Binary, "message");
}

#[test]
fn chat_json_counts_are_exact() {
    exact_chat_counts("chat-json", Proto::Json, "message");
}

#[test]
fn chat_counts_are_exact_when_joining_through_the_url() {
    exact_chat_counts("chat-binary", Proto::Binary, "url");
}

/// Rooms of zipf sizes: 200 connections over 8 rooms with shares 1/k^1.2
/// (the first room holds about 86, the last about 7), 20 of them chatting.
/// Each copy of a message reaches every member of its room: the sender's
/// own copy is a round trip, the others' are fan-out. The plan comes from
/// the library, as every process and agent computes it.
#[test]
fn zipf_rooms_fan_out_to_each_room_s_own_members() {
    let server = chat_server();
    let args = [
        "run",
        &server.url(),
        "--workload",
        "chat-binary",
        "--connections",
        &N.to_string(),
        "--rooms",
        "8",
        "--room-dist",
        "zipf:1.2",
        "--chatters",
        &CHATTERS.to_string(),
        "--rate",
        &RATE.to_string(),
        "--duration",
        &format!("{DURATION_SECS}s"),
        "--drain",
        "1s",
        "--room-prefix",
        "z-",
        "--progress",
        "never",
    ];
    let cli = loadgen::opts::Cli::try_parse_from(std::iter::once("loadgen").chain(args))
        .expect("the test's own arguments parse");
    let opts = cli.into_run().expect("and are within loadgen's limits");
    let workload = Workload::from_opts(&opts).unwrap();
    let mut members: BTreeMap<String, u64> = BTreeMap::new();
    let mut senders_rooms = Vec::new();
    for i in 0..N {
        let role = workload.role(i);
        let room = role.room.expect("chat connections have a room");
        *members.entry(room.clone()).or_default() += 1;
        if role.sends {
            senders_rooms.push(room);
        }
    }
    // Zipf, not uniform: the first room is far above the mean of 25 and
    // every room is used.
    let sizes: Vec<u64> = (0..8).map(|k| members[&format!("z-room-{k}")]).collect();
    assert_eq!(sizes.iter().sum::<u64>(), N);
    assert!(sizes[0] > 3 * (N / 8) && sizes[7] > 0, "{sizes:?}");
    assert!(
        workload.largest_room(N).abs_diff(sizes[0]) <= 3,
        "{sizes:?}"
    );
    assert_eq!(senders_rooms.len(), 20);

    let run = run_json(&args, Duration::from_secs(25));
    run.assert_code(0);
    let t = run.totals();
    let why = run.describe();
    assert_eq!(t.u("connects_ok"), N, "{why}");
    assert_eq!(t.u("open_connections"), N, "{why}");
    assert!(t.labels("closes_unexpected").is_empty(), "{why}");

    // Nothing dropped: every message came back to its sender once.
    let sent = t.u("messages_sent");
    assert!(sent > 0, "{why}");
    assert_eq!(t.u("messages_lost"), 0, "{why}");
    assert_eq!(t.latency_count("round_trip"), sent, "{why}");

    // Fan-out: each sender's messages × the other members of its room.
    // The report gives the senders' total only, but each sender sends on
    // its own timetable over the same window (from the last join to the
    // end), so each sent q or q + 1 messages, q = sent / senders, and
    // exactly r = sent - q·senders of them sent q + 1. That pins the
    // fan-out between r extra messages in the smallest and in the largest
    // senders' rooms (exact when r = 0).
    let others: Vec<u64> = senders_rooms.iter().map(|r| members[r] - 1).collect();
    let s = others.len() as u64;
    let (q, r) = (sent / s, (sent % s) as usize);
    let mut sorted = others.clone();
    sorted.sort_unstable();
    let base = q * others.iter().sum::<u64>();
    let least = base + sorted[..r].iter().sum::<u64>();
    let most = base + sorted[s as usize - r..].iter().sum::<u64>();
    let fanout = t.latency_count("fanout");
    assert!(
        (least..=most).contains(&fanout),
        "fan-out copies {fanout}, expected {least} ..= {most} ({sent} messages from senders \
         with {others:?} other members): {why}"
    );
    // A uniform spread (every room 25) would have given 24 per message.
    assert_ne!(fanout, sent * (N / 8 - 1), "{why}");
}

/// Established IPv4 connections to 127.0.0.1:`port`, by local address, as
/// the kernel lists them in /proc/net/tcp (addresses are the raw in-memory
/// network-order words printed as hex, hence the native-endian bytes).
fn established_to(port: u16) -> BTreeMap<Ipv4Addr, u64> {
    let parse = |field: &str| -> (Ipv4Addr, u16) {
        let (ip, p) = field.split_once(':').unwrap();
        let ip = u32::from_str_radix(ip, 16).unwrap();
        (
            Ipv4Addr::from(ip.to_ne_bytes()),
            u16::from_str_radix(p, 16).unwrap(),
        )
    };
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let mut by_source = BTreeMap::new();
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        const ESTABLISHED: &str = "01";
        if f.len() < 4 || f[3] != ESTABLISHED {
            continue;
        }
        if parse(f[2]) != (Ipv4Addr::LOCALHOST, port) {
            continue;
        }
        *by_source.entry(parse(f[1]).0).or_default() += 1;
    }
    by_source
}

#[test]
fn source_addresses_each_carry_their_share() {
    let server = chat_server();
    let lg = Loadgen::spawn_json(&[
        "run",
        &server.url(),
        "--workload",
        "idle",
        "--connections",
        "100",
        "--source-ips",
        "127.0.0.2-127.0.0.5",
        "--duration",
        "3s",
        "--progress",
        "never",
    ]);
    let deadline = Instant::now() + Duration::from_millis(2500);
    let seen = loop {
        let seen = established_to(server.ws.port());
        if seen.values().sum::<u64>() == 100 || Instant::now() > deadline {
            break seen;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let run = lg.wait(Duration::from_secs(20));
    let expected: BTreeMap<Ipv4Addr, u64> =
        (2..=5).map(|d| (Ipv4Addr::new(127, 0, 0, d), 25)).collect();
    assert_eq!(seen, expected, "{}", run.describe());
    run.assert_code(0);
    let t = run.totals();
    assert_eq!(t.u("connects_ok"), 100);
    assert_eq!(t.u("open_connections"), 100, "{}", run.describe());
    assert!(
        t.labels("closes_unexpected").is_empty(),
        "{}",
        run.describe()
    );
    // Idle connections send no data frames.
    assert_eq!(t.u("messages_sent"), 0);
}

#[test]
fn the_seed_shortcut_runs() {
    let server = chat_server();
    let json = common::temp_json();
    let json_str = json.to_str().unwrap().to_owned();
    // URL CONNECTIONS DURATION_SECS CONCURRENT_LIMIT; the report is asked
    // for through the environment, which the shortcut honours too.
    let run = Loadgen::spawn_with(
        &[&server.url(), "20", "2", "10"],
        Some(json),
        &[("LOADGEN_JSON", &json_str)],
    )
    .wait(Duration::from_secs(20));
    run.assert_code(0);
    let t = run.totals();
    assert_eq!(t.u("connects_ok"), 20, "{}", run.describe());
    assert!(t.labels("connect_errors").is_empty());
    assert!(
        t.labels("closes_unexpected").is_empty(),
        "{}",
        run.describe()
    );
    // ran for the 2 seconds asked, not the default 30
    let elapsed = t.f("elapsed_secs");
    assert!((2.0..10.0).contains(&elapsed), "{}", run.describe());
    assert!(!run.stdout.trim().is_empty());
}
