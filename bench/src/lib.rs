//! Benchmarks of the chat server. The two binaries (`idle-memory`,
//! `broadcast`) share this library: process handling for servers and helper
//! processes, the two measurements and reports. The client side is the
//! load generator's library, `loadgen`: its engine for the broadcast
//! bench, its lean connect for the idle bench's holders, its source
//! addresses and /proc readings. Every output starts with the machine it
//! ran on ([`machine`]).

pub mod broadcast;
pub mod holder;
pub mod holder_proc;
pub mod idle;
pub mod machine;
pub mod metrics_probe;
pub mod report;
pub mod server_proc;
