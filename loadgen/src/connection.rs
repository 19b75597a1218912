//! One load connection after its upgrade: sends on an open-model timetable,
//! reads everything the server sends and times what it recognises, keeps
//! the connection alive with pings, and closes politely at the end.
//!
//! Open model: a sender's k-th message is due at `first + k × interval`
//! whatever happened to earlier ones, and latency counts from the due time,
//! so a stalled server shows up as latency, not as a lower send rate
//! (coordinated omission).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::transport::Transport;
use protocol::frame::{
    close_code, close_frame, encode_frame, Flow, Message, MessageReader, OpCode, Role as FrameRole,
};
use protocol::write_queue::WriteQueue;
use protocol::MsgType;
use tokio::sync::watch;
use tokio::time::Sleep;

use crate::chat::{self, MaskSource};
use crate::clock::PayloadClock;
use crate::opts::WorkloadKind;
use crate::stats::{Closed, Latency, Recorder};
use crate::workload::{Role, Workload};

/// Largest message accepted from a server (public so the Autobahn testee
/// reads with the same limit as a load connection).
pub const MAX_MESSAGE: usize = 16 << 20;
/// Bytes read per call into the thread's scratch buffer.
const READ_CHUNK: usize = 64 * 1024;
/// Frames a connection may have waiting to be written; past it, a due send
/// is counted lost (the server is not reading) instead of queued.
const MAX_QUEUED: usize = 4096;
/// Own messages a connection awaits at once; past it, the oldest counts as
/// lost at once. A server that takes messages and never answers would
/// otherwise grow each sender's list by rate × --loss-timeout (at the
/// highest rate and timeout, gigabytes).
const MAX_OUTSTANDING: usize = 65_536;
/// How long our close frame and the server's answer may take.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

thread_local! {
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_CHUNK].into_boxed_slice());
}

/// What every connection of one process shares.
pub struct RunContext {
    pub workload: Workload,
    pub recorder: Arc<Recorder>,
    /// The process's start: sending starts are counted from it.
    pub epoch: Instant,
    /// Where payload due times count from, and whose copies can be timed:
    /// fan-out latency is measured between connections that share it.
    pub clock: PayloadClock,
    /// When sending stops.
    pub end: Instant,
    /// After `end`, how long to wait for copies still in flight.
    pub drain: Duration,
    /// How long a sender's own copy may take before it counts as lost.
    pub loss_timeout: Duration,
    /// Nanoseconds after `epoch` from which senders send; unset
    /// (`u64::MAX`) until the ramp of this process is over.
    pub sending_from_ns: AtomicU64,
}

impl RunContext {
    pub fn new(
        workload: Workload,
        recorder: Arc<Recorder>,
        epoch: Instant,
        clock: PayloadClock,
        end: Instant,
        drain: Duration,
        loss_timeout: Duration,
    ) -> RunContext {
        RunContext {
            workload,
            recorder,
            epoch,
            clock,
            end,
            drain,
            loss_timeout,
            sending_from_ns: AtomicU64::new(u64::MAX),
        }
    }

    /// Lets senders start at `at`.
    pub fn start_sending(&self, at: Instant) {
        let ns = at.saturating_duration_since(self.epoch).as_nanos() as u64;
        self.sending_from_ns.store(ns, Ordering::Release);
    }

