//! `server --healthcheck`: a container healthcheck that needs no curl in
//! the image. It asks the running server these same flags (or environment)
//! describe: `GET /healthz` on the metrics address, or, with metrics off, a
//! TCP connect to the WebSocket port.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

use crate::Opts;

const TIMEOUT: Duration = Duration::from_secs(2);

/// A wildcard listen address is reached on loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

/// Ok when the server answers; the error says what failed.
pub fn check(opts: &Opts) -> Result<(), String> {
    if opts.no_metrics {
        let addr = reachable(opts.listen);
        return TcpStream::connect_timeout(&addr, TIMEOUT)
            .map(drop)
            .map_err(|e| format!("{addr}: {e}"));
    }
    let addr = reachable(opts.metrics_listen);
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("{addr}: {e}"))?;
    let _ = s.set_read_timeout(Some(TIMEOUT));
    let _ = s.set_write_timeout(Some(TIMEOUT));
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("{addr}: {e}"))?;
    let mut head = [0u8; 64];
    let n = s.read(&mut head).map_err(|e| format!("{addr}: {e}"))?;
    let line = String::from_utf8_lossy(&head[..n]);
    if line.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        Err(format!(
            "{addr}/healthz answered {:?}",
            line.lines().next().unwrap_or("")
        ))
    }
}
