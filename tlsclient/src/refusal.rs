//! A refused certificate in words.

use std::io;

/// The label of a failed TLS handshake. Certificate refusals, the common
/// case, get a sentence that names the way out, since rustls's own text
/// (`invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))`)
/// names none; each is fixed wording, so one cause stays one label.
/// Other TLS failures keep rustls's wording, which has no per-connection
/// details either.
pub fn describe(e: &io::Error) -> String {
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
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
            "the server's certificate is not one for a TLS server"
        }
        C::Revoked => "the server's certificate is revoked",
        C::BadEncoding => "the server's certificate is malformed",
        _ => "the server's certificate was refused",
    };
    format!("TLS: {why}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(cert: rustls::CertificateError) -> String {
        describe(&io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(cert),
        ))
    }

    #[test]
    fn a_refused_certificate_names_the_way_out_and_other_failures_keep_rustls_words() {
        assert!(refused(rustls::CertificateError::UnknownIssuer).contains("pass --ca-file"));
        assert_eq!(
            refused(rustls::CertificateError::Expired),
            "TLS: the server's certificate has expired"
        );
        let alert = rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure);
        assert_eq!(
            describe(&io::Error::new(io::ErrorKind::InvalidData, alert)),
            "TLS: received fatal alert: HandshakeFailure"
        );
    }
}
