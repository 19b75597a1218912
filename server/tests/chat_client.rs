//! The `chat` binary end to end, as real processes talking over real sockets:
//! against the real server (two clients, one per encoding), against a
//! scripted fake server (close handling, what goes on the wire), and against
//! nothing at all (connection refused), and over `wss://` through a
//! TLS-terminating proxy in front of the real server.
//!
//! Every wait is bounded, and every child is killed by a guard, so a broken
//! server or client fails a test instead of hanging it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use protocol::{ChatMessage, MsgType};
use testkit::ServerProcess;
use tokio_tungstenite::tungstenite::{self, Message};

/// Generous: debug builds on a shared 2-core machine.
const WAIT: Duration = Duration::from_secs(20);

/// Kills its child on drop, so a failing assertion does not leak processes.
struct Guard {
    name: &'static str,
    child: Child,
}

impl Guard {
    fn spawn(name: &'static str, cmd: &mut Command) -> Guard {
        let child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Guard { name, child }
    }

    /// The exit status, or a panic if the child is still running after `limit`.
    fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} still running after {limit:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // Child::kill signals this child's PID only.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child's output, read line by line on a thread so waits can time out.
struct Lines {
    name: String,
    rx: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    fn new(name: impl Into<String>, from: impl Read + Send + 'static) -> Lines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(from).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines {
            name: name.into(),
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits for a line matching `pred`, keeping every line read; the error
    /// lists what was read instead.
    fn wait_for(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> Result<String, String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return Ok(line);
                    }
                }
                Err(e) => {
                    return Err(format!(
                        "{}: no line {what:?} ({e:?}); lines so far:\n{}",
                        self.name,
                        self.seen.join("\n")
                    ))
                }
            }
        }
    }

    fn expect(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.wait_for(what, pred).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Everything still buffered, after the writer has exited.
    fn rest(&mut self) -> Vec<String> {
        while let Ok(line) = self.rx.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(line);
        }
        self.seen.clone()
    }
}

struct Client {
    guard: Guard,
    stdin: Option<ChildStdin>,
    out: Lines,
    err: Lines,
}

impl Client {
    fn start(name: &'static str, url: &str, room: &str, proto: &str) -> Client {
        Client::start_with(name, url, room, proto, &[])
    }

    /// `start` with `extra` flags after the usual ones.
    fn start_with(
        name: &'static str,
        url: &str,
        room: &str,
        proto: &str,
        extra: &[&str],
    ) -> Client {
        let mut guard = Guard::spawn(
            name,
            Command::new(env!("CARGO_BIN_EXE_chat"))
                .arg(url)
                .args(["--room", room, "--username", name, "--proto", proto])
                .args(["--connect-timeout", "10s"])
                .args(extra)
                .env_remove("CHAT_INSECURE")
                .env_remove("CHAT_CA_FILE")
                .env_remove("CHAT_URL")
                .env("RUST_LOG", "warn"),
        );
        let stdin = guard.child.stdin.take();
        let out = Lines::new(format!("{name} stdout"), guard.child.stdout.take().unwrap());
        let err = Lines::new(format!("{name} stderr"), guard.child.stderr.take().unwrap());
        Client {
            guard,
            stdin,
            out,
            err,
        }
    }

    /// Waits for `exact` on stdout, where `#N` in `exact` stands for any
    /// user id (`alice#N`); a failure shows the client's stderr too.
    fn sees(&mut self, exact: &str) {
        self.sees_matching(exact, |l| l == exact || ids_hidden(l) == exact);
    }

    fn sees_matching(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.out
            .wait_for(what, pred)
            .unwrap_or_else(|e| panic!("{e}\nstderr:\n{}", self.err.rest().join("\n")))
    }

    /// The user id the welcome line announces.
    fn welcome_id(&mut self) -> u64 {
        let line = self.sees_matching("the welcome", |l| {
            l.starts_with("* welcome, your user id is ")
        });
        line.rsplit(' ')
            .next()
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("no id in {line:?}"))
    }

    fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin already closed");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Ctrl-D: the client should close and exit 0.
    fn end_input(&mut self) -> ExitStatus {
        drop(self.stdin.take());
        self.guard.wait(WAIT)
    }
}

