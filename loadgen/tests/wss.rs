//! `wss://`: loadgen over TLS against a real TLS WebSocket echo server
//! (tokio-rustls + tokio-tungstenite, a private CA and a certificate made for
//! the test): certificates are verified by default, `--insecure` accepts a
//! certificate from an unknown CA, `--ca-file` trusts that CA (and a bad
//! one fails before anything connects), and the echo figures are exact.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::run_json;
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A TLS echo server for `localhost` on an ephemeral port, on its own
/// thread, with a certificate from a private CA made for the test;
/// returns its `wss://localhost:PORT/` URL and the CA's certificate (PEM).
fn tls_echo_server() -> (String, String) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "wslab test CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    (serve(leaf.der().clone(), &leaf_key), ca.pem())
}

/// A TLS echo server presenting `cert`; returns its `wss://` URL.
fn serve(cert: CertificateDer<'static>, key: &rcgen::KeyPair) -> String {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
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
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await else {
                        return;
                    };
                    while let Some(Ok(msg)) = ws.next().await {
                        if (msg.is_binary() || msg.is_text()) && ws.send(msg).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
    });
    format!("wss://localhost:{port}/")
}

#[test]
fn echo_over_tls_with_an_unknown_ca_and_insecure() {
    let (url, _ca) = tls_echo_server();
    let run = run_json(
        &[
            "run",
            &url,
            "--insecure",
            "--workload",
            "echo",
            "-c",
            "20",
            "--chatters",
            "0.5",
            "--rate",
            "10",
            "--duration",
            "2s",
            "--drain",
            "1s",
            "--progress",
            "never",
        ],
        Duration::from_secs(30),
    );
    run.assert_code(0);
    let t = run.totals();
    let why = run.describe();
    assert_eq!(t.u("connects_ok"), 20, "{why}");
    let sent = t.u("messages_sent");
    assert!(sent > 0, "{why}");
    assert_eq!(t.latency_count("echo"), sent, "{why}");
    assert_eq!(t.u("messages_received"), sent, "{why}");
    assert_eq!(t.u("messages_lost"), 0, "{why}");
    assert!(t.labels("closes_unexpected").is_empty(), "{why}");
}

#[test]
fn certificates_are_verified_by_default() {
    let (url, _ca) = tls_echo_server();
    let run = run_json(
        &[
            "run",
            &url,
            "--workload",
            "idle",
            "-c",
            "3",
            "--duration",
            "1s",
            "--progress",
            "never",
        ],
        Duration::from_secs(30),
    );
    run.assert_code(1);
    let errors = run.totals().labels("connect_errors");
    assert_eq!(errors.values().sum::<u64>(), 3, "{}", run.describe());
    assert!(
        errors
            .keys()
            .all(|k| k.starts_with("TLS:") && k.contains("certificate")),
        "{errors:?}"
    );
}

const UNTRUSTED: &str = "TLS: the server's certificate is not trusted (self-signed or from a \
                         private CA): pass --ca-file with the CA's PEM, or --insecure for a \
                         test server";

/// An idle run of 3 connections against `url` with `extra` flags.
fn idle_run(url: &str, extra: &[&str]) -> common::Finished {
    let mut args = vec![
        "run",
        url,
        "--workload",
        "idle",
        "-c",
        "3",
        "--duration",
        "1s",
        "--progress",
        "never",
    ];
    args.extend_from_slice(extra);
    run_json(&args, Duration::from_secs(30))
}

#[test]
fn an_untrusted_certificate_says_what_to_do_and_ca_file_trusts_its_ca() {
    let (url, ca) = tls_echo_server();
    let run = idle_run(&url, &[]);
    run.assert_code(1);
    let errors = run.totals().labels("connect_errors");
    assert_eq!(
        errors.into_iter().collect::<Vec<_>>(),
        [(UNTRUSTED.to_string(), 3)],
        "{}",
        run.describe()
    );
    assert!(run.stdout.contains(UNTRUSTED), "{}", run.describe());

    let dir = std::env::temp_dir().join(format!("wslab-wss-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &ca).unwrap();
    let run = idle_run(&url, &["--ca-file", ca_file.to_str().unwrap()]);
    run.assert_code(0);
    assert_eq!(run.totals().u("connects_ok"), 3, "{}", run.describe());
    assert!(run.totals().labels("connect_errors").is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_or_empty_ca_file_fails_before_connecting() {
    let (url, _ca) = tls_echo_server();
    let dir = std::env::temp_dir().join(format!("wslab-wss-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("missing.pem");
    let run = common::run(
        &["run", &url, "--ca-file", missing.to_str().unwrap()],
        Duration::from_secs(30),
    );
    run.assert_code(2);
    assert!(
        run.stderr.contains("--ca-file") && run.stderr.contains("cannot read it"),
        "{}",
        run.describe()
    );
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let run = common::run(
        &["run", &url, "--ca-file", empty.to_str().unwrap()],
        Duration::from_secs(30),
    );
    run.assert_code(2);
    assert!(
        run.stderr.contains("holds no certificate"),
        "{}",
        run.describe()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_self_signed_ca_certificate_gets_its_own_hint() {
    // What `openssl req -x509` makes: self-signed, CA:TRUE, served as the
    // server's own. rustls refuses it even when it is trusted.
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let url = serve(cert.der().clone(), &key);
    let run = idle_run(&url, &[]);
    run.assert_code(1);
    let errors = run.totals().labels("connect_errors");
    let hint = "TLS: the server's certificate is a CA's (CA:TRUE, as openssl req -x509 \
                makes), refused even with --ca-file: serve one signed by that CA, or pass \
                --insecure for a test server";
    assert_eq!(
        errors.into_iter().collect::<Vec<_>>(),
        [(hint.to_string(), 3)],
        "{}",
        run.describe()
    );
    run_ok_insecure(&url);
}

/// `--insecure` connects whatever the certificate.
fn run_ok_insecure(url: &str) {
    let run = idle_run(url, &["--insecure"]);
    run.assert_code(0);
    assert_eq!(run.totals().u("connects_ok"), 3, "{}", run.describe());
}
