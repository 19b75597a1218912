//! The HTTP/1.1 upgrade (RFC 6455 section 4), sans-IO, for both ends.

use std::borrow::Cow;

/// Requests longer than this are refused: an upgrade is a few hundred bytes.
pub const MAX_REQUEST_LEN: usize = 8192;
const MAX_HEADERS: usize = 32;

/// Why an upgrade failed, with the HTTP status a server answers it with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("malformed HTTP request: {0}")]
    Malformed(String),
    #[error("not a WebSocket upgrade: {0}")]
    NotUpgrade(&'static str),
    #[error("unsupported WebSocket version (only 13)")]
    Version,
    #[error("request head over {MAX_REQUEST_LEN} bytes")]
    TooLarge,
    #[error("server answered HTTP {0} instead of 101")]
    Status(u16),
    #[error("server's Sec-WebSocket-Accept does not match the key")]
    BadAccept,
    #[error("server chose subprotocol {0:?}, which the client did not offer")]
    Subprotocol(String),
    /// RFC 6455 4.1: the request must carry a `Host` header field (and
    /// HTTP/1.1 allows only one).
    #[error("{0}")]
    Host(&'static str),
    /// RFC 6455 4.1: the key is 16 random bytes, base64-encoded. A key that
    /// is not is a client bug that a server should name, not accept.
    #[error("Sec-WebSocket-Key is not the base64 encoding of 16 bytes")]
    BadKey,
    /// The server's 101 lacks `Upgrade: websocket` or `Connection: Upgrade`
    /// (RFC 6455 4.1, points 2 and 3 of the client's checks): whatever
    /// answered did not switch to WebSocket.
    #[error("server's 101 has no {0} header")]
    AnswerNotUpgrade(&'static str),
    /// The server answered with an extension the client never asked for:
    /// its frames could then be ones the client cannot read (RFC 6455 4.1).
    #[error("server chose extension {0:?}, which the client did not request")]
    Extension(String),
}

impl HandshakeError {
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::Version => 426,
            HandshakeError::TooLarge => 431,
            _ => 400,
        }
    }
}

/// What a server needs from a valid upgrade request.
#[derive(Debug, PartialEq, Eq)]
pub struct UpgradeRequest<'a> {
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub key: &'a str,
}

impl UpgradeRequest<'_> {
    /// The query's parameters, percent-decoded, with escapes that spell
    /// bytes that are not UTF-8 replaced by U+FFFD: for looking at, not
    /// for taking a name from (see [`UpgradeRequest::params_exact`]).
    pub fn params(&self) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
        form_urlencoded::parse(self.query.unwrap_or("").as_bytes())
    }

    /// The query's parameters decoded as [`UpgradeRequest::params`] does,
    /// except that a value whose escapes are not UTF-8 comes back as an
    /// error instead of silently changed: `username=%00%ff` must be
    /// refused, not become a name the client never sent. Keys are decoded
    /// lossily (a key that is not UTF-8 matches no parameter anyway).
    pub fn params_exact(
        &self,
    ) -> impl Iterator<
        Item = (
            Cow<'_, str>,
            Result<Cow<'_, str>, std::string::FromUtf8Error>,
        ),
    > {
        self.query
            .unwrap_or("")
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                let key = form_decode(key).unwrap_or_else(|e| {
                    Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned())
                });
                (key, form_decode(value))
            })
    }
}

