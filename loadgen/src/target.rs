//! Where connections go: `ws://` and `wss://` URLs parsed and resolved once,
//! before the run, so a typo or an unknown host fails at start with its
//! name instead of as a connect error per connection. Hand-written rather
//! than a URL crate because a WebSocket target needs only scheme, host,
//! port and request target, and the errors can then say exactly which part
//! is wrong.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Ws,
    Wss,
}

impl Scheme {
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Ws => 80,
            Scheme::Wss => 443,
        }
    }

    pub fn is_tls(self) -> bool {
        self == Scheme::Wss
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Ws => "ws",
            Scheme::Wss => "wss",
        }
    }
}

/// One server to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub scheme: Scheme,
    /// The Host header: the host as written (IPv6 in brackets), with
    /// `:port` when the port is not the scheme's default.
    pub host: String,
    /// Resolved once; every connection to this target uses this address.
    pub addr: SocketAddr,
    /// The request target of the upgrade: `/` at least, query kept,
    /// fragment dropped.
    pub path_and_query: String,
}

impl Target {
    /// `path_and_query` with `extra` parameters (`a=1&b=2`) appended, so
    /// per-connection parameters (username, room) keep the user's own.
    pub fn with_query(&self, extra: &str) -> String {
        let extra = extra.trim_start_matches(['?', '&']);
        let mut out = self.path_and_query.clone();
        if extra.is_empty() {
            return out;
        }
        if !out.contains('?') {
            out.push('?');
        } else if !out.ends_with('?') && !out.ends_with('&') {
            out.push('&');
        }
        out.push_str(extra);
        out
    }

    /// The host without port or brackets: the name TLS verifies the
    /// server's certificate against (SNI).
    pub fn server_name(&self) -> &str {
        match self.host.strip_prefix('[') {
            Some(rest) => rest.split(']').next().unwrap_or(rest),
            None => self.host.split(':').next().unwrap_or(&self.host),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}{}",
            self.scheme.as_str(),
            self.host,
            self.path_and_query
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("no target URL given")]
    Empty,
    #[error("{0:?}: only ws:// and wss:// URLs are supported")]
    NotWebSocket(String),
    #[error("{0:?} has no host")]
    NoHost(String),
    #[error("{url:?}: {host:?} is not a host name or IP address{hint}")]
    BadHost {
        url: String,
        host: String,
        hint: &'static str,
    },
    #[error("{url:?}: bad port {port:?} (expected 1-65535)")]
    BadPort { url: String, port: String },
    #[error("{0:?}: user names and passwords in the URL are not supported; send credentials in a header")]
    Credentials(String),
    #[error("{0:?} contains whitespace or a control character")]
    BadChar(String),
    #[error("cannot resolve host {host:?}: {reason}")]
    Unresolvable { host: String, reason: String },
}

/// Parses and resolves every URL. An argument may hold several URLs
/// separated by commas (`ws://a:1,ws://b:2`); a comma inside a URL's path
/// or query stays part of it unless what follows starts with `scheme://`
/// or a space.
///
/// A host name is resolved once with the system resolver, preferring the
/// first IPv4 address. A name that resolves to several addresses gives ONE
/// target (that first address), not one per address: list the addresses
/// themselves as targets to spread over them.
pub fn parse_targets(urls: &[String]) -> Result<Vec<Target>, TargetError> {
    let targets = urls
        .iter()
        .flat_map(|arg| split_list(arg))
        .map(|url| parse_target(&url))
        .collect::<Result<Vec<_>, _>>()?;
    if targets.is_empty() {
        return Err(TargetError::Empty);
    }
    Ok(targets)
}

/// Parses and resolves one URL (see [`parse_targets`]).
pub fn parse_target(url: &str) -> Result<Target, TargetError> {
    let parts = parse_url(url)?;
    let addr = match parts.ip {
        Some(ip) => SocketAddr::new(ip, parts.port),
        None => resolve(&parts.host, parts.port)?,
    };
    let host_header = if parts.port == parts.scheme.default_port() {
        parts.host
    } else {
        format!("{}:{}", parts.host, parts.port)
    };
    Ok(Target {
        scheme: parts.scheme,
        host: host_header,
        addr,
        path_and_query: parts.path_and_query,
    })
}

