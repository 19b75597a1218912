//! `--local` and `agents: {local: N}`: the lab on this machine. Starts the
//! chat server (for `--local`) and N `loadgen agent` processes on loopback,
//! each with its own block of 127.x source addresses, learns their ports
//! from their ready lines, and stops exactly these processes at the end.
//! Their logs go to files in the output directory, not to the terminal.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tracing::{info, warn};

/// How long a started process may take to print its ready line.
const READY_WITHIN: Duration = Duration::from_secs(20);
/// How long processes get to exit after SIGTERM before SIGKILL.
const STOP_WITHIN: Duration = Duration::from_secs(15);

/// The processes started here.
pub struct LocalLab {
    children: Vec<(String, Child)>,
    /// ws://127.0.0.1:PORT/ when a server was started.
    pub server_url: Option<String>,
    /// The started server's Prometheus endpoint (host:port).
    pub server_metrics: Option<SocketAddr>,
    /// Control addresses of the agents, in order.
    pub agents: Vec<String>,
    /// Source addresses for each agent (`--source-ips` syntax).
    pub source_ips: Vec<String>,
    pub token: String,
}

/// Where the server and loadgen binaries are: `dir`, by default the
/// directory of this coordinator binary (cargo puts the workspace's
/// binaries side by side).
pub fn bin_dir(dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => std::env::current_exe()
            .context("finding this program")?
            .parent()
            .context("this program has no directory")?
            .to_path_buf(),
    };
    for name in ["server", "loadgen"] {
        if !dir.join(name).is_file() {
            bail!(
                "no `{name}` binary in {}: build the workspace first (cargo build --release), or point --bin-dir at the binaries",
                dir.display()
            );
        }
    }
    Ok(dir)
}

/// Source addresses for local agent `k`: a block of its own on loopback
/// (127.{k+2}.0.1 and up), so agents never compete for ports and the
/// server's 127.0.0.1 stays out of the way. `needed` is the most
/// connections the agent will hold; each address gives a full ephemeral
/// port range toward the one server address.
pub fn loopback_sources(k: usize, needed: u64, ports_per_address: u64) -> String {
    // Twice what the count needs, and at least 4: reconnects (churn) leave
    // ports in TIME_WAIT for a while.
    let addresses = (needed * 2)
        .div_ceil(ports_per_address.max(1))
        .clamp(4, 250);
    let block = 2 + k as u64;
    let second = block % 256;
    let third = block / 256;
    format!("127.{second}.{third}.1-127.{second}.{third}.{addresses}")
}

