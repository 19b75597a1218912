//! Benchmarks of the chat server. The two binaries (`idle-memory`,
//! `broadcast`) share this library: process handling for servers and helper
//! processes, the two measurements and reports. The client side (lean
//! connections, source addresses, /proc readings) is the load generator's
//! library, `loadgen`.

pub mod broadcast;
pub mod holder;
pub mod holder_proc;
pub mod idle;
pub mod metrics_probe;
pub mod report;
pub mod server_proc;
