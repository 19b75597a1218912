//! More of `Client` for the server's integration tests: connecting without
//! the `proto=` parameter `Client::connect` always adds (to test how the
//! server picks an encoding by itself), and the exchanges tests repeat.

use std::net::SocketAddr;

use anyhow::{bail, Context};
use futures_util::StreamExt;
use protocol::{ChatMessage, MsgType, Proto};

use crate::{Client, Received, WAIT};

impl Client {
    /// Connects to `ws://addr{path_and_query}` exactly as given and consumes
    /// the welcome, in whichever encoding it comes. `send_proto` is the
    /// encoding this client sends in (change `proto` later to switch).
    pub async fn connect_path(
        addr: SocketAddr,
        send_proto: Proto,
        path_and_query: &str,
    ) -> anyhow::Result<Client> {
        let url = format!("ws://{addr}{path_and_query}");
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .context("connect timed out")??;
        let mut client = Client {
            ws,
            proto: send_proto,
            id: 0,
        };
        let welcome = client.recv_kind(MsgType::System).await?;
        if welcome.payload_str() != Some("welcome") {
            bail!("first message was not the welcome: {welcome:?}");
        }
        client.id = welcome.user_id;
        Ok(client)
    }

    /// The next frame, which must be a chat-protocol message.
    pub async fn recv_msg(&mut self) -> anyhow::Result<ChatMessage<'static>> {
        match self.recv().await? {
            Received::Chat(m, _) => Ok(m),
            other => bail!("expected a chat-protocol message, got {other:?}"),
        }
    }

    /// The next frame, which must be a System message whose payload starts
    /// with `error: `; returns the payload.
    pub async fn expect_error(&mut self) -> anyhow::Result<String> {
        let m = self.recv_msg().await?;
        match (m.kind(), m.payload_str()) {
            (Some(MsgType::System), Some(text)) if text.starts_with("error: ") => {
                Ok(text.to_owned())
            }
            _ => bail!("expected a System error message, got {m:?}"),
        }
    }

    /// Sends a chat to `room` and waits for this client's own copy of it
    /// (other messages in between are skipped): proof the connection and
    /// the room still work.
    pub async fn chat_and_echo(
        &mut self,
        room: &str,
        payload: &[u8],
    ) -> anyhow::Result<ChatMessage<'static>> {
        self.chat(room, payload).await?;
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv_within(left).await? {
                Received::Chat(m, _)
                    if m.kind() == Some(MsgType::Chat)
                        && m.user_id == self.id
                        && &m.payload[..] == payload =>
                {
                    return Ok(m)
                }
                Received::Close(code, reason) => {
                    bail!("closed ({code:?} {reason}) waiting for the echo")
                }
                _ => {}
            }
        }
    }

    /// Waits for the server's close frame and answers it, as a
    /// well-behaved client does (without the answer the server waits out
    /// its close grace period before it lets go of the connection).
    pub async fn expect_close_answered(&mut self) -> anyhow::Result<Option<u16>> {
        let code = self.expect_close().await?;
        // tungstenite queues its answer and writes it on the next poll;
        // reading on to the end of the stream sends it.
        let _ = tokio::time::timeout(WAIT, self.ws.next()).await;
        Ok(code)
    }

    /// Closes with 1000 and waits for the server's answering close.
    pub async fn close_and_wait(&mut self) -> anyhow::Result<Option<u16>> {
        self.ws.close(None).await?;
        self.expect_close().await
    }
}

/// The resident set size of process `pid` in bytes (VmRSS of
/// /proc/PID/status), to bound a server's memory growth under load.
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .context("no VmRSS line")?;
    let kib: u64 = line
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .with_context(|| format!("VmRSS {line:?}"))?;
    Ok(kib * 1024)
}
