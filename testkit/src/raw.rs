//! A WebSocket client over a bare `TcpStream`, built from the protocol
//! crate's sans-IO pieces, for what tungstenite refuses to send: invalid
//! UTF-8 in a text frame, unmasked frames, broken upgrades, a handshake
//! that never finishes, a client that never reads. Every read is bounded.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use protocol::frame::{close_frame, encode_frame, Flow, Message, MessageReader, OpCode, Role};
use protocol::handshake::{client_request, generate_key, parse_response};
use protocol::{json, ChatMessage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::WAIT;

/// The masking key of every frame this client sends; the server must not
/// care which key a client uses.
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Frames the client's tests need; anything larger than a test message is
/// a server bug.
const MAX_FRAME: usize = 16 << 20;

/// A frame received from the server, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawFrame {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// The close code, if the frame carried one.
    Close(Option<u16>),
}

/// What a raw client saw when it read until the connection ended.
#[derive(Debug, Default)]
pub struct Drained {
    /// Data frames (text or binary) before the end.
    pub data_frames: usize,
    /// The server's close code, if a close frame arrived (`Some(None)`: a
    /// close frame without a code).
    pub close: Option<Option<u16>>,
    /// Whether the connection ended with a reset rather than EOF.
    pub reset: bool,
}

pub struct RawClient {
    pub stream: TcpStream,
    reader: MessageReader,
    frames: VecDeque<RawFrame>,
    eof: bool,
}

impl RawClient {
    /// Connects and upgrades with `path_and_query` (e.g. "/?room=lobby").
    pub async fn connect(addr: SocketAddr, path_and_query: &str) -> anyhow::Result<RawClient> {
        let stream = tokio::time::timeout(WAIT, TcpStream::connect(addr))
            .await
            .context("TCP connect timed out")??;
        RawClient::upgrade(stream, addr, path_and_query).await
    }

