//! A minimal WebSocket server on a raw tokio `TcpStream`, built from the
//! protocol crate's sans-IO handshake and framing: an echo server that any
//! WebSocket load generator should be able to drive, and a misbehaving one
//! that sends bytes no client should accept, and faulty ones (slow
//! upgrades, a stall, dropped frames, refused upgrades, 101 answers a
//! client must refuse) whose harm a load generator must measure rather
//! than hide. The server keeps its own
//! counts, so tests compare loadgen's report with what really happened.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use protocol::frame::{
    close_code, close_frame, encode_frame, Flow, Message, MessageReader, OpCode, Role,
};
use protocol::handshake::{accept_response, error_response, parse_request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// What the server does after a successful upgrade.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Sends every data frame back unmasked, answers pings and closes.
    Echo,
    /// Waits, writes these bytes as they are, then reads until the client
    /// goes away.
    SendAfter(Duration, Vec<u8>),
    /// Holds each upgrade's answer this long, then echoes: handshakes pile
    /// up, so [`Counters::max_pending`] shows how many a client keeps in
    /// flight at once.
    SlowUpgrade(Duration),
    /// Echoes, except that once, from `after` the first upgrade for
    /// `stall`, every connection stops reading and echoing: a server
    /// hiccup that an open-model client must see as latency.
    StallOnce { after: Duration, stall: Duration },
    /// Echoes the odd data frames of each connection (1st, 3rd, ...) and
    /// silently drops the even ones, counting them in [`Counters::dropped`].
    DropEverySecond,
    /// Answers every upgrade request with this status line (e.g.
    /// "403 Forbidden") and closes.
    Reject(&'static str),
    /// Answers every upgrade request with what this makes of its key (a
    /// 101 lacking a header, or choosing what was not offered), then
    /// echoes like [`Behaviour::Echo`] if the client stays.
    Answer(fn(&str) -> String),
}

/// Bytes that cannot start a frame: 0xff sets all three reserved bits.
pub fn garbage() -> Vec<u8> {
    b"\xff\xfe this is not a WebSocket frame\r\n".to_vec()
}

/// The header of a binary frame announcing 4 GiB, far above any client's
/// message limit, followed by a little of its "payload".
pub fn oversized_frame() -> Vec<u8> {
    let mut f = vec![0x82, 127];
    f.extend_from_slice(&(4u64 << 30).to_be_bytes());
    f.extend_from_slice(&[b'x'; 64]);
    f
}

/// One completed upgrade as the server saw it.
#[derive(Debug, Clone, Copy)]
pub struct Accepted {
    pub at: Instant,
    pub peer: SocketAddr,
}

/// What the server saw. Every count is updated before the server answers
/// what it counts (echo, pong, close answer), so once a client has ended
/// its run the counts are complete.
#[derive(Debug, Default)]
pub struct Counters {
    /// Upgrades completed.
    pub upgrades: AtomicU64,
    /// Data frames echoed.
    pub echoed: AtomicU64,
    /// Data frames dropped ([`Behaviour::DropEverySecond`]).
    pub dropped: AtomicU64,
    /// Every completed upgrade, in order: when and from which address.
    pub accepted: Mutex<Vec<Accepted>>,
    /// Ping frames received, by peer address.
    pub pings: Mutex<BTreeMap<SocketAddr, u64>>,
    /// Connections accepted whose upgrade is not answered yet
    /// ([`Behaviour::SlowUpgrade`]), and the most there were at once.
    pub pending: AtomicU64,
    pub max_pending: AtomicU64,
    /// When the first upgrade completed: [`Behaviour::StallOnce`]'s clock.
    first_upgrade: OnceLock<Instant>,
}

impl Counters {
    /// The completed upgrades so far.
    pub fn accepted(&self) -> Vec<Accepted> {
        self.accepted.lock().unwrap().clone()
    }

    /// Pings received so far, by peer address.
    pub fn pings(&self) -> BTreeMap<SocketAddr, u64> {
        self.pings.lock().unwrap().clone()
    }
}

/// Counts one pending upgrade while it lives.
struct Pending<'a>(&'a Counters);

