//! A connection's byte stream, plain TCP or TLS, behind the non-blocking
//! calls the connection loop uses (`try_read`, `try_write_vectored`, and
//! readiness of the TCP socket), so the loop is the same for `ws://` and
//! `wss://`.
//!
//! TLS is driven with a no-op waker: a TLS read or write that would block
//! leaves the TCP socket's readiness cleared, and the loop then waits on
//! that readiness with its real waker (`poll_read_ready`,
//! `poll_write_ready`), which replaces the no-op one. rustls may hold
//! plaintext it has already decrypted, so TLS reads go on until they would
//! block, and ciphertext it has not yet written counts as wanting to write.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

pub enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Plain(s) => f.debug_tuple("Plain").field(s).finish(),
            Transport::Tls(s) => f.debug_tuple("Tls").field(s.get_ref().0).finish(),
        }
    }
}

/// What a `wss://` connection needs: the client configuration and the
/// name the server's certificate must carry.
#[derive(Clone)]
pub struct TlsSetup {
    pub connector: tokio_rustls::TlsConnector,
    pub server_name: ServerName<'static>,
}

impl std::fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSetup")
            .field("server_name", &self.server_name)
            .finish()
    }
}

pub use tlsclient::{client_config, parse_ca_pem, CaError};

fn noop_context() -> Context<'static> {
    Context::from_waker(Waker::noop())
}

impl Transport {
    /// The TCP stream of a plain connection (the benches use them whole).
    pub fn into_plain(self) -> Option<TcpStream> {
        match self {
            Transport::Plain(s) => Some(s),
            Transport::Tls(_) => None,
        }
    }

    fn tcp(&self) -> &TcpStream {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(s) => s.get_ref().0,
        }
    }

    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tcp().poll_read_ready(cx)
    }

    pub fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tcp().poll_write_ready(cx)
    }

    /// Whether a short read means the socket is drained (plain TCP); TLS
    /// may still hold decrypted bytes.
    pub fn short_read_drains(&self) -> bool {
        matches!(self, Transport::Plain(_))
    }

    /// Bytes the TLS layer still has to write (encrypted records).
    pub fn wants_write(&self) -> bool {
        match self {
            Transport::Plain(_) => false,
            Transport::Tls(s) => s.get_ref().1.wants_write(),
        }
    }

    /// Reads without waiting; `Ok(0)` is the end of the stream.
    pub fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.try_read(buf),
            Transport::Tls(s) => {
                let mut read = ReadBuf::new(buf);
                match Pin::new(&mut **s).poll_read(&mut noop_context(), &mut read) {
                    Poll::Ready(Ok(())) => Ok(read.filled().len()),
                    Poll::Ready(Err(e)) => Err(e),
                    Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
                }
            }
        }
    }

    /// Writes without waiting, then pushes out what TLS has encrypted.
    pub fn try_write_vectored(&mut self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.try_write_vectored(slices),
            Transport::Tls(s) => {
                let mut cx = noop_context();
                let written = match Pin::new(&mut **s).poll_write_vectored(&mut cx, slices) {
                    Poll::Ready(r) => r?,
                    Poll::Pending => return Err(io::ErrorKind::WouldBlock.into()),
                };
                // What could not go out now goes when the socket is
                // writable again (`wants_write`).
                if let Poll::Ready(Err(e)) = Pin::new(&mut **s).poll_flush(&mut cx) {
                    return Err(e);
                }
                Ok(written)
            }
        }
    }

    /// Pushes out encrypted bytes waiting in the TLS layer.
    pub fn try_flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(_) => Ok(()),
            Transport::Tls(s) => match Pin::new(&mut **s).poll_flush(&mut noop_context()) {
                Poll::Ready(r) => r,
                Poll::Pending => Ok(()),
            },
        }
    }
}
