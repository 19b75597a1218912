//! A lean WebSocket client connection: a plain tokio `TcpStream` upgraded
//! with the sans-IO handshake of the `protocol` crate. No per-connection
//! buffers survive the handshake, so one process can hold ~15,000 of them
//! within its file limit and a few hundred MB; a full client library would
//! keep read and write buffers for each.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use protocol::handshake::{self, HandshakeError};

use crate::transport::{TlsSetup, Transport};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpSocket;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("creating the socket: {0}")]
    Socket(io::Error),
    #[error("binding to {ip}: {source}")]
    Bind { ip: IpAddr, source: io::Error },
    #[error("connect: {0}")]
    Connect(io::Error),
    #[error("connect and upgrade timed out after {0:?}")]
    Timeout(Duration),
    #[error("during the upgrade: {0}")]
    Io(io::Error),
    #[error("connection closed during the upgrade")]
    Closed,
    #[error("upgrade refused: {0}")]
    Handshake(#[from] HandshakeError),
    #[error("TLS: {0}")]
    Tls(io::Error),
}

impl ConnectError {
    /// A short label for counting failures by cause: no addresses or other
    /// details that differ between connections failing the same way.
    pub fn kind(&self) -> String {
        match self {
            ConnectError::Socket(e) => format!("socket: {}", io_label(e)),
            ConnectError::Bind { source, .. } => format!("bind: {}", io_label(source)),
            ConnectError::Connect(e) => format!("connect: {}", io_label(e)),
            ConnectError::Timeout(_) => "timeout".to_string(),
            ConnectError::Io(e) => format!("upgrade I/O: {}", io_label(e)),
            ConnectError::Closed => "closed during upgrade".to_string(),
            ConnectError::Handshake(HandshakeError::Status(code)) => format!("HTTP {code}"),
            ConnectError::Handshake(HandshakeError::Subprotocol(_)) => {
                "upgrade: server chose a subprotocol not offered".to_string()
            }
            // The extension's name (and parameters) would split one cause
            // into as many labels as servers invent.
            ConnectError::Handshake(HandshakeError::Extension(_)) => {
                "upgrade: server chose an extension not requested".to_string()
            }
            ConnectError::Handshake(e) => format!("upgrade: {e}"),
            ConnectError::Tls(e) => tlsclient::describe(e),
        }
    }
}

/// The OS's wording when there is an errno (EMFILE and EADDRNOTAVAIL must
/// stay distinguishable), else the error kind.
pub fn io_label(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code).to_string(),
        None => e.kind().to_string(),
    }
}

/// An upgraded connection. `leftover` holds bytes the server sent after its
/// 101 answer in the same read (the welcome frame, often).
#[derive(Debug)]
pub struct Upgraded {
    pub stream: Transport,
    pub leftover: Vec<u8>,
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub server: SocketAddr,
    /// Local address to bind before connecting; the port is left to
    /// connect() (see [`bind_no_port`]).
    pub source: Option<IpAddr>,
    /// Request target, e.g. `/?room=r1&username=u1&proto=binary`.
    pub path_and_query: String,
    /// The Host header; `None` uses the server address.
    pub host: Option<String>,
    /// Extra request headers, and subprotocols to offer.
    pub extra: Arc<UpgradeExtras>,
    /// For `wss://`.
    pub tls: Option<TlsSetup>,
    /// Bounds connect and upgrade together.
    pub timeout: Duration,
    pub nodelay: bool,
}

/// What a run adds to every upgrade request.
#[derive(Debug, Clone, Default)]
pub struct UpgradeExtras {
    pub headers: Vec<(String, String)>,
    pub subprotocols: Vec<String>,
}

impl UpgradeExtras {
    /// Validates `Name: value` headers and subprotocol names, before
    /// anything connects. Each ends up verbatim in the upgrade request, so
    /// a line break (or any control character but tab) is refused rather
    /// than cleaned: it would start a header line of its own that no check
    /// here saw, `Host` or `Sec-WebSocket-*` included. Header names and
    /// subprotocols must be RFC 7230 tokens.
    pub fn parse(headers: &[String], subprotocols: &[String]) -> Result<UpgradeExtras, String> {
        let mut parsed = Vec::with_capacity(headers.len());
        for h in headers {
            if !handshake::is_header_value(h) {
                return Err(format!(
                    "--header {h:?} holds a line break or another control character \
                     (one header per --header)"
                ));
            }
            let Some((name, value)) = h.split_once(':') else {
                return Err(format!("--header {h:?} is not `Name: value`"));
            };
            let (name, value) = (name.trim(), value.trim());
            if !handshake::is_token(name) {
                return Err(format!(
                    "--header {h:?}: {name:?} is not a valid header name"
                ));
            }
            // Sec-WebSocket-* as a whole: loadgen sets the key, version and
            // subprotocols, and speaks no extension.
            let lower = name.to_ascii_lowercase();
            if ["host", "upgrade", "connection"].contains(&lower.as_str())
                || lower.starts_with("sec-websocket-")
            {
                return Err(format!("--header {name}: loadgen sets that header itself (use --subprotocol for subprotocols; loadgen speaks no extension)"));
            }
            parsed.push((name.to_string(), value.to_string()));
        }
        if let Some(bad) = subprotocols.iter().find(|p| !handshake::is_token(p)) {
            return Err(format!(
                "--subprotocol {bad:?} is not a valid subprotocol name (an RFC 7230 token)"
            ));
        }
        Ok(UpgradeExtras {
            headers: parsed,
            subprotocols: subprotocols.to_vec(),
        })
    }
}

