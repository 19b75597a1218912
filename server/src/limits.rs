//! The open-file limit, which bounds how many connections one process holds.

use tracing::{info, warn};

/// File descriptors kept back for listeners, the metrics endpoint, logs and
/// the runtime.
const RESERVED_FDS: u64 = 64;

/// Raises the soft RLIMIT_NOFILE to the hard limit and returns the new soft
/// limit. Containers and some VMs cap the hard limit; we cannot go past it.
pub fn raise_nofile() -> u64 {
    let before = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(0, |(soft, _)| soft);
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(now) => {
            if now > before {
                info!(from = before, to = now, "raised the open-file limit");
            }
            now
        }
        Err(e) => {
            warn!("cannot read or raise the open-file limit: {e}");
            before.max(1024)
        }
    }
}

/// The connection limit this process can honour: `requested`, unless the
/// open-file limit is lower, in which case we say so loudly.
pub fn effective_max_connections(requested: usize, nofile: u64) -> usize {
    let by_files = nofile.saturating_sub(RESERVED_FDS) as usize;
    if requested > by_files {
        warn!(
            requested,
            capped_to = by_files,
            nofile,
            "--max-connections is capped by the open-file limit (RLIMIT_NOFILE); raise the hard \
             limit (ulimit -Hn, systemd LimitNOFILE, docker --ulimit nofile) or run several \
             processes on SO_REUSEPORT/separate ports"
        );
        by_files
    } else {
        requested
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_only_when_files_are_short() {
        assert_eq!(effective_max_connections(1000, 20_000), 1000);
        assert_eq!(effective_max_connections(1_000_000, 20_000), 20_000 - 64);
        assert_eq!(effective_max_connections(10, 10), 0);
    }

    #[test]
    fn raising_never_lowers() {
        let (before, _) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
        assert!(raise_nofile() >= before);
    }
}
