//! The broadcast measurement: rooms of lean clients, a few senders per room
//! on an open-model timetable, every copy timed against its scheduled send
//! time.
//!
//! Open model: a sender's k-th message is due at `start + offset + k /
//! rate` whatever happened to the previous ones, and its latency counts from
//! that due time. A server (or a bench) that stalls therefore shows up as
//! latency instead of silently lowering the offered load (coordinated
//! omission).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use hdrhistogram::Histogram;
use protocol::frame::{self, Flow, Message, MessageReader, OpCode, Role};
use protocol::{MsgType, Proto};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::report::{latency_histogram, LatencySummary};
use crate::server_proc::{ServerConfig, ServerProcess};
use loadgen::chat::{self, MaskSource};
use loadgen::conn::{self, ConnectOptions};
use loadgen::proc_stats::{CpuSample, Memory};

#[derive(Debug, Clone)]
pub struct BroadcastConfig {
    pub rooms: usize,
    pub members: usize,
    /// Senders per room (the first members).
    pub senders: usize,
    /// Messages per second per sender.
    pub rate: f64,
    /// Payload bytes per message.
    pub size: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// How long to wait after the last send for copies still in flight.
    pub drain: Duration,
    pub proto: Proto,
    /// Empty: the kernel picks the source address.
    pub source_ips: Vec<IpAddr>,
    pub connect_timeout: Duration,
    /// Upgrades in flight while connecting.
    pub concurrency: usize,
    /// Bound on the wait for every member's own Join notice.
    pub join_timeout: Duration,
}

impl BroadcastConfig {
    pub fn connections(&self) -> usize {
        self.rooms * self.members
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if self.rooms == 0 || self.members == 0 {
            bail!("--rooms and --members must be at least 1");
        }
        if self.senders > self.members {
            bail!(
                "--senders ({}) exceeds --members ({})",
                self.senders,
                self.members
            );
        }
        if !(self.rate > 0.0 && self.rate.is_finite()) {
            bail!("--rate must be a positive number of messages per second");
        }
        if self.size < chat::MIN_PAYLOAD {
            bail!(
                "--size must be at least {} bytes (the payload carries the send time and sender)",
                chat::MIN_PAYLOAD
            );
        }
        if self.duration.is_zero() {
            bail!("--duration must be above zero");
        }
        if let Some(limit) = loadgen::proc_stats::open_file_limit() {
            if self.connections() as u64 + 100 > limit {
                bail!(
                    "{} connections do not fit this process's open-file limit ({limit})",
                    self.connections()
                );
            }
        }
        Ok(())
    }
}

/// Everything the report needs.
#[derive(Debug, Clone, Serialize)]
pub struct BroadcastResult {
    pub connections: usize,
    pub senders_total: usize,
    pub window_secs: f64,
    /// Messages due in the window and written.
    pub sent: u64,
    pub sent_per_sec: f64,
    /// Offered: senders × rate.
    pub offered_per_sec: f64,
    /// Copies of window messages the server should deliver: sent × members.
    pub expected_deliveries: u64,
    /// Copies of window messages received (by the end of the drain).
    pub received_deliveries: u64,
    pub lost: i64,
    /// Copies of any message received while the window was open, per second.
    pub delivered_per_sec: f64,
    pub round_trip: LatencySummary,
    pub fanout: LatencySummary,
    /// How late sends left the bench (write done − due): large values mean
    /// the bench, not the server, was behind.
    pub send_lag: LatencySummary,
    pub bench_cpu_percent: f64,
    pub server_cpu_percent: f64,
    pub server_rss_start: Memory,
    pub server_rss_end: Memory,
    pub server_errors: u64,
    pub first_server_error: Option<String>,
    pub closed_by_server: u64,
    pub disconnects: u64,
    pub undecodable: u64,
    pub connect_secs: f64,
}

/// Times are ns since `epoch`, which also stamps every payload: senders and
/// readers are in this process, so one clock measures both ends.
struct Shared {
    epoch: Instant,
    window_start: AtomicU64,
    window_end: AtomicU64,
    members: u64,
    joined: AtomicUsize,
    joined_notify: Notify,
    sent: AtomicU64,
    sent_total: AtomicU64,
    stats: Mutex<Stats>,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn in_window(&self, t: u64) -> bool {
        t >= self.window_start.load(Ordering::Relaxed)
            && t < self.window_end.load(Ordering::Relaxed)
    }