/// Opens a TCP connection and performs the WebSocket upgrade.
pub async fn connect(opts: &ConnectOptions) -> Result<Upgraded, ConnectError> {
    match tokio::time::timeout(opts.timeout, connect_inner(opts)).await {
        Ok(r) => r,
        Err(_) => Err(ConnectError::Timeout(opts.timeout)),
    }
}

async fn connect_inner(opts: &ConnectOptions) -> Result<Upgraded, ConnectError> {
    let socket = Socket::new(
        Domain::for_address(opts.server),
        Type::STREAM,
        Some(Protocol::TCP),
    )
    .map_err(ConnectError::Socket)?;
    socket.set_nonblocking(true).map_err(ConnectError::Socket)?;
    if let Some(ip) = opts.source {
        bind_no_port(&socket, ip).map_err(|source| ConnectError::Bind { ip, source })?;
    }
    let socket = TcpSocket::from_std_stream(std::net::TcpStream::from(socket));
    let stream = socket
        .connect(opts.server)
        .await
        .map_err(ConnectError::Connect)?;
    if opts.nodelay {
        stream.set_nodelay(true).map_err(ConnectError::Socket)?;
    }
    match &opts.tls {
        None => upgrade(stream, opts)
            .await
            .map(|(stream, leftover)| Upgraded {
                stream: Transport::Plain(stream),
                leftover,
            }),
        Some(tls) => {
            let stream = tls
                .connector
                .connect(tls.server_name.clone(), stream)
                .await
                .map_err(ConnectError::Tls)?;
            upgrade(stream, opts)
                .await
                .map(|(stream, leftover)| Upgraded {
                    stream: Transport::Tls(Box::new(stream)),
                    leftover,
                })
        }
    }
}

/// The HTTP upgrade over `stream`; returns it with any bytes that came
/// after the answer.
async fn upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    opts: &ConnectOptions,
) -> Result<(S, Vec<u8>), ConnectError> {
    let key = handshake::generate_key();
    let host = opts.host.clone().unwrap_or_else(|| opts.server.to_string());
    let offered = opts.extra.subprotocols.join(", ");
    let mut extra: Vec<(&str, &str)> = opts
        .extra
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    if !offered.is_empty() {
        extra.push(("Sec-WebSocket-Protocol", &offered));
    }
    let request = handshake::client_request(&host, &opts.path_and_query, &key, &extra);
    let offered: Vec<&str> = opts.extra.subprotocols.iter().map(String::as_str).collect();
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(ConnectError::Io)?;
    let mut buf = Vec::with_capacity(512);
    loop {
        if stream.read_buf(&mut buf).await.map_err(ConnectError::Io)? == 0 {
            return Err(ConnectError::Closed);
        }
        if let Some((len, _chosen)) = handshake::parse_response_offering(&buf, &key, &offered)? {
            buf.drain(..len);
            buf.shrink_to_fit();
            return Ok((stream, buf));
        }
        if buf.len() == buf.capacity() {
            buf.reserve(buf.len());
        }
    }
}

