//! Proves the docker compose lab's monitoring: prometheus/prometheus.yml,
//! prometheus/alerts.yml and grafana/dashboards/*.json, against a real
//! Prometheus scraping a real server, real agents, a real coordinator and
//! a real node exporter (tests/lab.rs). This library holds what the test
//! parses: dashboards, rules, the scrape config it points at loopback,
//! PromQL names and comparisons, and Prometheus' HTTP API.

pub mod alerts;
pub mod grafana;
pub mod prom_api;
pub mod promql;
pub mod scrape_config;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: not JSON: {source}")]
    Json {
        what: String,
        source: serde_json::Error,
    },
    #[error("{what}: {source}")]
    Yaml {
        what: String,
        source: serde_yaml::Error,
    },
    #[error("{0}")]
    Promql(String),
    #[error("{0}")]
    Dashboard(String),
    #[error("scrape config: {0}")]
    ScrapeConfig(String),
    #[error("Prometheus API: {0}")]
    Api(String),
}

/// The workspace root (this crate's parent), where prometheus/ and
/// grafana/ live.
pub fn repo_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}
