//! `autobahn-testee HOST:PORT`: runs loadgen's own client code — the
//! upgrade of `loadgen::conn::connect`, the `MessageReader` of the hot path
//! (client role, loadgen's 16 MiB message limit), masked frames from
//! `encode_frame` queued in a `WriteQueue` — against Autobahn's fuzzing
//! server (kosoku `-m fuzzingserver`), echoing every message, so the
//! server's verdicts judge how loadgen reads RFC 6455.
//!
//! It lives in loadgen rather than testkit because it tests loadgen's
//! client path (`loadgen/tests/autobahn_client.rs` runs it), and as a
//! binary of its own rather than a `loadgen` subcommand because nobody
//! running a load test needs it.
//!
//! Protocol of the fuzzing server: `/getCaseCount` sends the number of
//! cases as a text message; `/runCase?case=N&agent=A` plays case N; then
//! `/updateReports?agent=A` ends the run (kosoku writes its reports then).
//! The server is a hostile peer: nothing it sends may panic the testee, and
//! a case that goes wrong is logged and the run goes on to the next one.

use std::io::{self, IoSlice};
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use loadgen::chat::MaskSource;
use loadgen::conn::{self, ConnectOptions, UpgradeExtras};
use loadgen::connection::MAX_MESSAGE;
use loadgen::transport::Transport;
use protocol::frame::{
    close_frame, encode_frame, Flow, Message, MessageReader, OpCode, Role as FrameRole,
};
use protocol::write_queue::WriteQueue;