/// Binds to `ip` with port 0 but with IP_BIND_ADDRESS_NO_PORT set first:
/// the kernel then picks the port at connect() time from the whole 4-tuple,
/// so one source address serves ~28k connections per server port instead
/// of ~28k in total. Linux honours the option on IPv6 sockets too.
pub fn bind_no_port(socket: &Socket, ip: IpAddr) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid fd owned by `socket`, and a pointer to a c_int
    // that lives across the call with its exact size passed.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    socket.bind(&SocketAddr::new(ip, 0).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_kinds_are_stable_labels() {
        let refused = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(
            ConnectError::Connect(refused).kind(),
            "connect: Connection refused (os error 111)"
        );
        assert_eq!(
            ConnectError::Handshake(HandshakeError::Status(503)).kind(),
            "HTTP 503"
        );
        assert_eq!(
            ConnectError::Timeout(Duration::from_secs(3)).kind(),
            "timeout"
        );
        assert_eq!(
            ConnectError::Handshake(HandshakeError::Extension("x; y=1".into())).kind(),
            "upgrade: server chose an extension not requested"
        );
        assert_eq!(
            ConnectError::Handshake(HandshakeError::AnswerNotUpgrade("Connection: Upgrade")).kind(),
            "upgrade: server's 101 has no Connection: Upgrade header"
        );
        let plain = io::Error::new(io::ErrorKind::UnexpectedEof, "x");
        assert_eq!(
            ConnectError::Io(plain).kind(),
            "upgrade I/O: unexpected end of file"
        );
    }

    /// What tokio-rustls hands back for a refused certificate.
    fn refused(cert: rustls::CertificateError) -> ConnectError {
        let e = rustls::Error::InvalidCertificate(cert);
        ConnectError::Tls(io::Error::new(io::ErrorKind::InvalidData, e))
    }

    #[test]
    fn certificate_refusals_say_what_to_do() {
        use rustls::{CertificateError as C, OtherError};
        let untrusted = "TLS: the server's certificate is not trusted (self-signed or from a \
                         private CA): pass --ca-file with the CA's PEM, or --insecure for a \
                         test server";
        assert_eq!(refused(C::UnknownIssuer).kind(), untrusted);
        let other = C::Other(OtherError(Arc::new(io::Error::other(
            "UnsupportedCertVersion",
        ))));
        assert_eq!(refused(other).kind(), untrusted);
        // webpki's CaUsedAsEndEntity arrives wrapped in Other, and no CA
        // file can help with it.
        let ca = C::Other(OtherError(Arc::new(io::Error::other("CaUsedAsEndEntity"))));
        assert!(refused(ca).kind().contains("refused even with --ca-file"));
        assert_eq!(
            refused(C::Expired).kind(),
            "TLS: the server's certificate has expired"
        );
        // The context variants carry times and names: same label.
        let name = C::NotValidForNameContext {
            expected: rustls::pki_types::ServerName::try_from("a.example").unwrap(),
            presented: vec!["b.example".into()],
        };
        assert_eq!(refused(name).kind(), refused(C::NotValidForName).kind(),);
        assert_eq!(
            refused(C::NotValidForName).kind(),
            "TLS: the server's certificate does not name the URL's host"
        );
        // Anything else keeps rustls's wording.
        let alert = rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure);
        let e = ConnectError::Tls(io::Error::new(io::ErrorKind::InvalidData, alert));
        assert_eq!(e.kind(), "TLS: received fatal alert: HandshakeFailure");
    }

    #[test]
    fn bind_no_port_defers_the_port() {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        bind_no_port(&socket, "127.0.0.3".parse().unwrap()).unwrap();
        let local = socket.local_addr().unwrap().as_socket().unwrap();
        assert_eq!(local.ip(), "127.0.0.3".parse::<IpAddr>().unwrap());
        // with the option set, bind() leaves the port unassigned
        assert_eq!(local.port(), 0);
        // IPv6 too, where this machine has ::1
        let v6 = Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP)).unwrap();
        match bind_no_port(&v6, "::1".parse().unwrap()) {
            Ok(()) => {
                let local = v6.local_addr().unwrap().as_socket().unwrap();
                assert_eq!(local.port(), 0);
            }
            // only the address may be missing, not the option
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EADDRNOTAVAIL), "{e}"),
        }
    }
}

#[cfg(test)]
mod extras_tests {
    use super::*;

    #[test]
    fn headers_and_subprotocols_are_checked() {
        let ok = UpgradeExtras::parse(
            &["Authorization: Bearer x:y".into(), "X-Trace:1".into()],
            &["chat.v1".into()],
        )
        .unwrap();
        assert_eq!(ok.headers[0], ("Authorization".into(), "Bearer x:y".into()));
        assert_eq!(ok.headers[1], ("X-Trace".into(), "1".into()));
        for bad in [
            "no colon",
            "Bad Name: x",
            ": x",
            "Host: other",
            "Sec-WebSocket-Protocol: a",
        ] {
            assert!(UpgradeExtras::parse(&[bad.into()], &[]).is_err(), "{bad}");
        }
        assert!(UpgradeExtras::parse(&["X: a\r\nEvil: 1".into()], &[]).is_err());
        assert!(UpgradeExtras::parse(&[], &["two words".into()]).is_err());
        assert!(UpgradeExtras::parse(&["Sec-WebSocket-Extensions: x".into()], &[]).is_err());
    }

    #[test]
    fn control_characters_are_refused_not_trimmed() {
        // Trimming used to drop a trailing CR, and a lone LF or other
        // control character went through: each could forge a line.
        for bad in [
            "X-A: b\r",
            "X-A: b\n",
            "X-A: b\r\nX-Inject: 1",
            "X-A: b\nHost: evil",
            "X-A: b\rHost: evil",
            "X-A:\x0bb",
            "X-A: b\x7f",
            "X-A: b\0",
            "X-A\r\n: b",
        ] {
            let e = UpgradeExtras::parse(&[bad.into()], &[]).unwrap_err();
            assert!(e.starts_with("--header"), "{bad:?}: {e}");
            assert!(e.contains("control character"), "{bad:?}: {e}");
        }
        // a tab is allowed in a value
        let ok = UpgradeExtras::parse(&["X-A: b\tc".into()], &[]).unwrap();
        assert_eq!(ok.headers[0].1, "b\tc");
        for bad in ["chat\r\nX-Inject: 1", "chat\n", "a,b", ""] {
            let e = UpgradeExtras::parse(&[], &[bad.into()]).unwrap_err();
            assert!(e.starts_with("--subprotocol"), "{bad:?}: {e}");
        }
    }
}
