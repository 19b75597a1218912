//! Reading the server's Prometheus text exposition: one value per series,
//! looked up by name and labels, so tests assert numbers, not substrings.
//! The parser is promhttp's, the one the coordinator samples servers
//! with; this module adds the waiting tests need.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::bail;

pub use promhttp::{Exposition, Sample};

/// GETs `/metrics` from `addr` and parses it.
pub async fn scrape(addr: SocketAddr) -> anyhow::Result<Exposition> {
    let (status, body) = crate::http_get(addr, "/metrics").await?;
    if status != 200 {
        bail!("GET /metrics answered {status}: {body}");
    }
    Ok(Exposition::parse(&body)?)
}

/// Scrapes until `ready` holds, for figures the server updates after the
/// event a test caused (a close, say); errors with the last scrape after
/// `within`.
pub async fn scrape_until(
    addr: SocketAddr,
    within: Duration,
    mut ready: impl FnMut(&Exposition) -> bool,
) -> anyhow::Result<Exposition> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let exposition = scrape(addr).await?;
        if ready(&exposition) {
            return Ok(exposition);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("condition not met within {within:?}; last scrape:\n{exposition}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
