//! Fetching an exposition from another process: one plain HTTP/1.0 GET
//! per scrape, the whole exchange under one deadline. HTTP/1.0 because
//! its answers have no chunked encoding and end with the connection, so a
//! few lines over a TcpStream are a complete client; an exporter that
//! answers 1.0 requests with chunks anyway is refused, not misread.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::exposition::{Exposition, ParseError};

/// The most an answer may hold: a server with every series of a large
/// run stays far below; anything bigger is not an exposition to keep in
/// memory once a second.
const MAX_ANSWER: usize = 32 << 20;

/// Where to scrape: `http://HOST[:PORT][/PATH]`, HOST a name, an IPv4
/// address or a bracketed IPv6 one; the port defaults to 80 and the path
/// to `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsUrl {
    /// Without brackets, as a socket address wants it.
    pub host: String,
    pub port: u16,
    /// Starts with `/`; may carry a query.
    pub path: String,
}

/// Why a text is not a [`MetricsUrl`]; says what one looks like.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{url:?}: {why} (write e.g. http://10.0.1.10:9090/metrics)")]
pub struct BadUrl {
    pub url: String,
    pub why: String,
}

impl FromStr for MetricsUrl {
    type Err = BadUrl;

    fn from_str(url: &str) -> Result<MetricsUrl, BadUrl> {
        let bad = |why: &str| BadUrl {
            url: url.to_string(),
            why: why.to_string(),
        };
        if url.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(bad("spaces and non-ASCII characters are not allowed"));
        }
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(bad("not a URL"));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "http" => {}
            "https" => {
                return Err(bad(
                    "https is not supported: metrics are scraped over plain HTTP",
                ))
            }
            _ => return Err(bad("the scheme must be http")),
        }
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        if path.contains('#') {
            return Err(bad("a fragment (#...) means nothing to a scrape"));
        }
        let path = match path {
            "" => "/metrics".to_string(),
            p if p.starts_with('?') => format!("/metrics{p}"),
            p => p.to_string(),
        };
        if authority.contains('@') {
            return Err(bad("user names and passwords are not supported"));
        }
        let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
            let Some((v6, after)) = inner.split_once(']') else {
                return Err(bad("an IPv6 address without its closing ]"));
            };
            if v6.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad("not an IPv6 address in the brackets"));
            }
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| bad("text after ]"))?),
            };
            (v6, port)
        } else {
            match authority.split_once(':') {
                Some((_, p)) if p.contains(':') => {
                    return Err(bad("write an IPv6 address in brackets"))
                }
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let name_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':'));
        if !name_ok {
            return Err(bad("no host name or address"));
        }
        let port = match port {
            None => 80,
            Some(text) => match text.parse::<u16>() {
                Ok(p) if p > 0 && text.bytes().all(|b| b.is_ascii_digit()) => p,
                _ => return Err(bad("the port must be 1-65535")),
            },
        };
        Ok(MetricsUrl {
            host: host.to_string(),
            port,
            path,
        })
    }
}

impl MetricsUrl {
    /// `host:port` as the `Host` header and messages write it.
    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for MetricsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority(), self.path)
    }
}

