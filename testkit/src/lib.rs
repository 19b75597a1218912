//! Shared by integration tests across the workspace, so every crate tests
//! against the real server the same way. Everything waits with a timeout:
//! a broken server fails a test, it never hangs it.

mod client_ext;
pub mod procs;
pub mod prom;
pub mod raw;

pub use client_ext::rss_bytes;
pub use prom::{scrape, scrape_until, Exposition};
pub use raw::{http_exchange, upgrade_status, RawClient, RawFrame};

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use futures_util::{SinkExt, StreamExt};
use protocol::{binary, json, ChatMessage, MsgType, Proto};
use server::{Opts, Server, ServerHandle};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for anything the server should do promptly.
pub const WAIT: Duration = Duration::from_secs(5);

/// Default options on 127.0.0.1:0 with no metrics endpoint; adjust fields
/// before `start_server`.
pub fn opts() -> Opts {
    let mut opts = Opts::defaults();
    opts.listen = "127.0.0.1:0".parse().expect("literal address");
    opts.metrics_listen = "127.0.0.1:0".parse().expect("literal address");
    opts.no_metrics = true;
    opts.workers = Some(2);
    opts
}

/// Starts an in-process server on an ephemeral port.
pub fn start_server(opts: Opts) -> ServerHandle {
    Server::bind(opts)
        .and_then(Server::start)
        .expect("test server starts")
}

/// The server binary that `cargo build -p server` (and `cargo test
/// --workspace`) leaves in `target/<profile>/`.
pub fn server_bin() -> std::path::PathBuf {
    workspace_bin("server")
}

/// A binary of the workspace in `target/<profile>/`. Other crates' tests
/// need them as real processes but cannot name them with
/// `CARGO_BIN_EXE_<name>`, which cargo sets only for the binary's own
/// crate; test executables sit in `target/<profile>/deps/`, one level
/// below.
pub fn workspace_bin(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let profile_dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("test executables live in target/<profile>/deps/");
    let bin = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "no {name} binary at {}: build it with cargo build -p {name}",
        bin.display()
    );
    bin
}

/// `loadgen agent` as a child process on an ephemeral port; killed on drop.
pub struct AgentProcess {
    pub child: Child,
    /// The control address (host:port).
    pub addr: SocketAddr,
    /// The Prometheus endpoint, when started with `--metrics-listen`.
    pub metrics: Option<SocketAddr>,
}

impl AgentProcess {
    /// Starts `bin agent --listen 127.0.0.1:0 --token TOKEN ARGS...` and
    /// reads its ready line.
    pub fn spawn(
        bin: &std::path::Path,
        token: &str,
        args: &[&str],
    ) -> anyhow::Result<AgentProcess> {
        let mut child = Command::new(bin)
            .args(["agent", "--listen", "127.0.0.1:0", "--token", token])
            .args(args)
            .env_remove("LOADGEN_ALLOW_TARGET")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))?;
        let line = first_line(&mut child, "agent")?;
        let (addr, metrics) = loadgen::agent::parse_ready_line(&line)
            .with_context(|| format!("unexpected agent ready line {line:?}"))?;
        Ok(AgentProcess {
            child,
            addr,
            metrics,
        })
    }

    /// SIGKILL: the agent dies without a word, as a crashed machine would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The first line `child` prints on stdout, within 20 s.
fn first_line(child: &mut Child, what: &str) -> anyhow::Result<String> {
    let stdout = child.stdout.take().context("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        // Keep draining, so the child never blocks on a full pipe.
        let mut sink = String::new();
        while reader.read_line(&mut sink).is_ok_and(|n| n > 0) {
            sink.clear();
        }
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(line) if !line.is_empty() => Ok(line),
        _ => {
            let _ = child.kill();
            bail!("{what} printed no ready line within 20 s");
        }
    }
}

/// The server binary run as a child process; killed on drop.
pub struct ServerProcess {
    pub child: Child,
    pub ws: SocketAddr,
    pub metrics: Option<SocketAddr>,
}

impl ServerProcess {
    /// Runs `bin` (e.g. `env!("CARGO_BIN_EXE_server")`) on ephemeral ports
    /// with extra `args` and reads its ready line.
    pub fn spawn(bin: &str, args: &[&str]) -> anyhow::Result<ServerProcess> {
        let mut command = Command::new(bin);
        command
            .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
            .args(args);
        ServerProcess::start(command, bin)
    }