/// A random token for agents only this coordinator talks to.
pub fn random_token() -> String {
    let mut bytes = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    if read.is_err() {
        // No /dev/urandom: the std hasher's per-process random keys.
        use std::hash::{BuildHasher, Hasher};
        for chunk in bytes.chunks_mut(8) {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u32(std::process::id());
            chunk.copy_from_slice(&h.finish().to_le_bytes()[..chunk.len()]);
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What to start.
pub struct LocalPlan<'a> {
    pub bin_dir: &'a Path,
    pub logs: &'a Path,
    pub start_server: bool,
    /// Most connections each agent will hold (its largest phase share).
    pub agent_loads: Vec<u64>,
    pub ports_per_address: u64,
}

impl LocalLab {
    pub async fn start(plan: LocalPlan<'_>) -> anyhow::Result<LocalLab> {
        std::fs::create_dir_all(plan.logs)
            .with_context(|| format!("creating {}", plan.logs.display()))?;
        let mut lab = LocalLab {
            children: Vec::new(),
            server_url: None,
            server_metrics: None,
            agents: Vec::new(),
            source_ips: Vec::new(),
            token: random_token(),
        };
        match lab.start_all(&plan).await {
            Ok(()) => Ok(lab),
            Err(e) => {
                lab.stop().await;
                Err(e)
            }
        }
    }

    async fn start_all(&mut self, plan: &LocalPlan<'_>) -> anyhow::Result<()> {
        if plan.start_server {
            let mut cmd = Command::new(plan.bin_dir.join("server"));
            // Its metrics endpoint on a free loopback port, whatever the
            // environment says: the coordinator samples it for the report.
            cmd.args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
                .env_remove("SERVER_NO_METRICS");
            let line = self.spawn("server", cmd, plan.logs).await?;
            let ready: server::ready::ReadyLine = line
                .parse()
                .with_context(|| format!("the server's ready line {line:?}"))?;
            self.server_url = Some(format!("ws://{}/", ready.ws));
            self.server_metrics = ready.metrics;
            info!(url = %format!("ws://{}/", ready.ws), "local server started");
        }
        for (k, &load) in plan.agent_loads.iter().enumerate() {
            let name = format!("local-{}", k + 1);
            let sources = loopback_sources(k, load, plan.ports_per_address);
            let mut cmd = Command::new(plan.bin_dir.join("loadgen"));
            cmd.args(["agent", "--listen", "127.0.0.1:0", "--name", &name])
                .env("LOADGEN_AGENT_TOKEN", &self.token)
                .env_remove("LOADGEN_ALLOW_TARGET")
                .env_remove("LOADGEN_METRICS_LISTEN");
            let line = self.spawn(&name, cmd, plan.logs).await?;
            let (addr, _) = loadgen::agent::parse_ready_line(&line).with_context(|| {
                format!("agent {name} printed {line:?} instead of its ready line")
            })?;
            self.agents.push(addr.to_string());
            self.source_ips.push(sources);
        }
        info!(agents = self.agents.len(), "local agents started");
        Ok(())
    }

    /// Starts `cmd` with its stderr in `logs/NAME.log` and returns the
    /// first line it prints on stdout.
    async fn spawn(&mut self, name: &str, mut cmd: Command, logs: &Path) -> anyhow::Result<String> {
        let log_path = logs.join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            // Ctrl-C in a terminal signals the whole foreground group: the
            // coordinator handles it and stops its children in order.
            .process_group(0);
        // SAFETY: prctl(2) is async-signal-safe; it only asks the kernel
        // to SIGTERM the child when this thread (a runtime worker, alive as
        // long as the coordinator) ends, so a killed coordinator leaves no
        // agent or server behind.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", cmd.as_std().get_program()))?;
        let stdout = child.stdout.take().context("child stdout")?;
        self.children.push((name.to_string(), child));
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(READY_WITHIN, lines.next_line()).await;
        let line = match first {
            Ok(Ok(Some(line))) => line,
            Ok(_) => bail!(
                "{name} exited before it was ready; see {}",
                log_path.display()
            ),
            Err(_) => bail!(
                "{name} was not ready within {READY_WITHIN:?}; see {}",
                log_path.display()
            ),
        };
        // Keep reading so a chatty child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(line)
    }

    /// Whether every started process is still running; the names of
    /// those that are not.
    pub fn exited(&mut self) -> Vec<String> {
        self.children
            .iter_mut()
            .filter_map(|(name, c)| match c.try_wait() {
                Ok(Some(status)) => Some(format!("{name} ({status})")),
                _ => None,
            })
            .collect()
    }

    /// SIGTERM to every process started here, then SIGKILL to any still
    /// running after [`STOP_WITHIN`].
    pub async fn stop(&mut self) {
        for (_, child) in &self.children {
            if let Some(pid) = child.id() {
                // SAFETY: kill(2) on the pid of our own child.
                unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            }
        }
        for (name, child) in &mut self.children {
            match tokio::time::timeout(STOP_WITHIN, child.wait()).await {
                Ok(_) => {}
                Err(_) => {
                    warn!("{name} did not stop within {STOP_WITHIN:?}: killing it");
                    let _ = child.kill().await;
                }
            }
        }
        self.children.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_agent_gets_its_own_loopback_block() {
        assert_eq!(loopback_sources(0, 1000, 28232), "127.2.0.1-127.2.0.4");
        assert_eq!(loopback_sources(1, 100_000, 28232), "127.3.0.1-127.3.0.8");
        let a = loopback_sources(300, 10, 28232);
        assert_eq!(a, "127.46.1.1-127.46.1.4");
        for k in [0, 5, 253] {
            let ips = loadgen::source_ips::parse(&loopback_sources(k, 50_000, 28232)).unwrap();
            assert!(ips.iter().all(|ip| ip.is_loopback()));
            assert!(!ips.iter().any(|ip| ip.to_string() == "127.0.0.1"));
        }
    }

    #[test]
    fn tokens_are_random_hex() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
