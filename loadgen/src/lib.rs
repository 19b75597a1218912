//! The load generator's library. The `loadgen` binary is a thin front end
//! (`main.rs`); the benchmarks in `bench/` use the same client side.
//!
//! Layout: `opts` is the command line; `target`, `source_ips`,
//! `source_plan` and `capacity` decide where connections go and whether
//! they can; `engine` ramps them up (`conn` does one connect and upgrade)
//! and `connection` drives each one through its `workload` (the hot path);
//! `stats` records, `printer` and `report` show, `saturation` and `verdict`
//! judge. `agent` serves the coordinator's orders over the `control`
//! channel. `signals` turns SIGINT and SIGTERM into a stop, for this binary
//! and the coordinator alike.

pub mod agent;
pub mod capacity;
pub mod chat;
pub mod clock;
pub mod conn;
pub mod connection;
pub mod control;
pub mod engine;
pub mod multiproc;
pub mod opts;
pub mod plan;
pub mod printer;
pub mod proc_stats;
pub mod prometheus;
pub mod report;
pub mod saturation;
pub mod signals;
pub mod source_ips;
pub mod source_plan;
pub mod stats;
pub mod target;
pub mod transport;
pub mod verdict;
pub mod workload;
