//! The connection's life: connect, shuttle lines and messages until stdin
//! ends or the server closes, then close politely.

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use futures_util::{SinkExt, StreamExt};
use protocol::Proto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

use crate::command;
use crate::session::{Action, Session};
use crate::wire::{self, Incoming};
use crate::Args;

/// A plain or TLS byte stream, whichever the URL's scheme asked for.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Ws = WebSocketStream<Box<dyn Io>>;

/// Runs the session. `Ok` only when we ended it (end of input or `/quit`);
/// a close we did not ask for is an error so scripts notice.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let room = (!args.room.is_empty()).then(|| args.room.clone());
    let url = crate::url::build(&args.url, &args.username, room.as_deref(), args.proto)?;
    // Before connecting, so a bad --ca-file fails even when the server is down.
    let tls = url
        .get(..6)
        .is_some_and(|s| s.eq_ignore_ascii_case("wss://"))
        .then(|| crate::tls::connector(args.insecure, args.ca_file.as_deref()))
        .transpose()?;
    let mut ws = connect(&url, tls.as_ref(), args.connect_timeout).await?;
    eprintln!(
        "connected to {} as {} ({}); /help lists the commands",
        args.url,
        args.username,
        args.proto.as_str()
    );

    let mut session = Session::new(args.username, room);
    let mut lines = spawn_stdin_reader();
    loop {
        tokio::select! {
            line = lines.recv() => {
                let Some(line) = line else { break };
                if on_line(&mut ws, &mut session, &line, args.proto).await? == Flow::Quit {
                    break;
                }
            }
            frame = ws.next() => {
                let frame = match frame {
                    Some(Ok(frame)) => frame,
                    Some(Err(e)) => return Err(e).context("connection lost"),
                    None => bail!("connection lost: the server went away without a close frame"),
                };
                if let Some(close) = on_frame(&mut session, &frame)? {
                    drain(&mut ws, args.close_timeout).await;
                    return Err(anyhow!(close_description(close)));
                }
            }
        }
    }
    close(&mut ws, &mut session, args.close_timeout).await
}

#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Quit,
}

async fn on_line(
    ws: &mut Ws,
    session: &mut Session,
    line: &str,
    proto: Proto,
) -> anyhow::Result<Flow> {
    let cmd = match command::parse(line) {
        Ok(cmd) => cmd,
        Err(e) => {
            eprintln!("{e}");
            return Ok(Flow::Continue);
        }
    };
    let mut flow = Flow::Continue;
    for action in session.on_command(cmd, Instant::now()) {
        match action {
            Action::Send(msg) => send(ws, wire::encode(&msg, proto)).await?,
            Action::Print(text) => print(&text)?,
            Action::Note(text) => eprintln!("{text}"),
            Action::Quit => flow = Flow::Quit,
        }
    }
    Ok(flow)
}

/// Prints what the server sent; `Some` (code and reason) when it closed.
fn on_frame(
    session: &mut Session,
    frame: &Message,
) -> anyhow::Result<Option<Option<(u16, String)>>> {
    match wire::decode(frame) {
        Incoming::Chat(msg) => print(&session.on_message(&msg, Instant::now()))?,
        Incoming::Undecodable(e) => eprintln!("chat: unreadable message from the server: {e}"),
        Incoming::Control => {}
        Incoming::Close(close) => return Ok(Some(close)),
    }
    Ok(None)
}

async fn connect(
    url: &str,
    tls: Option<&tokio_rustls::TlsConnector>,
    limit: Duration,
) -> anyhow::Result<Ws> {
    match tokio::time::timeout(limit, connect_unbounded(url, tls)).await {
        Err(_) => bail!(
            "cannot connect to {url}: no answer within {}",
            humantime::format_duration(limit)
        ),
        Ok(result) => result,
    }
}

