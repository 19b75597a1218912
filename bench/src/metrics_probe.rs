//! Reads one value from the server's Prometheus endpoint, as a cross-check
//! of what the bench believes (e.g. how many connections the servers see).
//! A bare HTTP/1.0 GET: the bench needs no HTTP client for one number.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Fetches `/metrics` and returns the value of the unlabelled sample
/// `name`, or `None` when the server does not export it.
pub async fn fetch_value(
    addr: SocketAddr,
    name: &str,
    timeout: Duration,
) -> std::io::Result<Option<f64>> {
    let body = tokio::time::timeout(timeout, fetch(addr))
        .await
        .map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::TimedOut, "metrics fetch timed out")
        })??;
    Ok(sample_value(&body, name))
}

async fn fetch(addr: SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The value of the sample line `name value` (no labels) in an exposition.
pub fn sample_value(exposition: &str, name: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let value = rest.strip_prefix(' ')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_unlabelled_sample() {
        let text = "HTTP/1.1 200 OK\r\n\r\n# HELP chat_connections_open x\n# TYPE chat_connections_open gauge\nchat_connections_open_extra 3\nchat_connections_open 10000\nchat_rooms 2 1700000000\n";
        assert_eq!(sample_value(text, "chat_connections_open"), Some(10000.0));
        assert_eq!(sample_value(text, "chat_rooms"), Some(2.0));
        assert_eq!(sample_value(text, "chat_missing"), None);
        assert_eq!(sample_value("chat_rooms{a=\"b\"} 1\n", "chat_rooms"), None);
    }
}