/// `application/x-www-form-urlencoded` decoding of one key or value, as
/// WHATWG's URL standard has it (`+` is a space, a `%` not followed by two
/// hex digits stays as it is), but failing on bytes that are not UTF-8.
fn form_decode(s: &str) -> Result<Cow<'_, str>, std::string::FromUtf8Error> {
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return Ok(Cow::Borrowed(s));
    }
    let hex = |b: Option<&u8>| b.and_then(|b| char::from(*b).to_digit(16));
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => match (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                (Some(hi), Some(lo)) => {
                    // Two hex digits: at most 0xff.
                    out.push((hi * 16 + lo) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map(Cow::Owned)
}

fn header<'a>(headers: &[httparse::Header<'a>], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

fn has_token(value: Option<&[u8]>, token: &str) -> bool {
    value.is_some_and(|v| {
        v.split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// Parses an upgrade request: `Ok(None)` until the head is complete, else the
/// request and the head's length.
pub fn parse_request(buf: &[u8]) -> Result<Option<(UpgradeRequest<'_>, usize)>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_REQUEST_LEN => {
            return Err(HandshakeError::TooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(HandshakeError::Malformed(e.to_string())),
    };
    if req.method != Some("GET") {
        return Err(HandshakeError::NotUpgrade("method is not GET"));
    }
    if req.version != Some(1) {
        return Err(HandshakeError::NotUpgrade("not HTTP/1.1"));
    }
    let headers = req.headers;
    if !has_token(header(headers, "upgrade"), "websocket") {
        return Err(HandshakeError::NotUpgrade("no Upgrade: websocket header"));
    }
    if !has_token(header(headers, "connection"), "upgrade") {
        return Err(HandshakeError::NotUpgrade("no Connection: upgrade header"));
    }
    if header(headers, "sec-websocket-version").map(<[u8]>::trim_ascii) != Some(b"13") {
        return Err(HandshakeError::Version);
    }
    // Without allocating: every connection of a load test comes through here.
    let mut hosts = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"))
        .map(|h| h.value.trim_ascii());
    match (hosts.next(), hosts.next()) {
        (None, _) => {
            return Err(HandshakeError::Host(
                "no Host header (RFC 6455 4.1 requires one)",
            ))
        }
        (Some(_), Some(_)) => return Err(HandshakeError::Host("more than one Host header")),
        (Some(b""), None) => return Err(HandshakeError::Host("the Host header is empty")),
        (Some(_), None) => {}
    }
    let key = header(headers, "sec-websocket-key")
        .ok_or(HandshakeError::NotUpgrade("no Sec-WebSocket-Key header"))?;
    let key = std::str::from_utf8(key.trim_ascii())
        .ok()
        .filter(|k| is_valid_key(k))
        .ok_or(HandshakeError::BadKey)?;
    let target = req.path.unwrap_or("/");
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    Ok(Some((UpgradeRequest { path, query, key }, len)))
}

/// Whether `key` is a Sec-WebSocket-Key as RFC 6455 4.1 defines it: the
/// canonical base64 of exactly 16 bytes.
fn is_valid_key(key: &str) -> bool {
    use base64::Engine;
    let mut raw = [0u8; 16];
    key.len() == 24
        && matches!(
            base64::engine::general_purpose::STANDARD.decode_slice(key, &mut raw),
            Ok(16)
        )
}

/// The RFC 6455 (4.2.2) `Sec-WebSocket-Accept` for `key`: base64 of the
/// SHA-1 of the key followed by the protocol's fixed GUID. Written here
/// rather than taken from a WebSocket library so that this crate needs
/// none.
pub fn derive_accept_key(key: &[u8]) -> String {
    use base64::Engine;
    use sha1::{Digest, Sha1};
    const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// The 101 answer to a request carrying `key`.
pub fn accept_response(key: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    )
}

/// A complete HTTP error answer that closes the connection.
pub fn error_response(status: u16, body: &str) -> String {
    let reason = match status {
        400 => "Bad Request",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let extra = if status == 426 {
        "Sec-WebSocket-Version: 13\r\n"
    } else {
        ""
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\n{extra}Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}\n",
        body.len() + 1
    )
}

/// A fresh Sec-WebSocket-Key. The key only has to differ between
/// connections (it proves the server speaks WebSocket), not be secret.
pub fn generate_key() -> String {
    use base64::Engine;
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let a = h.finish();
    h.write_u64(a);
    let b = h.finish();
    let mut raw = [0u8; 16];
    raw[..8].copy_from_slice(&a.to_le_bytes());
    raw[8..].copy_from_slice(&b.to_le_bytes());
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// Whether `s` is an RFC 7230 token, the only form a header name or a
/// subprotocol name (RFC 6455 4.1) may take: a user's value that is not
/// one could break the request apart.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether `value` may stand as a header value on one line: no control
/// character but tab. CR or LF would end the header early and start
/// another, under the user's control, that no check of the names saw.
pub fn is_header_value(value: &str) -> bool {
    !value.chars().any(|c| c.is_control() && c != '\t')
}

/// A client's upgrade request for `path_and_query` on `host`. The caller
/// has checked what came from a user: `extra_headers` with [`is_token`] and
/// [`is_header_value`], `path_and_query` for spaces and control characters
/// (they would end the request line).
pub fn client_request(
    host: &str,
    path_and_query: &str,
    key: &str,
    extra_headers: &[(&str, &str)],
) -> String {
    let mut req = format!(
        "GET {path_and_query} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    );
    for (name, value) in extra_headers {
        req.push_str(name);
        req.push_str(": ");
        req.push_str(value);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    req
}

/// Checks a server's answer to a request made with `key`: `Ok(None)` until
/// the head is complete, else the head's length (frames may follow it in
/// the same read).
pub fn parse_response(buf: &[u8], key: &str) -> Result<Option<usize>, HandshakeError> {
    parse_response_offering(buf, key, &[]).map(|r| r.map(|(len, _)| len))
}

/// Like [`parse_response`] for a request that offered `subprotocols` (and,
/// as every request of [`client_request`], no extension): also returns the
/// subprotocol the server chose. RFC 6455 4.1 says the client must fail
/// the connection when the answer lacks `Upgrade: websocket` or
/// `Connection: Upgrade` (tokens, case-insensitive, Connection possibly a
/// list), or chooses a subprotocol or extension that was not offered:
/// each is refused here with its own error.
pub fn parse_response_offering(
    buf: &[u8],
    key: &str,
    subprotocols: &[&str],
) -> Result<Option<(usize, Option<String>)>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_REQUEST_LEN => {
            return Err(HandshakeError::TooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(HandshakeError::Malformed(e.to_string())),
    };
    match resp.code {
        Some(101) => {}
        Some(code) => return Err(HandshakeError::Status(code)),
        None => return Err(HandshakeError::Malformed("no status".into())),
    }
    let headers = resp.headers;
    if !has_token(header(headers, "upgrade"), "websocket") {
        return Err(HandshakeError::AnswerNotUpgrade("Upgrade: websocket"));
    }
    if !has_token(header(headers, "connection"), "upgrade") {
        return Err(HandshakeError::AnswerNotUpgrade("Connection: Upgrade"));
    }
    let expected = derive_accept_key(key.as_bytes());
    match header(headers, "sec-websocket-accept") {
        Some(v) if v.trim_ascii() == expected.as_bytes() => {}
        _ => return Err(HandshakeError::BadAccept),
    }
    let lossy = |v: &[u8]| String::from_utf8_lossy(v.trim_ascii()).into_owned();
    // The client offers no extension, so any is one it did not request.
    if let Some(ext) = header(headers, "sec-websocket-extensions") {
        return Err(HandshakeError::Extension(lossy(ext)));
    }
    // Every value must be one offered, so a second header (or a list in
    // one) choosing several cannot slip past the first.
    let mut chosen = None;
    for h in headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("sec-websocket-protocol"))
    {
        let p = lossy(h.value);
        if chosen.is_some() || !subprotocols.contains(&p.as_str()) {
            return Err(HandshakeError::Subprotocol(p));
        }
        chosen = Some(p);
    }
    Ok(Some((len, chosen)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    #[test]
    fn rfc_sample_upgrade() {
        let req = client_request(
            "example",
            "/chat?username=al%20ice&room=lobby",
            RFC_KEY,
            &[],
        );
        let (parsed, len) = parse_request(req.as_bytes()).unwrap().unwrap();
        assert_eq!(len, req.len());
        assert_eq!(parsed.path, "/chat");
        assert_eq!(parsed.key, RFC_KEY);
        let params: Vec<_> = parsed.params().collect();
        assert_eq!(params[0], ("username".into(), "al ice".into()));
        let resp = accept_response(RFC_KEY);
        assert!(resp.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert_eq!(
            parse_response(resp.as_bytes(), RFC_KEY),
            Ok(Some(resp.len()))
        );
        assert_eq!(
            parse_response(resp.as_bytes(), &generate_key()),
            Err(HandshakeError::BadAccept)
        );
    }

    #[test]
    fn exact_params_refuse_escapes_that_are_not_utf8() {
        let req = client_request(
            "h",
            "/?username=%00%ff&room=a+b%21%zz%2&x&&proto=%C3%A9",
            RFC_KEY,
            &[],
        );
        let (parsed, _) = parse_request(req.as_bytes()).unwrap().unwrap();
        let params: Vec<_> = parsed.params_exact().collect();
        assert_eq!(params.len(), 4);
        assert_eq!(params[0].0, "username");
        assert!(params[0].1.is_err(), "{:?}", params[0]);
        // the lossy parse agrees everywhere else
        for ((k, v), (lk, lv)) in params.iter().zip(parsed.params()).skip(1) {
            assert_eq!((k, v.as_ref().unwrap()), (&lk, &lv));
        }
        assert_eq!(params[1].1.as_deref(), Ok("a b!%zz%2"));
        assert_eq!((&*params[2].0, params[2].1.as_deref()), ("x", Ok("")));
        assert_eq!(params[3].1.as_deref(), Ok("é"));
    }

    #[test]
    fn partial_requests_wait_and_bad_ones_are_400() {
        let req = client_request("h", "/", RFC_KEY, &[]);
        for cut in 0..req.len() {
            assert_eq!(parse_request(&req.as_bytes()[..cut]), Ok(None), "cut {cut}");
        }
        let plain = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(parse_request(plain).unwrap_err().status(), 400);
        let post = req.replacen("GET", "POST", 1);
        assert_eq!(parse_request(post.as_bytes()).unwrap_err().status(), 400);
        let v8 = req.replace("Version: 13", "Version: 8");
        assert_eq!(parse_request(v8.as_bytes()).unwrap_err().status(), 426);
        assert_eq!(
            parse_request(b"\x16\x03\x01garbage\r\n\r\n")
                .unwrap_err()
                .status(),
            400
        );
        let huge = vec![b'a'; MAX_REQUEST_LEN];
        assert!(parse_request(&huge).is_err());
    }

    #[test]
    fn accept_key_is_the_rfc_example() {
        assert_eq!(
            derive_accept_key(RFC_KEY.as_bytes()),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn host_is_required_once() {
        let good = client_request("h", "/", RFC_KEY, &[]);
        let refused = |req: &str| {
            let e = parse_request(req.as_bytes()).unwrap_err();
            assert_eq!(e.status(), 400, "{req}");
            e.to_string()
        };
        let why = refused(&good.replace("Host: h\r\n", ""));
        assert!(why.contains("no Host header"), "{why}");
        let why = refused(&good.replace("Host: h\r\n", "Host: \r\n"));
        assert!(why.contains("empty"), "{why}");
        let why = refused(&good.replace("Host: h\r\n", "Host: h\r\nhost: i\r\n"));
        assert!(why.contains("more than one Host"), "{why}");
        let lower = good.replace("Host: h", "HOST: h");
        assert!(parse_request(lower.as_bytes()).unwrap().is_some());
    }

    #[test]
    fn key_must_be_base64_of_16_bytes() {
        let good = client_request("h", "/", RFC_KEY, &[]);
        for bad in [
            // 24 characters, not base64
            "!!!!!!!!!!!!!!!!!!!!!!!!",
            "dGhlIHNhbXBsZSBub25jZQ?=",
            // 24 characters of base64 of 17 bytes
            "AAAAAAAAAAAAAAAAAAAAAAA=",
            // the padding's bits not zero: not the encoding of any key
            "dGhlIHNhbXBsZSBub25jZR==",
            // 16 bytes without padding is 22 characters
            "dGhlIHNhbXBsZSBub25jZQ",
        ] {
            let req = good.replace(RFC_KEY, bad);
            assert_eq!(
                parse_request(req.as_bytes()),
                Err(HandshakeError::BadKey),
                "{bad}"
            );
        }
        let no_key = good.replace(&format!("Sec-WebSocket-Key: {RFC_KEY}\r\n"), "");
        assert_eq!(parse_request(no_key.as_bytes()).unwrap_err().status(), 400);
        // surrounding spaces are not part of the value
        let spaced = good.replace(RFC_KEY, &format!("  {RFC_KEY} "));
        assert_eq!(
            parse_request(spaced.as_bytes()).unwrap().unwrap().0.key,
            RFC_KEY
        );
    }

    #[test]
    fn answer_must_be_a_websocket_upgrade() {
        let good = accept_response(RFC_KEY);
        let check = |resp: &str| parse_response(resp.as_bytes(), RFC_KEY);
        assert_eq!(
            check(&good.replace("Upgrade: websocket\r\n", "")),
            Err(HandshakeError::AnswerNotUpgrade("Upgrade: websocket"))
        );
        assert_eq!(
            check(&good.replace("Upgrade: websocket", "Upgrade: h2c")),
            Err(HandshakeError::AnswerNotUpgrade("Upgrade: websocket"))
        );
        assert_eq!(
            check(&good.replace("Connection: Upgrade\r\n", "")),
            Err(HandshakeError::AnswerNotUpgrade("Connection: Upgrade"))
        );
        assert_eq!(
            check(&good.replace("Connection: Upgrade", "Connection: keep-alive")),
            Err(HandshakeError::AnswerNotUpgrade("Connection: Upgrade"))
        );
        // tokens, case-insensitive, Connection a list
        let lenient = good
            .replace("Upgrade: websocket", "upgrade: WebSocket")
            .replace("Connection: Upgrade", "CONNECTION: keep-alive, upgrade");
        assert_eq!(check(&lenient), Ok(Some(lenient.len())));
    }

    #[test]
    fn extensions_are_never_accepted() {
        let base = accept_response(RFC_KEY);
        let ext = base.replace(
            "\r\n\r\n",
            "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
        );
        assert_eq!(
            parse_response_offering(ext.as_bytes(), RFC_KEY, &["chat"]),
            Err(HandshakeError::Extension("permessage-deflate".into()))
        );
    }

    #[test]
    fn header_checks() {
        for good in ["X-Trace", "a", "!#$%&'*+-.^_`|~09AZaz"] {
            assert!(is_token(good), "{good}");
        }
        for bad in ["", "two words", "a:b", "a\r\nb", "caf\u{e9}", "(x)"] {
            assert!(!is_token(bad), "{bad}");
        }
        for good in ["", "Bearer x:y", "a\tb", "caf\u{e9}"] {
            assert!(is_header_value(good), "{good:?}");
        }
        for bad in [
            "a\r\nX: 1",
            "a\nb",
            "a\rb",
            "\0",
            "a\x7f",
            "\x1b[0m",
            "\u{85}",
        ] {
            assert!(!is_header_value(bad), "{bad:?}");
        }
    }

    #[test]
    fn keys_differ() {
        let a = generate_key();
        assert_eq!(a.len(), 24);
        assert_ne!(a, generate_key());
    }

    #[test]
    fn subprotocol_choice_must_be_one_offered() {
        let base = accept_response(RFC_KEY);
        let with = |p: &str| {
            base.replace(
                "\r\n\r\n",
                &format!("\r\nSec-WebSocket-Protocol: {p}\r\n\r\n"),
            )
        };
        let chat = with("chat.v1");
        assert_eq!(
            parse_response_offering(chat.as_bytes(), RFC_KEY, &["chat.v1", "chat.v2"]),
            Ok(Some((chat.len(), Some("chat.v1".into()))))
        );
        assert_eq!(
            parse_response_offering(chat.as_bytes(), RFC_KEY, &[]),
            Err(HandshakeError::Subprotocol("chat.v1".into()))
        );
        assert_eq!(
            parse_response_offering(base.as_bytes(), RFC_KEY, &["chat.v1"]),
            Ok(Some((base.len(), None)))
        );
        // a second choice, in a second header or a list, is not offered
        let twice = with("chat.v1\r\nSec-WebSocket-Protocol: chat.v2");
        assert_eq!(
            parse_response_offering(twice.as_bytes(), RFC_KEY, &["chat.v1", "chat.v2"]),
            Err(HandshakeError::Subprotocol("chat.v2".into()))
        );
        let list = with("chat.v1, chat.v2");
        assert!(
            parse_response_offering(list.as_bytes(), RFC_KEY, &["chat.v1", "chat.v2"]).is_err()
        );
    }

    #[test]
    fn error_status_is_reported() {
        let resp = error_response(503, "full");
        assert_eq!(
            parse_response(resp.as_bytes(), RFC_KEY),
            Err(HandshakeError::Status(503))
        );
    }
}
