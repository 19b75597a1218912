//! The clock that payload send times count from.
//!
//! A payload carries its scheduled send time as nanoseconds after an
//! origin, so only a receiver that reads the same clock can time the copy.
//! Every process on one host reads the same CLOCK_MONOTONIC, so payloads
//! count from the host's boot: a member in one process then times a copy
//! sent from another process on the host (a `--processes` worker, or
//! another agent of a `coordinator --local` run or of a one-host docker
//! lab), and fan-out latency covers every member on the host, not just
//! those in the sender's process. Hosts are told apart by their boot id;
//! their clocks are never compared.

use std::ops::Range;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// At most this many separate ranges of connections share one host's
/// clock; a longer list (from a peer) is not used.
pub const MAX_SHARED_RANGES: usize = 4096;

/// Which connections of a run count payload times from this host's boot:
/// the parent of a `--processes` run, or the coordinator, tells each
/// process; a process on another host (another boot id) ignores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostClock {
    /// /proc/sys/kernel/random/boot_id of the host.
    pub boot_id: String,
    /// Global indices of the connections held on that host.
    pub shared_by: Vec<Range<u64>>,
}

impl HostClock {
    /// This host's clock, shared by connections `shared_by`; `None` where
    /// the host has no boot id to tell it apart.
    pub fn here(shared_by: Vec<Range<u64>>) -> Option<HostClock> {
        Some(HostClock {
            boot_id: boot_id()?,
            shared_by: normalized(shared_by),
        })
    }

    /// Why this clock cannot be used in this process, if it cannot.
    pub fn check_here(&self) -> Result<(), String> {
        if self.shared_by.len() > MAX_SHARED_RANGES {
            return Err(format!(
                "{} ranges of connections share the host's clock, more than {MAX_SHARED_RANGES}",
                self.shared_by.len()
            ));
        }
        match boot_id() {
            Some(here) if here == self.boot_id => Ok(()),
            Some(_) => Err(format!("boot id {:?} is another host's", self.boot_id)),
            None => Err("this host has no boot id to compare".to_string()),
        }
    }

    /// This clock with connections `more` sharing it too.
    pub fn with(&self, more: Range<u64>) -> HostClock {
        let mut shared_by = self.shared_by.clone();
        shared_by.push(more);
        HostClock {
            boot_id: self.boot_id.clone(),
            shared_by: normalized(shared_by),
        }
    }
}

/// Where this process's payload times count from, and whose copies it can
/// time: the hot path asks [`PayloadClock::shares`] for every copy.
#[derive(Debug, Clone)]
pub struct PayloadClock {
    origin: Instant,
    /// Sorted, disjoint and not touching.
    shared_by: Vec<Range<u64>>,
}

impl PayloadClock {
    /// The clock of a process holding connections `own`: the host's boot,
    /// shared with the connections `host` names when it is this host's
    /// clock. The error says why a `host` given was not used (the process
    /// then times its own connections only).
    pub fn new(own: Range<u64>, host: Option<&HostClock>) -> (PayloadClock, Option<String>) {
        let Some(boot) = boot_instant() else {
            // No way to read the host's clock: this process's own.
            let why = host.map(|_| "this host's monotonic clock cannot be read".to_string());
            return (PayloadClock::own(Instant::now(), own), why);
        };
        let mut shared_by = vec![own];
        let why = match host.map(|h| (h, h.check_here())) {
            None => None,
            Some((h, Ok(()))) => {
                shared_by.extend(h.shared_by.iter().cloned());
                None
            }
            Some((_, Err(why))) => Some(why),
        };
        (
            PayloadClock {
                origin: boot,
                shared_by: normalized(shared_by),
            },
            why,
        )
    }

    /// A clock starting at `origin` that only connections `own` share.
    pub fn own(origin: Instant, own: Range<u64>) -> PayloadClock {
        PayloadClock {
            origin,
            shared_by: normalized(vec![own]),
        }
    }

    /// When payload time 0 was.
    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// Whether a copy sent by connection `sender` can be timed here.
    pub fn shares(&self, sender: u64) -> bool {
        // binary search: the ranges are sorted and disjoint
        let after = self.shared_by.partition_point(|r| r.start <= sender);
        after > 0 && self.shared_by[after - 1].contains(&sender)
    }
}

/// Sorted, empty ones dropped, overlapping and touching ones merged.
fn normalized(mut ranges: Vec<Range<u64>>) -> Vec<Range<u64>> {
    ranges.retain(|r| r.start < r.end);
    ranges.sort_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// The host's boot as an `Instant`: now minus CLOCK_MONOTONIC (the clock
/// `Instant` reads on Linux, the same in every process of the host). The
/// two reads are back to back, so processes agree to within microseconds.
fn boot_instant() -> Option<Instant> {
    let since_boot = Duration::from_nanos(monotonic_ns()?);
    Instant::now().checked_sub(since_boot)
}

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

/// The kernel's id of this boot: the same in every process and container
/// of the host, new at every boot.
pub fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let id = id.trim();
    (!id.is_empty()).then(|| id.to_string())
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // lists of one range of connections
mod tests {
    use super::*;

    #[test]
    fn ranges_are_merged_and_looked_up() {
        let clock = PayloadClock::own(Instant::now(), 10..20);
        assert!(clock.shares(10) && clock.shares(19));
        assert!(!clock.shares(9) && !clock.shares(20));
        let merged = normalized(vec![30..40, 0..5, 5..10, 35..50, 7..7, 60..61]);
        assert_eq!(merged, vec![0..10, 30..50, 60..61]);
        let clock = PayloadClock {
            origin: Instant::now(),
            shared_by: merged,
        };
        for (sender, shared) in [
            (0, true),
            (9, true),
            (10, false),
            (29, false),
            (30, true),
            (49, true),
            (50, false),
            (60, true),
            (61, false),
            (u64::MAX, false),
        ] {
            assert_eq!(clock.shares(sender), shared, "{sender}");
        }
    }

    #[test]
    fn this_host_s_clock_is_shared_and_another_host_s_is_not() {
        let here = HostClock::here(vec![100..200, 0..10]).unwrap();
        let (clock, why) = PayloadClock::new(10..100, Some(&here));
        assert_eq!(why, None);
        assert_eq!(clock.shared_by, vec![0..200]);

        let elsewhere = HostClock {
            boot_id: "00000000-0000-0000-0000-000000000000".into(),
            shared_by: vec![0..1000],
        };
        let (clock, why) = PayloadClock::new(10..100, Some(&elsewhere));
        assert!(why.unwrap().contains("another host"));
        assert_eq!(clock.shared_by, vec![10..100]);

        let huge = HostClock {
            boot_id: boot_id().unwrap(),
            shared_by: (0..=MAX_SHARED_RANGES as u64)
                .map(|i| 2 * i..2 * i + 1)
                .collect(),
        };
        let (clock, why) = PayloadClock::new(5..6, Some(&huge));
        assert!(why.unwrap().contains("more than"));
        assert_eq!(clock.shared_by, vec![5..6]);
    }

    /// Two processes compute the same origin: here, two reads a while
    /// apart in one process.
    #[test]
    fn the_boot_origin_holds_still() {
        let a = boot_instant().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let b = boot_instant().unwrap();
        let apart = if a > b { a - b } else { b - a };
        assert!(apart < Duration::from_millis(1), "{apart:?}");
    }
}
