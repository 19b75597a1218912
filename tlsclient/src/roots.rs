//! The certificates of a `--ca-file`, as trusted roots.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// Why a `--ca-file`'s contents cannot serve as trusted roots.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("not PEM: {0}")]
    Pem(String),
    #[error("certificate {0} cannot be a trusted root: {1}")]
    Unusable(usize, rustls::Error),
    #[error("holds no certificate (expected PEM blocks \"-----BEGIN CERTIFICATE-----\")")]
    Empty,
}

/// The certificates of a PEM text (`--ca-file`'s contents, which travel
/// in the run options to workers and agents rather than the path, so no
/// process reads a file on another's say-so). Other PEM blocks (a key
/// left in the same file) are skipped; no certificate at all is an error,
/// since trusting nothing new is surely not what was meant.
pub fn parse_ca_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>, CaError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CaError::Pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(CaError::Empty);
    }
    // What `client_config` will do with them, so that a block of garbage
    // fails here, before anything connects, and not in every worker.
    let mut roots = rustls::RootCertStore::empty();
    for (i, cert) in certs.iter().enumerate() {
        roots
            .add(cert.clone())
            .map_err(|e| CaError::Unusable(i + 1, e))?;
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_a_certificate_or_with_garbage_is_refused() {
        assert!(matches!(parse_ca_pem(""), Err(CaError::Empty)));
        assert!(matches!(
            parse_ca_pem("no certificate here\n"),
            Err(CaError::Empty)
        ));
        let garbage = "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n";
        assert!(parse_ca_pem(garbage).is_err());
    }
}
