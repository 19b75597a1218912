//! How many connections each (source address, target address) pair will
//! carry, and enough source addresses that none carries more than half the
//! local port range. The capacity check ([`crate::capacity`]) allows a
//! pair the whole range, and that is the hard limit; but connect() picks
//! its port from the ports of one parity first (Linux leaves the other
//! half to bind()), so once a pair holds half the range every further
//! connect searches through the taken half before it finds a port. On the
//! machine this was built on, one source address to one server address
//! ramped at 5,000/s up to about 14,100 connections, then at about
//! 1,400/s with loadgen's CPU at 184 %; the same run over two source
//! addresses held 5,000/s throughout.
//!
//! So: with `--source-ips` given, or a target off loopback, a pair past
//! half the range is warned about, naming the number of addresses that
//! would avoid it. Without `--source-ips` and with every target on IPv4
//! loopback, where every 127.x address is local without configuration,
//! `loadgen run` picks enough addresses itself from [`AUTO_BLOCK`].

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::Context;
use tracing::{info, warn};

use crate::capacity;
use crate::opts::RunOpts;
use crate::printer::int;
use crate::workload::Workload;

/// Where automatically picked source addresses come from: 127.1.0.1 to
/// 127.1.0.254. The coordinator gives its local agent k the block
/// 127.{(k+2) mod 256}.{(k+2) / 256}.x (coordinator/src/local.rs), which is
/// never 127.1.0.x, and the usual server address 127.0.0.1 is outside it.
pub const AUTO_BLOCK: (Ipv4Addr, u64) = (Ipv4Addr::new(127, 1, 0, 1), 254);

/// Ports in the inclusive `port_range`: what one pair may use at most.
pub fn ports(port_range: (u16, u16)) -> u64 {
    u64::from(port_range.1.saturating_sub(port_range.0)) + 1
}

/// Half the local port range: the most connections one pair should carry
/// before connects slow down.
pub fn half_range(port_range: (u16, u16)) -> u64 {
    (ports(port_range) / 2).max(1)
}

/// Connections on the busiest target address. `per_target[i]` is what
/// `targets[i]` receives; entries naming one address share its pairs.
pub fn busiest_target(targets: &[SocketAddr], per_target: &[u64]) -> u64 {
    let distinct: HashSet<&SocketAddr> = targets.iter().collect();
    distinct
        .into_iter()
        .map(|addr| {
            targets
                .iter()
                .zip(per_target)
                .filter(|(t, _)| *t == addr)
                .map(|(_, n)| *n)
                .fold(0u64, u64::saturating_add)
        })
        .max()
        .unwrap_or(0)
}

/// Connections on the busiest (source, target) pair: a target's
/// connections take its sources in turn ([`Workload::endpoints`]), so each
/// source gets its share rounded up. `sources` 0 is the kernel's one.
pub fn busiest_pair(busiest_target: u64, sources: u64) -> u64 {
    busiest_target.div_ceil(sources.max(1))
}

/// Source addresses that keep every pair at or under `per_pair`.
pub fn sources_for(busiest_target: u64, per_pair: u64) -> u64 {
    busiest_target.div_ceil(per_pair.max(1)).max(1)
}

/// The source addresses a run will use, and how crowded its busiest pair is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePlan {
    /// Addresses picked here, in `--source-ips` syntax, when none were
    /// given and every target is on IPv4 loopback.
    pub picked: Option<String>,
    /// Source addresses in use, given or picked (0: the kernel's one).
    pub sources: u64,
    /// Connections on the busiest (source, target) pair.
    pub busiest_pair: u64,
    pub port_range: (u16, u16),
    /// Set when the busiest pair carries more than half the port range.
    pub crowded: Option<Crowded>,
}

/// A pair past half the port range, and what would avoid it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crowded {
    pub busiest_pair: u64,
    pub port_range: (u16, u16),
    /// Source addresses given (`--source-ips`) or picked; 0: none.
    pub sources: u64,
    /// Whether `sources` were picked automatically.
    pub picked: bool,
    /// Source addresses that would keep every pair within half the range.
    pub needed: u64,
    /// How to get them (a `--source-ips` range on loopback, or
    /// addresses assigned to an interface).
    pub suggestion: String,
}

