//! The part of a connection other connections touch: its bounded outbound
//! queue and the wake-up for its task. An idle connection's queue holds no
//! allocation; frames are `Bytes` shared with every other recipient.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use protocol::Proto;

use crate::metrics::CloseReason;

pub struct Conn {
    pub id: u64,
    /// The encoding this connection is answered in (`Proto as u8`).
    proto: AtomicU8,
    /// Milliseconds since server start of the last bytes received.
    last_seen: AtomicU64,
    outbox: Mutex<Outbox>,
    /// Set when the outbox has work (frames or a close), cleared by `take`.
    /// With the waker it replaces a `Notify`, whose wait future would sit
    /// in every idle connection's task.
    pending: AtomicBool,
    /// Set by `close`: seen even while the task is stuck writing to a
    /// client that does not read, which is when a close matters most.
    closing: AtomicBool,
    waker: AtomicWaker,
}

#[derive(Default)]
struct Outbox {
    frames: VecDeque<Bytes>,
    bytes: usize,
    drops: u32,
    close: Option<CloseReason>,
}

/// What became of a frame offered to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    Queued,
    /// The queue was full; the frame was dropped.
    Dropped,
    /// Dropped, and this was the drop that used up the allowance: the
    /// connection is now closing with 1013.
    DroppedAndClosed,
    /// The connection is closing; nothing more is queued.
    Closing,
}

/// The work a connection's task takes out of its outbox in one go.
pub enum Taken {
    Frames(VecDeque<Bytes>),
    Close(CloseReason),
    Nothing,
}

/// Queue limits, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    pub max_bytes: usize,
    pub max_drops: u32,
}

impl Conn {
    pub fn new(id: u64, proto: Proto, now_ms: u64) -> Conn {
        Conn {
            id,
            proto: AtomicU8::new(proto as u8),
            last_seen: AtomicU64::new(now_ms),
            outbox: Mutex::new(Outbox::default()),
            pending: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        }
    }

    pub fn proto(&self) -> Proto {
        Proto::from_u8(self.proto.load(Ordering::Relaxed))
    }

    pub fn set_proto(&self, proto: Proto) {
        self.proto.store(proto as u8, Ordering::Relaxed);
    }

    pub fn touch(&self, now_ms: u64) {
        self.last_seen.store(now_ms, Ordering::Relaxed);
    }

    pub fn last_seen(&self) -> u64 {
        self.last_seen.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Outbox> {
        // A panic while holding this lock cannot leave the queue
        // inconsistent (every update is a single push or take), so a
        // poisoned lock is still usable.
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Offers a frame. Past the byte bound it is dropped; after
    /// `max_drops` drops the connection is told to close with 1013.
    pub fn push(&self, frame: &Bytes, limits: QueueLimits) -> Push {
        let mut q = self.lock();
        if q.close.is_some() {
            return Push::Closing;
        }
        if q.bytes + frame.len() > limits.max_bytes && !q.frames.is_empty() {
            q.drops += 1;
            if q.drops >= limits.max_drops {
                q.close = Some(CloseReason::SlowConsumer);
                q.frames = VecDeque::new();
                q.bytes = 0;
                drop(q);
                self.signal_close();
                return Push::DroppedAndClosed;
            }
            return Push::Dropped;
        }
        q.bytes += frame.len();
        q.frames.push_back(frame.clone());
        drop(q);
        self.signal();
        Push::Queued
    }

    /// Asks the connection's task to close; queued frames are discarded.
    /// The first reason wins.
    pub fn close(&self, reason: CloseReason) {
        let mut q = self.lock();
        if q.close.is_none() {
            q.close = Some(reason);
            q.frames = VecDeque::new();
            q.bytes = 0;
        }
        drop(q);
        self.signal_close();
    }

    /// Wakes the task whatever it waits for: frames may already be pending
    /// and not taken (the socket is full), so `signal` would not wake it.
    fn signal_close(&self) {
        self.closing.store(true, Ordering::Release);
        self.pending.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Whether a close has been asked for.
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Wakes the task unless it was already told: only the first frame
    /// after a `take` pays for a wake-up.
    fn signal(&self) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            self.waker.wake();
        }
    }

    /// Whether work waits to be taken: a hint for the owning task, which
    /// takes under the lock anyway (its own pushes are seen on its thread).
    pub fn has_work(&self) -> bool {
        self.pending.load(Ordering::Relaxed)
    }

    /// Ready when there is work to `take` (`frames_wanted`), or only when a
    /// close was asked for (the task is still writing earlier frames);
    /// otherwise arranges a wake-up.
    pub fn poll_work(&self, cx: &mut Context<'_>, frames_wanted: bool) -> Poll<()> {
        let ready = || {
            if frames_wanted {
                self.pending.load(Ordering::Acquire)
            } else {
                self.closing.load(Ordering::Acquire)
            }
        };
        if ready() {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        if ready() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Takes everything queued (the queue is left unallocated), or the
    /// close request.
    pub fn take(&self) -> Taken {
        let mut q = self.lock();
        self.pending.store(false, Ordering::Release);
        if let Some(reason) = q.close {
            // Stay pending: the close is taken again until acted on.
            self.pending.store(true, Ordering::Release);
            return Taken::Close(reason);
        }
        if q.frames.is_empty() {
            return Taken::Nothing;
        }
        q.bytes = 0;
        Taken::Frames(std::mem::take(&mut q.frames))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: QueueLimits = QueueLimits {
        max_bytes: 10,
        max_drops: 3,
    };

    #[test]
    fn bound_drops_then_closes() {
        let c = Conn::new(1, Proto::Json, 0);
        let f = Bytes::from_static(b"123456");
        assert_eq!(c.push(&f, LIMITS), Push::Queued);
        assert_eq!(c.push(&f, LIMITS), Push::Dropped);
        assert_eq!(c.push(&f, LIMITS), Push::Dropped);
        assert!(!c.is_closing());
        assert_eq!(c.push(&f, LIMITS), Push::DroppedAndClosed);
        assert!(c.is_closing());
        assert_eq!(c.push(&f, LIMITS), Push::Closing);
        assert!(matches!(c.take(), Taken::Close(CloseReason::SlowConsumer)));
    }

    #[test]
    fn an_oversized_frame_still_goes_to_an_empty_queue() {
        let c = Conn::new(1, Proto::Json, 0);
        assert_eq!(c.push(&Bytes::from(vec![0; 100]), LIMITS), Push::Queued);
        match c.take() {
            Taken::Frames(f) => assert_eq!(f.len(), 1),
            _ => panic!("expected frames"),
        }
        assert!(matches!(c.take(), Taken::Nothing));
        assert_eq!(c.push(&Bytes::from_static(b"1234"), LIMITS), Push::Queued);
    }
}
