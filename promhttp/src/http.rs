//! A minimal HTTP/1.1 endpoint for Prometheus: `GET /metrics` and
//! `GET /healthz`. Scrapes are rare, so one short task per request is fine,
//! and one request per connection (`Connection: close`) keeps it simple.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::debug;

use crate::text::CONTENT_TYPE;

/// A client that has not been answered by then is dropped, so a silent or
/// slow peer holds one task for at most this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A request head larger than this is refused (400).
const MAX_HEAD: usize = 8192;

/// Answers `GET /metrics` with `render()`, `GET /healthz` with `ok`, other
/// paths with 404 and unparsable requests with 400, until `stop` changes
/// or its sender is dropped. `render` runs on tokio's blocking pool, once
/// per scrape: a render that takes milliseconds (loadgen's snapshots do)
/// must not stall a runtime worker, whose connections would show the stall
/// as latency. A render that panics answers 500.
pub async fn serve(
    listener: TcpListener,
    stop: watch::Receiver<bool>,
    render: impl Fn() -> String + Send + Sync + 'static,
) {
    serve_with_timeout(listener, stop, Arc::new(render), REQUEST_TIMEOUT).await
}

async fn serve_with_timeout<F>(
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
    render: Arc<F>,
    timeout: Duration,
) where
    F: Fn() -> String + Send + Sync + 'static,
{
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let render = Arc::clone(&render);
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(timeout, answer(stream, render)).await;
                    });
                }
                Err(e) => {
                    // EMFILE and the like: back off instead of spinning.
                    debug!("metrics accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stop.changed() => return,
        }
    }
}

async fn answer<F>(mut stream: TcpStream, render: Arc<F>) -> std::io::Result<()>
where
    F: Fn() -> String + Send + Sync + 'static,
{
    let mut buf = Vec::with_capacity(1024);
    let path = loop {
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => break req.path.unwrap_or("/").to_owned(),
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => continue,
            _ => {
                return respond(
                    &mut stream,
                    "400 Bad Request",
                    "text/plain",
                    "bad request\n",
                )
                .await
            }
        }
    };
    match path.split('?').next() {
        Some("/metrics") => match tokio::task::spawn_blocking(move || render()).await {
            Ok(body) => respond(&mut stream, "200 OK", CONTENT_TYPE, &body).await,
            Err(e) => {
                debug!("metrics render failed: {e}");
                respond(
                    &mut stream,
                    "500 Internal Server Error",
                    "text/plain",
                    "render failed\n",
                )
                .await
            }
        },
        Some("/healthz") => respond(&mut stream, "200 OK", "text/plain", "ok\n").await,
        _ => respond(&mut stream, "404 Not Found", "text/plain", "try /metrics\n").await,
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    kind: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Starts an endpoint on an ephemeral port; dropping the sender stops it.
    async fn start(
        render: impl Fn() -> String + Send + Sync + 'static,
        timeout: Duration,
    ) -> (SocketAddr, watch::Sender<bool>, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(serve_with_timeout(listener, rx, Arc::new(render), timeout));
        (addr, tx, task)
    }

    /// Sends `request` as is and returns the whole response.
    async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
            .await
            .expect("the endpoint answers and closes")
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    fn get(path: &str) -> Vec<u8> {
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes()
    }

    #[tokio::test]
    async fn routes_metrics_healthz_404_and_400() {
        let scrapes = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&scrapes);
        let (addr, _stop, _task) = start(
            move || format!("x_total {}\n", counted.fetch_add(1, Ordering::SeqCst) + 1),
            REQUEST_TIMEOUT,
        )
        .await;

        let r = exchange(addr, &get("/metrics")).await;
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(
            r.contains(&format!("\r\nContent-Type: {CONTENT_TYPE}\r\n")),
            "{r}"
        );
        assert!(r.contains("\r\nContent-Length: 10\r\n"), "{r}");
        assert!(r.ends_with("\r\n\r\nx_total 1\n"), "{r}");
        // rendered anew for every scrape, query strings ignored
        let r = exchange(addr, &get("/metrics?x=1")).await;
        assert!(r.ends_with("\r\n\r\nx_total 2\n"), "{r}");

        let r = exchange(addr, &get("/healthz")).await;
        assert!(
            r.starts_with("HTTP/1.1 200 OK\r\n") && r.ends_with("\r\n\r\nok\n"),
            "{r}"
        );
        for path in ["/", "/metricsx", "/metrics/x"] {
            let r = exchange(addr, &get(path)).await;
            assert!(r.starts_with("HTTP/1.1 404 Not Found\r\n"), "{path}: {r}");
        }
        let r = exchange(addr, b"\x16\x03\x01 not http\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{r}");
        let r = exchange(addr, &[b'a'; MAX_HEAD + 10]).await;
        assert!(r.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{r}");
        // a request split over several writes is still read whole
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /hea").await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        s.write_all(b"lthz HTTP/1.1\r\n\r\n").await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(out.ends_with("ok\n"), "{out}");
        // 404s, 400s and health checks do not render
        assert_eq!(scrapes.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_render_that_panics_answers_500_and_the_endpoint_lives_on() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let (addr, _stop, _task) = start(
            move || {
                if counted.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("first render fails");
                }
                String::from("up 1\n")
            },
            REQUEST_TIMEOUT,
        )
        .await;
        let r = exchange(addr, &get("/metrics")).await;
        assert!(
            r.starts_with("HTTP/1.1 500 Internal Server Error\r\n"),
            "{r}"
        );
        let r = exchange(addr, &get("/metrics")).await;
        assert!(
            r.starts_with("HTTP/1.1 200 OK\r\n") && r.ends_with("up 1\n"),
            "{r}"
        );
    }

    #[tokio::test]
    async fn a_silent_client_is_dropped_and_does_not_block_others() {
        let (addr, _stop, _task) =
            start(|| String::from("up 1\n"), Duration::from_millis(200)).await;
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let r = exchange(addr, &get("/metrics")).await;
        assert!(r.ends_with("up 1\n"), "{r}");
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf))
            .await
            .expect("the silent client is closed after the timeout");
        assert_eq!(n.unwrap(), 0);
    }

    #[tokio::test]
    async fn stops_on_signal_and_when_the_sender_is_dropped() {
        let (addr, stop, task) = start(String::new, REQUEST_TIMEOUT).await;
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("serve returns once stopped")
            .unwrap();
        assert!(TcpStream::connect(addr).await.is_err(), "listener closed");

        let (_, stop, task) = start(String::new, REQUEST_TIMEOUT).await;
        drop(stop);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("serve returns once the sender is gone")
            .unwrap();
    }
}
