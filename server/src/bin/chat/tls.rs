//! `wss://` for the chat client: rustls with Mozilla's roots, plus a
//! private CA's (`--ca-file`), or no verification (`--insecure`). The
//! stream is made here and handed to tokio-tungstenite's `client_async`,
//! rather than enabling its TLS features, so the workspace keeps one
//! rustls set-up (ring, no aws-lc) shared with loadgen.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::TlsConnector;

/// The connector for `wss://` URLs; `ca_file` adds its certificates to the
/// trusted roots. A file that cannot be read or holds no certificate is
/// an error here, before anything connects.
pub fn connector(insecure: bool, ca_file: Option<&Path>) -> anyhow::Result<TlsConnector> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("setting up TLS")?;
    let config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let mut roots =
            rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = ca_file {
            for cert in read_ca_file(path)? {
                roots
                    .add(cert)
                    .with_context(|| format!("--ca-file {}", path.display()))?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

fn read_ca_file(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path)
        .with_context(|| format!("--ca-file {}: cannot read it", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("--ca-file {}: not PEM", path.display()))?;
    if certs.is_empty() {
        bail!(
            "--ca-file {}: holds no certificate (expected PEM blocks \"-----BEGIN CERTIFICATE-----\")",
            path.display()
        );
    }
    Ok(certs)
}

/// The name the server's certificate must carry: the URL's host, without
/// the brackets of an IPv6 literal.
pub fn server_name(host: &str) -> anyhow::Result<ServerName<'static>> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_string())
        .with_context(|| format!("{host}: not a valid TLS server name"))
}

/// A handshake failure in words that name the way out: rustls's own text
/// for a self-signed certificate
/// (`invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))`)
/// names none.
pub fn describe(e: &std::io::Error) -> String {
    use rustls::CertificateError as C;
    let rustls_error = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    let Some(rustls::Error::InvalidCertificate(cert)) = rustls_error else {
        return format!("TLS: {e}");
    };
    let why = match cert {
        // webpki's errors arrive wrapped in Other, worded as their Debug
        // names. This one refuses a CA's certificate (`openssl req -x509`
        // makes one by default) as a server's own whether trusted or not,
        // so --ca-file cannot help.
        C::Other(other) if other.0.to_string() == "CaUsedAsEndEntity" => {
            "the server's certificate is a CA's (CA:TRUE, as openssl req -x509 makes), \
             refused even with --ca-file: serve one signed by that CA, or pass --insecure \
             for a test server"
        }
        C::UnknownIssuer | C::BadSignature | C::Other(_) => {
            "the server's certificate is not trusted (self-signed or from a private CA): \
             pass --ca-file with the CA's PEM, or --insecure for a test server"
        }
        C::Expired | C::ExpiredContext { .. } => "the server's certificate has expired",
        C::NotValidYet | C::NotValidYetContext { .. } => {
            "the server's certificate is not valid yet (is this machine's clock right?)"
        }
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            "the server's certificate does not name the URL's host"
        }
        C::Revoked => "the server's certificate is revoked",
        _ => return format!("TLS: {e}"),
    };
    format!("TLS: {why}")
}

/// `--insecure`: a verifier that accepts any certificate, but still checks
/// the handshake signatures with the provider's algorithms.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
