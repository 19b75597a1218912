//! `--allow-target`: the hosts an agent may be told to load. An agent that
//! loads whatever its orders name is a weapon for whoever holds (or
//! guesses) the token, so targets are checked after name resolution
//! against this list, and the default is loopback only.

use std::fmt;
use std::net::IpAddr;

use crate::target::Target;

/// One entry: an address block, or a host name as written in target URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allowed {
    /// `10.0.0.0/8`, `::1/128`; a bare address is a /32 or /128.
    Block { net: IpAddr, prefix: u8 },
    /// `server`, `chat.example.com`: matches a URL's host exactly (any case).
    Host(String),
}

/// The loopback default.
pub const DEFAULT: &str = "127.0.0.0/8,::1";

#[derive(Debug, thiserror::Error)]
pub enum AllowError {
    #[error("--allow-target {0:?}: empty entry")]
    Empty(String),
    #[error("--allow-target {entry:?}: prefix length must be 0..={max}")]
    Prefix { entry: String, max: u8 },
}

impl Allowed {
    pub fn parse_list(spec: &str) -> Result<Vec<Allowed>, AllowError> {
        spec.split(',').map(|e| Allowed::parse(e.trim())).collect()
    }

    pub fn parse(entry: &str) -> Result<Allowed, AllowError> {
        if entry.is_empty() {
            return Err(AllowError::Empty(entry.to_string()));
        }
        let (addr, prefix) = match entry.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (entry, None),
        };
        let Ok(net) = addr.trim_matches(['[', ']']).parse::<IpAddr>() else {
            return Ok(Allowed::Host(entry.to_ascii_lowercase()));
        };
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => {
                    return Err(AllowError::Prefix {
                        entry: entry.to_string(),
                        max,
                    })
                }
            },
        };
        Ok(Allowed::Block { net, prefix })
    }

    fn admits(&self, target: &Target) -> bool {
        match self {
            Allowed::Host(name) => target.server_name().eq_ignore_ascii_case(name),
            Allowed::Block { net, prefix } => in_block(target.addr.ip(), *net, *prefix),
        }
    }
}

impl fmt::Display for Allowed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Allowed::Host(h) => f.write_str(h),
            Allowed::Block { net, prefix } => write!(f, "{net}/{prefix}"),
        }
    }
}

fn in_block(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    // An IPv4-mapped IPv6 address is checked as the IPv4 address it is.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// The first target the list does not admit, with the reason, if any.
pub fn refused(list: &[Allowed], targets: &[Target]) -> Option<String> {
    let shown: Vec<String> = list.iter().map(|a| a.to_string()).collect();
    targets
        .iter()
        .find(|t| !list.iter().any(|a| a.admits(t)))
        .map(|t| {
            format!(
                "target {} ({}) is not in this agent's --allow-target list ({}); start the agent with --allow-target naming it",
                t.host,
                t.addr.ip(),
                shown.join(",")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::parse_target;

    fn t(url: &str) -> Target {
        parse_target(url).unwrap()
    }

    #[test]
    fn loopback_is_the_default_and_nothing_else() {
        let list = Allowed::parse_list(DEFAULT).unwrap();
        assert!(refused(&list, &[t("ws://127.0.0.1:8080/")]).is_none());
        assert!(refused(&list, &[t("ws://127.9.8.7:1/")]).is_none());
        assert!(refused(&list, &[t("ws://[::1]:1/")]).is_none());
        let why = refused(&list, &[t("ws://127.0.0.1:1/"), t("ws://10.1.2.3:80/")]).unwrap();
        assert!(why.contains("10.1.2.3"), "{why}");
        assert!(refused(&list, &[t("ws://[::2]:1/")]).is_some());
    }

    #[test]
    fn blocks_hosts_and_bare_addresses() {
        let list = Allowed::parse_list("10.0.0.0/8, server ,192.168.1.5").unwrap();
        assert!(refused(&list, &[t("ws://10.200.0.1:80/")]).is_none());
        assert!(refused(&list, &[t("ws://192.168.1.5:80/")]).is_none());
        assert!(refused(&list, &[t("ws://192.168.1.6:80/")]).is_some());
        assert!(refused(&list, &[t("ws://11.0.0.1:80/")]).is_some());
        assert_eq!(list[1], Allowed::Host("server".into()));
        let any = Allowed::parse_list("0.0.0.0/0").unwrap();
        assert!(refused(&any, &[t("ws://8.8.8.8:80/")]).is_none());
    }

    #[test]
    fn bad_entries_are_errors() {
        assert!(Allowed::parse_list("10.0.0.0/33").is_err());
        assert!(Allowed::parse_list("10.0.0.0/x").is_err());
        assert!(Allowed::parse_list("a,,b").is_err());
    }
}
