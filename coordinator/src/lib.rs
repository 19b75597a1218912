//! The coordinator's library; `main.rs` is a thin front end.
//!
//! Layout: `scenario` reads and checks YAML scenarios, `figures` and
//! `threshold` turn merged totals into named values and pass/fail;
//! `agents` finds the agents (static, DNS, or `local` processes started by
//! `local`), `client` speaks the control channel to one agent, `run`
//! drives the phases across all of them and merges; `progress` shows the
//! run live, `metrics` exposes it to Prometheus, `results` and `report`
//! write results.json and report.html.

pub mod figures;
pub mod report;
pub mod results;
pub mod scenario;
pub mod threshold;
