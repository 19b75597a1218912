//! The coordinator's end of the control channel to one agent: connect with
//! the token, exchange hellos, then forward every report into one event
//! channel shared by all agents (so `run` waits on a single stream) and
//! send orders through a queue.

use std::time::Duration;

use anyhow::{bail, Context};
use futures_util::{SinkExt, StreamExt};
use loadgen::control::{self, AgentInfo, Order, Report};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// Something an agent did.
#[derive(Debug)]
pub enum Event {
    Report(Report),
    /// The control connection ended; the text says how.
    Lost(String),
}

/// A connected agent.
pub struct AgentLink {
    pub index: usize,
    /// The control address as configured ("10.0.1.5:7070").
    pub addr: String,
    pub info: AgentInfo,
    orders: mpsc::UnboundedSender<Order>,
    writer: tokio::task::JoinHandle<()>,
}

impl AgentLink {
    /// Queues an order; false when the connection is already gone.
    pub fn send(&self, order: Order) -> bool {
        self.orders.send(order).is_ok()
    }

    /// Sends what is queued, then closes the control connection with a
    /// close frame (bounded: a dead agent does not hold the exit up).
    pub async fn close(self) {
        drop(self.orders);
        let _ = tokio::time::timeout(Duration::from_secs(2), self.writer).await;
    }

    /// "name (addr)", how agents are named in messages.
    pub fn label(&self) -> String {
        if self.info.name.is_empty() || self.info.name == self.addr {
            self.addr.clone()
        } else {
            format!("{} ({})", self.info.name, self.addr)
        }
    }
}

/// Connects to the agent at `addr` (host:port) and starts forwarding its
/// reports, tagged with `index`, into `events`.
pub async fn connect(
    index: usize,
    addr: &str,
    token: &str,
    events: mpsc::UnboundedSender<(usize, Event)>,
    timeout: Duration,
) -> anyhow::Result<AgentLink> {
    let url = format!("ws://{addr}{}", control::PATH);
    let mut request = url
        .as_str()
        .into_client_request()
        .with_context(|| format!("{addr:?} is not a host:port agent address"))?;
    request.headers_mut().insert(
        AUTHORIZATION,
        format!("Bearer {token}")
            .parse()
            .context("the agent token is not a valid header value")?,
    );
    let config = WebSocketConfig::default()
        .max_message_size(Some(control::MAX_FRAME_BYTES))
        .max_frame_size(Some(control::MAX_FRAME_BYTES));
    let connecting = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
    let (ws, _) = match tokio::time::timeout(timeout, connecting).await {
        Err(_) => bail!("agent {addr}: no answer within {timeout:?}"),
        Ok(Err(WsError::Http(resp))) => {
            let why = match resp.status().as_u16() {
                401 => "refused the token (401): coordinator and agent need the same LOADGEN_AGENT_TOKEN".to_string(),
                409 => "is busy with another coordinator (409)".to_string(),
                s => format!("answered HTTP {s}"),
            };
            bail!("agent {addr} {why}");
        }
        Ok(Err(e)) => return Err(e).with_context(|| format!("connecting to agent {addr}")),
        Ok(Ok(x)) => x,
    };
    let (mut sink, mut stream) = ws.split();
    let hello = tokio::time::timeout(timeout, stream.next()).await;
    let info = match hello {
        Ok(Some(Ok(Message::Text(text)))) => match serde_json::from_str::<Report>(text.as_str()) {
            Ok(Report::Hello { agent }) => agent,
            Ok(other) => bail!("agent {addr} began with {other:?} instead of its hello"),
            Err(e) => bail!("agent {addr} sent an unreadable hello: {e}"),
        },
        Ok(_) => bail!("agent {addr} closed the control connection before its hello"),
        Err(_) => bail!("agent {addr} sent no hello within {timeout:?}"),
    };
    if info.version != control::VERSION {
        bail!(
            "agent {addr} speaks control version {}, this coordinator {}: use the same build on both",
            info.version,
            control::VERSION
        );
    }
    let (orders, mut queue) = mpsc::unbounded_channel::<Order>();
    let _ = orders.send(Order::Hello {
        version: control::VERSION,
    });
    let writer = tokio::spawn(async move {
        while let Some(order) = queue.recv().await {
            let Ok(text) = serde_json::to_string(&order) else {
                continue;
            };
            if sink.send(Message::text(text)).await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    tokio::spawn(async move {
        let why = loop {
            match stream.next().await {
                None => break "closed the control connection".to_string(),
                Some(Err(e)) => break format!("control connection failed: {e}"),
                Some(Ok(Message::Close(frame))) => {
                    break match frame {
                        Some(f) if !f.reason.is_empty() => {
                            format!("closed the control connection: {}", f.reason)
                        }
                        _ => "closed the control connection".to_string(),
                    }
                }
                Some(Ok(Message::Text(text))) => {
                    match serde_json::from_str::<Report>(text.as_str()) {
                        Ok(report) => {
                            if events.send((index, Event::Report(report))).is_err() {
                                return;
                            }
                        }
                        Err(e) => break format!("sent an unreadable report: {e}"),
                    }
                }
                Some(Ok(_)) => {}
            }
        };
        let _ = events.send((index, Event::Lost(why)));
    });
    Ok(AgentLink {
        index,
        addr: addr.to_string(),
        info,
        orders,
        writer,
    })
}