/// Decides the source addresses of a run whose busiest target address
/// gets `busiest_target` connections: `given` addresses of `--source-ips`
/// (0: none), `all_loopback_v4` when every target is in 127.0.0.0/8, and
/// `may_pick` when addresses may be picked automatically (`loadgen run`
/// without `--source-ips`). Pure arithmetic, so the threshold is tested
/// with any port range.
pub fn plan(
    busiest_target: u64,
    given: u64,
    all_loopback_v4: bool,
    may_pick: bool,
    port_range: (u16, u16),
) -> SourcePlan {
    let half = half_range(port_range);
    let needed = sources_for(busiest_target, half);
    let (first, block) = AUTO_BLOCK;
    let picked =
        (given == 0 && may_pick && all_loopback_v4 && needed > 1).then(|| needed.min(block));
    let sources = picked.unwrap_or(given);
    let busiest = busiest_pair(busiest_target, sources);
    let crowded = (busiest > half).then(|| Crowded {
        busiest_pair: busiest,
        port_range,
        sources,
        picked: picked.is_some(),
        needed,
        suggestion: capacity::source_suggestion(needed, sources > 0, all_loopback_v4),
    });
    SourcePlan {
        picked: picked.map(|n| auto_range(first, n)),
        sources,
        busiest_pair: busiest,
        port_range,
        crowded,
    }
}

/// `first-last` for `count` addresses from `first` (count ≥ 1, within the
/// block, so no overflow).
fn auto_range(first: Ipv4Addr, count: u64) -> String {
    let last = u32::from(first).saturating_add(count.saturating_sub(1) as u32);
    format!("{first}-{}", Ipv4Addr::from(last))
}

/// [`plan`] for `connections` of the run `opts` describes (a share of it,
/// for an agent): resolves the targets, counts `--source-ips` and reads
/// the port range. `may_pick`: addresses may be picked when none were given.
pub fn for_run(opts: &RunOpts, connections: u64, may_pick: bool) -> anyhow::Result<SourcePlan> {
    let targets = crate::target::parse_targets(&opts.targets)?;
    let addrs: Vec<SocketAddr> = targets.iter().map(|t| t.addr).collect();
    let given = match &opts.source_ips {
        Some(spec) => crate::source_ips::parse(spec)
            .context("--source-ips")?
            .len() as u64,
        None => 0,
    };
    let workload = Workload::from_opts(opts)?;
    let per_target = workload.target_counts(connections, addrs.len());
    let port_range =
        capacity::local_port_range().context("reading net.ipv4.ip_local_port_range")?;
    let all_loopback_v4 = addrs
        .iter()
        .all(|a| matches!(a.ip(), IpAddr::V4(ip) if ip.is_loopback()));
    Ok(plan(
        busiest_target(&addrs, &per_target),
        given,
        all_loopback_v4,
        may_pick && opts.source_ips.is_none(),
        port_range,
    ))
}

impl SourcePlan {
    /// Says what was picked (info) and what will be slow (warning), before
    /// the run starts, so the reader knows while it ramps.
    pub fn log(&self) {
        if let Some(spec) = &self.picked {
            info!(
                source_ips = %spec,
                per_pair = self.busiest_pair,
                "{}",
                self.picked_note().unwrap_or_default()
            );
        }
        if let Some(crowded) = &self.crowded {
            warn!("{crowded}");
        }
    }

    /// For the summary: the addresses picked, if any.
    pub fn picked_note(&self) -> Option<String> {
        let spec = self.picked.as_ref()?;
        Some(format!(
            "source addresses {spec} picked automatically (no --source-ips, every target on \
             loopback): at most {} connections per (source, target) pair, within half the local \
             port range ({}), past which connects slow down",
            int(self.busiest_pair),
            int(half_range(self.port_range))
        ))
    }

    /// Everything the summary should say about the source addresses.
    pub fn notes(&self) -> Vec<String> {
        self.picked_note()
            .into_iter()
            .chain(self.crowded.iter().map(Crowded::to_string))
            .collect()
    }
}