    /// Connects with the socket's receive buffer set to `rcvbuf` bytes
    /// before the connect, so the TCP window stays small: a client that
    /// does not read then stalls the server's writes after a few KiB.
    pub async fn connect_with_rcvbuf(
        addr: SocketAddr,
        path_and_query: &str,
        rcvbuf: u32,
    ) -> anyhow::Result<RawClient> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_recv_buffer_size(rcvbuf)?;
        let stream = tokio::time::timeout(WAIT, socket.connect(addr))
            .await
            .context("TCP connect timed out")??;
        RawClient::upgrade(stream, addr, path_and_query).await
    }

    /// Runs the upgrade on an open stream; the server's answer must be 101.
    pub async fn upgrade(
        mut stream: TcpStream,
        addr: SocketAddr,
        path_and_query: &str,
    ) -> anyhow::Result<RawClient> {
        let key = generate_key();
        let request = client_request(&addr.to_string(), path_and_query, &key, &[]);
        stream.write_all(request.as_bytes()).await?;
        let mut buf = Vec::with_capacity(1024);
        let head_len = tokio::time::timeout(WAIT, async {
            loop {
                if stream.read_buf(&mut buf).await? == 0 {
                    bail!(
                        "EOF during the upgrade after {:?}",
                        String::from_utf8_lossy(&buf)
                    );
                }
                match parse_response(&buf, &key) {
                    Ok(Some(len)) => return Ok(len),
                    Ok(None) => {}
                    Err(e) => bail!("upgrade refused: {e}: {:?}", String::from_utf8_lossy(&buf)),
                }
            }
        })
        .await
        .context("no upgrade answer in time")??;
        let mut client = RawClient {
            stream,
            reader: MessageReader::new(Role::Client, MAX_FRAME),
            frames: VecDeque::new(),
            eof: false,
        };
        let mut rest = buf[head_len..].to_vec();
        client.feed(&mut rest)?;
        Ok(client)
    }

    fn feed(&mut self, bytes: &mut [u8]) -> anyhow::Result<()> {
        let frames = &mut self.frames;
        self.reader
            .feed(bytes, |m| {
                frames.push_back(match m {
                    Message::Text(t) => RawFrame::Text(t.to_owned()),
                    Message::Binary(b) => RawFrame::Binary(b.to_vec()),
                    Message::Ping(p) => RawFrame::Ping(p.to_vec()),
                    Message::Pong(p) => RawFrame::Pong(p.to_vec()),
                    Message::Close(c) => RawFrame::Close(c.map(|(code, _)| code)),
                });
                Flow::Continue
            })
            .map_err(|v| anyhow!("server broke the framing rules: {v}"))?;
        Ok(())
    }

    /// Writes bytes as they are.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        tokio::time::timeout(WAIT, self.stream.write_all(bytes))
            .await
            .context("write timed out")??;
        Ok(())
    }

    /// Sends one masked frame (FIN set) with `payload` as it is.
    pub async fn send_frame(&mut self, opcode: OpCode, payload: &[u8]) -> anyhow::Result<()> {
        self.send_raw(&encode_frame(opcode, payload, Some(MASK)))
            .await
    }

    /// Sends one frame without a mask, which clients must never do.
    pub async fn send_unmasked(&mut self, opcode: OpCode, payload: &[u8]) -> anyhow::Result<()> {
        self.send_raw(&encode_frame(opcode, payload, None)).await
    }

    /// Sends `msg` as JSON in a masked text frame.
    pub async fn send_json(&mut self, msg: &ChatMessage<'_>) -> anyhow::Result<()> {
        self.send_frame(OpCode::Text, json::to_string(msg).as_bytes())
            .await
    }

    /// Sends a masked close frame with `code`.
    pub async fn send_close(&mut self, code: u16) -> anyhow::Result<()> {
        self.send_raw(&close_frame(code, "", Some(MASK))).await
    }

    /// The next frame; `None` at EOF. Errors on timeout or on a reset.
    pub async fn recv_within(&mut self, wait: Duration) -> anyhow::Result<Option<RawFrame>> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if let Some(frame) = self.frames.pop_front() {
                return Ok(Some(frame));
            }
            if self.eof {
                return Ok(None);
            }
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut buf))
                .await
                .context("nothing received in time")??;
            if n == 0 {
                self.eof = true;
            } else {
                self.feed(&mut buf[..n])?;
            }
        }
    }

    pub async fn recv(&mut self) -> anyhow::Result<Option<RawFrame>> {
        self.recv_within(WAIT).await
    }

    /// Asks the kernel to stamp every segment this socket receives
    /// (`SO_TIMESTAMPNS`: the real-time clock when the segment entered the
    /// host's stack). On loopback that happens inside the sender's write
    /// call, so the stamps of copies written by one server thread give the
    /// order it wrote them in, however late the test reads them. The first
    /// socket to ask switches stamping on asynchronously: see
    /// `await_receive_stamps`.
    #[cfg(target_os = "linux")]
    pub fn stamp_receives(&self) -> anyhow::Result<()> {
        use std::os::fd::AsRawFd;
        enable_stamps(self.stream.as_raw_fd())
    }

    /// The next frame and the kernel's receive stamp (see `stamp_receives`,
    /// which must be on) of the last segment taken by the read that
    /// completed it: the frame's own when nothing was queued behind it.
    /// Frames already read without a stamp are an error, not a guess.
    #[cfg(target_os = "linux")]
    pub async fn recv_stamped(&mut self) -> anyhow::Result<(RawFrame, Duration)> {
        use std::os::fd::AsRawFd;
        if !self.frames.is_empty() {
            bail!("a frame was already read without its receive stamp");
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut buf = vec![0u8; 64 * 1024];
        let fd = self.stream.as_raw_fd();
        loop {
            let read = self.stream.async_io(tokio::io::Interest::READABLE, || {
                recv_with_stamp(fd, &mut buf)
            });
            let (n, stamp) = tokio::time::timeout_at(deadline, read)
                .await
                .context("nothing received in time")??;
            if n == 0 {
                bail!("EOF waiting for a stamped frame");
            }
            self.feed(&mut buf[..n])?;
            if let Some(frame) = self.frames.pop_front() {
                let stamp = stamp.context("no receive stamp: call stamp_receives first")?;
                return Ok((frame, stamp));
            }
        }
    }

    /// Reads until the server's close frame, skipping other frames,
    /// answers it (echoing the code, as RFC 6455 asks) and returns its
    /// code. EOF before a close frame is an error.
    pub async fn expect_close(&mut self) -> anyhow::Result<Option<u16>> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv_within(left).await? {
                Some(RawFrame::Close(code)) => {
                    // The server may be gone already (after a shutdown).
                    let _ = self.send_close(code.unwrap_or(1000)).await;
                    return Ok(code);
                }
                Some(_) => {}
                None => bail!("EOF without a close frame"),
            }
        }
    }

    /// Waits until the server ends the TCP connection (EOF or reset),
    /// discarding whatever arrives; errors if it is still open after `wait`.
    pub async fn expect_eof_within(&mut self, wait: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Err(_) => bail!("connection still open after {wait:?}"),
                Ok(Ok(0)) | Ok(Err(_)) => return Ok(()),
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Reads everything until the connection ends, answering the server's
    /// close frame as a well-behaved client does; counts what arrived.
    pub async fn drain_until_end(&mut self, wait: Duration) -> anyhow::Result<Drained> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut seen = Drained::default();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = match self.recv_within(left).await {
                Ok(frame) => frame,
                Err(e) => {
                    let reset = e.chain().any(|c| {
                        c.downcast_ref::<std::io::Error>()
                            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionReset)
                    });
                    if reset {
                        seen.reset = true;
                        return Ok(seen);
                    }
                    return Err(e.context(format!("after {seen:?}")));
                }
            };
            match frame {
                None => return Ok(seen),
                Some(RawFrame::Text(_) | RawFrame::Binary(_)) => seen.data_frames += 1,
                Some(RawFrame::Close(code)) => {
                    if seen.close.is_none() {
                        seen.close = Some(code);
                        let _ = self.send_close(code.unwrap_or(1000)).await;
                    }
                }
                Some(_) => {}
            }
        }
    }
}

