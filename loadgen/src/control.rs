//! The control channel between the coordinator and `loadgen agent`: JSON
//! text frames over one WebSocket per run, `GET /control` with
//! `Authorization: Bearer TOKEN`. Both sides use these types, so the wire
//! format lives once.
//!
//! A run is a sequence of phases. For each one the coordinator sends
//! [`Order::Prepare`] to every agent, waits for all of them to answer
//! [`Report::Ready`] (or [`Report::Refused`]: the agent checked addresses,
//! ports and file limits for its share and cannot take it), then sends
//! [`Order::Start`] to all at once: a barrier, so the phase starts
//! together without trusting the agents' clocks. While a phase runs the
//! agent streams [`Report::Interval`] every second and ends with
//! [`Report::Done`], whose totals carry the HDR histograms.

use serde::{Deserialize, Serialize};

use crate::clock::HostClock;
use crate::engine::Outcome;
use crate::opts::RunOpts;
use crate::stats::Interval;

/// Bumped on any incompatible change; an agent refuses other versions.
/// 2: room distributions and sizes, the loss timeout, and senders chosen
/// per room, so agents of two versions would disagree on who sends.
pub const VERSION: u32 = 2;

/// The path of the control endpoint.
pub const PATH: &str = "/control";

/// The largest control frame either side accepts: a Done report carries
/// four histograms of at most a few hundred KiB each.
pub const MAX_FRAME_BYTES: usize = 16 << 20;

/// One phase's work for one agent: the whole phase's options (connection
/// count, rooms, rates: the global plan, so room membership and chatter
/// choice agree across agents) and the slice of connection numbers that
/// is this agent's. `opts.ramp` and `opts.max_inflight` are already this
/// agent's share.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseJob {
    pub opts: RunOpts,
    pub first: u64,
    pub count: u64,
    /// The connections of the phase held on this agent's host (by agents
    /// whose Hello gave the same boot id), whose copies this agent can time.
    #[serde(default)]
    pub host_clock: Option<HostClock>,
}

/// Coordinator to agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Order {
    /// The first message: the coordinator's protocol version.
    Hello { version: u32 },
    /// Check that this agent can run `job` as phase `phase`; answered by
    /// Ready or Refused. Nothing connects yet.
    Prepare { phase: usize, job: Box<PhaseJob> },
    /// Start the prepared phase now.
    Start { phase: usize },
    /// End the running phase early (Ctrl-C, or another agent failed):
    /// connections close politely and Done follows with what was measured.
    Stop,
}

/// What an agent says about itself, once, in its Hello.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AgentInfo {
    /// `--name`, or the host name.
    pub name: String,
    pub version: u32,
    /// The loadgen package version.
    pub build: String,
    /// The open-file limit (raised to the hard limit) of the agent process.
    pub nofile: u64,
    /// net.ipv4.ip_local_port_range.
    pub port_range: (u16, u16),
    pub cores: usize,
    /// `--allow-target` as given.
    pub allow_target: Vec<String>,
    /// The host's boot id: agents that share it read one clock, so each
    /// can time copies the others send ([`crate::clock`]).
    #[serde(default)]
    pub boot_id: Option<String>,
}

/// Agent to coordinator.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Report {
    Hello {
        agent: AgentInfo,
    },
    /// The phase fits; `processes` worker processes will carry it.
    Ready {
        phase: usize,
        processes: u64,
    },
    /// The phase cannot run here, and why (a refused target, addresses,
    /// ports or file limits too small for the share, bad options).
    Refused {
        phase: usize,
        error: String,
    },
    /// The phase started; `unix_ms` is the agent's clock, for the report.
    Started {
        phase: usize,
        unix_ms: u64,
    },
    /// One second of the phase.
    Interval {
        phase: usize,
        interval: Interval,
    },
    /// The phase ended; the outcome's totals carry the histograms.
    Done {
        phase: usize,
        outcome: Box<Outcome>,
    },
    /// An order the agent could not follow (out of order, unreadable);
    /// the session goes on.
    Error {
        message: String,
    },
}

/// Milliseconds since the Unix epoch, for reports.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_and_reports_are_tagged_json() {
        let o = serde_json::to_string(&Order::Start { phase: 2 }).unwrap();
        assert_eq!(o, r#"{"type":"start","phase":2}"#);
        let back: Order = serde_json::from_str(r#"{"type":"stop"}"#).unwrap();
        assert!(matches!(back, Order::Stop));
        let r = serde_json::to_string(&Report::Ready {
            phase: 0,
            processes: 1,
        })
        .unwrap();
        assert_eq!(r, r#"{"type":"ready","phase":0,"processes":1}"#);
        assert!(serde_json::from_str::<Order>(r#"{"type":"fire"}"#).is_err());
    }
}