/// A URL checked but not resolved, so files naming hosts that only exist
/// where they will run (a lab's DNS) can be validated anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlParts {
    pub scheme: Scheme,
    /// The host as written (an IPv6 literal in brackets), without port.
    pub host: String,
    /// The host's address when it is an IP literal.
    pub ip: Option<IpAddr>,
    /// The port, the scheme's default when none is written.
    pub port: u16,
    pub path_and_query: String,
}

/// Checks one URL the way [`parse_target`] does, without resolving it.
pub fn parse_url(url: &str) -> Result<UrlParts, TargetError> {
    let url = url.trim();
    if url.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(TargetError::BadChar(url.to_string()));
    }
    let not_ws = || TargetError::NotWebSocket(url.to_string());
    let (scheme, rest) = url.split_once("://").ok_or_else(not_ws)?;
    let scheme = if scheme.eq_ignore_ascii_case("ws") {
        Scheme::Ws
    } else if scheme.eq_ignore_ascii_case("wss") {
        Scheme::Wss
    } else {
        return Err(not_ws());
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        return Err(TargetError::Credentials(url.to_string()));
    }
    let bad_host = |host: &str, hint: &'static str| TargetError::BadHost {
        url: url.to_string(),
        host: host.to_string(),
        hint,
    };

    // Split host and port; an IPv6 literal is the only host with colons.
    let (host, literal, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (inside, after) = bracketed
            .split_once(']')
            .ok_or_else(|| bad_host(authority, ""))?;
        let ip: Ipv6Addr = inside.parse().map_err(|_| bad_host(inside, ""))?;
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| bad_host(authority, ""))?,
            ),
        };
        (&authority[..inside.len() + 2], Some(IpAddr::V6(ip)), port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        if port.is_some_and(|p| p.contains(':')) {
            return Err(bad_host(
                authority,
                " (write IPv6 addresses in brackets: ws://[::1]:8080/)",
            ));
        }
        let literal = host.parse::<Ipv4Addr>().ok().map(IpAddr::V4);
        (host, literal, port)
    };
    if host.is_empty() {
        return Err(TargetError::NoHost(url.to_string()));
    }
    if literal.is_none()
        && !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    {
        return Err(bad_host(host, ""));
    }
    let port = match port {
        // An empty port means the default, as in browsers.
        None | Some("") => scheme.default_port(),
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&n| n != 0 && p.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| TargetError::BadPort {
                url: url.to_string(),
                port: p.to_string(),
            })?,
    };

    Ok(UrlParts {
        scheme,
        host: host.to_string(),
        ip: literal,
        port,
        path_and_query: request_target(tail),
    })
}

/// The first IPv4 address of `host`, else its first address.
fn resolve(host: &str, port: u16) -> Result<SocketAddr, TargetError> {
    let unresolvable = |reason: String| TargetError::Unresolvable {
        host: host.to_string(),
        reason,
    };
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| unresolvable(e.to_string()))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| unresolvable("it has no addresses".to_string()))
}

