//! Whether the machine can hold the requested connections, decided before
//! the first connect, because running into the limits mid-ramp shows up as
//! thousands of EADDRNOTAVAIL/EMFILE errors that say nothing about the fix.
//!
//! Two limits matter:
//! - Ports. A TCP connection is identified by its 4-tuple. Sockets bind
//!   their source address with IP_BIND_ADDRESS_NO_PORT, so the kernel picks
//!   the port at connect() time per 4-tuple: each (source IP, destination
//!   IP:port) pair can use every port of `net.ipv4.ip_local_port_range`.
//! - Open files, per process: one descriptor per connection, plus a reserve
//!   for the runtime, logs, metrics listener and /proc readings.

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::source_plan;

/// Descriptors each process keeps for everything but connections.
pub const RESERVED_FDS: u64 = 64;

const PORT_RANGE_PATH: &str = "/proc/sys/net/ipv4/ip_local_port_range";

/// What the machine can hold for a run; see [`check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capacity {
    /// Connections requested.
    pub connections: u64,
    /// Source addresses as given; 0 means the kernel picks (counted as one).
    pub sources: usize,
    /// Distinct destination (IP, port) pairs.
    pub targets: usize,
    /// Ports in the local port range: connections per (source, target) pair.
    pub ports_per_pair: u64,
    pub max_by_ports: u64,
    /// The soft open-file limit of each process.
    pub nofile: u64,
    pub max_by_files: u64,
}

impl Capacity {
    /// The most connections this setup can hold.
    pub fn max(&self) -> u64 {
        self.max_by_ports.min(self.max_by_files)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapacityError {
    #[error("no targets to connect to")]
    NoTargets,
    #[error(
        "{connections} connections need {needed} source addresses for {targets} \
         {target_word} ({ports} ports each, net.ipv4.ip_local_port_range = {lo} {hi}); \
         you gave {given}: {suggestion}, or widen the port range, or add targets",
        target_word = if *targets == 1 { "target" } else { "targets" },
        lo = port_range.0,
        hi = port_range.1,
    )]
    Ports {
        connections: u64,
        /// Source addresses that would be enough.
        needed: u64,
        /// Source addresses given (the kernel's choice counts as 1).
        given: u64,
        targets: usize,
        ports: u64,
        port_range: (u16, u16),
        /// How to get `needed` addresses on this kind of target.
        suggestion: String,
    },
    #[error(
        "{connections} connections need {needed} processes at this open-file limit \
         ({nofile}): use --processes {needed}, or raise the hard limit (ulimit -Hn)"
    )]
    Files {
        connections: u64,
        needed: u64,
        nofile: u64,
    },
    #[error(
        "the open-file limit ({nofile}) leaves no room for connections \
         ({RESERVED_FDS} descriptors are reserved per process): raise it (ulimit -n, ulimit -Hn)"
    )]
    FilesTooLow { nofile: u64 },
    #[error("{0}; and {1}")]
    Both(Box<CapacityError>, Box<CapacityError>),
    #[error(
        "source addresses and targets must be of the same IP version, but {source_ip} \
         cannot reach {target}"
    )]
    MixedFamilies {
        source_ip: IpAddr,
        target: SocketAddr,
    },
}

/// Reads the kernel's ephemeral port range, inclusive.
pub fn local_port_range() -> io::Result<(u16, u16)> {
    let text = std::fs::read_to_string(PORT_RANGE_PATH)
        .map_err(|e| io::Error::new(e.kind(), format!("reading {PORT_RANGE_PATH}: {e}")))?;
    parse_port_range(&text)
}

/// Parses the contents of `ip_local_port_range`: two numbers separated by
/// whitespace (the kernel writes a tab).
pub fn parse_port_range(text: &str) -> io::Result<(u16, u16)> {
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{PORT_RANGE_PATH}: expected two port numbers, got {text:?}"),
        )
    };
    let mut fields = text.split_whitespace();
    let lo = fields.next().ok_or_else(bad)?;
    let hi = fields.next().ok_or_else(bad)?;
    if fields.next().is_some() {
        return Err(bad());
    }
    let port = |s: &str| s.parse::<u16>().map_err(|_| bad());
    let (lo, hi) = (port(lo)?, port(hi)?);
    if lo == 0 || hi < lo {
        return Err(bad());
    }
    Ok((lo, hi))
}