/// TCP, then TLS for `wss://` (`tls` is `Some` exactly then), then the
/// upgrade. Each error is worded once: tungstenite's errors repeat their
/// source in their own message, so they are shown without the chain.
async fn connect_unbounded(
    url: &str,
    tls: Option<&tokio_rustls::TlsConnector>,
) -> anyhow::Result<Ws> {
    let request = match url.into_client_request() {
        Ok(request) => request,
        Err(e) => bail!("cannot connect to {url}: {e}"),
    };
    let uri = request.uri();
    let Some(host) = uri.host().map(str::to_owned) else {
        bail!("cannot connect to {url}: the URL has no host");
    };
    let port = uri
        .port_u16()
        .unwrap_or(if tls.is_some() { 443 } else { 80 });
    let bare_host = host.trim_start_matches('[').trim_end_matches(']');
    let tcp = TcpStream::connect((bare_host, port))
        .await
        .with_context(|| format!("cannot connect to {url}"))?;
    // Typed lines are small and should go at once.
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn Io> = match tls {
        Some(connector) => {
            let name = crate::tls::server_name(&host)?;
            match connector.connect(name, tcp).await {
                Ok(stream) => Box::new(stream),
                Err(e) => bail!("cannot connect to {url}: {}", tlsclient::describe(&e)),
            }
        }
        None => Box::new(tcp),
    };
    match tokio_tungstenite::client_async(request, stream).await {
        Err(tungstenite::Error::Http(response)) => {
            let body = response
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            bail!(
                "cannot connect to {url}: the server refused the upgrade with HTTP {}{}{}",
                response.status(),
                if body.trim().is_empty() { "" } else { ": " },
                crate::render::clean(body.trim())
            )
        }
        Err(tungstenite::Error::Io(e)) => {
            Err(e).with_context(|| format!("cannot connect to {url}"))
        }
        Err(e) => bail!("cannot connect to {url}: {e}"),
        Ok((ws, _response)) => Ok(ws),
    }
}

async fn send(ws: &mut Ws, frame: Message) -> anyhow::Result<()> {
    ws.send(frame)
        .await
        .context("connection lost while sending")
}

fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .context("cannot write to stdout")
}

fn close_description(frame: Option<(u16, String)>) -> String {
    match frame {
        Some((code, reason)) if reason.is_empty() => {
            format!("the server closed the connection: code {code}")
        }
        Some((code, reason)) => format!(
            "the server closed the connection: code {code}, reason \"{}\"",
            crate::render::clean(&reason)
        ),
        None => "the server closed the connection without a code".into(),
    }
}

/// Sends our close frame and waits, bounded, for the server's reply so the
/// server sees a clean close rather than a reset. Messages that arrive
/// meanwhile answer lines sent before the close (a piped script's last
/// commands), so they are still printed.
async fn close(ws: &mut Ws, session: &mut Session, limit: Duration) -> anyhow::Result<()> {
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    };
    match tokio::time::timeout(limit, ws.close(Some(frame))).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::debug!("sending close: {e}");
            return Ok(());
        }
        Err(_) => {
            tracing::debug!("sending close timed out");
            return Ok(());
        }
    }
    let drained = tokio::time::timeout(limit, async {
        while let Some(Ok(frame)) = ws.next().await {
            if on_frame(session, &frame)?.is_some() {
                break;
            }
        }
        anyhow::Ok(())
    })
    .await;
    match drained {
        Ok(result) => result,
        Err(_) => {
            tracing::debug!("the server did not answer our close in time");
            Ok(())
        }
    }
}

/// Reads (and drops) what is still in flight until the stream ends, which
/// gives tungstenite the chance to send its reply to the server's close.
async fn drain(ws: &mut Ws, limit: Duration) {
    let finished =
        tokio::time::timeout(limit, async { while let Some(Ok(_)) = ws.next().await {} }).await;
    if finished.is_err() {
        tracing::debug!("the connection did not end in time after the server's close");
    }
}

/// Reads stdin on a plain thread: a blocked read there cannot hold up the
/// exit of the process, unlike a read on tokio's blocking pool.
fn spawn_stdin_reader() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(64);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut stdin = stdin.lock();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match stdin.read_until(b'\n', &mut buf) {
                Ok(0) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf).into_owned();
                    if tx.blocking_send(line).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!("reading stdin: {e}");
                    break;
                }
            }
        }
    });
    rx
}