/// `line` with every `#` followed by digits turned into `#N`.
fn ids_hidden(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(pos) = rest.find('#') {
        out.push_str(&rest[..=pos]);
        rest = &rest[pos + 1..];
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits > 0 {
            out.push('N');
            rest = &rest[digits..];
        }
    }
    out.push_str(rest);
    out
}

fn start_server() -> ServerProcess {
    ServerProcess::spawn(env!("CARGO_BIN_EXE_server"), &["--no-metrics"])
        .unwrap_or_else(|e| panic!("server did not start: {e:#}"))
}

#[test]
fn json_and_binary_clients_chat_through_the_real_server() {
    let mut server = start_server();
    let room = "it-lobby";

    let mut alice = Client::start("alice", &server.url(), room, "json");
    alice.sees("* alice#N joined it-lobby");

    let mut bob = Client::start("bob", &server.url(), room, "binary");
    bob.sees("* bob#N joined it-lobby");
    alice.sees("* bob#N joined it-lobby");

    alice.type_line("hello from alice");
    bob.sees("[it-lobby] alice#N: hello from alice");
    alice.sees("[it-lobby] alice#N: hello from alice");

    bob.type_line("hi from bob ✓");
    alice.sees("[it-lobby] bob#N: hi from bob ✓");
    bob.sees("[it-lobby] bob#N: hi from bob ✓");

    bob.type_line("/ping");
    bob.sees_matching("pong in N ms", |l| {
        l.strip_prefix("pong in ")
            .and_then(|l| l.strip_suffix(" ms"))
            .is_some_and(|ms| ms.parse::<f64>().is_ok())
    });

    // A piped script: its lines are all sent before the close that end of
    // input causes, so the room hears them and the client still exits 0.
    let mut carol = Client::start("carol", &server.url(), room, "json");
    carol.type_line("last words");
    let status = carol.end_input();
    assert!(
        status.success(),
        "carol exited with {status}: {:?}",
        carol.err.rest()
    );
    alice.sees("[it-lobby] carol#N: last words");
    bob.sees("* carol#N left it-lobby");

    let status = alice.end_input();
    assert!(
        status.success(),
        "alice exited with {status}: {:?}",
        alice.err.rest()
    );
    bob.sees("* alice#N left it-lobby");

    let status = bob.end_input();
    assert!(
        status.success(),
        "bob exited with {status}: {:?}",
        bob.err.rest()
    );

    for client in [&mut alice, &mut bob] {
        let errors: Vec<String> = client
            .out
            .rest()
            .into_iter()
            .filter(|l| l.starts_with('!'))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", client.out.name);
    }
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server died during the test"
    );
}

#[test]
fn refused_commands_change_nothing_and_namesakes_are_told_apart() {
    // Issue 11: after a refused /nick the client kept the refused name, so
    // every later /join was refused too; a refused /join became the
    // client's current room, so later lines went there and were refused.
    let mut server = start_server();
    let mut alice = Client::start("alice", &server.url(), "r1", "json");
    let me = alice.welcome_id();
    alice.sees(&format!("* alice#{me} joined r1"));

    alice.type_line(&format!("/nick {}", "n".repeat(65)));
    alice.sees("! error: username is 65 bytes, the limit is 64");
    alice.type_line("/join r2");
    alice.sees(&format!("* alice#{me} joined r2"));

    alice.type_line(&format!("/join {}", "r".repeat(129)));
    alice.sees("! error: room is 129 bytes, the limit is 128");
    alice.type_line("still in r2");
    alice.sees(&format!("[r2] alice#{me}: still in r2"));
    alice.type_line("/rooms");
    alice.sees("rooms: r1, r2 (current)");

    // A rename the server carries out, confirmed by its notice.
    alice.type_line("/nick bob");
    alice.sees(&format!("* bob#{me} joined r2"));

    // A second bob: each is shown with its own id.
    let mut bob = Client::start("bob", &server.url(), "r2", "binary");
    let other = bob.welcome_id();
    assert_ne!(me, other);
    bob.sees(&format!("* bob#{other} joined r2"));
    alice.sees(&format!("* bob#{other} joined r2"));
    bob.type_line("which bob?");
    alice.sees(&format!("[r2] bob#{other}: which bob?"));
    alice.type_line("the other one");
    bob.sees(&format!("[r2] bob#{me}: the other one"));

    for client in [&mut alice, &mut bob] {
        let status = client.end_input();
        assert!(status.success(), "{}: {status}", client.out.name);
    }
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server died during the test"
    );
}

