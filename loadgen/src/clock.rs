//! The clock that payload send times count from.
//!
//! A payload carries its scheduled send time as nanoseconds after an
//! origin, so only a receiver that knows that origin can time the copy.
//! Every process on one host reads the same CLOCK_MONOTONIC, so the parent
//! of a `--processes` run hands all its workers one origin: a member in
//! one worker then times a copy sent from another, and fan-out latency
//! covers the whole room, not just the part in the sender's process.
//! Hosts do not share that clock, so each agent keeps its own.

use std::ops::Range;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Where payload times count from, and which connections count from there.
#[derive(Debug, Clone)]
pub struct PayloadClock {
    pub origin: Instant,
    /// Global indices of the connections whose payloads count from
    /// `origin`: their copies can be timed here.
    pub shared_by: Range<u64>,
}

impl PayloadClock {
    /// A process's own clock: payloads count from its `epoch`, and only
    /// its own connections share it.
    pub fn own(epoch: Instant, connections: Range<u64>) -> PayloadClock {
        PayloadClock {
            origin: epoch,
            shared_by: connections,
        }
    }
}

/// A [`PayloadClock`] as a parent sends it to its workers: the origin as a
/// host-wide CLOCK_MONOTONIC reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostClock {
    pub origin_monotonic_ns: u64,
    pub first: u64,
    pub count: u64,
}

impl HostClock {
    /// An origin of now, shared by connections `shared_by`; `None` if the
    /// monotonic clock cannot be read.
    pub fn now(shared_by: Range<u64>) -> Option<HostClock> {
        Some(HostClock {
            origin_monotonic_ns: monotonic_ns()?,
            first: shared_by.start,
            count: shared_by.end.saturating_sub(shared_by.start),
        })
    }

    /// The clock in this process's terms; `None` if the origin is not a
    /// moment this host's clock has passed (not from this host), in which
    /// case the process keeps its own.
    pub fn to_payload_clock(&self) -> Option<PayloadClock> {
        let now = Instant::now();
        let since = monotonic_ns()?.checked_sub(self.origin_monotonic_ns)?;
        Some(PayloadClock {
            origin: now.checked_sub(Duration::from_nanos(since))?,
            shared_by: self.first..self.first.checked_add(self.count)?,
        })
    }
}

/// CLOCK_MONOTONIC in nanoseconds: the clock `Instant` reads on Linux, the
/// same in every process of the host.
fn monotonic_ns() -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only the struct we pass.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) } != 0 {
        return None;
    }
    let secs = u64::try_from(ts.tv_sec).ok()?;
    let nanos = u64::try_from(ts.tv_nsec).ok()?;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_clock_comes_back_as_the_same_instant() {
        let before = Instant::now();
        let sent = HostClock::now(10..30).unwrap();
        let after = Instant::now();
        std::thread::sleep(Duration::from_millis(20));
        let clock = sent.to_payload_clock().unwrap();
        // read in the same process: the origin lies between the two reads
        // (give or take the gap between reading the two clocks)
        let slack = Duration::from_millis(1);
        assert!(clock.origin + slack >= before && clock.origin <= after + slack);
        assert_eq!(clock.shared_by, 10..30);
    }

    #[test]
    fn an_origin_this_host_never_saw_is_refused() {
        let future = HostClock {
            origin_monotonic_ns: u64::MAX,
            first: 0,
            count: 1,
        };
        assert!(future.to_payload_clock().is_none());
        let overflowing = HostClock {
            origin_monotonic_ns: 0,
            first: u64::MAX,
            count: 2,
        };
        assert!(overflowing.to_payload_clock().is_none());
    }
}