/// Raises the soft open-file limit to the hard limit; returns the soft limit
/// now in force, which is never lower than before.
pub fn raise_nofile() -> u64 {
    if let Ok(limit) = rlimit::increase_nofile_limit(u64::MAX) {
        return limit;
    }
    // An unlimited hard limit can still be refused above fs.nr_open.
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    if let Some(limit) = nr_open.and_then(|n| rlimit::increase_nofile_limit(n).ok()) {
        return limit;
    }
    rlimit::Resource::NOFILE
        .get()
        .map(|(soft, _hard)| soft)
        .unwrap_or(0)
}

/// Decides whether `connections` fit, spread round-robin over `targets`
/// (as idle and echo runs spread them); see [`check_spread`].
pub fn check(
    connections: u64,
    sources: usize,
    targets: &[SocketAddr],
    port_range: (u16, u16),
    nofile: u64,
    processes: u64,
) -> Result<Capacity, CapacityError> {
    let n = targets.len().max(1) as u64;
    let round_robin: Vec<u64> = (0..n)
        .map(|i| connections / n + u64::from(i < connections % n))
        .collect();
    check_spread(
        connections,
        sources,
        targets,
        &round_robin,
        port_range,
        nofile,
        processes,
    )
}

/// Decides whether `connections` fit, spread over `sources` source
/// addresses (0 = the kernel picks one), `targets` with `per_target[i]`
/// connections going to `targets[i]` (as the workload spreads them: chat
/// runs by room, so one target may take far more than its share; entries
/// naming one address add up), the local `port_range` and `processes`
/// processes with `nofile` open files each. When both limits are short
/// the error names both fixes.
pub fn check_spread(
    connections: u64,
    sources: usize,
    targets: &[SocketAddr],
    per_target: &[u64],
    port_range: (u16, u16),
    nofile: u64,
    processes: u64,
) -> Result<Capacity, CapacityError> {
    let distinct: HashSet<SocketAddr> = targets.iter().copied().collect();
    if distinct.is_empty() {
        return Err(CapacityError::NoTargets);
    }
    let given = sources.max(1) as u64;
    // The busiest target address runs out of ports first: each of its
    // (source, target) pairs may use the whole port range.
    let busiest = source_plan::busiest_target(targets, per_target);
    let ports_per_pair = source_plan::ports(port_range);
    let per_source_pairs = given.saturating_mul(ports_per_pair);
    // What the same spread would hold: scaled from the busiest target.
    let max_by_ports = if busiest == 0 {
        per_source_pairs.saturating_mul(distinct.len() as u64)
    } else {
        let scaled = u128::from(per_source_pairs) * u128::from(connections) / u128::from(busiest);
        u64::try_from(scaled).unwrap_or(u64::MAX)
    };
    let per_process = nofile.saturating_sub(RESERVED_FDS);
    let max_by_files = processes.saturating_mul(per_process);

    let all_v4_loopback = distinct
        .iter()
        .all(|t| matches!(t.ip(), IpAddr::V4(ip) if ip.is_loopback()));
    let ports_error = (busiest > per_source_pairs).then(|| {
        let needed = source_plan::sources_for(busiest, ports_per_pair);
        CapacityError::Ports {
            connections,
            needed,
            given,
            targets: distinct.len(),
            ports: ports_per_pair,
            port_range,
            suggestion: source_suggestion(needed, sources > 0, all_v4_loopback),
        }
    });
    let files_error = (connections > max_by_files).then(|| {
        if per_process == 0 {
            CapacityError::FilesTooLow { nofile }
        } else {
            CapacityError::Files {
                connections,
                needed: connections.div_ceil(per_process),
                nofile,
            }
        }
    });
    match (ports_error, files_error) {
        (Some(p), Some(f)) => Err(CapacityError::Both(Box::new(p), Box::new(f))),
        (Some(e), None) | (None, Some(e)) => Err(e),
        (None, None) => Ok(Capacity {
            connections,
            sources,
            targets: distinct.len(),
            ports_per_pair,
            max_by_ports,
            nofile,
            max_by_files,
        }),
    }
}

