//! `wss://`: loadgen over TLS against a real TLS WebSocket echo server
//! (tokio-rustls + tokio-tungstenite, a self-signed certificate made for
//! the test): certificates are verified by default, `--insecure` accepts a
//! self-signed one, and the echo figures are exact.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::run_json;
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A TLS echo server for `localhost` on an ephemeral port, on its own
/// thread; returns its `wss://localhost:PORT/` URL.
fn tls_echo_server() -> String {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert: CertificateDer<'static> = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
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
fn echo_over_tls_with_a_self_signed_certificate_and_insecure() {
    let url = tls_echo_server();
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
    let url = tls_echo_server();
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
