//! The coordinator's library; `main.rs` is a thin front end.
//!
//! Layout: `scenario` reads and checks YAML scenarios; `figures` and
//! `threshold` turn merged totals into named values and pass/fail. `app`
//! is `coordinator run` from file to verdict: `local` starts the lab on
//! this machine, `client` speaks the control channel to one agent, `split`
//! shares a phase out, `run` drives the phases across all agents and
//! merges, while `server_metrics` samples the server's own endpoint;
//! `progress` shows the run live, `live` exposes it to Prometheus;
//! `results`, `report` and `summary` write results.json, report.html and
//! the closing text.

pub mod app;
pub mod client;
pub mod figures;
pub mod live;
pub mod local;
pub mod opts;
pub mod progress;
pub mod report;
pub mod results;
pub mod run;
pub mod scenario;
pub mod server_metrics;
pub mod split;
pub mod summary;
pub mod threshold;