impl<'a> Pending<'a> {
    fn new(c: &'a Counters) -> Pending<'a> {
        let now = c.pending.fetch_add(1, Ordering::SeqCst) + 1;
        c.max_pending.fetch_max(now, Ordering::SeqCst);
        Pending(c)
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A running server; stops when dropped.
pub struct RawServer {
    pub addr: SocketAddr,
    pub counters: Arc<Counters>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RawServer {
    pub fn start(behaviour: Behaviour) -> RawServer {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let counters = Arc::new(Counters::default());
        let (stop, mut stopped) = oneshot::channel::<()>();
        let c = counters.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener).unwrap();
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        accepted = listener.accept() => {
                            let Ok((stream, peer)) = accepted else { continue };
                            let (c, b) = (c.clone(), behaviour.clone());
                            tokio::spawn(async move {
                                let _ = serve(stream, peer, b, &c).await;
                            });
                        }
                    }
                }
            });
        });
        RawServer {
            addr,
            counters,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    mut s: TcpStream,
    peer: SocketAddr,
    behaviour: Behaviour,
    counters: &Counters,
) -> std::io::Result<()> {
    s.set_nodelay(true)?;
    let in_flight = matches!(behaviour, Behaviour::SlowUpgrade(_)).then(|| Pending::new(counters));
    let mut buf = Vec::with_capacity(1024);
    let head_len = loop {
        if s.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
        match parse_request(&buf) {
            Ok(Some((req, len))) => {
                if let Behaviour::Reject(status) = &behaviour {
                    let answer = format!(
                        "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    return s.write_all(answer.as_bytes()).await;
                }
                let answer = match &behaviour {
                    Behaviour::Answer(make) => make(req.key),
                    _ => accept_response(req.key),
                };
                if let Behaviour::SlowUpgrade(hold) = behaviour {
                    tokio::time::sleep(hold).await;
                }
                // No longer pending once the answer goes out.
                drop(in_flight);
                counters.upgrades.fetch_add(1, Ordering::Relaxed);
                let now = Instant::now();
                counters.first_upgrade.get_or_init(|| now);
                counters
                    .accepted
                    .lock()
                    .unwrap()
                    .push(Accepted { at: now, peer });
                s.write_all(answer.as_bytes()).await?;
                break len;
            }
            Ok(None) => {}
            Err(e) => {
                let answer = error_response(e.status(), "not a WebSocket upgrade");
                return s.write_all(answer.as_bytes()).await;
            }
        }
    };
    let rest = buf.split_off(head_len);
    match behaviour {
        Behaviour::Reject(_) => unreachable!("refused before the upgrade"),
        Behaviour::Echo
        | Behaviour::SlowUpgrade(_)
        | Behaviour::StallOnce { .. }
        | Behaviour::DropEverySecond
        | Behaviour::Answer(_) => echo(s, peer, rest, &behaviour, counters).await,
        Behaviour::SendAfter(delay, bytes) => {
            tokio::time::sleep(delay).await;
            s.write_all(&bytes).await?;
            // Hold the connection: a client must give up by itself.
            let mut sink = [0u8; 4096];
            let _ = tokio::time::timeout(Duration::from_secs(30), async {
                while s.read(&mut sink).await.unwrap_or(0) > 0 {}
            })
            .await;
            Ok(())
        }
    }
}

/// Echoes data frames and answers pings and closes, with the faults of
/// `behaviour` (a stall, dropped frames).
async fn echo(
    mut s: TcpStream,
    peer: SocketAddr,
    mut pending: Vec<u8>,
    behaviour: &Behaviour,
    counters: &Counters,
) -> std::io::Result<()> {
    let mut reader = MessageReader::new(Role::Server, 1 << 20);
    let mut chunk = vec![0u8; 64 * 1024];
    let drop_even = matches!(behaviour, Behaviour::DropEverySecond);
    // Data frames of this connection so far.
    let mut seen = 0u64;
    loop {
        let mut out = Vec::new();
        let mut closing = false;
        let (mut echoed, mut dropped, mut pings) = (0u64, 0u64, 0u64);
        let fed = reader.feed(&mut pending, |m| {
            let mut data = |op, bytes: &[u8]| {
                seen += 1;
                if drop_even && seen.is_multiple_of(2) {
                    dropped += 1;
                } else {
                    echoed += 1;
                    out.push(encode_frame(op, bytes, None));
                }
            };
            match m {
                Message::Binary(b) => data(OpCode::Binary, b),
                Message::Text(t) => data(OpCode::Text, t.as_bytes()),
                Message::Ping(p) => {
                    pings += 1;
                    out.push(encode_frame(OpCode::Pong, p, None));
                }
                Message::Pong(_) => {}
                Message::Close(_) => {
                    out.push(close_frame(close_code::NORMAL, "", None));
                    closing = true;
                    return Flow::Stop;
                }
            }
            Flow::Continue
        });
        if let Err(violation) = fed {
            return s
                .write_all(&close_frame(violation.code, violation.reason, None))
                .await;
        }
        if let Behaviour::StallOnce { after, stall } = behaviour {
            // What was just read waits out the stall with everything else.
            let from = *counters.first_upgrade.get().expect("upgraded") + *after;
            let until = from + *stall;
            let now = Instant::now();
            if (from..until).contains(&now) {
                tokio::time::sleep_until(until.into()).await;
            }
        }
        counters.echoed.fetch_add(echoed, Ordering::Relaxed);
        counters.dropped.fetch_add(dropped, Ordering::Relaxed);
        if pings > 0 {
            *counters.pings.lock().unwrap().entry(peer).or_default() += pings;
        }
        for frame in out {
            s.write_all(&frame).await?;
        }
        if closing {
            return Ok(());
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        pending = chunk[..n].to_vec();
    }
}
