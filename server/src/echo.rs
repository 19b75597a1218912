//! The `/echo` endpoint (`--echo`): every message goes back in the frame
//! type it came in, pings get pongs, and a close is answered with its own
//! code. It exists so the upgrade and the `MessageReader` the chat path
//! uses can be checked against the Autobahn test suite on the real server
//! (server/tests/autobahn.rs). No welcome, no rooms, no chat protocol.
//!
//! Apart from the chat path on purpose: the choice is made once at the
//! upgrade, and a chat connection carries nothing of this module. An echo
//! connection still takes a connection slot and a `Conn` in the table, so
//! the idle sweep and the shutdown drain close it like any other.

use std::io;
use std::sync::Arc;
use std::task::Poll;

use protocol::frame::{close_frame, encode_frame, Flow, Message, MessageReader, OpCode, Role};
use protocol::write_queue::WriteQueue;
use protocol::Proto;
use tokio::net::TcpStream;

use crate::conn::{Conn, Taken};
use crate::metrics::CloseReason;
use crate::session::{
    await_peer_close, flush, io_reason, write_all, CLOSE_GRACE, READS_PER_WAKE, SCRATCH,
};
use crate::shared::{Shared, SlotGuard};
use crate::upgrade::Upgraded;

/// How an echo connection ended.
enum End {
    /// The client sent close, with this code (or none): echo it and hang up.
    ClientClose(Option<u16>),
    /// The server closes: send the code, then wait briefly for the answer.
    Server(CloseReason, u16, &'static str),
    /// EOF or a socket error: nothing more can be sent.
    Gone(CloseReason),
}

/// What woke the connection's task.
enum Event {
    Readable,
    Writable,
    /// The control thread asked for a close (idle timeout, shutdown).
    Close,
    Failed(io::Error),
}

struct EchoConnection {
    stream: TcpStream,
    reader: MessageReader,
    /// Echoes not yet written. While it holds any, nothing is read: the
    /// client's own pace bounds what the server buffers for it.
    out: WriteQueue,
    conn: Arc<Conn>,
    shared: Arc<Shared>,
    _slot: SlotGuard,
}

/// Serves an upgraded `/echo` connection until it closes.
pub async fn serve(stream: TcpStream, upgraded: Upgraded, shared: Arc<Shared>) {
    let Upgraded {
        mut leftover, slot, ..
    } = upgraded;
    let max_message = shared
        .limits
        .echo_max_message_size
        .unwrap_or(shared.limits.max_message_size);
    let id = shared.next_conn_id();
    // The encoding is unused: an echo connection gets no chat messages.
    let conn = Arc::new(Conn::new(id, Proto::Json, shared.now_ms()));
    shared.conns.insert(id, conn.clone());
    shared.metrics.accepted.increment(1);
    shared.metrics.connections_open.increment(1.0);
    let mut echo = EchoConnection {
        stream,
        reader: MessageReader::new(Role::Server, max_message),
        out: WriteQueue::default(),
        conn,
        shared,
        _slot: slot,
    };
    let end = match feed(&mut echo.reader, &mut echo.out, &mut leftover) {
        Some(end) => end,
        None => echo.drive().await,
    };
    echo.close(end).await;
}

/// Hands `bytes` to the reader and queues the answer to each message.
fn feed(reader: &mut MessageReader, out: &mut WriteQueue, bytes: &mut [u8]) -> Option<End> {
    let mut closed = None;
    let result = reader.feed(bytes, |message| {
        match message {
            Message::Text(text) => out.push(encode_frame(OpCode::Text, text.as_bytes(), None)),
            Message::Binary(data) => out.push(encode_frame(OpCode::Binary, data, None)),
            Message::Ping(payload) => out.push(encode_frame(OpCode::Pong, payload, None)),
            Message::Pong(_) => {}
            Message::Close(code) => {
                closed = Some(code.map(|(code, _)| code));
                return Flow::Stop;
            }
        }
        Flow::Continue
    });
    match result {
        Err(violation) => Some(End::Server(
            CloseReason::from_code(violation.code),
            violation.code,
            violation.reason,
        )),
        Ok(_) => closed.map(End::ClientClose),
    }
}

impl EchoConnection {
    async fn drive(&mut self) -> End {
        loop {
            if let Err(e) = flush(&mut self.out, &self.stream, &self.shared.metrics) {
                return End::Gone(io_reason(&e));
            }
            if self.conn.is_closing() {
                if let Taken::Close(reason) = self.conn.take() {
                    return End::Server(reason, reason.code(), "");
                }
            }
            let event = std::future::poll_fn(|cx| {
                // Read only once the echoes are out (see `out`).
                let ready = if self.out.is_empty() {
                    self.stream.poll_read_ready(cx).map_ok(|()| Event::Readable)
                } else {
                    self.stream
                        .poll_write_ready(cx)
                        .map_ok(|()| Event::Writable)
                };
                match ready {
                    Poll::Ready(Ok(event)) => return Poll::Ready(event),
                    Poll::Ready(Err(e)) => return Poll::Ready(Event::Failed(e)),
                    Poll::Pending => {}
                }
                self.conn.poll_work(cx, false).map(|()| Event::Close)
            })
            .await;
            match event {
                Event::Readable => {
                    if let Some(end) = self.read() {
                        return end;
                    }
                }
                Event::Writable | Event::Close => {}
                Event::Failed(e) => return End::Gone(io_reason(&e)),
            }
        }
    }