impl fmt::Display for Crowded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (lo, hi) = self.port_range;
        let half = half_range(self.port_range);
        match (self.sources, self.picked) {
            (0, _) => write!(
                f,
                "{} connections on one (source, target) pair: without --source-ips every \
                 connection to a target comes from one source address",
                int(self.busiest_pair)
            )?,
            (n, true) => write!(
                f,
                "{} connections per (source, target) pair even with the {n} source addresses \
                 picked automatically",
                int(self.busiest_pair)
            )?,
            (n, false) => write!(
                f,
                "{} connections per (source, target) pair with the {n} source {} of --source-ips",
                int(self.busiest_pair),
                if n == 1 { "address" } else { "addresses" }
            )?,
        }
        write!(
            f,
            "; past {} per pair (half of net.ipv4.ip_local_port_range {lo} {hi}) each connect \
             searches the taken ports first, and the connect rate collapses (measured: 5,000/s \
             fell to 1,400/s past 14,100 connections on one pair); {} source addresses would keep \
             every pair within it: {}. The run goes ahead: a pair holds at most {} connections",
            int(half),
            int(self.needed),
            self.suggestion,
            int(ports(self.port_range)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RANGE: (u16, u16) = (32768, 60999);

    #[test]
    fn half_the_range_and_per_pair_counts() {
        assert_eq!(ports(RANGE), 28_232);
        assert_eq!(half_range(RANGE), 14_116);
        assert_eq!(half_range((5000, 5000)), 1);
        assert_eq!(half_range((1000, 1199)), 100);
        assert_eq!(busiest_pair(20_000, 0), 20_000);
        assert_eq!(busiest_pair(20_000, 2), 10_000);
        assert_eq!(busiest_pair(20_001, 2), 10_001);
        assert_eq!(sources_for(14_116, 14_116), 1);
        assert_eq!(sources_for(14_117, 14_116), 2);
        assert_eq!(sources_for(0, 14_116), 1);
        assert_eq!(sources_for(100_000, 0), 100_000);
        // A target named twice takes both entries' connections.
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        assert_eq!(busiest_target(&[a, b, a], &[10, 15, 9]), 19);
        assert_eq!(busiest_target(&[a, b], &[10, 15]), 15);
        assert_eq!(busiest_target(&[], &[]), 0);
        assert_eq!(busiest_target(&[a, a], &[u64::MAX, 1]), u64::MAX);
    }

    #[test]
    fn enough_given_addresses_are_left_alone() {
        // 100,000 over 6 targets and 8 sources (the README's run): 2,084
        // on the busiest pair.
        let p = plan(16_667, 8, true, false, RANGE);
        assert_eq!(p.busiest_pair, 2_084);
        assert_eq!(
            (p.picked.as_deref(), p.sources, p.crowded.as_ref()),
            (None, 8, None)
        );
        assert!(p.notes().is_empty());
        // Exactly half on one pair still fits.
        let p = plan(28_232, 2, false, true, RANGE);
        assert_eq!(p.busiest_pair, 14_116);
        assert!(p.crowded.is_none());
        // So does a small run from the kernel's one address.
        let p = plan(14_116, 0, true, true, RANGE);
        assert_eq!((p.picked, p.sources, p.crowded), (None, 0, None));
    }

    #[test]
    fn too_few_given_addresses_are_warned_about() {
        let p = plan(20_000, 1, true, true, RANGE);
        assert_eq!(p.picked, None, "given addresses are never replaced");
        let c = p.crowded.clone().unwrap();
        assert_eq!((c.busiest_pair, c.needed, c.sources), (20_000, 2, 1));
        assert_eq!(
            c.to_string(),
            "20,000 connections per (source, target) pair with the 1 source address of \
             --source-ips; past 14,116 per pair (half of net.ipv4.ip_local_port_range 32768 \
             60999) each connect searches the taken ports first, and the connect rate collapses \
             (measured: 5,000/s fell to 1,400/s past 14,100 connections on one pair); 2 source \
             addresses would keep every pair within it: use --source-ips 127.0.0.2-127.0.0.3 \
             (any 127.x address works on loopback without configuration). The run goes ahead: \
             a pair holds at most 28,232 connections"
        );
        assert_eq!(p.notes(), vec![c.to_string()]);
        // Off loopback: assign them.
        let c = plan(60_000, 3, false, true, RANGE).crowded.unwrap();
        assert_eq!((c.busiest_pair, c.needed), (20_000, 5));
        let text = c.to_string();
        assert!(
            text.starts_with("20,000 connections per (source, target) pair with the 3 source addresses of --source-ips;"),
            "{text}"
        );
        assert!(
            text.contains("5 source addresses would keep every pair within it: assign 5 addresses to a network interface (ip addr add ADDRESS/PREFIX dev IFACE)"),
            "{text}"
        );
    }

    #[test]
    fn loopback_without_addresses_picks_enough() {
        // 20,000 to one loopback server: two addresses, 10,000 each.
        let p = plan(20_000, 0, true, true, RANGE);
        assert_eq!(p.picked.as_deref(), Some("127.1.0.1-127.1.0.2"));
        assert_eq!(
            (p.sources, p.busiest_pair, p.crowded.as_ref()),
            (2, 10_000, None)
        );
        assert_eq!(
            p.notes(),
            vec![
                "source addresses 127.1.0.1-127.1.0.2 picked automatically (no --source-ips, \
                 every target on loopback): at most 10,000 connections per (source, target) \
                 pair, within half the local port range (14,116), past which connects slow down"
                    .to_string()
            ]
        );
        // A narrow range: 100 per pair, so 1,001 connections need 11.
        let p = plan(1_001, 0, true, true, (1000, 1199));
        assert_eq!(p.picked.as_deref(), Some("127.1.0.1-127.1.0.11"));
        assert_eq!(p.busiest_pair, 91);
        // More than the block holds: all of it, and a warning.
        let p = plan(10_000_000, 0, true, true, RANGE);
        assert_eq!(p.picked.as_deref(), Some("127.1.0.1-127.1.0.254"));
        let c = p.crowded.unwrap();
        assert_eq!((c.sources, c.needed, c.busiest_pair), (254, 709, 39_371));
        assert!(
            c.to_string().starts_with(
                "39,371 connections per (source, target) pair even with the 254 source addresses picked automatically;"
            ),
            "{c}"
        );
        assert!(
            c.to_string()
                .contains("use --source-ips 127.0.0.2-127.0.2.198"),
            "{c}"
        );
    }

    #[test]
    fn nothing_is_picked_off_ipv4_loopback_or_when_not_allowed() {
        // ::1 is IPv6 loopback's only address; 10.x must be assigned first.
        let p = plan(20_000, 0, false, true, RANGE);
        assert_eq!((p.picked.as_ref(), p.sources), (None, 0));
        let c = p.crowded.unwrap();
        assert_eq!(
            c.to_string(),
            "20,000 connections on one (source, target) pair: without --source-ips every \
             connection to a target comes from one source address; past 14,116 per pair (half \
             of net.ipv4.ip_local_port_range 32768 60999) each connect searches the taken ports \
             first, and the connect rate collapses (measured: 5,000/s fell to 1,400/s past \
             14,100 connections on one pair); 2 source addresses would keep every pair within \
             it: assign 2 addresses to a network interface (ip addr add ADDRESS/PREFIX dev \
             IFACE) and pass them with --source-ips (a range, a CIDR block or a list). The run \
             goes ahead: a pair holds at most 28,232 connections"
        );
        // An agent picks nothing: its coordinator chooses its addresses.
        let p = plan(20_000, 0, true, false, RANGE);
        assert_eq!(p.picked, None);
        assert!(p
            .crowded
            .unwrap()
            .to_string()
            .contains("2 source addresses would keep every pair within it: add --source-ips 127.0.0.2-127.0.0.3"));
    }

    #[test]
    fn the_auto_block_is_none_of_the_coordinators() {
        // coordinator/src/local.rs: agent k gets 127.{(k+2)%256}.{(k+2)/256}.x.
        let (first, count) = AUTO_BLOCK;
        let ips = crate::source_ips::parse(&auto_range(first, count)).unwrap();
        assert_eq!(ips.len(), 254);
        for k in 0..65_000u64 {
            let block = 2 + k;
            let (second, third) = ((block % 256) as u8, (block / 256) as u8);
            assert!(
                !(second == 1 && third == 0),
                "local agent {k} would share 127.1.0.x"
            );
        }
        assert!(ips
            .iter()
            .all(|ip| matches!(ip, IpAddr::V4(v4) if v4.octets()[..3] == [127, 1, 0])));
        crate::source_ips::check_bindable(&ips[..3]).unwrap();
    }
}