/// A one-connection WebSocket server on a thread, run by `script`. Returns
/// the URL and the request target the client asked for.
fn fake_server(
    script: impl FnOnce(&mut tungstenite::WebSocket<std::net::TcpStream>) + Send + 'static,
) -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        // The Result type is tungstenite's Callback signature, not ours.
        #[allow(clippy::result_large_err)]
        let callback = |req: &tungstenite::handshake::server::Request,
                        resp: tungstenite::handshake::server::Response| {
            let _ = tx.send(req.uri().to_string());
            Ok(resp)
        };
        let mut ws = tungstenite::accept_hdr(stream, callback).unwrap();
        script(&mut ws);
    });
    (url, rx)
}

fn read_chat(ws: &mut tungstenite::WebSocket<std::net::TcpStream>) -> Message {
    loop {
        match ws.read().unwrap() {
            Message::Ping(_) | Message::Pong(_) => continue,
            other => return other,
        }
    }
}

#[test]
fn an_unrequested_close_is_reported_and_fails_the_exit_status() {
    let (url, target) = fake_server(|ws| {
        let mut welcome = ChatMessage::new(MsgType::System).with_payload(b"welcome".to_vec());
        welcome.user_id = 7;
        ws.send(Message::binary(protocol::binary::to_vec(&welcome)))
            .unwrap();
        let chat = ChatMessage::new(MsgType::Chat)
            .with_room("r&d")
            .with_username("carol")
            .with_payload(b"in json".to_vec());
        ws.send(Message::text(protocol::json::to_string(&chat)))
            .unwrap();
        ws.close(Some(tungstenite::protocol::CloseFrame {
            code: 4000.into(),
            reason: "go away".into(),
        }))
        .unwrap();
        // Finish the close handshake: the client answers our close.
        while ws.read().is_ok() {}
    });
    let mut bob = Client::start("bob smith", &url, "r&d", "binary");

    let target = target.recv_timeout(WAIT).unwrap();
    assert_eq!(target, "/?username=bob%20smith&room=r%26d&proto=binary");

    // Whatever the encoding, the client prints it.
    bob.sees("* welcome, your user id is 7");
    bob.sees("[r&d] carol#0: in json");
    let status = bob.guard.wait(WAIT);
    assert!(
        !status.success(),
        "an unrequested close must fail the exit status"
    );
    bob.err.expect("close code and reason", |l| {
        l.contains("4000") && l.contains("go away")
    });
}

#[test]
fn lines_go_out_in_the_chosen_encoding_and_quit_closes_normally() {
    let (done_tx, done_rx) = mpsc::channel();
    let (url, _target) = fake_server(move |ws| {
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(read_chat(ws));
        }
        let _ = done_tx.send(got);
    });
    let mut alice = Client::start("alice", &url, "lobby", "json");
    alice.type_line("");
    alice.type_line("/join dev");
    alice.type_line("//slash");
    alice.type_line("/quit");
    let status = alice.guard.wait(WAIT);
    assert!(
        status.success(),
        "/quit exited with {status}: {:?}",
        alice.err.rest()
    );

    let got = done_rx.recv_timeout(WAIT).unwrap();
    let decoded: Vec<ChatMessage> = got[..2]
        .iter()
        .map(|m| match m {
            Message::Text(t) => protocol::json::decode(t.as_str()).unwrap().into_owned(),
            other => panic!("json client sent {other:?}"),
        })
        .collect();
    assert_eq!(decoded[0].kind(), Some(MsgType::Join));
    assert_eq!((&*decoded[0].room, &*decoded[0].username), ("dev", "alice"));
    assert_eq!(decoded[1].kind(), Some(MsgType::Chat));
    assert_eq!(
        (&*decoded[1].room, &*decoded[1].payload),
        ("dev", &b"/slash"[..])
    );
    match &got[2] {
        Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1000),
        other => panic!("expected a normal close, got {other:?}"),
    }
}

