//! The `--source-ips` set. One source address gives at most ~28k ephemeral
//! ports towards one server address, and connects slow down sharply past
//! half of them ([`crate::source_plan`]), so runs holding more connections
//! spread them over several source addresses. On Linux every address of
//! 127.0.0.0/8 is local without any configuration, so loopback runs can use
//! `127.0.0.2-127.0.0.40` or `127.0.1.0/24` right away; other addresses must
//! first be assigned to an interface (`ip addr add 10.0.1.5/24 dev eth0`).
//!
//! Accepted, comma-separated and mixed:
//! - single addresses, IPv4 or IPv6 (`127.0.0.2`, `::1`);
//! - inclusive IPv4 ranges, which may cross octets (`127.0.0.254-127.0.1.3`);
//! - CIDR blocks (`10.0.1.0/28`). IPv4 blocks give their host addresses: the
//!   network and broadcast addresses are left out, except in /31 and /32
//!   where every address is a host. IPv6 blocks (at most /112) leave out the
//!   Subnet-Router anycast address (all-zero interface bits), except in /127
//!   and /128.
//!
//! Duplicates are dropped (first occurrence wins), so overlapping items do
//! not skew the round-robin or inflate the capacity estimate.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A set larger than this is almost certainly a typo, and would allocate
/// a vector of its size.
pub const MAX_ADDRESSES: usize = 65_536;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceIpsError {
    #[error("empty source address list")]
    Empty,
    #[error("{0:?} is not an IP address")]
    BadAddress(String),
    #[error("range {0:?}: both ends must be IPv4 addresses")]
    RangeNotV4(String),
    #[error("range {0:?} runs backwards")]
    Backwards(String),
    #[error("{0:?} names more than {MAX_ADDRESSES} addresses")]
    TooMany(String),
    #[error("{0:?} is not a CIDR block: expected ADDRESS/PREFIX with a prefix of 0-32 for IPv4 or 0-128 for IPv6")]
    BadCidr(String),
    #[error("{item:?} has bits set after the prefix: did you mean {network}?")]
    HostBits { item: String, network: String },
    #[error(
        "{item:?} spans {count} addresses, more than {MAX_ADDRESSES}: use a longer prefix \
         (at least /16 for IPv4, /112 for IPv6)",
        count = block_size(*host_bits)
    )]
    CidrTooLarge { item: String, host_bits: u32 },
}

/// Parses a comma list whose items are single addresses, IPv4 ranges
/// `a.b.c.d-a.b.c.e` (inclusive) or CIDR blocks `a.b.c.d/n` (see the
/// module documentation for which addresses a block gives).
pub fn parse(spec: &str) -> Result<Vec<IpAddr>, SourceIpsError> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut push = |ip: IpAddr| {
        if seen.insert(ip) {
            if out.len() >= MAX_ADDRESSES {
                return Err(SourceIpsError::TooMany(spec.to_string()));
            }
            out.push(ip);
        }
        Ok(())
    };
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if let Some((lo, hi)) = item.split_once('-') {
            let (lo, hi) = range(item, lo, hi)?;
            for v in lo..=hi {
                push(IpAddr::V4(Ipv4Addr::from(v)))?;
            }
        } else if let Some((addr, prefix)) = item.split_once('/') {
            match cidr(item, addr, prefix)? {
                Block::V4(lo, hi) => {
                    for v in lo..=hi {
                        push(IpAddr::V4(Ipv4Addr::from(v)))?;
                    }
                }
                Block::V6(lo, hi) => {
                    for v in lo..=hi {
                        push(IpAddr::V6(Ipv6Addr::from(v)))?;
                    }
                }
            }
        } else {
            let ip = item
                .parse::<IpAddr>()
                .map_err(|_| SourceIpsError::BadAddress(item.to_string()))?;
            push(ip)?;
        }
    }
    if out.is_empty() {
        return Err(SourceIpsError::Empty);
    }
    Ok(out)
}

/// The inclusive bounds of an IPv4 range, refused before anything is
/// allocated when it is backwards or too long.
fn range(item: &str, lo: &str, hi: &str) -> Result<(u32, u32), SourceIpsError> {
    let v4 = |s: &str| {
        s.trim()
            .parse::<Ipv4Addr>()
            .map_err(|_| SourceIpsError::RangeNotV4(item.to_string()))
    };
    let (lo, hi) = (u32::from(v4(lo)?), u32::from(v4(hi)?));
    if hi < lo {
        return Err(SourceIpsError::Backwards(item.to_string()));
    }
    if u64::from(hi - lo) + 1 > MAX_ADDRESSES as u64 {
        return Err(SourceIpsError::TooMany(item.to_string()));
    }
    Ok((lo, hi))
}

/// A block with more host bits than this exceeds [`MAX_ADDRESSES`].
const MAX_HOST_BITS: u32 = MAX_ADDRESSES.trailing_zeros();