    fn stats(&self) -> std::sync::MutexGuard<'_, Stats> {
        // a panicking reader cannot leave the counters half-updated in a
        // way that matters more than losing the whole run
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Stats {
    fanout: Histogram<u64>,
    rtt: Histogram<u64>,
    send_lag: Histogram<u64>,
    received_total: u64,
    received_of_window: u64,
    delivered_in_window: u64,
    server_errors: u64,
    first_server_error: Option<String>,
    closed_by_server: u64,
    disconnects: u64,
    undecodable: u64,
}

/// One member: its number is its sender id and names it (`u{n}`).
struct Member {
    id: u32,
    username: String,
    room: String,
    writer: Arc<tokio::sync::Mutex<OwnedWriteHalf>>,
}

/// Starts a server, measures it, stops it.
pub async fn run(cfg: &BroadcastConfig, server: &ServerConfig) -> anyhow::Result<BroadcastResult> {
    cfg.validate()?;
    let server = ServerProcess::start(server)
        .await
        .context("starting the server")?;
    tracing::info!(pid = server.pid(), ws = %server.ready.ws, "server ready");
    let pid = server.pid();
    let result = measure(cfg, server.ready.ws, pid).await;
    if let Err(e) = server.stop(Duration::from_secs(15)).await {
        tracing::warn!(pid, "{e}");
    }
    result
}

/// Runs the measurement against a server already listening on `ws`, whose
/// process `pid` is measured for CPU and memory.
pub async fn measure(
    cfg: &BroadcastConfig,
    ws: SocketAddr,
    pid: u32,
) -> anyhow::Result<BroadcastResult> {
    cfg.validate()?;
    let server_rss_start = Memory::of_pid(pid)?;
    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        window_start: AtomicU64::new(u64::MAX),
        window_end: AtomicU64::new(u64::MAX),
        members: cfg.members as u64,
        joined: AtomicUsize::new(0),
        joined_notify: Notify::new(),
        sent: AtomicU64::new(0),
        sent_total: AtomicU64::new(0),
        stats: Mutex::new(Stats {
            fanout: latency_histogram(),
            rtt: latency_histogram(),
            send_lag: latency_histogram(),
            received_total: 0,
            received_of_window: 0,
            delivered_in_window: 0,
            server_errors: 0,
            first_server_error: None,
            closed_by_server: 0,
            disconnects: 0,
            undecodable: 0,
        }),
    });

    // connect everyone, a bounded number of upgrades at a time
    let total = cfg.connections();
    let connect_start = Instant::now();
    let mut readers = JoinSet::new();
    let mut senders = Vec::new();
    let mut connecting = JoinSet::new();
    let mut next = 0;
    while next < total || !connecting.is_empty() {
        while next < total && connecting.len() < cfg.concurrency.max(1) {
            let (room, username) = (format!("room-{}", next / cfg.members), format!("u{next}"));
            let opts = ConnectOptions {
                server: ws,
                source: (!cfg.source_ips.is_empty())
                    .then(|| cfg.source_ips[next % cfg.source_ips.len()]),
                path_and_query: format!(
                    "/?room={room}&username={username}&proto={}",
                    cfg.proto.as_str()
                ),
                host: None,
                extra: Default::default(),
                tls: None,
                timeout: cfg.connect_timeout,
                nodelay: true,
            };
            let id = next as u32;
            connecting.spawn(async move { (id, room, username, conn::connect(&opts).await) });
            next += 1;
        }
        let Some(joined) = connecting.join_next().await else {
            break;
        };
        let (id, room, username, up) = joined.context("connect task")?;
        let up = up.with_context(|| format!("connecting member {id}"))?;
        let (rd, wr) = up
            .stream
            .into_plain()
            .context("the bench connects over plain ws://")?
            .into_split();
        let member = Member {
            id,
            username,
            room,
            writer: Arc::new(tokio::sync::Mutex::new(wr)),
        };
        if (id as usize % cfg.members) < cfg.senders {
            senders.push((member.id, member.room.clone(), member.writer.clone()));
        }
        readers.spawn(read_loop(rd, up.leftover, member, shared.clone()));
    }
    let connect_secs = connect_start.elapsed().as_secs_f64();
    tracing::info!(
        connections = total,
        secs = connect_secs,
        "connected; waiting for joins"
    );

    let all_joined = async {
        loop {
            let notified = shared.joined_notify.notified();
            if shared.joined.load(Ordering::Acquire) >= total {
                return;
            }
            notified.await;
        }
    };
    if tokio::time::timeout(cfg.join_timeout, all_joined)
        .await
        .is_err()
    {
        bail!(
            "only {} of {total} members saw their own Join notice within {:?}",
            shared.joined.load(Ordering::Acquire),
            cfg.join_timeout
        );
    }

    // the timetable
    let start = Instant::now() + Duration::from_millis(100);
    let window_start = start + cfg.warmup;
    let window_end = window_start + cfg.duration;
    let ns = |t: Instant| t.duration_since(shared.epoch).as_nanos() as u64;
    shared
        .window_start
        .store(ns(window_start), Ordering::Relaxed);
    shared.window_end.store(ns(window_end), Ordering::Relaxed);
    let interval = Duration::from_secs_f64(1.0 / cfg.rate);
    let n_senders = senders.len();
    tracing::info!(
        senders = n_senders,
        warmup = ?cfg.warmup,
        duration = ?cfg.duration,
        "sending"
    );
    let mut sending = JoinSet::new();
    for (i, (id, room, writer)) in senders.into_iter().enumerate() {
        // spread the senders over one interval instead of firing together
        let offset = interval.mul_f64(i as f64 / n_senders.max(1) as f64);
        let timetable = Timetable {
            first: start + offset,
            interval,
            end: window_end,
        };
        sending.spawn(send_loop(
            id,
            room,
            writer,
            timetable,
            cfg.proto,
            cfg.size,
            shared.clone(),
        ));
    }

    tokio::time::sleep_until(window_start.into()).await;
    let (bench0, server0) = (CpuSample::of_self()?, CpuSample::of_pid(pid)?);
    tokio::time::sleep_until(window_end.into()).await;
    let (bench1, server1) = (CpuSample::of_self()?, CpuSample::of_pid(pid)?);
    while let Some(r) = sending.join_next().await {
        if let Ok(Err(e)) = r {
            tracing::warn!("sender stopped early: {e:#}");
        }
    }

    // wait for the copies still in flight
    let expected = shared.sent.load(Ordering::Relaxed) * shared.members;
    let drain_end = tokio::time::Instant::now() + cfg.drain;
    while tokio::time::Instant::now() < drain_end && shared.stats().received_of_window < expected {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let server_rss_end = Memory::of_pid(pid)?;
    readers.abort_all();

    let sent = shared.sent.load(Ordering::Relaxed);
    let st = shared.stats();
    let secs = cfg.duration.as_secs_f64();
    Ok(BroadcastResult {
        connections: total,
        senders_total: n_senders,
        window_secs: secs,
        sent,
        sent_per_sec: sent as f64 / secs,
        offered_per_sec: n_senders as f64 * cfg.rate,
        expected_deliveries: expected,
        received_deliveries: st.received_of_window,
        lost: expected as i64 - st.received_of_window as i64,
        delivered_per_sec: st.delivered_in_window as f64 / secs,
        round_trip: LatencySummary::from_nanos(&st.rtt),
        fanout: LatencySummary::from_nanos(&st.fanout),
        send_lag: LatencySummary::from_nanos(&st.send_lag),
        bench_cpu_percent: bench0.percent_until(&bench1),
        server_cpu_percent: server0.percent_until(&server1),
        server_rss_start,
        server_rss_end,
        server_errors: st.server_errors,
        first_server_error: st.first_server_error.clone(),
        closed_by_server: st.closed_by_server,
        disconnects: st.disconnects,
        undecodable: st.undecodable,
        connect_secs,
    })
}