/// Sends `request` on a fresh connection and reads the answer until the
/// server closes; returns the HTTP status and the whole answer. For
/// refusals, which end the connection.
pub async fn http_exchange(addr: SocketAddr, request: &[u8]) -> anyhow::Result<(u16, String)> {
    let mut s = tokio::time::timeout(WAIT, TcpStream::connect(addr))
        .await
        .context("TCP connect timed out")??;
    s.write_all(request).await?;
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .context("the server did not end the connection")??;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| anyhow!("no HTTP/1.1 status line in {text:?}"))?;
    Ok((status, text))
}

/// The HTTP status the server answers an upgrade to `path_and_query` with,
/// or 101. The connection is dropped either way.
pub async fn upgrade_status(addr: SocketAddr, path_and_query: &str) -> anyhow::Result<u16> {
    let mut s = tokio::time::timeout(WAIT, TcpStream::connect(addr))
        .await
        .context("TCP connect timed out")??;
    let key = generate_key();
    s.write_all(client_request(&addr.to_string(), path_and_query, &key, &[]).as_bytes())
        .await?;
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, async {
        loop {
            let n = s.read_buf(&mut buf).await?;
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                return head
                    .strip_prefix("HTTP/1.1 ")
                    .and_then(|rest| rest.get(..3))
                    .and_then(|code| code.parse().ok())
                    .ok_or_else(|| anyhow!("no HTTP/1.1 status line in {head:?}"));
            }
            if n == 0 {
                bail!(
                    "EOF before a complete answer: {:?}",
                    String::from_utf8_lossy(&buf)
                );
            }
        }
    })
    .await
    .context("no upgrade answer in time")?
}

/// One `recvmsg` into `buf`; the byte count and the `SCM_TIMESTAMPNS`
/// stamp (since the Unix epoch) if the kernel attached one.
#[cfg(target_os = "linux")]
fn recv_with_stamp(
    fd: std::os::fd::RawFd,
    buf: &mut [u8],
) -> std::io::Result<(usize, Option<Duration>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // u64s: control messages need the alignment of `cmsghdr`.
    let mut control = [0u64; 16];
    // SAFETY: an all-zero msghdr is valid (no name, no buffers).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: msg points at live buffers of the lengths it states.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut stamp = None;
    // SAFETY: the CMSG_* walk stays within the control buffer the kernel
    // filled (it set msg_controllen), and the stamp is read unaligned.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                stamp = Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32));
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((n as usize, stamp))
}

#[cfg(target_os = "linux")]
fn enable_stamps(fd: std::os::fd::RawFd) -> anyhow::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt on an open socket, with an int-sized value.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("SO_TIMESTAMPNS");
    }
    Ok(())
}

/// Waits until the kernel stamps received segments at all. Asking for
/// stamps on a socket is immediate, but when no socket had asked before,
/// Linux switches stamping on through deferred work (`net_enable_timestamp`),
/// and segments arriving meanwhile come unstamped. Probes with a loopback
/// pair of its own; once on, stamping stays on while any socket asks.
#[cfg(target_os = "linux")]
pub async fn await_receive_stamps() -> anyhow::Result<()> {
    use std::os::fd::AsRawFd;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let (tx, accepted) = tokio::join!(
        TcpStream::connect(listener.local_addr()?),
        listener.accept()
    );
    let (mut tx, (rx, _)) = (tx?, accepted?);
    enable_stamps(rx.as_raw_fd())?;
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut buf = [0u8; 64];
    loop {
        tx.write_all(b"?").await?;
        let read = rx.async_io(tokio::io::Interest::READABLE, || {
            recv_with_stamp(rx.as_raw_fd(), &mut buf)
        });
        let (_, stamp) = tokio::time::timeout_at(deadline, read)
            .await
            .context("the probe's byte did not arrive")??;
        if stamp.is_some() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("the kernel did not start stamping received segments within {WAIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
