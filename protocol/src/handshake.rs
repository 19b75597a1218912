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
    /// The query's parameters, percent-decoded.
    pub fn params(&self) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
        form_urlencoded::parse(self.query.unwrap_or("").as_bytes())
    }
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
    let key = header(headers, "sec-websocket-key")
        .and_then(|k| std::str::from_utf8(k.trim_ascii()).ok())
        .filter(|k| k.len() == 24)
        .ok_or(HandshakeError::NotUpgrade(
            "missing or malformed Sec-WebSocket-Key",
        ))?;
    let target = req.path.unwrap_or("/");
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    Ok(Some((UpgradeRequest { path, query, key }, len)))
}

/// The 101 answer to a request carrying `key`.
pub fn accept_response(key: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        tungstenite::handshake::derive_accept_key(key.as_bytes())
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

/// A client's upgrade request for `path_and_query` on `host`.
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

/// Like [`parse_response`] for a request that offered `subprotocols`: also
/// returns the one the server chose, and refuses a choice that was not
/// offered (RFC 6455 4.1 says the client must fail the connection then).
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
    let expected = tungstenite::handshake::derive_accept_key(key.as_bytes());
    match header(resp.headers, "sec-websocket-accept") {
        Some(v) if v.trim_ascii() == expected.as_bytes() => {}
        _ => return Err(HandshakeError::BadAccept),
    }
    let chosen = header(resp.headers, "sec-websocket-protocol")
        .map(|v| String::from_utf8_lossy(v.trim_ascii()).into_owned());
    if let Some(p) = &chosen {
        if !subprotocols.contains(&p.as_str()) {
            return Err(HandshakeError::Subprotocol(p.clone()));
        }
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
