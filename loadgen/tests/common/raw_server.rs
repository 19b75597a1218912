//! A minimal WebSocket server on a raw tokio `TcpStream`, built from the
//! protocol crate's sans-IO handshake and framing: an echo server that any
//! WebSocket load generator should be able to drive, and a misbehaving one
//! that sends bytes no client should accept.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

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

#[derive(Debug, Default)]
pub struct Counters {
    /// Upgrades completed.
    pub upgrades: AtomicU64,
    /// Data frames echoed.
    pub echoed: AtomicU64,
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
                            let Ok((stream, _)) = accepted else { continue };
                            let (c, b) = (c.clone(), behaviour.clone());
                            tokio::spawn(async move {
                                let _ = serve(stream, b, &c).await;
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

async fn serve(mut s: TcpStream, behaviour: Behaviour, counters: &Counters) -> std::io::Result<()> {
    s.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(1024);
    let head_len = loop {
        if s.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
        match parse_request(&buf) {
            Ok(Some((req, len))) => {
                let answer = accept_response(req.key);
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
    counters.upgrades.fetch_add(1, Ordering::Relaxed);
    match behaviour {
        Behaviour::Echo => echo(s, rest, counters).await,
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

async fn echo(mut s: TcpStream, mut pending: Vec<u8>, counters: &Counters) -> std::io::Result<()> {
    let mut reader = MessageReader::new(Role::Server, 1 << 20);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let mut out = Vec::new();
        let mut closing = false;
        let mut data_frames = 0u64;
        let fed = reader.feed(&mut pending, |m| {
            match m {
                Message::Binary(b) => {
                    data_frames += 1;
                    out.push(encode_frame(OpCode::Binary, b, None));
                }
                Message::Text(t) => {
                    data_frames += 1;
                    out.push(encode_frame(OpCode::Text, t.as_bytes(), None));
                }
                Message::Ping(p) => out.push(encode_frame(OpCode::Pong, p, None)),
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
        for frame in out {
            s.write_all(&frame).await?;
        }
        counters.echoed.fetch_add(data_frames, Ordering::Relaxed);
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
