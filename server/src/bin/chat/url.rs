//! The upgrade URL: the user's URL plus the query that makes the server join
//! us to a room under our name and answer in our encoding.

use protocol::Proto;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlError {
    NoScheme(String),
    Scheme(String),
    NoHost(String),
}

impl std::fmt::Display for UrlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UrlError::NoScheme(url) => {
                write!(
                    f,
                    "{url:?} is not a WebSocket URL (expected ws://HOST:PORT)"
                )
            }
            UrlError::Scheme(scheme) => {
                write!(f, "unsupported URL scheme {scheme:?} (expected ws://)")
            }
            UrlError::NoHost(url) => write!(f, "{url:?} has no host"),
        }
    }
}

impl std::error::Error for UrlError {}

/// Appends `username`, `room` (when given) and `proto` to `base`'s query,
/// keeping whatever query `base` already has. A fragment is dropped: RFC
/// 6455 forbids them in WebSocket URIs.
pub fn build(
    base: &str,
    username: &str,
    room: Option<&str>,
    proto: Proto,
) -> Result<String, UrlError> {
    let base = base.trim();
    let (scheme, rest) = base
        .split_once("://")
        .ok_or_else(|| UrlError::NoScheme(base.to_owned()))?;
    if !scheme.eq_ignore_ascii_case("ws") && !scheme.eq_ignore_ascii_case("wss") {
        return Err(UrlError::Scheme(scheme.to_owned()));
    }
    let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    if authority_end == 0 {
        return Err(UrlError::NoHost(base.to_owned()));
    }
    let (authority, tail) = rest.split_at(authority_end);

    let mut url = format!("{scheme}://{authority}");
    // An empty path before the query is not a valid request target.
    if !tail.starts_with('/') {
        url.push('/');
    }
    url.push_str(tail);
    let separator = match tail.split_once('?') {
        None => "?",
        Some((_, query)) if query.is_empty() || query.ends_with('&') => "",
        Some(_) => "&",
    };
    url.push_str(separator);

    url.push_str("username=");
    url.push_str(&percent_encode(username));
    if let Some(room) = room {
        url.push_str("&room=");
        url.push_str(&percent_encode(room));
    }
    url.push_str("&proto=");
    url.push_str(proto.as_str());
    Ok(url)
}

/// Encodes every byte but RFC 3986's unreserved ones, so `+`, `&`, `=` and
/// spaces survive the server's form-urlencoded parsing unchanged.
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_host_gets_a_path_and_the_query() {
        assert_eq!(
            build("ws://127.0.0.1:8080", "alice", Some("lobby"), Proto::Json).unwrap(),
            "ws://127.0.0.1:8080/?username=alice&room=lobby&proto=json"
        );
    }

    #[test]
    fn existing_path_and_query_are_kept() {
        assert_eq!(
            build("ws://h:1/chat?token=x", "a", Some("r"), Proto::Binary).unwrap(),
            "ws://h:1/chat?token=x&username=a&room=r&proto=binary"
        );
        assert_eq!(
            build("ws://h:1/?", "a", None, Proto::Json).unwrap(),
            "ws://h:1/?username=a&proto=json"
        );
        assert_eq!(
            build("ws://h:1?k=v&", "a", None, Proto::Json).unwrap(),
            "ws://h:1/?k=v&username=a&proto=json"
        );
    }

    #[test]
    fn fragment_is_dropped() {
        assert_eq!(
            build("ws://h/p#frag", "a", None, Proto::Json).unwrap(),
            "ws://h/p?username=a&proto=json"
        );
    }

    #[test]
    fn values_are_percent_encoded() {
        assert_eq!(percent_encode("a b+c&d=e/é"), "a%20b%2Bc%26d%3De%2F%C3%A9");
        assert_eq!(percent_encode("Az09-._~"), "Az09-._~");
        assert_eq!(
            build("ws://h", "bob smith", Some("r&d"), Proto::Json).unwrap(),
            "ws://h/?username=bob%20smith&room=r%26d&proto=json"
        );
    }

    #[test]
    fn bad_urls_are_refused() {
        assert!(matches!(
            build("127.0.0.1:8080", "a", None, Proto::Json),
            Err(UrlError::NoScheme(_))
        ));
        assert!(matches!(
            build("http://h", "a", None, Proto::Json),
            Err(UrlError::Scheme(_))
        ));
        assert!(matches!(
            build("ws:///path", "a", None, Proto::Json),
            Err(UrlError::NoHost(_))
        ));
    }
}