/// When a sender's messages are due: `first`, then every `interval`,
/// stopping before `end`.
#[derive(Debug, Clone, Copy)]
pub struct Timetable {
    pub first: Instant,
    pub interval: Duration,
    pub end: Instant,
}

impl Timetable {
    /// The k-th due time, `None` once it reaches the end.
    pub fn due(&self, k: u32) -> Option<Instant> {
        let t = self.first + self.interval * k;
        (t < self.end).then_some(t)
    }
}

async fn send_loop(
    id: u32,
    room: String,
    writer: Arc<tokio::sync::Mutex<OwnedWriteHalf>>,
    timetable: Timetable,
    proto: Proto,
    size: usize,
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let mut masks = MaskSource::new(u64::from(id).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut k = 0;
    while let Some(due) = timetable.due(k) {
        k += 1;
        // Late? Send at once: the payload still carries the due time.
        tokio::time::sleep_until(due.into()).await;
        let due_ns = due.duration_since(shared.epoch).as_nanos() as u64;
        let payload = chat::encode_payload(due_ns, id, size);
        let frame = chat::chat_frame(proto, &room, &payload, masks.next_mask());
        writer
            .lock()
            .await
            .write_all(&frame)
            .await
            .with_context(|| format!("sender {id} write"))?;
        shared.sent_total.fetch_add(1, Ordering::Relaxed);
        if shared.in_window(due_ns) {
            shared.sent.fetch_add(1, Ordering::Relaxed);
            let lag = shared.now_ns().saturating_sub(due_ns);
            shared.stats().send_lag.saturating_record(lag.max(1));
        }
    }
    Ok(())
}

/// What one read's worth of frames produced, applied to the shared stats
/// under one lock.
#[derive(Default)]
struct Batch {
    /// (latency ns, own message) of copies of window messages
    window_copies: Vec<(u64, bool)>,
    chats: u64,
    delivered_in_window: u64,
    server_error: Option<String>,
    server_errors: u64,
    undecodable: u64,
    joined: bool,
    closed: bool,
    pongs: Vec<Bytes>,
}

async fn read_loop(mut rd: OwnedReadHalf, leftover: Vec<u8>, me: Member, shared: Arc<Shared>) {
    let mut reader = MessageReader::new(Role::Client, 1 << 20);
    let mut buf = leftover;
    let mut joined = false;
    loop {
        if !buf.is_empty() {
            let mut batch = Batch::default();
            let now = shared.now_ns();
            let fed = reader.feed(&mut buf, |m| {
                on_frame(m, &me, joined, now, &shared, &mut batch)
            });
            if fed.is_err() {
                batch.undecodable += 1;
                batch.closed = true;
            }
            joined |= batch.joined;
            let closed = batch.closed;
            for pong in std::mem::take(&mut batch.pongs) {
                let _ = me.writer.lock().await.write_all(&pong).await;
            }
            apply(&shared, batch);
            if closed {
                return;
            }
        }
        if buf.capacity() < 8192 {
            buf = vec![0; 8192];
        }
        buf.resize(buf.capacity(), 0);
        match rd.read(&mut buf).await {
            Ok(0) | Err(_) => {
                shared.stats().disconnects += 1;
                return;
            }
            Ok(n) => buf.truncate(n),
        }
    }
}

fn on_frame(
    m: Message<'_>,
    me: &Member,
    joined: bool,
    now: u64,
    shared: &Shared,
    batch: &mut Batch,
) -> Flow {
    let msg = match &m {
        Message::Ping(p) => {
            batch
                .pongs
                .push(frame::encode_frame(OpCode::Pong, p, Some(me.mask_hint())));
            return Flow::Continue;
        }
        Message::Pong(_) => return Flow::Continue,
        Message::Close(_) => {
            batch.closed = true;
            return Flow::Stop;
        }
        Message::Text(_) | Message::Binary(_) => match chat::decode_message(&m) {
            Some(Ok(msg)) => msg,
            _ => {
                batch.undecodable += 1;
                return Flow::Continue;
            }
        },
    };
    match msg.kind() {
        Some(MsgType::Chat) => {
            batch.chats += 1;
            if shared.in_window(now) {
                batch.delivered_in_window += 1;
            }
            match chat::decode_payload(&msg.payload) {
                Some((due, sender)) if shared.in_window(due) => {
                    batch
                        .window_copies
                        .push((now.saturating_sub(due), sender == me.id));
                }
                Some(_) => {}
                None => batch.undecodable += 1,
            }
        }
        Some(MsgType::Join) if !joined && msg.username == me.username => batch.joined = true,
        Some(MsgType::System) => {
            if let Some(text) = msg.payload_str().filter(|t| t.starts_with("error: ")) {
                batch.server_errors += 1;
                batch.server_error.get_or_insert_with(|| text.to_string());
            }
        }
        _ => {}
    }
    Flow::Continue
}

impl Member {
    /// Pongs are rare; a fixed mask derived from the id is enough.
    fn mask_hint(&self) -> [u8; 4] {
        (self.id ^ 0x5EED_0001).to_le_bytes()
    }
}

fn apply(shared: &Shared, batch: Batch) {
    if batch.joined {
        shared.joined.fetch_add(1, Ordering::AcqRel);
        shared.joined_notify.notify_waiters();
    }
    if batch.chats == 0 && batch.server_errors == 0 && batch.undecodable == 0 && !batch.closed {
        return;
    }
    let mut st = shared.stats();
    st.received_total += batch.chats;
    st.delivered_in_window += batch.delivered_in_window;
    st.received_of_window += batch.window_copies.len() as u64;
    for (lat, own) in batch.window_copies {
        let lat = lat.max(1);
        st.fanout.saturating_record(lat);
        if own {
            st.rtt.saturating_record(lat);
        }
    }
    st.server_errors += batch.server_errors;
    if st.first_server_error.is_none() {
        st.first_server_error = batch.server_error;
    }
    st.undecodable += batch.undecodable;
    if batch.closed {
        st.closed_by_server += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timetable_is_fixed_and_bounded() {
        let first = Instant::now();
        let t = Timetable {
            first,
            interval: Duration::from_millis(50),
            end: first + Duration::from_millis(200),
        };
        let due: Vec<_> = (0..10).map_while(|k| t.due(k)).collect();
        assert_eq!(due.len(), 4);
        assert_eq!(due[3] - due[0], Duration::from_millis(150));
    }
}
