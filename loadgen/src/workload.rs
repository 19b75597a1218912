//! What each connection does, decided from its index alone so that every
//! process (and later every agent) agrees on the plan without talking.

use std::time::Duration;

use protocol::Proto;

use crate::opts::{RunOpts, WorkloadKind};

/// The run-wide shape of the load.
#[derive(Debug, Clone)]
pub struct Workload {
    pub kind: WorkloadKind,
    pub rooms: u64,
    /// Room names are `{room_prefix}room-{k}`.
    pub room_prefix: String,
    /// Fraction of connections that send.
    pub senders: f64,
    /// Time between one sender's messages.
    pub interval: Duration,
    pub size: usize,
    pub ping_interval: Option<Duration>,
    /// Mean connection lifetime under churn.
    pub mean_lifetime: Option<Duration>,
}

/// One connection's part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// Global connection index (stable across processes).
    pub index: u64,
    /// The chat room, for chat workloads.
    pub room: Option<String>,
    /// Whether this connection sends messages on a timetable.
    pub sends: bool,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WorkloadError {
    #[error("--chatters must be between 0 and 1, not {0}")]
    Fraction(f64),
    #[error("--rate must be a positive number of messages per second, not {0}")]
    Rate(f64),
    #[error("--size must be at least {min} bytes (the payload carries the send time), not {size}")]
    Size { size: usize, min: usize },
    #[error("--rooms must be at least 1")]
    Rooms,
    #[error("--churn must be a number of connections per second, 0 or more, not {0}")]
    Churn(f64),
}

impl Workload {
    pub fn from_opts(opts: &RunOpts) -> Result<Workload, WorkloadError> {
        if !(0.0..=1.0).contains(&opts.chatters) {
            return Err(WorkloadError::Fraction(opts.chatters));
        }
        if !(opts.rate > 0.0 && opts.rate.is_finite()) {
            return Err(WorkloadError::Rate(opts.rate));
        }
        if opts.size < crate::chat::MIN_PAYLOAD {
            return Err(WorkloadError::Size {
                size: opts.size,
                min: crate::chat::MIN_PAYLOAD,
            });
        }
        let rooms = opts
            .rooms
            .unwrap_or_else(|| opts.connections.div_ceil(100).max(1));
        if rooms == 0 {
            return Err(WorkloadError::Rooms);
        }
        Ok(Workload {
            kind: opts.workload,
            rooms,
            room_prefix: opts.room_prefix.clone().unwrap_or_default(),
            senders: if opts.workload == WorkloadKind::Idle {
                0.0
            } else {
                opts.chatters
            },
            interval: Duration::from_secs_f64(1.0 / opts.rate),
            size: opts.size,
            ping_interval: (!opts.ping_interval.is_zero()).then_some(opts.ping_interval),
            mean_lifetime: (opts.churn > 0.0)
                .then(|| Duration::from_secs_f64(opts.connections.max(1) as f64 / opts.churn)),
        })
    }

    pub fn proto(&self) -> Option<Proto> {
        match self.kind {
            WorkloadKind::ChatBinary => Some(Proto::Binary),
            WorkloadKind::ChatJson => Some(Proto::Json),
            WorkloadKind::Echo | WorkloadKind::Idle => None,
        }
    }

    /// Connection `index`'s role. Senders are spread evenly: index i sends
    /// when floor((i+1)·f) > floor(i·f), so any prefix of the connections
    /// holds its share of senders.
    pub fn role(&self, index: u64) -> Role {
        let f = self.senders;
        let sends = ((index + 1) as f64 * f).floor() > (index as f64 * f).floor();
        let room = self
            .proto()
            .map(|_| format!("{}room-{}", self.room_prefix, index % self.rooms));
        Role { index, room, sends }
    }

    /// How long the `generation`-th connection of slot `index` lives under
    /// churn: exponential with the mean lifetime, from a hash of both, so a
    /// run's churn is the same every time.
    pub fn lifetime(&self, index: u64, generation: u64) -> Option<Duration> {
        let mean = self.mean_lifetime?;
        let mut x = index
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(generation.wrapping_mul(0xBF58_476D_1CE4_E5B9))
            | 1;
        for _ in 0..3 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        // uniform in (0, 1]: never 0, so the logarithm is finite
        let u = ((x >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        Some(mean.mul_f64(-u.ln()))
    }

    /// The query a chat connection adds to the target URL.
    pub fn query(&self, role: &Role) -> Option<String> {
        let proto = self.proto()?;
        let room = role.room.as_deref()?;
        Some(format!(
            "room={room}&username=u{}&proto={}",
            role.index,
            proto.as_str()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn workload(args: &[&str]) -> Workload {
        let cli = crate::opts::Cli::parse_from(["loadgen", "run", "ws://h:1/"].iter().chain(args));
        Workload::from_opts(&cli.into_run().unwrap()).unwrap()
    }

    #[test]
    fn senders_are_an_exact_evenly_spread_share() {
        let w = workload(&["--chatters", "0.1", "-c", "1000"]);
        let senders: Vec<u64> = (0..1000).filter(|&i| w.role(i).sends).collect();
        assert_eq!(senders.len(), 100);
        assert!(senders.windows(2).all(|p| p[1] - p[0] == 10));
        let all = workload(&["--chatters", "1"]);
        assert!((0..50).all(|i| all.role(i).sends));
        let none = workload(&["--chatters", "0"]);
        assert!((0..50).all(|i| !none.role(i).sends));
    }

    #[test]
    fn rooms_default_to_one_per_hundred_and_roles_say_where() {
        let w = workload(&["-c", "250", "--room-prefix", ""]);
        assert_eq!(w.rooms, 3);
        assert_eq!(w.role(4).room.as_deref(), Some("room-1"));
        assert_eq!(
            w.query(&w.role(4)).unwrap(),
            "room=room-1&username=u4&proto=binary"
        );
        let idle = workload(&["--workload", "idle"]);
        assert_eq!(idle.query(&idle.role(4)), None);
        assert!(!idle.role(9).sends);
    }

    #[test]
    fn the_room_prefix_separates_runs() {
        let w = workload(&["--room-prefix", "lg1a2b3c-"]);
        assert_eq!(w.role(4).room.as_deref(), Some("lg1a2b3c-room-4"));
    }

    #[test]
    fn churn_lifetimes_average_the_mean() {
        let w = workload(&["-c", "1000", "--churn", "100"]);
        assert_eq!(w.mean_lifetime, Some(Duration::from_secs(10)));
        let n = 20_000u64;
        let total: f64 = (0..n)
            .map(|i| w.lifetime(i, i % 7).unwrap().as_secs_f64())
            .sum();
        let mean = total / n as f64;
        assert!((9.5..10.5).contains(&mean), "mean lifetime {mean}");
        assert_eq!(w.lifetime(3, 1), w.lifetime(3, 1));
        assert_ne!(w.lifetime(3, 1), w.lifetime(3, 2));
        assert_eq!(workload(&[]).lifetime(3, 1), None);
    }

    #[test]
    fn bad_knobs_are_refused() {
        let cli = crate::opts::Cli::parse_from(["loadgen", "run", "ws://h/", "--chatters", "1.5"]);
        assert_eq!(
            Workload::from_opts(&cli.into_run().unwrap()).unwrap_err(),
            WorkloadError::Fraction(1.5)
        );
        let cli = crate::opts::Cli::parse_from(["loadgen", "run", "ws://h/", "--size", "8"]);
        assert!(matches!(
            Workload::from_opts(&cli.into_run().unwrap()),
            Err(WorkloadError::Size { .. })
        ));
    }
}
