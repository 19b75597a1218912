//! The HTTP upgrade of one accepted TCP connection: refusals are answered
//! with an HTTP status before any WebSocket byte is sent.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use protocol::handshake;
use protocol::name::{self, NameError, NameKind};
use protocol::Proto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::metrics::Rejection;
use crate::shared::{Shared, SlotGuard};

/// A completed upgrade and what its URL asked for.
pub struct Upgraded {
    /// Frame bytes the client sent right behind its request.
    pub leftover: Vec<u8>,
    pub proto: Option<Proto>,
    pub username: Option<String>,
    pub room: Option<String>,
    /// The upgrade asked for `/echo` and the server runs with `--echo`.
    pub echo: bool,
    pub slot: SlotGuard,
}

/// The path of the echo endpoint (served with `--echo` only).
pub const ECHO_PATH: &str = "/echo";

pub async fn upgrade(stream: &mut TcpStream, shared: &Arc<Shared>) -> Result<Upgraded, Rejection> {
    // Freed when the upgrade ends: an open connection keeps no read buffer.
    let mut buf = Vec::with_capacity(1024);
    loop {
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return Err(Rejection::IoError),
            Ok(_) => {}
        }
        let outcome = match handshake::parse_request(&buf) {
            Ok(None) => continue,
            Ok(Some((req, len))) => accept(&req, shared).map(|(ok, params)| (ok, params, len)),
            Err(e) => Err((e.status(), e.to_string(), Rejection::BadRequest)),
        };
        return match outcome {
            Ok((response, (proto, username, room, echo), len)) => {
                let slot = match shared.claim_slot() {
                    Some(slot) if !shared.draining.load(Ordering::Relaxed) => slot,
                    Some(_) => {
                        return refuse(
                            stream,
                            503,
                            "server is shutting down",
                            Rejection::ShuttingDown,
                        )
                        .await
                    }
                    None => {
                        return refuse(
                            stream,
                            503,
                            "server is at --max-connections",
                            Rejection::MaxConnections,
                        )
                        .await
                    }
                };
                stream
                    .write_all(response.as_bytes())
                    .await
                    .map_err(|_| Rejection::IoError)?;
                Ok(Upgraded {
                    leftover: buf[len..].to_vec(),
                    proto,
                    username,
                    room,
                    echo,
                    slot,
                })
            }
            Err((status, why, rejection)) => refuse(stream, status, &why, rejection).await,
        };
    }
}

/// The chat parameters, and whether this is an echo upgrade.
type Params = (Option<Proto>, Option<String>, Option<String>, bool);

/// Checks the query parameters; returns the 101 response to send.
fn accept(
    req: &handshake::UpgradeRequest<'_>,
    shared: &Shared,
) -> Result<(String, Params), (u16, String, Rejection)> {
    if req.path == ECHO_PATH && shared.limits.echo_max_message_size.is_some() {
        // No chat parameters: the query of an echo upgrade is ignored.
        return Ok((
            handshake::accept_response(req.key),
            (None, None, None, true),
        ));
    }
    let bad = |why: String| (400, why, Rejection::BadRequest);
    let limits = &shared.limits;
    let (mut proto, mut username, mut room) = (None, None, None);
    for (key, value) in req.params_exact() {
        let (kind, max) = match &*key {
            "proto" => {
                let value = value.unwrap_or_default();
                proto = Some(
                    Proto::from_name(&value)
                        .ok_or_else(|| bad(format!("unknown proto {value:?}: json or binary")))?,
                );
                continue;
            }
            "username" => (NameKind::Username, limits.max_username_len),
            "room" => (NameKind::Room, limits.max_room_len),
            _ => continue,
        };
        // A name the server would refuse in a message is refused here too,
        // with the parameter named (PROTOCOL.md section 1).
        let value = value.map_err(|_| bad(NameError::NotUtf8 { kind }.to_string()))?;
        name::check(kind, &value, max).map_err(|e| bad(e.to_string()))?;
        if !value.is_empty() {
            match kind {
                NameKind::Username => username = Some(value.into_owned()),
                NameKind::Room => room = Some(value.into_owned()),
            }
        }
    }
    Ok((
        handshake::accept_response(req.key),
        (proto, username, room, false),
    ))
}

async fn refuse<T>(
    stream: &mut TcpStream,
    status: u16,
    why: &str,
    rejection: Rejection,
) -> Result<T, Rejection> {
    let _ = stream
        .write_all(handshake::error_response(status, why).as_bytes())
        .await;
    let _ = stream.shutdown().await;
    Err(rejection)
}
