//! Chat server processes run by a bench: started on ephemeral ports, found
//! through their ready line, measured through /proc, stopped with SIGTERM.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

use server::ReadyLine;

use loadgen::proc_stats::Memory;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot start {bin}: {source}")]
    Spawn { bin: PathBuf, source: io::Error },
    #[error("server printed no ready line within {0:?}")]
    ReadyTimeout(Duration),
    #[error("server exited before its ready line ({0})")]
    ExitedEarly(String),
    #[error(transparent)]
    BadReadyLine(#[from] server::ready::BadReadyLine),
    #[error("server I/O: {0}")]
    Io(#[from] io::Error),
    #[error("server pid {pid} did not exit within {timeout:?} of SIGTERM; killed")]
    StopTimeout { pid: u32, timeout: Duration },
}

/// The server binary next to the running executable: `cargo run --release
/// -p bench` runs from target/release/, where `cargo build --release -p
/// server` puts `server`.
pub fn default_server_bin() -> io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "executable has no directory"))?;
    Ok(dir.join("server"))
}

/// How to start a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub bin: PathBuf,
    pub workers: usize,
    /// Passed after the bench's own flags.
    pub extra_args: Vec<String>,
    pub ready_timeout: Duration,
}

pub struct ServerProcess {
    child: Child,
    pid: u32,
    pub ready: ReadyLine,
}

impl ServerProcess {
    /// Starts the server on ephemeral loopback ports and waits for its
    /// ready line. Its logs go to our stderr, at `warn` unless RUST_LOG says
    /// otherwise, so 100k connections do not print 100k lines.
    pub async fn start(cfg: &ServerConfig) -> Result<ServerProcess, ServerError> {
        let mut cmd = Command::new(&cfg.bin);
        cmd.args([
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--workers",
            &cfg.workers.to_string(),
        ])
        .args(&cfg.extra_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "warn");
        }
        let mut child = cmd.spawn().map_err(|source| ServerError::Spawn {
            bin: cfg.bin.clone(),
            source,
        })?;
        let pid = child
            .id()
            .ok_or(ServerError::ExitedEarly("no pid".into()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or(ServerError::ExitedEarly("no stdout".into()))?;
        let mut lines = BufReader::new(stdout);
        let mut line = String::new();
        let read = tokio::time::timeout(cfg.ready_timeout, lines.read_line(&mut line)).await;
        match read {
            Err(_) => return Err(ServerError::ReadyTimeout(cfg.ready_timeout)),
            Ok(Err(e)) => return Err(e.into()),
            Ok(Ok(0)) => {
                let status = child.wait().await?;
                return Err(ServerError::ExitedEarly(status.to_string()));
            }
            Ok(Ok(_)) => {}
        }
        let ready: ReadyLine = line.trim_end().parse()?;
        tokio::spawn(drain_stdout(lines));
        Ok(ServerProcess { child, pid, ready })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn memory(&self) -> io::Result<Memory> {
        Memory::of_pid(self.pid)
    }

    /// SIGTERM, then waits up to `timeout` for the exit (SIGKILL after).
    pub async fn stop(mut self, timeout: Duration) -> Result<ExitStatus, ServerError> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Ok(status);
        }
        // SAFETY: kill(2) on the pid of a child we have not yet reaped, so
        // the pid cannot have been reused.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
        }
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => {
                let _ = self.child.kill().await;
                Err(ServerError::StopTimeout {
                    pid: self.pid,
                    timeout,
                })
            }
        }
    }
}

/// Keeps reading the server's stdout so that a later print does not fail
/// on a closed pipe; anything it prints goes to our stderr.
async fn drain_stdout(mut lines: BufReader<ChildStdout>) {
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => eprint!("server stdout: {line}"),
        }
    }
}

/// A clear message when the server binary has not been built.
pub fn check_server_bin(bin: &Path) -> Result<(), ServerError> {
    if bin.is_file() {
        Ok(())
    } else {
        Err(ServerError::Spawn {
            bin: bin.to_path_buf(),
            source: io::Error::new(
                io::ErrorKind::NotFound,
                "not found: build it with `cargo build --release -p server` or pass --server-bin",
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_fake_server_is_started_read_and_stopped() {
        // /bin/sh stands in for the server: it prints a ready line and
        // waits to be terminated, which exercises the whole lifecycle.
        let dir = std::env::temp_dir().join(format!("bench-fake-server-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("server");
        std::fs::write(
            &script,
            "#!/bin/sh\necho \"listening ws=127.0.0.1:5 metrics=off\"\nexec sleep 30\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let cfg = ServerConfig {
            bin: script.clone(),
            workers: 1,
            extra_args: vec![],
            ready_timeout: Duration::from_secs(10),
        };
        let server = ServerProcess::start(&cfg).await.unwrap();
        assert_eq!(server.ready.ws.port(), 5);
        assert!(server.memory().unwrap().vm_rss_kb > 0);
        let status = server.stop(Duration::from_secs(10)).await.unwrap();
        assert!(!status.success(), "sleep should die of SIGTERM: {status}");

        std::fs::write(&script, "#!/bin/sh\nexit 3\n").unwrap();
        assert!(matches!(
            ServerProcess::start(&cfg).await,
            Err(ServerError::ExitedEarly(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(check_server_bin(&script).is_err());
    }
}