    /// Runs `bin` with `args` and the environment variables `envs`, and
    /// nothing else: no `--listen`, and no `SERVER_*` variable of the
    /// test's own environment, so a test of configuration by environment
    /// sees only what it set. `envs` must put the server on ephemeral
    /// ports (`SERVER_LISTEN=127.0.0.1:0`, ...).
    pub fn spawn_with_env(
        bin: &str,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> anyhow::Result<ServerProcess> {
        let mut command = Command::new(bin);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SERVER_") {
                command.env_remove(key);
            }
        }
        command.args(args).envs(envs.iter().copied());
        ServerProcess::start(command, bin)
    }

    /// Starts `command` and reads the server's ready line.
    fn start(mut command: Command, bin: &str) -> anyhow::Result<ServerProcess> {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("spawning {bin}"))?;
        let line = first_line(&mut child, "server")?;
        let ready: server::ReadyLine = match line.trim_end().parse() {
            Ok(ready) => ready,
            Err(e) => {
                // Not a server we can talk to: do not leave it running.
                let _ = child.kill();
                let _ = child.wait();
                return Err(e.into());
            }
        };
        Ok(ServerProcess {
            child,
            ws: ready.ws,
            metrics: ready.metrics,
        })
    }

    pub fn url(&self) -> String {
        format!("ws://{}/", self.ws)
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self, within: Duration) -> anyhow::Result<std::process::ExitStatus> {
        self.signal_and_wait(libc::SIGTERM, "SIGTERM", within)
    }

    /// Sends SIGINT (Ctrl-C) and waits for the exit status.
    pub fn interrupt(&mut self, within: Duration) -> anyhow::Result<std::process::ExitStatus> {
        self.signal_and_wait(libc::SIGINT, "SIGINT", within)
    }

    fn signal_and_wait(
        &mut self,
        signal: libc::c_int,
        name: &str,
        within: Duration,
    ) -> anyhow::Result<std::process::ExitStatus> {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, signal) };
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if std::time::Instant::now() > deadline {
                bail!("server did not exit within {within:?} of {name}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GETs `path` from `addr` over plain HTTP/1.1 and returns (status, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await?;
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf)).await??;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("no status in {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// What a client received.
#[derive(Debug)]
pub enum Received {
    Chat(ChatMessage<'static>, Proto),
    Close(Option<u16>, String),
    /// Anything else tungstenite surfaced (ping, pong, raw frame).
    Other(Message),
}

/// A real WebSocket client speaking the chat protocol in one encoding.
pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub proto: Proto,
    /// The user_id from the welcome.
    pub id: u64,
}

impl Client {
    /// Connects to `addr` with `query` (e.g. "room=lobby&username=al") and
    /// consumes the welcome.
    pub async fn connect(addr: SocketAddr, proto: Proto, query: &str) -> anyhow::Result<Client> {
        let url = format!("ws://{addr}/?proto={}&{query}", proto.as_str());
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .context("connect timed out")??;
        let mut client = Client { ws, proto, id: 0 };
        let welcome = client.recv_kind(MsgType::System).await?;
        if welcome.payload_str() != Some("welcome") {
            bail!("first message was not the welcome: {welcome:?}");
        }
        client.id = welcome.user_id;
        Ok(client)
    }

    pub async fn send(&mut self, msg: &ChatMessage<'_>) -> anyhow::Result<()> {
        let frame = match self.proto {
            Proto::Binary => Message::binary(binary::to_vec(msg)),
            Proto::Json => Message::text(json::to_string(msg)),
        };
        self.ws.send(frame).await?;
        Ok(())
    }

    pub async fn join(&mut self, room: &str) -> anyhow::Result<()> {
        self.send(&ChatMessage::new(MsgType::Join).with_room(room))
            .await
    }

    pub async fn chat(&mut self, room: &str, payload: &[u8]) -> anyhow::Result<()> {
        self.send(
            &ChatMessage::new(MsgType::Chat)
                .with_room(room)
                .with_payload(payload),
        )
        .await
    }

    /// The next frame, decoded; errors on timeout.
    pub async fn recv(&mut self) -> anyhow::Result<Received> {
        self.recv_within(WAIT).await
    }

    pub async fn recv_within(&mut self, wait: Duration) -> anyhow::Result<Received> {
        let next = tokio::time::timeout(wait, self.ws.next())
            .await
            .context("nothing received in time")?;
        let msg = match next {
            None => return Ok(Received::Close(None, "stream ended".into())),
            Some(Err(e)) => return Ok(Received::Close(None, format!("error: {e}"))),
            Some(Ok(m)) => m,
        };
        Ok(match msg {
            Message::Binary(b) => Received::Chat(
                binary::decode(&b).map_err(|e| anyhow!("{e}"))?.into_owned(),
                Proto::Binary,
            ),
            Message::Text(t) => Received::Chat(
                json::decode(t.as_str())
                    .map_err(|e| anyhow!("{e}"))?
                    .into_owned(),
                Proto::Json,
            ),
            Message::Close(frame) => {
                let (code, reason) = frame
                    .map(|CloseFrame { code, reason }| (Some(u16::from(code)), reason.to_string()))
                    .unwrap_or((None, String::new()));
                Received::Close(code, reason)
            }
            other => Received::Other(other),
        })
    }

    /// The next chat-protocol message of `kind`, skipping others.
    pub async fn recv_kind(&mut self, kind: MsgType) -> anyhow::Result<ChatMessage<'static>> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv_within(left).await? {
                Received::Chat(m, _) if m.kind() == Some(kind) => return Ok(m),
                Received::Close(code, reason) => {
                    bail!("closed ({code:?} {reason}) waiting for {kind:?}")
                }
                _ => {}
            }
        }
    }

    /// Waits for the server's close frame; returns its code.
    pub async fn expect_close(&mut self) -> anyhow::Result<Option<u16>> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if let Received::Close(code, _) = self.recv_within(left).await? {
                return Ok(code);
            }
        }
    }

    /// Asserts nothing arrives for `quiet`.
    pub async fn expect_silence(&mut self, quiet: Duration) -> anyhow::Result<()> {
        match tokio::time::timeout(quiet, self.ws.next()).await {
            Err(_) => Ok(()),
            Ok(m) => bail!("expected silence, got {m:?}"),
        }
    }
}
