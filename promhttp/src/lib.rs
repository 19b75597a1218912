//! Prometheus text over HTTP and the `process_*` figures, shared by the
//! server and the load generator so that both expose the same endpoint
//! (`GET /metrics`, `GET /healthz`) without a web framework.
//!
//! Each user renders its own exposition text; this crate serves it, adds
//! the process figures every Prometheus client exports, and escapes label
//! values. It also reads the format back: [`Exposition::parse`] is the
//! one parser of the workspace, and [`scrape`] fetches and parses another
//! process's endpoint (the coordinator samples servers with it). With the
//! `promtool` feature (tests), [`promtool::check`] validates text with the
//! real `promtool check metrics`.

mod exposition;
mod http;
pub mod process;
#[cfg(any(test, feature = "promtool"))]
pub mod promtool;
mod scrape;
mod text;

pub use exposition::{Exposition, MissingSeries, ParseError, Sample};
pub use http::serve;
pub use process::render_process;
pub use scrape::{scrape, BadUrl, MetricsUrl, ScrapeError};
pub use text::{escape_label_value, CONTENT_TYPE};