/// Refuses a source address that cannot reach some target: a socket bound
/// to an IPv4 address cannot connect to an IPv6 one, and every source is
/// paired with every target.
pub fn check_families(sources: &[IpAddr], targets: &[SocketAddr]) -> Result<(), CapacityError> {
    for source_ip in sources {
        if let Some(target) = targets.iter().find(|t| t.is_ipv4() != source_ip.is_ipv4()) {
            return Err(CapacityError::MixedFamilies {
                source_ip: *source_ip,
                target: *target,
            });
        }
    }
    Ok(())
}

/// How to get `needed` source addresses: on IPv4 loopback any 127.x
/// address works as it is, elsewhere they must be assigned first.
/// `replace`: the user gave --source-ips already, and the suggested set
/// replaces it.
pub(crate) fn source_suggestion(needed: u64, replace: bool, all_v4_loopback: bool) -> String {
    if all_v4_loopback {
        // 127.0.0.2 onwards: 127.0.0.1 is what the kernel would pick anyway.
        let first = u32::from(Ipv4Addr::new(127, 0, 0, 2));
        let last = u64::from(first).saturating_add(needed.max(1) - 1);
        let verb = if replace { "use" } else { "add" };
        match u32::try_from(last) {
            Ok(last) if last <= u32::from(Ipv4Addr::new(127, 255, 255, 254)) => format!(
                "{verb} --source-ips 127.0.0.2-{} (any 127.x address works on loopback without configuration)",
                Ipv4Addr::from(last)
            ),
            _ => "that is more than 127.0.0.0/8 holds: run fewer connections per machine".to_string(),
        }
    } else {
        format!(
            "assign {needed} addresses to a network interface (ip addr add ADDRESS/PREFIX dev IFACE) \
             and pass them with --source-ips (a range, a CIDR block or a list)"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RANGE: (u16, u16) = (32768, 60999);

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn port_range_parses_the_kernel_format() {
        assert_eq!(parse_port_range("32768\t60999\n").unwrap(), (32768, 60999));
        assert_eq!(parse_port_range(" 1024 65535 ").unwrap(), (1024, 65535));
        assert_eq!(parse_port_range("5000\t5000").unwrap(), (5000, 5000));
        for bad in [
            "",
            "32768",
            "32768 60999 1",
            "x 60999",
            "60999 32768",
            "0 100",
            "1 65536",
        ] {
            let err = parse_port_range(bad).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{bad:?}");
            assert!(err.to_string().contains("ip_local_port_range"), "{err}");
        }
    }

    #[test]
    fn local_port_range_reads_this_machine() {
        let (lo, hi) = local_port_range().unwrap();
        assert!(lo > 0 && lo <= hi, "{lo} {hi}");
    }

    #[test]
    fn raise_nofile_raises_to_the_hard_limit_and_never_lowers() {
        let (_, hard) = rlimit::Resource::NOFILE.get().unwrap();
        if hard != rlimit::INFINITY && hard > 1024 {
            // One below the hard limit: harmless to tests running alongside.
            rlimit::Resource::NOFILE.set(hard - 1, hard).unwrap();
            assert_eq!(raise_nofile(), hard);
        }
        let (soft, hard) = rlimit::Resource::NOFILE.get().unwrap();
        let raised = raise_nofile();
        assert!(raised >= soft, "{raised} < {soft}");
        assert!(raised <= hard, "{raised} > {hard}");
        assert_eq!(rlimit::Resource::NOFILE.get().unwrap().0, raised);
        assert_eq!(raise_nofile(), raised);
    }

    #[test]
    fn arithmetic_of_a_fitting_run() {
        let targets = addrs(&["127.0.0.1:8080", "127.0.0.1:8081"]);
        let cap = check(100_000, 2, &targets, RANGE, 20_000, 6).unwrap();
        assert_eq!(
            cap,
            Capacity {
                connections: 100_000,
                sources: 2,
                targets: 2,
                ports_per_pair: 28_232,
                max_by_ports: 2 * 2 * 28_232,
                nofile: 20_000,
                max_by_files: 6 * 19_936,
            }
        );
        assert_eq!(cap.max(), 112_928);
        // Named twice, :8080 takes two thirds of the connections: 100,000
        // would put 33,334 on each (source, :8080) pair.
        let twice = addrs(&["127.0.0.1:8080", "127.0.0.1:8081", "127.0.0.1:8080"]);
        let cap = check(80_000, 2, &twice, RANGE, 20_000, 6).unwrap();
        assert_eq!(cap.targets, 2);
        assert_eq!(cap.max_by_ports, 2 * 28_232 * 3 / 2);
        assert!(check(100_000, 2, &twice, RANGE, 20_000, 6).is_err());
        // Exactly at both limits still fits.
        let cap = check(28_232, 0, &targets[..1], RANGE, 28_232 + 64, 1).unwrap();
        assert_eq!(cap.max_by_ports, 28_232);
        assert_eq!(cap.max_by_files, 28_232);
        assert_eq!(cap.sources, 0);
        assert!(check(0, 0, &targets, RANGE, 0, 1).is_ok());
    }

    #[test]
    fn an_uneven_spread_is_judged_by_its_busiest_target() {
        // Chat spreads by room: six targets, but the one with the largest
        // zipf rooms takes 29 % of 150,000. Round robin (25,000 each) would
        // fit one source; 43,500 on one pair does not.
        let six = addrs(&[
            "127.0.0.1:1",
            "127.0.0.1:2",
            "127.0.0.1:3",
            "127.0.0.1:4",
            "127.0.0.1:5",
            "127.0.0.1:6",
        ]);
        assert!(check(150_000, 1, &six, RANGE, 1 << 20, 1).is_ok());
        let zipf = [43_500, 23_000, 22_000, 21_000, 20_500, 20_000];
        let err = check_spread(150_000, 1, &six, &zipf, RANGE, 1 << 20, 1).unwrap_err();
        assert!(
            matches!(
                err,
                CapacityError::Ports {
                    needed: 2,
                    given: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        let cap = check_spread(150_000, 2, &six, &zipf, RANGE, 1 << 20, 1).unwrap();
        // 2 × 28,232 on the busiest target, scaled to the whole spread.
        assert_eq!(cap.max_by_ports, 2 * 28_232 * 150_000 / 43_500);
        // Two entries of one address add up.
        let twice = addrs(&["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:1"]);
        assert!(check_spread(30_000, 1, &twice, &[15_000, 1, 14_000], RANGE, 1 << 20, 1).is_err());
        assert!(check_spread(30_000, 1, &twice, &[14_000, 1, 14_000], RANGE, 1 << 20, 1).is_ok());
    }

    #[test]
    fn too_few_sources_on_loopback() {
        let targets = addrs(&["127.0.0.1:8080"]);
        let err = check(100_000, 0, &targets, RANGE, 1 << 20, 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "100000 connections need 4 source addresses for 1 target (28232 ports each, \
             net.ipv4.ip_local_port_range = 32768 60999); you gave 1: add --source-ips \
             127.0.0.2-127.0.0.5 (any 127.x address works on loopback without configuration), \
             or widen the port range, or add targets"
        );
        // One more connection than two sources hold needs a third.
        let err = check(2 * 28_232 + 1, 2, &targets, RANGE, 1 << 20, 1).unwrap_err();
        assert!(
            matches!(
                err,
                CapacityError::Ports {
                    needed: 3,
                    given: 2,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains("you gave 2: use --source-ips 127.0.0.2-127.0.0.4 "),
            "{err}"
        );
    }

    #[test]
    fn suggested_loopback_range_crosses_octets() {
        let targets = addrs(&["127.0.0.1:1", "127.0.0.1:2"]);
        // 1000 ports per pair, 2 targets: 2000 per source; 600,000 need 300.
        let err = check(600_000, 1, &targets, (1000, 1999), 1 << 30, 1).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("600000 connections need 300 source addresses for 2 targets (1000 ports each, net.ipv4.ip_local_port_range = 1000 1999)"), "{msg}");
        assert!(msg.contains("--source-ips 127.0.0.2-127.0.1.45 "), "{msg}");
    }

    #[test]
    fn too_few_sources_elsewhere() {
        let targets = addrs(&["10.0.0.1:80", "10.0.0.2:80"]);
        let err = check(200_000, 3, &targets, RANGE, 1 << 20, 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "200000 connections need 4 source addresses for 2 targets (28232 ports each, \
             net.ipv4.ip_local_port_range = 32768 60999); you gave 3: assign 4 addresses to a \
             network interface (ip addr add ADDRESS/PREFIX dev IFACE) and pass them with \
             --source-ips (a range, a CIDR block or a list), or widen the port range, or add targets"
        );
        // IPv6 loopback has one address: 127.x does not apply.
        let err = check(30_000, 0, &addrs(&["[::1]:80"]), RANGE, 1 << 20, 1).unwrap_err();
        assert!(err.to_string().contains("assign 2 addresses"), "{err}");
    }

    #[test]
    fn too_few_processes() {
        let targets = addrs(&["127.0.0.1:8080"]);
        let err = check(100_000, 4, &targets, RANGE, 20_000, 1).unwrap_err();
        assert_eq!(
            err,
            CapacityError::Files {
                connections: 100_000,
                needed: 6,
                nofile: 20_000
            }
        );
        assert_eq!(
            err.to_string(),
            "100000 connections need 6 processes at this open-file limit (20000): \
             use --processes 6, or raise the hard limit (ulimit -Hn)"
        );
        // 5 × 19,936 = 99,680 is 320 short.
        assert!(check(100_000, 4, &targets, RANGE, 20_000, 5).is_err());
        assert!(check(99_680, 4, &targets, RANGE, 20_000, 5).is_ok());
        assert!(check(19_936, 1, &targets, RANGE, 20_000, 1).is_ok());
        assert!(check(19_937, 1, &targets, RANGE, 20_000, 1).is_err());
    }

    #[test]
    fn file_limit_below_the_reserve() {
        let targets = addrs(&["127.0.0.1:8080"]);
        let err = check(1, 0, &targets, RANGE, 64, 4).unwrap_err();
        assert_eq!(err, CapacityError::FilesTooLow { nofile: 64 });
        assert!(err.to_string().contains("open-file limit (64)"), "{err}");
    }

    #[test]
    fn both_shortages_are_reported_together() {
        let targets = addrs(&["127.0.0.1:8080"]);
        let err = check(100_000, 1, &targets, RANGE, 20_000, 1).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("need 4 source addresses"), "{msg}");
        assert!(
            msg.contains("; and 100000 connections need 6 processes"),
            "{msg}"
        );
    }

    #[test]
    fn no_targets_and_huge_numbers() {
        assert_eq!(
            check(1, 1, &[], RANGE, 100, 1),
            Err(CapacityError::NoTargets)
        );
        // Unlimited files (RLIM_INFINITY) must not overflow.
        let cap = check(
            1_000,
            usize::MAX,
            &addrs(&["127.0.0.1:1"]),
            (1, 65535),
            u64::MAX,
            u64::MAX,
        )
        .unwrap();
        assert_eq!(cap.max_by_ports, u64::MAX);
        assert_eq!(cap.max_by_files, u64::MAX);
        // More sources than 127.0.0.0/8 has: no range to suggest, no overflow.
        let err = check(u64::MAX, 0, &addrs(&["127.0.0.1:1"]), (5, 5), u64::MAX, 1).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("need {} source addresses", u64::MAX)),
            "{err}"
        );
        assert!(
            err.to_string().contains("more than 127.0.0.0/8 holds"),
            "{err}"
        );
    }

    #[test]
    fn families_must_match() {
        let v4 = addrs(&["127.0.0.1:80"]);
        let v6 = addrs(&["[::1]:80"]);
        let src4: Vec<IpAddr> = vec!["127.0.0.2".parse().unwrap()];
        let src6: Vec<IpAddr> = vec!["::1".parse().unwrap()];
        check_families(&src4, &v4).unwrap();
        check_families(&src6, &v6).unwrap();
        check_families(&[], &v6).unwrap();
        let err = check_families(&src4, &[v4[0], v6[0]]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "source addresses and targets must be of the same IP version, but 127.0.0.2 cannot reach [::1]:80"
        );
    }
}
