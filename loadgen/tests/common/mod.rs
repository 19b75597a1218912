//! Running the real `loadgen` binary from tests: bounded in time (a hung
//! run is killed and fails the test with everything it printed), with its
//! `--json` report read back as `serde_json::Value` so that a renamed field
//! fails with the report in the message.

#![allow(dead_code)] // every test file uses its own part

pub mod raw_server;

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::ServerProcess;

pub const LOADGEN: &str = env!("CARGO_BIN_EXE_loadgen");

/// The real chat server on ephemeral ports.
pub fn chat_server() -> ServerProcess {
    let bin = testkit::server_bin();
    let bin = bin.to_str().expect("a UTF-8 path to the server binary");
    ServerProcess::spawn(bin, &["--no-metrics", "--workers", "2"]).expect("the server starts")
}

/// A loopback port nothing listens on (bound once, then released).
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A listener that accepts nothing, to prove no connection was attempted:
/// completed TCP handshakes wait in its backlog, so [`no_connections`]
/// sees them.
pub fn silent_listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let addr = l.local_addr().unwrap();
    (l, addr)
}

pub fn no_connections(l: &TcpListener) -> bool {
    matches!(l.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// A fresh path for a `--json` report.
pub fn temp_json() -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    std::env::temp_dir().join(format!(
        "loadgen-test-{}-{}.json",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

/// A running loadgen process.
pub struct Loadgen {
    child: Child,
    started: Instant,
    json: Option<PathBuf>,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
}

/// A finished loadgen process and what it left behind.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// From spawn to exit.
    pub elapsed: Duration,
    /// The `--json` report, when the run was asked for one and wrote it.
    pub json: Option<Value>,
}

fn drain(mut r: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

impl Loadgen {
    /// Starts `loadgen ARGS` (exactly as given).
    pub fn spawn(args: &[&str]) -> Loadgen {
        Loadgen::spawn_with(args, None, &[])
    }

    /// Starts `loadgen ARGS --json FILE` (ARGS must be a `run` command).
    pub fn spawn_json(args: &[&str]) -> Loadgen {
        let path = temp_json();
        let mut all: Vec<&str> = args.to_vec();
        let p = path.to_str().unwrap().to_owned();
        all.extend(["--json", &p]);
        Loadgen::spawn_with(&all, Some(path.clone()), &[])
    }

    /// [`Loadgen::spawn_json`] as the leader of a process group of its
    /// own, so [`Loadgen::signal_group`] reaches it and every worker it
    /// starts, as `timeout`, systemd or a terminal's Ctrl-C do.
    pub fn spawn_json_in_own_group(args: &[&str]) -> Loadgen {
        let path = temp_json();
        let mut all: Vec<&str> = args.to_vec();
        let p = path.to_str().unwrap().to_owned();
        all.extend(["--json", &p]);
        Loadgen::start(&all, Some(path.clone()), &[], true)
    }

    /// Starts `loadgen ARGS` with extra environment; `json` is where the
    /// report is expected (e.g. set through LOADGEN_JSON).
    pub fn spawn_with(args: &[&str], json: Option<PathBuf>, env: &[(&str, &str)]) -> Loadgen {
        Loadgen::start(args, json, env, false)
    }

    fn start(
        args: &[&str],
        json: Option<PathBuf>,
        env: &[(&str, &str)],
        own_group: bool,
    ) -> Loadgen {
        let mut cmd = Command::new(LOADGEN);
        if own_group {
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        }
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("RUST_LOG", "warn");
        // Only what the test says: no flags leaking in from the environment.
        for (key, _) in std::env::vars() {
            if key.starts_with("LOADGEN_") {
                cmd.env_remove(key);
            }
        }
        cmd.envs(env.iter().copied());
        let mut child = cmd.spawn().expect("spawning loadgen");
        let stdout = Some(drain(child.stdout.take().unwrap()));
        let stderr = Some(drain(child.stderr.take().unwrap()));
        Loadgen {
            child,
            started: Instant::now(),
            json,
            stdout,
            stderr,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child, which has not been waited for.
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill({}, {signal})", self.pid());
    }

    /// `signal` to loadgen's whole process group (started with
    /// [`Loadgen::spawn_json_in_own_group`]): loadgen and its workers.
    pub fn signal_group(&self, signal: i32) {
        // SAFETY: kill(2) on the process group our own child leads.
        let rc = unsafe { libc::kill(-self.pid(), signal) };
        assert_eq!(rc, 0, "kill(-{}, {signal})", self.pid());
    }

    /// Whether the process has ended (it is not reaped from the test's view:
    /// [`Loadgen::wait`] still reports how).
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Fails the test with `why` and everything the run printed, killing it
    /// first if it still runs.
    pub fn fail(mut self, why: &str) -> ! {
        let _ = self.child.kill();
        let status = self.child.wait();
        let out = self.stdout.take().unwrap().join().unwrap();
        let err = self.stderr.take().unwrap().join().unwrap();
        panic!("{why}\n--- loadgen {status:?}\n--- stdout\n{out}\n--- stderr\n{err}");
    }

    /// Waits for the exit; a run still going after `limit` is killed and
    /// fails the test, since every run must end by itself.
    pub fn wait(mut self, limit: Duration) -> Finished {
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if self.started.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let out = self.stdout.take().unwrap().join().unwrap();
                let err = self.stderr.take().unwrap().join().unwrap();
                panic!(
                    "loadgen still running after {limit:?}: killed\n--- stdout\n{out}\n--- stderr\n{err}"
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let elapsed = self.started.elapsed();
        let stdout = self.stdout.take().unwrap().join().unwrap();
        let stderr = self.stderr.take().unwrap().join().unwrap();
        let json =
            self.json.take().and_then(|path| {
                let text = std::fs::read_to_string(&path).ok()?;
                let _ = std::fs::remove_file(&path);
                Some(serde_json::from_str(&text).unwrap_or_else(|e| {
                    panic!("--json {} is not JSON ({e}):\n{text}", path.display())
                }))
            });
        Finished {
            status,
            stdout,
            stderr,
            elapsed,
            json,
        }
    }
}

impl Drop for Loadgen {
    fn drop(&mut self) {
        // Only when a test panicked before waiting: never leave a load running.
        if self.stdout.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `loadgen ARGS --json FILE`, waited for within `limit`.
pub fn run_json(args: &[&str], limit: Duration) -> Finished {
    Loadgen::spawn_json(args).wait(limit)
}

/// `loadgen ARGS`, waited for within `limit`.
pub fn run(args: &[&str], limit: Duration) -> Finished {
    Loadgen::spawn(args).wait(limit)
}

impl Finished {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Everything the run printed, for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "status {:?} after {:?}\n--- stdout\n{}\n--- stderr\n{}\n--- json\n{}",
            self.status,
            self.elapsed,
            self.stdout,
            self.stderr,
            self.json
                .as_ref()
                .map(|j| serde_json::to_string_pretty(j).unwrap())
                .unwrap_or_else(|| "(none)".into())
        )
    }

    /// Asserts the exit code, showing the whole run when it differs.
    pub fn assert_code(&self, code: i32) {
        assert_eq!(self.code(), Some(code), "{}", self.describe());
    }

    pub fn assert_no_panic(&self) {
        assert!(!self.stderr.contains("panicked"), "{}", self.describe());
        assert!(
            self.code().is_some(),
            "killed by a signal: {}",
            self.describe()
        );
        assert_ne!(self.code(), Some(101), "{}", self.describe());
    }

    pub fn totals(&self) -> Totals<'_> {
        let json = self
            .json
            .as_ref()
            .unwrap_or_else(|| panic!("no --json report written: {}", self.describe()));
        let totals = json
            .get("totals")
            .unwrap_or_else(|| panic!("no \"totals\" in the report: {}", self.describe()));
        Totals {
            v: totals,
            run: self,
        }
    }
}

/// The report's `totals`, with accessors that fail naming the field.
pub struct Totals<'a> {
    pub v: &'a Value,
    run: &'a Finished,
}

impl Totals<'_> {
    pub fn u(&self, key: &str) -> u64 {
        self.v.get(key).and_then(Value::as_u64).unwrap_or_else(|| {
            panic!(
                "totals.{key} missing or not a count: {}",
                self.run.describe()
            )
        })
    }

    pub fn f(&self, key: &str) -> f64 {
        self.v.get(key).and_then(Value::as_f64).unwrap_or_else(|| {
            panic!(
                "totals.{key} missing or not a number: {}",
                self.run.describe()
            )
        })
    }

    /// A `{label: count}` map such as `connect_errors`.
    pub fn labels(&self, key: &str) -> BTreeMap<String, u64> {
        let map = self
            .v
            .get(key)
            .and_then(Value::as_object)
            .unwrap_or_else(|| {
                panic!("totals.{key} missing or not a map: {}", self.run.describe())
            });
        map.iter()
            .map(|(k, v)| {
                let n = v.as_u64().unwrap_or_else(|| {
                    panic!("totals.{key}.{k} is not a count: {}", self.run.describe())
                });
                (k.clone(), n)
            })
            .collect()
    }

    /// Samples in latency histogram `kind` ("connect", "round_trip",
    /// "fanout", "echo"); a kind that is absent counts 0.
    pub fn latency_count(&self, kind: &str) -> u64 {
        let latencies = self
            .v
            .get("latencies")
            .and_then(Value::as_object)
            .unwrap_or_else(|| panic!("totals.latencies missing: {}", self.run.describe()));
        match latencies.get(kind) {
            None => 0,
            Some(h) => h.get("count").and_then(Value::as_u64).unwrap_or_else(|| {
                panic!(
                    "totals.latencies.{kind}.count missing: {}",
                    self.run.describe()
                )
            }),
        }
    }

    /// A latency figure such as "p99_ms" of histogram `kind`.
    pub fn latency_ms(&self, kind: &str, figure: &str) -> f64 {
        self.v
            .pointer(&format!("/latencies/{kind}/{figure}"))
            .and_then(Value::as_f64)
            .unwrap_or_else(|| {
                panic!(
                    "totals.latencies.{kind}.{figure} missing: {}",
                    self.run.describe()
                )
            })
    }
}