/// The number of addresses in a block, in decimal while it fits.
fn block_size(host_bits: u32) -> String {
    match 1u128.checked_shl(host_bits) {
        Some(n) if host_bits < 128 => n.to_string(),
        _ => format!("2^{host_bits}"),
    }
}

/// Inclusive bounds of the usable addresses of a CIDR block.
enum Block {
    V4(u32, u32),
    V6(u128, u128),
}

fn cidr(item: &str, addr: &str, prefix: &str) -> Result<Block, SourceIpsError> {
    let bad = || SourceIpsError::BadCidr(item.to_string());
    let addr: IpAddr = addr.trim().parse().map_err(|_| bad())?;
    let prefix = prefix.trim();
    // `u32::from_str` accepts a leading '+', which no one means here.
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let prefix: u32 = prefix.parse().map_err(|_| bad())?;
    let bits = if addr.is_ipv4() { 32 } else { 128 };
    if prefix > bits {
        return Err(bad());
    }
    let host_bits = bits - prefix;
    if host_bits > MAX_HOST_BITS {
        return Err(SourceIpsError::CidrTooLarge {
            item: item.to_string(),
            host_bits,
        });
    }
    let host_mask = (1u128 << host_bits) - 1;
    match addr {
        IpAddr::V4(a) => {
            let a = u32::from(a);
            // At most 16 host bits, so the mask fits.
            let host_mask = host_mask as u32;
            let network = a & !host_mask;
            if a != network {
                return Err(SourceIpsError::HostBits {
                    item: item.to_string(),
                    network: format!("{}/{prefix}", Ipv4Addr::from(network)),
                });
            }
            let broadcast = network | host_mask;
            Ok(if prefix >= 31 {
                Block::V4(network, broadcast)
            } else {
                Block::V4(network + 1, broadcast - 1)
            })
        }
        IpAddr::V6(a) => {
            let a = u128::from(a);
            let network = a & !host_mask;
            if a != network {
                return Err(SourceIpsError::HostBits {
                    item: item.to_string(),
                    network: format!("{}/{prefix}", Ipv6Addr::from(network)),
                });
            }
            let last = network | host_mask;
            Ok(if prefix >= 127 {
                Block::V6(network, last)
            } else {
                Block::V6(network + 1, last)
            })
        }
    }
}