/// Why a scrape gave no exposition.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("connecting: {0}")]
    Connect(std::io::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the answer is not HTTP: {0}")]
    NotHttp(String),
    #[error("answered {status} {reason}")]
    Status { status: u16, reason: String },
    #[error("the answer is larger than {} MiB", MAX_ANSWER >> 20)]
    TooLarge,
    #[error("the exposition: {0}")]
    Parse(#[from] ParseError),
}

/// GETs `url` and parses the answer; everything, connecting included,
/// within `limit`, so a silent or slow peer costs at most that.
pub async fn scrape(url: &MetricsUrl, limit: Duration) -> Result<Exposition, ScrapeError> {
    let body = tokio::time::timeout(limit, fetch(url, MAX_ANSWER))
        .await
        .map_err(|_| ScrapeError::Timeout(limit))??;
    Ok(Exposition::parse(&body)?)
}

async fn fetch(url: &MetricsUrl, max: usize) -> Result<String, ScrapeError> {
    let mut stream = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(ScrapeError::Connect)?;
    let request = format!(
        "GET {} HTTP/1.0\r\nHost: {}\r\nAccept: text/plain;version=0.0.4\r\nUser-Agent: wslab\r\n\r\n",
        url.path,
        url.authority()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut buf = Vec::with_capacity(16 << 10);
    // (head length, body length when the answer says it)
    let mut head: Option<(usize, Option<usize>)> = None;
    loop {
        if let Some((at, Some(len))) = head {
            if buf.len() >= at + len {
                buf.truncate(at + len);
                break;
            }
        }
        if buf.len() > max {
            return Err(ScrapeError::TooLarge);
        }
        if stream.read_buf(&mut buf).await? == 0 {
            break;
        }
        if head.is_none() {
            head = parse_head(&buf)?;
        }
    }
    let head = match head {
        Some(h) => Some(h),
        None => parse_head(&buf)?,
    };
    let Some((at, len)) = head else {
        return Err(ScrapeError::NotHttp(
            "the connection closed before the end of the headers".to_string(),
        ));
    };
    if let Some(len) = len {
        if buf.len() < at + len {
            return Err(ScrapeError::NotHttp(format!(
                "the connection closed after {} of {len} body bytes",
                buf.len() - at
            )));
        }
    }
    let body = buf.split_off(at);
    String::from_utf8(body).map_err(|_| ScrapeError::NotHttp("the body is not UTF-8".to_string()))
}

/// The head's length and the body's declared length, once the head is
/// complete; a status other than 200 and encodings this client does not
/// read are errors.
fn parse_head(buf: &[u8]) -> Result<Option<(usize, Option<usize>)>, ScrapeError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let at = match response.parse(buf) {
        Ok(httparse::Status::Complete(at)) => at,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(ScrapeError::NotHttp(e.to_string())),
    };
    let status = response.code.unwrap_or(0);
    if status != 200 {
        return Err(ScrapeError::Status {
            status,
            reason: response.reason.unwrap_or("").to_string(),
        });
    }
    let mut len = None;
    for h in response.headers.iter() {
        let value = String::from_utf8_lossy(h.value);
        let value = value.trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            len = Some(value.parse::<usize>().map_err(|_| {
                ScrapeError::NotHttp(format!("Content-Length {value:?} is not a number"))
            })?);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding")
            && !value.eq_ignore_ascii_case("identity")
        {
            return Err(ScrapeError::NotHttp(format!(
                "Transfer-Encoding {value} in an answer to HTTP/1.0"
            )));
        } else if h.name.eq_ignore_ascii_case("content-encoding")
            && !value.eq_ignore_ascii_case("identity")
        {
            return Err(ScrapeError::NotHttp(format!(
                "Content-Encoding {value}, which was not asked for"
            )));
        }
    }
    if len.is_some_and(|l| l > MAX_ANSWER) {
        return Err(ScrapeError::TooLarge);
    }
    Ok(Some((at, len)))
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use tokio::net::TcpListener;
    use tokio::sync::watch;

    use super::*;

    fn url(s: &str) -> MetricsUrl {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn urls_parse_with_defaults_and_print_back() {
        let u = url("http://10.0.1.10:9090/metrics");
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("10.0.1.10", 9090, "/metrics")
        );
        assert_eq!(u.to_string(), "http://10.0.1.10:9090/metrics");
        assert_eq!(url("http://server").to_string(), "http://server:80/metrics");
        assert_eq!(
            url("HTTP://lab-server.example:9090/x/y?a=1").to_string(),
            "http://lab-server.example:9090/x/y?a=1"
        );
        assert_eq!(url("http://s:1?a=b").path, "/metrics?a=b");
        let v6 = url("http://[fd00::1]:9090/metrics");
        assert_eq!((v6.host.as_str(), v6.port), ("fd00::1", 9090));
        assert_eq!(v6.to_string(), "http://[fd00::1]:9090/metrics");
        assert_eq!(url("http://[::1]").port, 80);
    }

    #[test]
    fn bad_urls_say_why() {
        for (bad, says) in [
            ("10.0.1.10:9090/metrics", "not a URL"),
            ("https://s:9090/metrics", "https is not supported"),
            ("ws://s:9090/metrics", "the scheme must be http"),
            ("http://:9090/metrics", "no host"),
            ("http:///metrics", "no host"),
            ("http://s:0/metrics", "port must be 1-65535"),
            ("http://s:65536/metrics", "port must be 1-65535"),
            ("http://s:+80/metrics", "port must be 1-65535"),
            ("http://s:/metrics", "port must be 1-65535"),
            ("http://fd00::1:9090/metrics", "brackets"),
            ("http://[fd00::zz]:9090/", "not an IPv6 address"),
            ("http://[fd00::1:9090/", "closing ]"),
            ("http://[::1]x/", "text after ]"),
            ("http://u:p@s:1/", "user names"),
            ("http://s:1/metrics#top", "fragment"),
            ("http://s p:1/", "spaces"),
            ("http://sé:1/", "non-ASCII"),
            ("http://s!:1/", "no host"),
        ] {
            let e = bad.parse::<MetricsUrl>().unwrap_err();
            assert!(e.to_string().contains(says), "{bad}: {e}");
            assert!(e.to_string().contains("write e.g. http://"), "{e}");
        }
    }

    async fn endpoint(body: &'static str) -> (SocketAddr, watch::Sender<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = watch::channel(false);
        tokio::spawn(crate::serve(listener, rx, move || body.to_string()));
        (addr, tx)
    }

    /// Answers every connection with `answer` as is, then closes.
    async fn raw(answer: &'static [u8]) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(answer).await;
            }
        });
        addr
    }

    const LIMIT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn scrapes_the_crate_s_own_endpoint() {
        let (addr, _stop) = endpoint("# TYPE up gauge\nup 1\nx{a=\"b\\\"\"} 2.5\n").await;
        let e = scrape(&url(&format!("http://{addr}/metrics")), LIMIT)
            .await
            .unwrap();
        assert_eq!(e.get("up", &[]), Some(1.0));
        assert_eq!(e.get("x", &[("a", "b\"")]), Some(2.5));
        let e = scrape(&url(&format!("http://{addr}/nope")), LIMIT)
            .await
            .unwrap_err();
        assert!(matches!(e, ScrapeError::Status { status: 404, .. }), "{e}");
        assert_eq!(e.to_string(), "answered 404 Not Found");
    }

    #[tokio::test]
    async fn reads_to_the_declared_length_or_the_end() {
        // a body longer than declared is cut; one without a length runs
        // to the close
        let addr = raw(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\na 1\nb 2\n").await;
        let e = scrape(&url(&format!("http://{addr}/")), LIMIT)
            .await
            .unwrap();
        assert_eq!(e.samples.len(), 1);
        let addr = raw(b"HTTP/1.0 200 OK\r\n\r\na 1\nb 2\n").await;
        let e = scrape(&url(&format!("http://{addr}/")), LIMIT)
            .await
            .unwrap();
        assert_eq!(e.samples.len(), 2);
    }

    #[tokio::test]
    async fn broken_answers_are_errors_that_say_what_broke() {
        for (answer, says) in [
            (&b"SSH-2.0-OpenSSH_9.6\r\n"[..], "not HTTP"),
            (
                b"HTTP/1.1 200 OK\r\nContent-Le",
                "before the end of the headers",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\na 1\n",
                "after 4 of 10 body bytes",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
                "Content-Length \"x\"",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\na 1\n\r\n0\r\n\r\n",
                "Transfer-Encoding chunked",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n\x1f\x8b",
                "Content-Encoding gzip",
            ),
            (b"HTTP/1.1 200 OK\r\n\r\n\xff\xfe 1\n", "not UTF-8"),
            (b"HTTP/1.1 200 OK\r\n\r\nup one\n", "the exposition: line 1"),
            (b"HTTP/1.1 503 Service Unavailable\r\n\r\n", "answered 503"),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
                "larger than 32 MiB",
            ),
        ] {
            let addr = raw(answer).await;
            let e = scrape(&url(&format!("http://{addr}/")), LIMIT)
                .await
                .unwrap_err();
            assert!(e.to_string().contains(says), "{answer:?}: {e}");
        }
    }

    #[tokio::test]
    async fn a_closed_port_fails_at_once_and_a_silent_one_at_the_limit() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let e = scrape(&url(&format!("http://{closed}/")), LIMIT)
            .await
            .unwrap_err();
        assert!(matches!(e, ScrapeError::Connect(_)), "{e}");
        // accepted by the kernel, never answered
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = silent.local_addr().unwrap();
        let started = std::time::Instant::now();
        let limit = Duration::from_millis(300);
        let e = scrape(&url(&format!("http://{addr}/")), limit)
            .await
            .unwrap_err();
        assert!(matches!(e, ScrapeError::Timeout(_)), "{e}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn an_endless_answer_is_cut_off() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            if let Ok((mut s, _)) = listener.accept().await {
                let _ = s.write_all(b"HTTP/1.0 200 OK\r\n\r\n").await;
                let chunk = vec![b'#'; 64 << 10];
                while s.write_all(&chunk).await.is_ok() {}
            }
        });
        let u = url(&format!("http://{addr}/"));
        let e = tokio::time::timeout(LIMIT, fetch(&u, 1 << 20))
            .await
            .expect("cut off, not read forever")
            .unwrap_err();
        assert!(matches!(e, ScrapeError::TooLarge), "{e}");
    }
}
