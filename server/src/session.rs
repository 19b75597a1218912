//! The life of one upgraded connection: the hot path of the server.
//!
//! Memory is the design constraint. A connection owns no read buffer (reads
//! go into a per-worker scratch buffer and are parsed in place), no write
//! buffer (frames are written straight from the shared `Bytes` with one
//! vectored write), no timer (the control thread sweeps idle connections)
//! and no wait futures: its task waits in a `poll_fn` on the socket's own
//! readiness slots and the outbox's waker. Setting up and closing are
//! boxed, so the task's lifelong future is little more than `Connection`.

use std::cell::RefCell;
use std::io;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use protocol::frame::{close_frame, Flow, Message, MessageReader, ProtocolViolation, Role};
use protocol::write_queue::WriteQueue;
use tokio::net::TcpStream;
use tracing::debug;

use crate::chat::Session;
use crate::conn::{Conn, Taken};
use crate::echo;
use crate::metrics::{CloseReason, Metrics, Rejection};
use crate::shared::{Shared, SlotGuard};
use crate::upgrade::{self, Upgraded};

/// Bytes read per `read` call into the worker's scratch buffer.
pub(crate) const READ_CHUNK: usize = 64 * 1024;
/// Reads per wake-up before yielding to other connections.
pub(crate) const READS_PER_WAKE: usize = 4;
/// How long a closing connection gets to take its close frame and answer.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(2);

thread_local! {
    pub(crate) static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_CHUNK].into_boxed_slice());
}

/// How a connection ended.
enum End {
    /// The client sent close: answer with this code and hang up.
    ClientClose(u16),
    /// The server closes: send the code, then wait briefly for the answer.
    Server(CloseReason, u16, &'static str),
    /// EOF or a socket error: nothing more can be sent.
    Gone(CloseReason),
}

/// What woke the connection's task.
enum Event {
    Readable,
    Writable,
    Work,
    Failed(io::Error),
}

/// An upgraded connection: everything its task keeps.
pub struct Connection {
    stream: TcpStream,
    session: Session,
    reader: MessageReader,
    out: WriteQueue,
    /// An ending found before the loop started (in bytes sent with the upgrade).
    early_end: Option<End>,
    _slot: SlotGuard,
}

/// Serves one accepted TCP connection from upgrade to close.
pub async fn serve(stream: TcpStream, shared: Arc<Shared>) {
    let Some(mut conn) = Box::pin(open(stream, shared)).await else {
        return;
    };
    let end = match conn.early_end.take() {
        Some(end) => end,
        None => conn.drive().await,
    };
    Box::pin(conn.close(end)).await;
}

/// Runs the upgrade under the handshake timeout and sets the connection up.
/// An `/echo` upgrade (`--echo`) is served to its end in here and gives
/// `None`: the choice is made once, at the upgrade, and inside this boxed
/// future, so a chat connection's task holds nothing of it.
async fn open(mut stream: TcpStream, shared: Arc<Shared>) -> Option<Connection> {
    let started = Instant::now();
    let upgraded = tokio::time::timeout(
        shared.limits.handshake_timeout,
        upgrade::upgrade(&mut stream, &shared),
    )
    .await;
    let upgraded = match upgraded {
        Ok(Ok(upgraded)) => upgraded,
        Ok(Err(rejection)) => {
            debug!(?rejection, "upgrade refused");
            shared.metrics.rejected(rejection).increment(1);
            return None;
        }
        Err(_) => {
            shared
                .metrics
                .rejected(Rejection::HandshakeTimeout)
                .increment(1);
            return None;
        }
    };
    shared
        .metrics
        .handshake_seconds
        .record(started.elapsed().as_secs_f64());
    if upgraded.echo {
        Box::pin(echo::serve(stream, upgraded, shared)).await;
        return None;
    }
    let Upgraded {
        mut leftover,
        proto,
        username,
        room,
        slot,
        ..
    } = upgraded;

    let id = shared.next_conn_id();
    let handle = Arc::new(Conn::new(
        id,
        proto.unwrap_or(shared.limits.default_proto),
        shared.now_ms(),
    ));
    shared.conns.insert(id, handle.clone());
    shared.metrics.accepted.increment(1);
    shared.metrics.connections_open.increment(1.0);

    let mut session = Session::new(handle, shared.clone());
    let mut reader = MessageReader::new(Role::Server, shared.limits.max_message_size);
    session.start(username.as_deref(), room.as_deref());
    let early_end = feed(&mut reader, &mut session, &mut leftover);
    Some(Connection {
        stream,
        session,
        reader,
        out: WriteQueue::default(),
        early_end,
        _slot: slot,
    })
}

impl Connection {
    /// The connection's loop: write what is queued, read what arrives,
    /// until it ends.
    async fn drive(&mut self) -> End {
        loop {
            // A close request wins even over frames still being written.
            if self.out.is_empty() || self.session.conn.is_closing() {
                match self.session.conn.take() {
                    Taken::Frames(frames) => self.out.extend(frames),
                    Taken::Close(reason) => {
                        return End::Server(reason, reason.code(), close_text(reason))
                    }
                    Taken::Nothing => {}
                }
            }
            if let Err(e) = flush(&mut self.out, &self.stream, &self.session.shared().metrics) {
                return End::Gone(io_reason(&e));
            }
            if let Some((reason, code)) = self.session.close {
                return match reason {
                    CloseReason::ClientClose => End::ClientClose(code),
                    _ => End::Server(reason, code, close_text(reason)),
                };
            }
            let read_queued_work = match std::future::poll_fn(|cx| self.poll_event(cx)).await {
                Event::Readable => {
                    if let Some(end) = self.read() {
                        return end;
                    }
                    self.session.conn.has_work()
                }
                // Both are handled at the top of the loop.
                Event::Writable | Event::Work => false,
                Event::Failed(e) => return End::Gone(io_reason(&e)),
            };
            // What the read queued for this connection itself (its copy of
            // its own chat, above all) goes out after the copies of the
            // members the read woke. Awaited outside the match, so the
            // `Event` is not kept across it (16 bytes of every task).
            if read_queued_work {
                requeue_behind_woken().await;
            }
        }
    }

