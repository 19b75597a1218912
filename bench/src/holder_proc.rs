//! The parent's side of a holder: a child process re-executing the bench
//! with the hidden `hold` subcommand, its stdout turned into events.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use crate::holder::{HoldArgs, HolderEvent};
use loadgen::proc_stats::Memory;

/// What the parent hears from holder `index`: an event, or `None` once its
/// stdout has closed (it exited).
pub type HolderMessage = (usize, Option<HolderEvent>);

pub struct HolderProcess {
    child: Child,
    pid: u32,
    /// Closing it tells the holder to let go of its connections.
    stdin: Option<ChildStdin>,
}

impl HolderProcess {
    /// Starts `exe hold ARGS`; its events go to `tx` tagged with `index`.
    /// Its stderr is ours, so its errors reach the terminal.
    pub fn spawn(
        exe: &Path,
        args: &HoldArgs,
        index: usize,
        tx: mpsc::UnboundedSender<HolderMessage>,
    ) -> std::io::Result<HolderProcess> {
        let mut child = Command::new(exe)
            .arg("hold")
            .args(args.to_args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| std::io::Error::other("holder exited at once"))?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("holder has no stdout"))?;
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match HolderEvent::from_line(&line) {
                    Ok(event) => {
                        let _ = tx.send((index, Some(event)));
                    }
                    Err(_) => tracing::warn!(holder = index, "unexpected holder output: {line}"),
                }
            }
            let _ = tx.send((index, None));
        });
        Ok(HolderProcess { child, pid, stdin })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn memory(&self) -> std::io::Result<Memory> {
        Memory::of_pid(self.pid)
    }

    /// Whether it has exited (and so dropped its connections).
    pub fn has_exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Closes its stdin and waits up to `timeout` for it to exit, then
    /// kills it.
    pub async fn stop(mut self, timeout: Duration) {
        drop(self.stdin.take());
        if tokio::time::timeout(timeout, self.child.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                pid = self.pid,
                "holder did not exit after stdin closed; killing it"
            );
            let _ = self.child.kill().await;
        }
    }
}