/// The agent name the reports are filed under.
const AGENT: &str = "loadgen";
/// Bytes read per call, as a load connection reads.
const READ_CHUNK: usize = 64 * 1024;
/// A case that takes longer than this is abandoned (the largest, 9.x with
/// 16 MiB messages in a debug build, take a few seconds).
const CASE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long we wait for the server to close TCP once the close handshake is
/// done, or after we failed the connection (RFC 6455 7.1.1: the server
/// closes first; the client closes only if it does not).
const CLOSE_GRACE: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(addr), None) = (args.next(), args.next()) else {
        eprintln!("usage: autobahn-testee HOST:PORT (kosoku's fuzzing server)");
        return ExitCode::from(2);
    };
    let server = match addr.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(server)) => server,
        Ok(None) | Err(_) => {
            eprintln!("autobahn-testee: cannot resolve {addr:?}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("autobahn-testee: starting the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(server)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("autobahn-testee: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(server: SocketAddr) -> Result<(), String> {
    let texts = session(server, "/getCaseCount", Mode::Collect)
        .await
        .map_err(|e| format!("/getCaseCount: {e}"))?;
    let count: u32 = texts
        .first()
        .and_then(|t| t.trim().parse().ok())
        .ok_or_else(|| format!("/getCaseCount answered {texts:?}, not a number"))?;
    eprintln!("autobahn-testee: {count} cases");
    for case in 1..=count {
        let path = format!("/runCase?case={case}&agent={AGENT}");
        match tokio::time::timeout(CASE_TIMEOUT, session(server, &path, Mode::Echo)).await {
            Ok(Ok(_)) => {}
            // The server judges the case; we only say what we saw.
            Ok(Err(e)) => eprintln!("autobahn-testee: case {case}: {e}"),
            Err(_) => eprintln!("autobahn-testee: case {case}: timed out after {CASE_TIMEOUT:?}"),
        }
    }
    // kosoku takes the results and drops this connection without a close
    // handshake, so only a failed upgrade means the reports were not asked
    // for.
    match session(
        server,
        &format!("/updateReports?agent={AGENT}"),
        Mode::Collect,
    )
    .await
    {
        Err(Failure::Connect(e)) => Err(format!("/updateReports: {e}")),
        Err(Failure::Session(e)) => {
            eprintln!("autobahn-testee: /updateReports: {e}");
            Ok(())
        }
        Ok(_) => Ok(()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Echo every data message (the cases).
    Echo,
    /// Keep the text messages (the case count).
    Collect,
}

/// One WebSocket connection to `path`, driven until the server closes it;
/// returns the text messages received in [`Mode::Collect`].
async fn session(server: SocketAddr, path: &str, mode: Mode) -> Result<Vec<String>, Failure> {
    let opts = ConnectOptions {
        server,
        source: None,
        path_and_query: path.to_string(),
        host: None,
        extra: Arc::new(UpgradeExtras::default()),
        tls: None,
        timeout: Duration::from_secs(10),
        nodelay: true,
    };
    let mut up = conn::connect(&opts)
        .await
        .map_err(|e| Failure::Connect(e.to_string()))?;
    drive(up.stream, &mut up.leftover, mode)
        .await
        .map_err(Failure::Session)
}

/// Why a connection to the fuzzing server went wrong.
#[derive(Debug)]
enum Failure {
    /// Connect or upgrade.
    Connect(String),
    /// After the upgrade.
    Session(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Connect(e) => write!(f, "connect: {e}"),
            Failure::Session(e) => f.write_str(e),
        }
    }
}

/// Runs an upgraded connection until the server ends it.
async fn drive(
    mut stream: Transport,
    leftover: &mut [u8],
    mode: Mode,
) -> Result<Vec<String>, String> {
    let mut peer = Peer {
        reader: MessageReader::new(FrameRole::Client, MAX_MESSAGE),
        out: WriteQueue::default(),
        masks: MaskSource::new(next_seed()),
        mode,
        texts: Vec::new(),
        close_sent: false,
        done: false,
    };
    peer.feed(leftover);
    let mut buf = vec![0u8; READ_CHUNK];
    // Until the close handshake is over (or the connection was failed);
    // then the server should close TCP.
    while !peer.done {
        peer.flush(&mut stream).map_err(|e| format!("write: {e}"))?;
        let want_write = !peer.out.is_empty();
        wait_ready(&stream, want_write)
            .await
            .map_err(|e| format!("poll: {e}"))?;
        loop {
            match stream.try_read(&mut buf) {
                Ok(0) => {
                    return if peer.close_sent {
                        Ok(peer.texts)
                    } else {
                        Err("the server closed TCP without a close handshake".into())
                    };
                }
                Ok(n) => {
                    peer.feed(&mut buf[..n]);
                    if peer.done || n < buf.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }
    // Our close answer (or our close after a violation) goes out, then we
    // wait for the server to end TCP, reading and dropping what comes.
    let drained = tokio::time::timeout(CLOSE_GRACE, async {
        loop {
            peer.flush(&mut stream)?;
            wait_ready(&stream, !peer.out.is_empty()).await?;
            match stream.try_read(&mut buf) {
                Ok(0) => return Ok::<(), io::Error>(()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    })
    .await;
    match drained {
        Ok(Ok(())) => Ok(peer.texts),
        Ok(Err(e)) => Err(format!("after the close: {e}")),
        Err(_) => Err(format!(
            "the server did not close TCP within {CLOSE_GRACE:?} of the close handshake"
        )),
    }
}

/// A different mask sequence for every connection, as loadgen gives each
/// load connection its own (`MaskSource` seeded by the connection's index).
fn next_seed() -> u64 {
    static CONNECTIONS: AtomicU64 = AtomicU64::new(0);
    let index = CONNECTIONS.fetch_add(1, Ordering::Relaxed);
    (index ^ (u64::from(std::process::id()) << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Waits until the socket is readable, or writable when `want_write`.
async fn wait_ready(stream: &Transport, want_write: bool) -> io::Result<()> {
    std::future::poll_fn(|cx| {
        if want_write {
            if let std::task::Poll::Ready(r) = stream.poll_write_ready(cx) {
                return std::task::Poll::Ready(r);
            }
        }
        stream.poll_read_ready(cx)
    })
    .await
}

/// The testee's side of one connection: what loadgen's `Client::feed` does
/// with each message, except that data is echoed instead of timed.
struct Peer {
    reader: MessageReader,
    out: WriteQueue,
    masks: MaskSource,
    mode: Mode,
    texts: Vec<String>,
    /// Our close frame is queued: nothing may follow it (RFC 6455 5.5.1).
    close_sent: bool,
    /// No more frames will be read: the close handshake is complete, or the
    /// connection was failed.
    done: bool,
}

impl Peer {
    fn feed(&mut self, bytes: &mut [u8]) {
        if self.done {
            return;
        }
        let Peer {
            reader,
            out,
            masks,
            mode,
            texts,
            close_sent,
            done,
        } = self;
        let result = reader.feed(bytes, |m| {
            match m {
                Message::Text(t) => match mode {
                    Mode::Echo => out.push(encode_frame(
                        OpCode::Text,
                        t.as_bytes(),
                        Some(masks.next_mask()),
                    )),
                    Mode::Collect => texts.push(t.to_string()),
                },
                Message::Binary(b) => {
                    if *mode == Mode::Echo {
                        out.push(encode_frame(OpCode::Binary, b, Some(masks.next_mask())));
                    }
                }
                Message::Ping(p) => {
                    out.push(encode_frame(OpCode::Pong, p, Some(masks.next_mask())))
                }
                Message::Pong(_) => {}
                Message::Close(code) => {
                    // Echo the code (RFC 6455 5.5.1); a close without a
                    // body is answered without one.
                    out.push(match code {
                        Some((code, _)) => close_frame(code, "", Some(masks.next_mask())),
                        None => encode_frame(OpCode::Close, b"", Some(masks.next_mask())),
                    });
                    *close_sent = true;
                    *done = true;
                    return Flow::Stop;
                }
            }
            Flow::Continue
        });
        if let Err(violation) = result {
            // _Fail the WebSocket Connection_ (RFC 6455 7.1.7) with the
            // close code loadgen's reader chose; what is already queued
            // (echoes of earlier messages) still goes first.
            out.push(close_frame(
                violation.code,
                violation.reason,
                Some(masks.next_mask()),
            ));
            *close_sent = true;
            *done = true;
        }
    }

    fn flush(&mut self, stream: &mut Transport) -> io::Result<()> {
        self.out.write_with(
            |slices: &[IoSlice<'_>]| stream.try_write_vectored(slices),
            |_| {},
        )?;
        stream.try_flush()
    }
}