    fn poll_event(&self, cx: &mut Context<'_>) -> Poll<Event> {
        if !self.out.is_empty() {
            match self.stream.poll_write_ready(cx) {
                Poll::Ready(Ok(())) => return Poll::Ready(Event::Writable),
                Poll::Ready(Err(e)) => return Poll::Ready(Event::Failed(e)),
                Poll::Pending => {}
            }
        }
        match self.stream.poll_read_ready(cx) {
            Poll::Ready(Ok(())) => return Poll::Ready(Event::Readable),
            Poll::Ready(Err(e)) => return Poll::Ready(Event::Failed(e)),
            Poll::Pending => {}
        }
        // While frames are in flight, new ones wait in the outbox (which
        // is what bounds a slow consumer); only a close is taken then.
        if self
            .session
            .conn
            .poll_work(cx, self.out.is_empty())
            .is_ready()
        {
            return Poll::Ready(Event::Work);
        }
        Poll::Pending
    }

    /// Reads what the socket has and handles every complete message.
    fn read(&mut self) -> Option<End> {
        let Connection {
            stream,
            session,
            reader,
            ..
        } = self;
        SCRATCH.with(|scratch| {
            // Never held across an await, so one buffer serves every
            // connection of this worker.
            let mut buf = scratch.borrow_mut();
            for _ in 0..READS_PER_WAKE {
                match stream.try_read(&mut buf[..]) {
                    Ok(0) => return Some(End::Gone(CloseReason::PeerGone)),
                    Ok(n) => {
                        let shared = session.shared();
                        shared.metrics.bytes_in.increment(n as u64);
                        session.conn.touch(shared.now_ms());
                        if let Some(end) = feed(reader, session, &mut buf[..n]) {
                            return Some(end);
                        }
                        if n < buf.len() || session.close.is_some() {
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

    /// Sends the close frame the ending calls for, within `CLOSE_GRACE`,
    /// then releases the connection.
    async fn close(mut self, end: End) {
        let reason = match end {
            End::ClientClose(code) => {
                self.out.abandon_unsent();
                self.out.push(close_frame(code, "", None));
                let _ = tokio::time::timeout(
                    CLOSE_GRACE,
                    write_all(&mut self.out, &self.stream, &self.session.shared().metrics),
                )
                .await;
                CloseReason::ClientClose
            }
            End::Server(reason, code, text) => {
                self.out.abandon_unsent();
                self.out.push(close_frame(code, text, None));
                let _ = tokio::time::timeout(CLOSE_GRACE, async {
                    write_all(&mut self.out, &self.stream, &self.session.shared().metrics).await?;
                    await_peer_close(&self.stream, &mut self.reader).await
                })
                .await;
                reason
            }
            End::Gone(reason) => reason,
        };
        self.session.leave_all();
        let shared = self.session.shared();
        shared.conns.remove(&self.session.conn.id);
        shared.metrics.closed(reason).increment(1);
        shared.metrics.connections_open.decrement(1.0);
    }
}

/// Gives up the worker once, going back to the end of its run queue, so
/// the sender's own copy is written in the same pass as the rest of the
/// room's, not first. Fan-out is part of what the lab measures: without
/// this, a read broadcasts (waking every member's task) and then the
/// sender's loop takes and writes its own copy at once, before any member
/// task has run, so its round trip looked better than the room's fan-out.
///
/// Why not `tokio::task::yield_now`: it defers the wake-up until the
/// worker has run out of tasks *and* polled the I/O driver, which puts the
/// sender behind every connection that became readable meanwhile (and
/// their reads) too: a tail position instead of a fair one. Waking itself
/// here instead re-queues the task at once: each worker runs a
/// current-thread runtime, whose run queue is FIFO, and a task woken while
/// it runs is queued when its poll returns, behind the member tasks the
/// broadcast woke during that poll and ahead of whatever the driver wakes
/// later.
///
/// Cost: nothing for an idle connection (its state is one `bool` while
/// awaited, overlapping the other await's; the task's future does not
/// grow), and at most one more poll per read for a chatty one, often none:
/// when the task had been waiting, the read's own push already woke it
/// while running (`Conn::signal`), which used to cost a spurious poll after
/// the flush; now that poll does the flush. No allocation, lock or shared
/// atomic: the wake is one uncontended update of this task's own state
/// word, and the queue it lands in is the worker's own.
fn requeue_behind_woken() -> impl std::future::Future<Output = ()> {
    let mut yielded = false;
    std::future::poll_fn(move |cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
}

fn feed(reader: &mut MessageReader, session: &mut Session, bytes: &mut [u8]) -> Option<End> {
    match reader.feed(bytes, |m| session.on_message(m)) {
        // on_message stops only after setting `close`, which drive acts on
        Ok(Flow::Continue | Flow::Stop) => None,
        Err(ProtocolViolation { code, reason }) => {
            Some(End::Server(CloseReason::from_code(code), code, reason))
        }
    }
}

fn close_text(reason: CloseReason) -> &'static str {
    match reason {
        CloseReason::IdleTimeout => "idle timeout",
        CloseReason::Shutdown => "server shutting down",
        CloseReason::SlowConsumer => "slow consumer: messages dropped",
        CloseReason::InvalidPayload => "too many undecodable messages",
        CloseReason::Unsupported => "too many unsupported messages",
        _ => "",
    }
}

pub(crate) fn io_reason(e: &io::Error) -> CloseReason {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof => CloseReason::PeerGone,
        _ => CloseReason::IoError,
    }
}

/// Writes everything queued, waiting for the socket as needed (closing
/// only: a live connection never waits on its writes).
pub(crate) async fn write_all(
    out: &mut WriteQueue,
    stream: &TcpStream,
    metrics: &Metrics,
) -> io::Result<()> {
    loop {
        flush(out, stream, metrics)?;
        if out.is_empty() {
            return Ok(());
        }
        stream.writable().await?;
    }
}

/// After our close frame: read until the client's close or EOF,
/// discarding, so the client sees its close answered, not a reset.
pub(crate) async fn await_peer_close(
    stream: &TcpStream,
    reader: &mut MessageReader,
) -> io::Result<()> {
    loop {
        stream.readable().await?;
        let done = SCRATCH.with(|scratch| {
            let mut buf = scratch.borrow_mut();
            match stream.try_read(&mut buf[..]) {
                Ok(0) => true,
                Ok(n) => {
                    let mut closed = false;
                    let res = reader.feed(&mut buf[..n], |m| {
                        closed = matches!(m, Message::Close(_));
                        if closed {
                            Flow::Stop
                        } else {
                            Flow::Continue
                        }
                    });
                    closed || res.is_err()
                }
                Err(e) => e.kind() != io::ErrorKind::WouldBlock,
            }
        });
        if done {
            return Ok(());
        }
    }
}

/// Writes what the socket takes now, counting the bytes.
pub(crate) fn flush(out: &mut WriteQueue, stream: &TcpStream, metrics: &Metrics) -> io::Result<()> {
    out.write_with(
        |slices| stream.try_write_vectored(slices),
        |n| metrics.bytes_out.increment(n as u64),
    )
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The task of an idle connection is `serve`'s future; keep it small.
    #[tokio::test]
    async fn idle_connection_future_stays_small() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let shared = Arc::new(Shared::new(
            crate::shared::Limits::from_opts(&crate::Opts::defaults(), 10),
            4,
        ));
        let size = std::mem::size_of_val(&serve(c, shared));
        eprintln!(
            "serve future: {size} bytes, Connection: {}",
            std::mem::size_of::<Connection>()
        );
        assert!(size <= 512, "serve future grew to {size} bytes");
    }
}
