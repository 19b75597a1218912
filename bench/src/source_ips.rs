//! The `--source-ips` set. One source address gives at most ~28k ephemeral
//! ports towards one server port, so benches holding more connections spread
//! them over several loopback addresses (all of 127.0.0.0/8 is local on
//! Linux).

use std::net::{IpAddr, Ipv4Addr};

/// A range wider than this is almost certainly a typo, and would allocate
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
}

/// Parses `a.b.c.d-a.b.c.e` (inclusive, may cross octets) or a comma list
/// of addresses (each item may itself be a range).
pub fn parse(spec: &str) -> Result<Vec<IpAddr>, SourceIpsError> {
    let mut out = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item.split_once('-') {
            Some((lo, hi)) => {
                let v4 = |s: &str| {
                    s.trim()
                        .parse::<Ipv4Addr>()
                        .map_err(|_| SourceIpsError::RangeNotV4(item.to_string()))
                };
                let (lo, hi) = (u32::from(v4(lo)?), u32::from(v4(hi)?));
                if hi < lo {
                    return Err(SourceIpsError::Backwards(item.to_string()));
                }
                let len = (hi - lo) as usize + 1;
                if out.len() + len > MAX_ADDRESSES {
                    return Err(SourceIpsError::TooMany(spec.to_string()));
                }
                out.extend((lo..=hi).map(|v| IpAddr::V4(Ipv4Addr::from(v))));
            }
            None => {
                let ip = item
                    .parse::<IpAddr>()
                    .map_err(|_| SourceIpsError::BadAddress(item.to_string()))?;
                if out.len() >= MAX_ADDRESSES {
                    return Err(SourceIpsError::TooMany(spec.to_string()));
                }
                out.push(ip);
            }
        }
    }
    if out.is_empty() {
        return Err(SourceIpsError::Empty);
    }
    Ok(out)
}

/// Checks that every address can be bound here, so a typo fails at start
/// rather than as thousands of connection errors.
pub fn check_bindable(ips: &[IpAddr]) -> Result<(), std::io::Error> {
    for ip in ips {
        std::net::TcpListener::bind((*ip, 0)).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("source address {ip} cannot be bound: {e}"),
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn range_is_inclusive_and_crosses_octets() {
        let ips = parse("127.0.0.2-127.0.0.9").unwrap();
        assert_eq!(ips.len(), 8);
        assert_eq!(ips[0], v4("127.0.0.2"));
        assert_eq!(ips[7], v4("127.0.0.9"));
        let ips = parse("127.0.0.254-127.0.1.1").unwrap();
        assert_eq!(
            ips,
            ["127.0.0.254", "127.0.0.255", "127.0.1.0", "127.0.1.1"].map(v4)
        );
        assert_eq!(parse("127.0.0.3-127.0.0.3").unwrap(), vec![v4("127.0.0.3")]);
    }

    #[test]
    fn comma_list_single_and_mixed() {
        assert_eq!(parse("127.0.0.1").unwrap(), vec![v4("127.0.0.1")]);
        assert_eq!(
            parse(" 127.0.0.1, ::1 ,127.0.0.5-127.0.0.6,").unwrap(),
            ["127.0.0.1", "::1", "127.0.0.5", "127.0.0.6"].map(v4)
        );
    }

    #[test]
    fn bad_specs_are_refused() {
        assert_eq!(parse(""), Err(SourceIpsError::Empty));
        assert_eq!(parse(" , "), Err(SourceIpsError::Empty));
        assert!(matches!(
            parse("127.0.0.x"),
            Err(SourceIpsError::BadAddress(_))
        ));
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
        assert!(matches!(
            parse("10.0.0.0-10.255.255.255"),
            Err(SourceIpsError::TooMany(_))
        ));
    }

    #[test]
    fn loopback_is_bindable_and_foreign_is_not() {
        check_bindable(&[v4("127.0.0.1"), v4("127.0.0.7")]).unwrap();
        // TEST-NET-1 is never assigned to a local interface.
        assert!(check_bindable(&[v4("192.0.2.1")]).is_err());
    }
}