    fn sending_from(&self) -> Option<Instant> {
        match self.sending_from_ns.load(Ordering::Acquire) {
            u64::MAX => None,
            ns => Some(self.epoch + Duration::from_nanos(ns)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    Draining,
    Closing,
}

enum Event {
    Readable,
    Writable,
    Timer,
    Stop,
    Failed(io::Error),
}

pub struct Client {
    stream: Transport,
    reader: MessageReader,
    out: WriteQueue,
    masks: MaskSource,
    role: Role,
    ctx: Arc<RunContext>,
    phase: Phase,
    /// The next due send, for senders.
    next_send: Option<Instant>,
    next_ping: Option<Instant>,
    timer: Pin<Box<Sleep>>,
    timer_at: Instant,
    /// Turns true on Ctrl-C.
    stop: watch::Receiver<bool>,
    /// Due times (ns after the epoch) of own messages sent and not yet seen
    /// back, oldest first. A server relays one connection's messages in
    /// order, so the front is the one to write off first. Empty (and
    /// unallocated) on listeners.
    outstanding: VecDeque<u64>,
    /// Under churn: when this connection closes to reconnect.
    retire_at: Option<Instant>,
    /// Set once it is closing to reconnect rather than for the end.
    churning: bool,
    /// When the drain phase ends.
    drain_until: Instant,
    closed: Option<Closed>,
}

impl Client {
    /// `leftover` holds bytes that came with the upgrade's answer;
    /// `lifetime` is how long it lives under churn.
    pub fn new(
        stream: Transport,
        leftover: &mut [u8],
        role: Role,
        ctx: Arc<RunContext>,
        stop: watch::Receiver<bool>,
        lifetime: Option<Duration>,
    ) -> Client {
        let now = Instant::now();
        let w = &ctx.workload;
        // Spread the senders' first sends over one interval.
        let phase = w
            .interval
            .mul_f64((role.index as f64 * 0.618_033_988_75).fract());
        let next_send = role.sends.then(|| now + phase);
        let next_ping = w.ping_interval.map(|p| now + p);
        let mut client = Client {
            stream,
            reader: MessageReader::new(FrameRole::Client, MAX_MESSAGE),
            out: WriteQueue::default(),
            masks: MaskSource::new(role.index.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            role,
            timer: Box::pin(tokio::time::sleep_until(ctx.end.into())),
            timer_at: ctx.end,
            ctx: ctx.clone(),
            phase: Phase::Running,
            next_send,
            next_ping,
            outstanding: VecDeque::new(),
            retire_at: lifetime.map(|l| now + l).filter(|&t| t < ctx.end),
            churning: false,
            drain_until: ctx.end + ctx.drain,
            closed: None,
            stop,
        };
        if let Some(join) = client
            .ctx
            .workload
            .join_frame(&client.role, client.masks.next_mask())
        {
            client.out.push(join);
        }
        client.ctx.recorder.received(0, leftover.len() as u64);
        client.feed(leftover);
        client
    }

    /// Records how the connection ended, and what it never got back.
    pub fn finish(self, closed: Closed) {
        let recorder = &self.ctx.recorder;
        if !self.outstanding.is_empty() {
            recorder.lost(self.outstanding.len() as u64);
        }
        recorder.disconnected(closed);
    }

    /// When the oldest own message not yet back is written off as lost.
    fn loss_deadline(&self) -> Option<Instant> {
        let due_ns = *self.outstanding.front()?;
        Some(self.ctx.clock.origin() + Duration::from_nanos(due_ns) + self.ctx.loss_timeout)
    }

    /// Counts as lost, as it happens, every own message that has been out
    /// longer than the loss timeout, so the progress line and /metrics show
    /// a server that drops messages while it does. A copy that turns up
    /// later is not timed (it is no longer outstanding); the timeout is long
    /// (10 s by default) so that a stall shows up as latency, not as loss.
    fn write_off(&mut self, now: Instant) {
        let mut lost = 0;
        while self.loss_deadline().is_some_and(|d| d <= now) {
            self.outstanding.pop_front();
            lost += 1;
        }
        if lost > 0 {
            self.ctx.recorder.lost(lost);
        }
    }

    /// Runs the connection until it ends. Every held connection's task
    /// waits in this future; it takes `&mut self` because an async fn
    /// taking `self` by value keeps a second copy of it in its state.
    pub async fn drive(&mut self) -> Closed {
        let mut close_deadline: Option<Instant> = None;
        loop {
            if let Some(closed) = self.closed.take() {
                if matches!(closed, Closed::ByServer { .. }) {
                    // `feed` queued the answer to the server's close (RFC
                    // 6455 5.5.1 wants one): write it before the socket is
                    // dropped. Best effort, without waiting: a socket that
                    // cannot take a few bytes now is not worth holding.
                    let _ = self.flush();
                }
                return closed;
            }
            let now = Instant::now();
            self.on_time(now);
            if self.phase == Phase::Closing && close_deadline.is_none() {
                close_deadline = Some(now + CLOSE_GRACE);
                self.out.push(close_frame(
                    close_code::NORMAL,
                    "",
                    Some(self.masks.next_mask()),
                ));
            }
            if let Some(deadline) = close_deadline {
                if now >= deadline {
                    return self.closed_by_us();
                }
            }
            if let Err(e) = self.flush() {
                return self.gone(e);
            }
            let wake = self.next_wake(close_deadline);
            if wake != self.timer_at {
                self.timer.as_mut().reset(wake.into());
                self.timer_at = wake;
            }
            let want_write = !self.out.is_empty() || self.stream.wants_write();
            let stopping = self.phase != Phase::Running;
            let event = {
                let stream = &self.stream;
                let timer = &mut self.timer;
                let stop = &mut self.stop;
                tokio::select! {
                    biased;
                    _ = stop.changed(), if !stopping => Event::Stop,
                    ev = std::future::poll_fn(|cx| poll_io(stream, want_write, cx)) => ev,
                    _ = timer.as_mut() => Event::Timer,
                }
            };
            match event {
                Event::Readable => {
                    if let Err(e) = self.read() {
                        return self.gone(e);
                    }
                }
                Event::Writable | Event::Timer => {}
                Event::Stop => self.phase = Phase::Closing,
                Event::Failed(e) => return self.gone(e),
            }
        }
    }

    /// How a close we started is counted.
    fn closed_by_us(&self) -> Closed {
        if self.churning {
            Closed::Churn
        } else {
            Closed::ByUs
        }
    }

    fn gone(&self, e: io::Error) -> Closed {
        if self.phase == Phase::Closing {
            self.closed_by_us()
        } else {
            Closed::Error(crate::conn::io_label(&e))
        }
    }

    /// The earliest moment something is due.
    fn next_wake(&self, close_deadline: Option<Instant>) -> Instant {
        let ctx = &self.ctx;
        let phase_end = match self.phase {
            Phase::Running => ctx.end,
            Phase::Draining => self.drain_until,
            Phase::Closing => close_deadline.unwrap_or(ctx.end),
        };
        [
            self.next_send,
            self.next_ping,
            self.retire_at,
            self.loss_deadline(),
            Some(phase_end),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(phase_end)
    }

    /// Sends what is due, writes off what is overdue, and moves through
    /// the phases.
    fn on_time(&mut self, now: Instant) {
        self.write_off(now);
        // Plain copies: `send` needs `&mut self`, and cloning the Arc on
        // every wake of every connection would cost two atomic operations.
        let ctx = &self.ctx;
        let (end, drain, interval, ping_interval, has_senders) = (
            ctx.end,
            ctx.drain,
            ctx.workload.interval,
            ctx.workload.ping_interval,
            ctx.workload.senders > 0.0,
        );
        if self.phase == Phase::Running {
            // Sends due before the end go out even when we wake after it.
            let sending_from = self.ctx.sending_from();
            while let Some(due) = self.next_send.filter(|&d| d <= now && d < end) {
                // Until every connection of this process has joined, a
                // message would miss late joiners: skip those slots.
                if sending_from.is_some_and(|from| due >= from) {
                    self.send(due);
                }
                self.next_send = Some(due + interval);
            }
            if let Some(ping) = self.next_ping.filter(|&p| p <= now) {
                self.out.push(encode_frame(
                    OpCode::Ping,
                    b"",
                    Some(self.masks.next_mask()),
                ));
                self.next_ping = ping_interval.map(|p| ping + p);
            }
        }
        if self.phase == Phase::Running && now >= end {
            self.next_send = None;
            // With senders about, every connection waits out the drain:
            // copies of the last messages are still on their way to it.
            self.phase = if has_senders {
                Phase::Draining
            } else {
                Phase::Closing
            };
        }
        if self.phase == Phase::Running && self.retire_at.is_some_and(|t| now >= t) {
            // Churn: stop sending, wait for our own copies (bounded by the
            // drain), then close and let the task reconnect.
            self.retire_at = None;
            self.churning = true;
            self.next_send = None;
            self.drain_until = now + drain;
            self.phase = Phase::Draining;
        }
        if self.phase == Phase::Draining
            && (now >= self.drain_until || (self.churning && self.outstanding.is_empty()))
        {
            self.phase = Phase::Closing;
        }
    }

    fn send(&mut self, due: Instant) {
        let ctx = &self.ctx;
        if self.out.len() >= MAX_QUEUED {
            ctx.recorder.lost(1);
            return;
        }
        let due_ns = due.saturating_duration_since(ctx.clock.origin()).as_nanos() as u64;
        let payload = chat::encode_payload(due_ns, self.role.index as u32, ctx.workload.size);
        let mask = self.masks.next_mask();
        let frame = match (ctx.workload.proto(), self.role.room.as_deref()) {
            (Some(proto), Some(room)) => chat::chat_frame(proto, room, &payload, mask),
            _ => encode_frame(OpCode::Binary, &payload, Some(mask)),
        };
        ctx.recorder.sent(1, 0);
        self.out.push(frame);
        if self.outstanding.len() >= MAX_OUTSTANDING {
            self.outstanding.pop_front();
            ctx.recorder.lost(1);
        }
        self.outstanding.push_back(due_ns);
    }

    /// Writes what the socket takes now. Bytes are counted as written,
    /// control frames included, like received bytes are counted as read.
    fn flush(&mut self) -> io::Result<()> {
        let stream = &mut self.stream;
        let recorder = &self.ctx.recorder;
        self.out.write_with(
            |slices| stream.try_write_vectored(slices),
            |n| recorder.sent(0, n as u64),
        )?;
        stream.try_flush()
    }

    fn read(&mut self) -> io::Result<()> {
        SCRATCH.with(|scratch| {
            // Never held across an await: one buffer serves every
            // connection on this thread.
            let mut buf = scratch.borrow_mut();
            loop {
                match self.stream.try_read(&mut buf[..]) {
                    Ok(0) => {
                        if self.closed.is_none() {
                            self.closed = Some(if self.phase == Phase::Closing {
                                self.closed_by_us()
                            } else {
                                Closed::Error("connection ended without a close frame".into())
                            });
                        }
                        return Ok(());
                    }
                    Ok(n) => {
                        // Wire bytes, like `sent`: frames, headers included.
                        self.ctx.recorder.received(0, n as u64);
                        self.feed(&mut buf[..n]);
                        if self.closed.is_some()
                            || (n < buf.len() && self.stream.short_read_drains())
                        {
                            return Ok(());
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
        })
    }

    fn feed(&mut self, bytes: &mut [u8]) {
        let now = Instant::now();
        let Client {
            reader,
            out,
            masks,
            role,
            ctx,
            phase,
            outstanding,
            closed,
            churning,
            ..
        } = self;
        let result = reader.feed(bytes, |m| {
            match m {
                Message::Binary(b) => on_data(ctx, role, outstanding, Message::Binary(b), now),
                Message::Text(t) => on_data(ctx, role, outstanding, Message::Text(t), now),
                Message::Ping(p) => {
                    out.push(encode_frame(OpCode::Pong, p, Some(masks.next_mask())))
                }
                Message::Pong(_) => {}
                Message::Close(code) => {
                    *closed = Some(if *phase == Phase::Closing {
                        if *churning {
                            Closed::Churn
                        } else {
                            Closed::ByUs
                        }
                    } else {
                        // Answer it, as RFC 6455 asks; the loop ends next.
                        let code = code.map(|(c, _)| c);
                        out.abandon_unsent();
                        out.push(close_frame(
                            code.unwrap_or(close_code::NORMAL),
                            "",
                            Some(masks.next_mask()),
                        ));
                        Closed::ByServer { code }
                    });
                    return Flow::Stop;
                }
            }
            Flow::Continue
        });
        if let Err(violation) = result {
            *closed = Some(Closed::Error(format!(
                "server broke the protocol: {violation}"
            )));
        }
    }
}

/// Counts a data message and times it when it is one of ours. Anything
/// that is neither a copy of the run's messages nor a notice (a server's
/// error, someone else's chat, a message that does not decode) is counted
/// as unexpected: a run that gets those is not measuring what it meant to.
fn on_data(
    ctx: &RunContext,
    role: &Role,
    outstanding: &mut VecDeque<u64>,
    m: Message<'_>,
    now: Instant,
) {
    ctx.recorder.received(1, 0);
    let payload: &[u8] = match ctx.workload.kind {
        WorkloadKind::Echo => match m {
            Message::Binary(b) => b,
            Message::Text(t) => t.as_bytes(),
            _ => return,
        },
        WorkloadKind::ChatBinary | WorkloadKind::ChatJson => {
            let msg = match chat::decode_message(&m) {
                Some(Ok(msg)) => msg,
                Some(Err(e)) => {
                    ctx.recorder
                        .unexpected(|| format!("a message that does not decode: {e}"));
                    return;
                }
                None => return,
            };
            match msg.kind() {
                Some(MsgType::Chat) => {}
                Some(MsgType::System) if msg.is_error() => {
                    ctx.recorder.unexpected(|| {
                        format!("an error from the server: {:?}", excerpt(&msg.payload))
                    });
                    return;
                }
                // welcomes, join and leave notices, pongs
                _ => return,
            }
            return time_probe(
                ctx,
                role,
                outstanding,
                &msg.payload,
                now,
                Latency::RoundTrip,
            );
        }
        // An idle connection reads whatever the server sends (a chat
        // server's welcome, say) without judging it.
        WorkloadKind::Idle => return,
    };
    time_probe(ctx, role, outstanding, payload, now, Latency::Echo);
}

/// The start of a payload, as text, for a message people read.
fn excerpt(payload: &[u8]) -> String {
    const MAX: usize = 120;
    let text = String::from_utf8_lossy(&payload[..payload.len().min(MAX)]).into_owned();
    if payload.len() > MAX {
        format!("{text}…")
    } else {
        text
    }
}

/// Times a copy of a probe; one that carries no probe of this run is
/// counted as unexpected instead of as a copy.
fn time_probe(
    ctx: &RunContext,
    role: &Role,
    outstanding: &mut VecDeque<u64>,
    payload: &[u8],
    now: Instant,
    own_kind: Latency,
) {
    let Some((due_ns, sender)) = chat::decode_payload(payload) else {
        ctx.recorder.unexpected(|| {
            format!(
                "a message that is not one of the run's: {:?}",
                excerpt(payload)
            )
        });
        return;
    };
    ctx.recorder.copy_received();
    let sent_at = ctx.clock.origin() + Duration::from_nanos(due_ns);
    let latency = now.saturating_duration_since(sent_at);
    if u64::from(sender) == role.index as u32 as u64 {
        // In order, it is the front; one already written off is not timed.
        if let Some(at) = outstanding.iter().position(|&d| d == due_ns) {
            outstanding.remove(at);
            ctx.recorder.latency(own_kind, latency);
        }
    } else if ctx.clock.shares(u64::from(sender)) {
        ctx.recorder.latency(Latency::Fanout, latency);
    }
}

fn poll_io(stream: &Transport, want_write: bool, cx: &mut Context<'_>) -> Poll<Event> {
    if want_write {
        match stream.poll_write_ready(cx) {
            Poll::Ready(Ok(())) => return Poll::Ready(Event::Writable),
            Poll::Ready(Err(e)) => return Poll::Ready(Event::Failed(e)),
            Poll::Pending => {}
        }
    }
    match stream.poll_read_ready(cx) {
        Poll::Ready(Ok(())) => Poll::Ready(Event::Readable),
        Poll::Ready(Err(e)) => Poll::Ready(Event::Failed(e)),
        Poll::Pending => Poll::Pending,
    }
}
