//! Benchmarks of the chat server. The two binaries (`idle-memory`,
//! `broadcast`) share this library: a lean WebSocket client, process
//! handling for servers and helper processes, /proc readings and reports.

pub mod broadcast;
pub mod chat;
pub mod conn;
pub mod holder;
pub mod holder_proc;
pub mod idle;
pub mod metrics_probe;
pub mod plan;
pub mod proc_stats;
pub mod report;
pub mod server_proc;
pub mod source_ips;