#[test]
fn connection_refused_is_a_clear_error() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut client = Client::start("alice", &format!("ws://127.0.0.1:{port}"), "lobby", "json");
    let status = client.guard.wait(WAIT);
    assert!(!status.success());
    let err = client.err.rest().join("\n");
    assert!(
        err.contains("cannot connect") && err.contains("refused"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_bad_url_is_a_clear_error() {
    let mut client = Client::start("alice", "localhost:8080", "lobby", "json");
    let status = client.guard.wait(WAIT);
    assert!(!status.success());
    let err = client.err.rest().join("\n");
    assert!(err.contains("not a WebSocket URL"), "{err}");
}

/// A TLS-terminating proxy for `localhost` in front of `backend` (a plain
/// `host:port`), on its own thread, with a certificate from a private CA
/// made for the test: the server itself speaks only ws://. Returns the
/// proxy's `wss://localhost:PORT` URL and the CA's certificate (PEM).
fn tls_proxy(backend: String) -> (String, String) {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    use std::sync::Arc;

    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "wslab chat test CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let backend = backend.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut plain) = tokio::net::TcpStream::connect(&backend).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
    });
    (format!("wss://localhost:{port}"), ca.pem())
}

#[test]
fn wss_works_with_ca_file_or_insecure_and_an_untrusted_certificate_says_what_to_do() {
    let mut server = start_server();
    let backend = server
        .url()
        .trim_start_matches("ws://")
        .trim_end_matches('/')
        .to_string();
    let (url, ca) = tls_proxy(backend);
    let dir = std::env::temp_dir().join(format!("wslab-chat-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &ca).unwrap();
    let ca_arg = ca_file.to_str().unwrap();
    let room = "tls-lobby";

    // Verified by default: one readable error, not rustls's debug text
    // and not twice.
    let mut mallory = Client::start("mallory", &url, room, "json");
    let status = mallory.guard.wait(WAIT);
    assert!(!status.success());
    let err = mallory.err.rest().join("\n");
    let hint = "the server's certificate is not trusted (self-signed or from a private CA): \
                pass --ca-file with the CA's PEM, or --insecure for a test server";
    assert_eq!(err.matches(hint).count(), 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    let mut alice = Client::start_with("alice", &url, room, "json", &["--ca-file", ca_arg]);
    alice.sees("* alice#N joined tls-lobby");
    let mut bob = Client::start_with("bob", &url, room, "binary", &["--insecure"]);
    bob.sees("* bob#N joined tls-lobby");
    alice.type_line("hello over TLS");
    bob.sees("[tls-lobby] alice#N: hello over TLS");
    alice.sees("[tls-lobby] alice#N: hello over TLS");
    for client in [&mut alice, &mut bob] {
        let status = client.end_input();
        assert!(status.success(), "{status}: {:?}", client.err.rest());
    }

    // A CA file without a certificate fails before connecting.
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "no certificate here\n").unwrap();
    let mut carol = Client::start_with(
        "carol",
        &url,
        room,
        "json",
        &["--ca-file", empty.to_str().unwrap()],
    );
    let status = carol.guard.wait(WAIT);
    assert!(!status.success());
    let err = carol.err.rest().join("\n");
    assert!(err.contains("holds no certificate"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server died during the test"
    );
}
