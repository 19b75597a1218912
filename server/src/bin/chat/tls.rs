//! `wss://` for the chat client: the TLS client side loadgen uses too
//! (`tlsclient`: Mozilla's roots, plus a private CA's with `--ca-file`, or
//! no verification with `--insecure`). The stream is made here and handed
//! to tokio-tungstenite's `client_async`, rather than enabling its TLS
//! features, so the workspace keeps one rustls set-up (ring, no aws-lc).

use std::path::Path;

use anyhow::Context;
use rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

/// The connector for `wss://` URLs; `ca_file` adds its certificates to the
/// trusted roots. A file that cannot be read or holds no certificate is
/// an error here, before anything connects.
pub fn connector(insecure: bool, ca_file: Option<&Path>) -> anyhow::Result<TlsConnector> {
    let extra_roots = match ca_file {
        Some(path) => {
            let pem = std::fs::read_to_string(path)
                .with_context(|| format!("--ca-file {}: cannot read it", path.display()))?;
            tlsclient::parse_ca_pem(&pem)
                .with_context(|| format!("--ca-file {}", path.display()))?
        }
        None => Vec::new(),
    };
    let config = tlsclient::client_config(insecure, &extra_roots).context("setting up TLS")?;
    Ok(TlsConnector::from(config))
}

/// The name the server's certificate must carry: the URL's host, without
/// the brackets of an IPv6 literal.
pub fn server_name(host: &str) -> anyhow::Result<ServerName<'static>> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_string())
        .with_context(|| format!("{host}: not a valid TLS server name"))
}
