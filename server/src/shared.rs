//! State every worker shares: configuration, rooms, the connection table
//! (for the idle sweep and the shutdown drain), id counters and metrics.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use protocol::Proto;

use crate::config::Opts;
use crate::conn::{Conn, QueueLimits};
use crate::metrics::Metrics;
use crate::rooms::Rooms;

/// The limits the hot path checks, copied out of the options.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub max_message_size: usize,
    /// The `/echo` endpoint's message-size limit; `None` without `--echo`.
    pub echo_max_message_size: Option<usize>,
    pub max_username_len: usize,
    pub max_room_len: usize,
    pub max_rooms_per_connection: usize,
    pub max_bad_messages: u32,
    pub queue: QueueLimits,
    pub default_proto: Proto,
    pub idle_timeout: Duration,
    pub handshake_timeout: Duration,
    pub drain_timeout: Duration,
    pub socket_send_buffer: Option<usize>,
    pub socket_recv_buffer: Option<usize>,
}

impl Limits {
    pub fn from_opts(opts: &Opts, max_connections: usize) -> Limits {
        Limits {
            max_connections,
            max_message_size: opts.max_message_size,
            echo_max_message_size: opts.echo.then_some(opts.echo_max_message_size),
            max_username_len: opts.max_username_len,
            max_room_len: opts.max_room_len,
            max_rooms_per_connection: opts.max_rooms_per_connection,
            max_bad_messages: opts.max_bad_messages,
            queue: QueueLimits {
                max_bytes: opts.max_queued_bytes,
                max_drops: opts.max_drops,
            },
            default_proto: opts.default_proto,
            idle_timeout: opts.idle_timeout,
            handshake_timeout: opts.handshake_timeout,
            drain_timeout: opts.drain_timeout,
            socket_send_buffer: opts.socket_send_buffer,
            socket_recv_buffer: opts.socket_recv_buffer,
        }
    }
}

pub struct Shared {
    pub limits: Limits,
    pub rooms: Rooms,
    pub conns: DashMap<u64, Arc<Conn>>,
    /// Upgraded connections plus upgrades in progress that hold a slot.
    open: AtomicUsize,
    next_conn_id: AtomicU64,
    next_msg_id: AtomicU64,
    pub metrics: Metrics,
    /// Set at shutdown: upgrades are refused with 503 from then on.
    pub draining: AtomicBool,
    started: Instant,
}

impl Shared {
    pub fn new(limits: Limits, room_shards: usize) -> Shared {
        Shared {
            limits,
            rooms: Rooms::new(room_shards),
            conns: DashMap::new(),
            open: AtomicUsize::new(0),
            next_conn_id: AtomicU64::new(1),
            next_msg_id: AtomicU64::new(1),
            metrics: Metrics::new(),
            draining: AtomicBool::new(false),
            started: Instant::now(),
        }
    }

    /// Milliseconds since start: the clock of `Conn::last_seen`.
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Claims a connection slot; `None` when the server is full.
    pub fn claim_slot(self: &Arc<Self>) -> Option<SlotGuard> {
        let mut cur = self.open.load(Ordering::Relaxed);
        loop {
            if cur >= self.limits.max_connections {
                return None;
            }
            match self
                .open
                .compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    return Some(SlotGuard {
                        shared: self.clone(),
                    })
                }
                Err(now) => cur = now,
            }
        }
    }

    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    pub fn next_conn_id(&self) -> u64 {
        self.next_conn_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn next_msg_id(&self) -> u64 {
        self.next_msg_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// A held connection slot, given back on drop whatever way the connection ends.
pub struct SlotGuard {
    shared: Arc<Shared>,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.shared.open.fetch_sub(1, Ordering::AcqRel);
    }
}