    /// Reads what the socket has and queues the echoes.
    fn read(&mut self) -> Option<End> {
        let EchoConnection {
            stream,
            reader,
            out,
            conn,
            shared,
            ..
        } = self;
        SCRATCH.with(|scratch| {
            let mut buf = scratch.borrow_mut();
            for _ in 0..READS_PER_WAKE {
                match stream.try_read(&mut buf[..]) {
                    Ok(0) => return Some(End::Gone(CloseReason::PeerGone)),
                    Ok(n) => {
                        shared.metrics.bytes_in.increment(n as u64);
                        conn.touch(shared.now_ms());
                        if let Some(end) = feed(reader, out, &mut buf[..n]) {
                            return Some(end);
                        }
                        if n < buf.len() || !out.is_empty() {
                            return None;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                    Err(e) => return Some(End::Gone(io_reason(&e))),
                }
            }
            None
        })
    }

    /// Writes the echoes still queued and the close frame, within
    /// `CLOSE_GRACE`, then releases the connection. Unlike a chat
    /// connection, queued echoes are not abandoned: a client that sent a
    /// message and then a bad frame gets its echo before the close.
    async fn close(mut self, end: End) {
        let reason = match end {
            End::ClientClose(code) => {
                // RFC 6455 5.5.1: answer with the code received, or with
                // an empty close when the client's had none.
                self.out.push(match code {
                    Some(code) => close_frame(code, "", None),
                    None => encode_frame(OpCode::Close, &[], None),
                });
                let _ = tokio::time::timeout(
                    CLOSE_GRACE,
                    write_all(&mut self.out, &self.stream, &self.shared.metrics),
                )
                .await;
                CloseReason::ClientClose
            }
            End::Server(reason, code, text) => {
                self.out.push(close_frame(code, text, None));
                let _ = tokio::time::timeout(CLOSE_GRACE, async {
                    write_all(&mut self.out, &self.stream, &self.shared.metrics).await?;
                    await_peer_close(&self.stream, &mut self.reader).await
                })
                .await;
                reason
            }
            End::Gone(reason) => reason,
        };
        self.shared.conns.remove(&self.conn.id);
        self.shared.metrics.closed(reason).increment(1);
        self.shared.metrics.connections_open.decrement(1.0);
    }
}