/// The request target from the part of a URL after the authority: the
/// fragment dropped, `/` added when missing, and bytes that may not appear
/// in a request line percent-encoded.
fn request_target(tail: &str) -> String {
    let tail = tail.split('#').next().unwrap_or("");
    let mut out = String::with_capacity(tail.len() + 1);
    if !tail.starts_with('/') {
        out.push('/');
    }
    for c in tail.chars() {
        if c.is_ascii() && !matches!(c, '"' | '<' | '>' | '\\' | '^' | '`' | '{' | '|' | '}') {
            out.push(c);
        } else {
            let mut buf = [0; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// Splits one argument into URLs at commas, except commas inside a path
/// or query, which are legal there.
fn split_list(arg: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for piece in arg.split(',') {
        let separate = piece.starts_with(char::is_whitespace) || has_scheme(piece);
        match out.last_mut() {
            Some(current) if !separate && past_authority(current) => {
                current.push(',');
                current.push_str(piece);
            }
            _ => out.push(piece.to_string()),
        }
    }
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Whether `s` starts with `scheme://` (RFC 3986 scheme characters).
fn has_scheme(s: &str) -> bool {
    s.split_once("://").is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    })
}

/// Whether a URL has reached its path, query or fragment.
fn past_authority(url: &str) -> bool {
    url.split_once("://")
        .is_some_and(|(_, rest)| rest.contains(['/', '?', '#']))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(url: &str) -> Target {
        parse_target(url).unwrap()
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn plain_urls() {
        let t = one("ws://127.0.0.1:8080");
        assert_eq!(
            t,
            Target {
                scheme: Scheme::Ws,
                host: "127.0.0.1:8080".into(),
                addr: "127.0.0.1:8080".parse().unwrap(),
                path_and_query: "/".into(),
            }
        );
        assert_eq!(t.to_string(), "ws://127.0.0.1:8080/");
        let t = one("WSS://127.0.0.1/chat/room?x=1&y=a,b#frag");
        assert_eq!(t.scheme, Scheme::Wss);
        assert_eq!(t.host, "127.0.0.1");
        assert_eq!(t.addr, "127.0.0.1:443".parse().unwrap());
        assert_eq!(t.path_and_query, "/chat/room?x=1&y=a,b");
        assert_eq!(t.server_name(), "127.0.0.1");
    }

    #[test]
    fn default_ports_are_left_out_of_the_host_header() {
        let t = one("ws://127.0.0.1:80/");
        assert_eq!((t.host.as_str(), t.addr.port()), ("127.0.0.1", 80));
        let t = one("wss://127.0.0.1:80/");
        assert_eq!((t.host.as_str(), t.addr.port()), ("127.0.0.1:80", 80));
        let t = one("ws://127.0.0.1:/");
        assert_eq!((t.host.as_str(), t.addr.port()), ("127.0.0.1", 80));
    }

    #[test]
    fn ipv6_literals() {
        let t = one("ws://[::1]:9000/x");
        assert_eq!(t.host, "[::1]:9000");
        assert_eq!(t.addr, "[::1]:9000".parse().unwrap());
        assert_eq!(t.server_name(), "::1");
        let t = one("wss://[::1]");
        assert_eq!((t.host.as_str(), t.addr.port()), ("[::1]", 443));
        assert_eq!(t.server_name(), "::1");
    }

    #[test]
    fn query_only_and_odd_characters() {
        assert_eq!(one("ws://127.0.0.1:1?room=a").path_and_query, "/?room=a");
        assert_eq!(one("ws://127.0.0.1:1#top").path_and_query, "/");
        assert_eq!(
            one("ws://127.0.0.1:1/caf\u{e9}/{x}").path_and_query,
            "/caf%C3%A9/%7Bx%7D"
        );
    }

    #[test]
    fn host_names_resolve_preferring_ipv4() {
        let t = one("ws://localhost:8080/ws");
        assert_eq!(t.host, "localhost:8080");
        assert_eq!(t.server_name(), "localhost");
        assert_eq!(t.addr, "127.0.0.1:8080".parse().unwrap());
    }

    #[test]
    fn with_query_appends() {
        let t = one("ws://127.0.0.1:1/");
        assert_eq!(t.with_query("username=a&room=r"), "/?username=a&room=r");
        assert_eq!(t.with_query(""), "/");
        let t = one("ws://127.0.0.1:1/p?token=x");
        assert_eq!(t.with_query("room=r"), "/p?token=x&room=r");
        assert_eq!(t.with_query("&room=r"), "/p?token=x&room=r");
        assert_eq!(one("ws://127.0.0.1:1/p?").with_query("?a=1"), "/p?a=1");
        assert_eq!(
            one("ws://127.0.0.1:1/p?a=1&").with_query("b=2"),
            "/p?a=1&b=2"
        );
    }

    #[test]
    fn lists_split_at_commas_but_not_inside_queries() {
        let t = parse_targets(&strings(&[
            "ws://127.0.0.1:1,ws://127.0.0.1:2/?rooms=a,b,c",
            "wss://127.0.0.2:3/, ws://127.0.0.3:4,",
        ]))
        .unwrap();
        let got: Vec<String> = t.iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            [
                "ws://127.0.0.1:1/",
                "ws://127.0.0.1:2/?rooms=a,b,c",
                "wss://127.0.0.2:3/",
                "ws://127.0.0.3:4/",
            ]
        );
        // The same server twice stays twice: the user asked for it.
        assert_eq!(
            parse_targets(&strings(&["ws://127.0.0.1:1,ws://127.0.0.1:1"]))
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        let err = |u: &str| parse_targets(&strings(&[u])).unwrap_err();
        assert_eq!(parse_targets(&[]), Err(TargetError::Empty));
        assert_eq!(err(" , "), TargetError::Empty);
        for u in [
            "http://127.0.0.1:80/",
            "127.0.0.1:8080",
            "ws:/127.0.0.1",
            "ftp://x",
        ] {
            let e = err(u);
            assert_eq!(e, TargetError::NotWebSocket(u.into()));
            assert!(e.to_string().contains("only ws:// and wss:// URLs"), "{e}");
        }
        // A second item without a scheme is its own (bad) URL.
        assert_eq!(
            err("ws://127.0.0.1:1,127.0.0.1:2"),
            TargetError::NotWebSocket("127.0.0.1:2".into())
        );
        for u in ["ws://", "ws:///path", "ws://:8080/", "wss://?x"] {
            assert_eq!(err(u), TargetError::NoHost(u.into()), "{u}");
        }
        for (u, port) in [
            ("ws://127.0.0.1:99999/", "99999"),
            ("ws://127.0.0.1:0/", "0"),
            ("ws://127.0.0.1:x/", "x"),
            ("ws://127.0.0.1:+80/", "+80"),
            ("ws://[::1]:-1/", "-1"),
        ] {
            let e = err(u);
            assert_eq!(
                e,
                TargetError::BadPort {
                    url: u.into(),
                    port: port.into()
                }
            );
            assert!(
                e.to_string().contains(&format!("bad port \"{port}\"")),
                "{e}"
            );
        }
        let e = err("ws://::1:8080/");
        assert!(matches!(e, TargetError::BadHost { .. }), "{e:?}");
        assert!(e.to_string().contains("brackets"), "{e}");
        assert!(matches!(err("ws://[::1/"), TargetError::BadHost { .. }));
        assert!(matches!(err("ws://[nope]:1/"), TargetError::BadHost { .. }));
        assert!(matches!(err("ws://[::1]x/"), TargetError::BadHost { .. }));
        assert!(matches!(
            err("ws://ex%61mple.com/"),
            TargetError::BadHost { .. }
        ));
        assert_eq!(
            err("ws://user:pw@127.0.0.1/"),
            TargetError::Credentials("ws://user:pw@127.0.0.1/".into())
        );
        assert!(matches!(err("ws://127.0.0.1/a b"), TargetError::BadChar(_)));
        assert!(matches!(
            err("ws://127.0.0.1/\r\nX: y"),
            TargetError::BadChar(_)
        ));
    }

    #[test]
    fn unresolvable_hosts_are_named() {
        // .invalid never resolves (RFC 6761).
        let e = parse_target("ws://no-such-host.invalid:8080/").unwrap_err();
        assert!(
            matches!(&e, TargetError::Unresolvable { host, .. } if host == "no-such-host.invalid"),
            "{e:?}"
        );
        assert!(e.to_string().contains("no-such-host.invalid"), "{e}");
    }

    #[test]
    fn parse_url_checks_without_resolving() {
        // A name that never resolves still parses: only its syntax is checked.
        let parts = parse_url("wss://no-such-host.invalid/chat?x=1#f").unwrap();
        assert_eq!(
            parts,
            UrlParts {
                scheme: Scheme::Wss,
                host: "no-such-host.invalid".into(),
                ip: None,
                port: 443,
                path_and_query: "/chat?x=1".into(),
            }
        );
        let parts = parse_url("ws://[::1]:9000").unwrap();
        assert_eq!(parts.host, "[::1]");
        assert_eq!(parts.ip, Some("::1".parse().unwrap()));
        assert_eq!(parts.port, 9000);
        assert!(matches!(
            parse_url("http://example.com/"),
            Err(TargetError::NotWebSocket(_))
        ));
        assert!(matches!(
            parse_url("ws://example.com:0/"),
            Err(TargetError::BadPort { .. })
        ));
    }
}