/// Checks that every address can be bound here, so a typo fails at start,
/// naming the address, rather than as thousands of connection errors.
pub fn check_bindable(ips: &[IpAddr]) -> Result<(), std::io::Error> {
    use socket2::{Domain, Socket, Type};
    for ip in ips {
        let addr = std::net::SocketAddr::new(*ip, 0);
        // Bound but never listening: the check must not accept anything.
        let bound = Socket::new(Domain::for_address(addr), Type::STREAM, None)
            .and_then(|socket| socket.bind(&addr.into()));
        if let Err(e) = bound {
            let hint = if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) {
                if ip.is_ipv4() {
                    ": it is not an address of this host (assign it to an interface with \
                     `ip addr add`, or use 127.x addresses, which all work on loopback)"
                } else {
                    ": it is not an address of this host (assign it to an interface with \
                     `ip addr add`)"
                }
            } else {
                ""
            };
            return Err(std::io::Error::new(
                e.kind(),
                format!("source address {ip} cannot be bound: {e}{hint}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn range_is_inclusive_and_crosses_octets() {
        let ips = parse("127.0.0.2-127.0.0.9").unwrap();
        assert_eq!(ips.len(), 8);
        assert_eq!(ips[0], ip("127.0.0.2"));
        assert_eq!(ips[7], ip("127.0.0.9"));
        let ips = parse("127.0.0.254-127.0.1.1").unwrap();
        assert_eq!(
            ips,
            ["127.0.0.254", "127.0.0.255", "127.0.1.0", "127.0.1.1"].map(ip)
        );
        assert_eq!(parse("127.0.0.3-127.0.0.3").unwrap(), vec![ip("127.0.0.3")]);
        assert_eq!(parse("127.0.0.3 - 127.0.0.4").unwrap().len(), 2);
    }

    #[test]
    fn comma_list_single_and_mixed() {
        assert_eq!(parse("127.0.0.1").unwrap(), vec![ip("127.0.0.1")]);
        assert_eq!(
            parse(" 127.0.0.1, ::1 ,127.0.0.5-127.0.0.6,").unwrap(),
            ["127.0.0.1", "::1", "127.0.0.5", "127.0.0.6"].map(ip)
        );
        assert_eq!(
            parse("10.0.1.0/30,127.0.0.9,fd00::10/126").unwrap(),
            [
                "10.0.1.1",
                "10.0.1.2",
                "127.0.0.9",
                "fd00::11",
                "fd00::12",
                "fd00::13"
            ]
            .map(ip)
        );
    }

    #[test]
    fn cidr_gives_host_addresses() {
        let ips = parse("10.0.1.0/28").unwrap();
        assert_eq!(ips.len(), 14);
        assert_eq!(ips[0], ip("10.0.1.1"));
        assert_eq!(ips[13], ip("10.0.1.14"));
        assert_eq!(parse("127.0.1.0/24").unwrap().len(), 254);
        assert_eq!(parse("127.0.0.0/16").unwrap().len(), 65_534);
        // Point-to-point and single-host blocks: every address.
        assert_eq!(
            parse("10.0.0.4/31").unwrap(),
            ["10.0.0.4", "10.0.0.5"].map(ip)
        );
        assert_eq!(parse("10.0.0.7/32").unwrap(), vec![ip("10.0.0.7")]);
        assert_eq!(parse("::1/128").unwrap(), vec![ip("::1")]);
        assert_eq!(parse("fd00::/127").unwrap(), ["fd00::", "fd00::1"].map(ip));
        assert_eq!(parse("fd00::/112").unwrap().len(), 65_535);
    }

    #[test]
    fn duplicates_are_dropped_in_order() {
        assert_eq!(
            parse("127.0.0.3,127.0.0.2-127.0.0.4,127.0.0.0/30,127.0.0.3").unwrap(),
            ["127.0.0.3", "127.0.0.2", "127.0.0.4", "127.0.0.1"].map(ip)
        );
        // Overlaps do not count against the limit twice.
        assert_eq!(parse("127.0.0.0/16,127.0.0.0/16").unwrap().len(), 65_534);
    }

    #[test]
    fn bad_specs_are_refused() {
        assert_eq!(parse(""), Err(SourceIpsError::Empty));
        assert_eq!(parse(" , "), Err(SourceIpsError::Empty));
        assert_eq!(
            parse("127.0.0.x"),
            Err(SourceIpsError::BadAddress("127.0.0.x".into()))
        );
        assert!(matches!(
            parse("127.0.0.9-127.0.0.2"),
            Err(SourceIpsError::Backwards(_))
        ));
        assert!(matches!(
            parse("::1-::2"),
            Err(SourceIpsError::RangeNotV4(_))
        ));
        assert!(matches!(
            parse("127.0.0.1-127.0.0"),
            Err(SourceIpsError::RangeNotV4(_))
        ));
        assert_eq!(
            parse("10.0.0.0-10.255.255.255"),
            Err(SourceIpsError::TooMany("10.0.0.0-10.255.255.255".into()))
        );
        // Together too many, each alone fine.
        assert!(matches!(
            parse("10.0.0.0/16,10.1.0.0/16"),
            Err(SourceIpsError::TooMany(_))
        ));
    }

    #[test]
    fn bad_cidrs_are_refused_clearly() {
        for bad in [
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/x",
            "10.0.0/24",
            "::/129",
            "/24",
        ] {
            assert_eq!(
                parse(bad),
                Err(SourceIpsError::BadCidr(bad.into())),
                "{bad}"
            );
        }
        let err = parse("10.0.1.5/28").unwrap_err();
        assert_eq!(
            err,
            SourceIpsError::HostBits {
                item: "10.0.1.5/28".into(),
                network: "10.0.1.0/28".into()
            }
        );
        assert!(
            err.to_string().contains("did you mean 10.0.1.0/28?"),
            "{err}"
        );
        assert!(matches!(
            parse("fd00::1/120"),
            Err(SourceIpsError::HostBits { .. })
        ));
        let err = parse("10.0.0.0/15").unwrap_err();
        assert_eq!(
            err,
            SourceIpsError::CidrTooLarge {
                item: "10.0.0.0/15".into(),
                host_bits: 17
            }
        );
        assert!(err.to_string().contains("131072 addresses"), "{err}");
        assert!(matches!(
            parse("0.0.0.0/0"),
            Err(SourceIpsError::CidrTooLarge { .. })
        ));
        let err = parse("::/0").unwrap_err();
        assert!(err.to_string().contains("spans 2^128 addresses"), "{err}");
        let err = parse("::/1").unwrap_err();
        assert!(
            err.to_string()
                .contains("spans 170141183460469231731687303715884105728 addresses"),
            "{err}"
        );
        assert!(matches!(
            parse("fd00::/111"),
            Err(SourceIpsError::CidrTooLarge { .. })
        ));
    }

    #[test]
    fn loopback_is_bindable_and_foreign_is_named() {
        check_bindable(&[ip("127.0.0.1"), ip("127.0.0.7"), ip("127.3.2.1")]).unwrap();
        // TEST-NET-3 is reserved for documentation, never a host's address.
        let err = check_bindable(&[ip("127.0.0.1"), ip("203.0.113.77")]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("203.0.113.77"), "{msg}");
        assert!(msg.contains("not an address of this host"), "{msg}");
        let err = check_bindable(&[ip("2001:db8::77")]).unwrap_err();
        assert!(err.to_string().contains("2001:db8::77"), "{err}");
    }
}
