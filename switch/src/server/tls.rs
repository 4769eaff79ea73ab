//! The HTTPS listener's rustls configuration: from PEM files, or a self-signed certificate made
//! at start for local use.
//!
//! rustls with the `ring` provider, HTTP/1.1 by ALPN. The self-signed certificate names
//! [`SELF_SIGNED_NAMES`], so a client on the same machine can trust exactly it; its PEM is
//! written for such clients. Errors name files, never key material.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::ring::default_provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The names the self-signed certificate covers.
pub const SELF_SIGNED_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// A TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A PEM file holds no usable certificate or key.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong (no key material).
        message: String,
    },
    /// The certificate could not be made, or does not fit its key.
    #[error("TLS: {0}")]
    Config(String),
}

/// A configuration with a fresh self-signed certificate for [`SELF_SIGNED_NAMES`]; its PEM is
/// written to `cert_out` (folders made, the file replaced whole) for clients to trust.
pub fn self_signed(cert_out: Option<&Path>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let names: Vec<String> = SELF_SIGNED_NAMES.iter().map(|n| (*n).to_owned()).collect();
    let certified = rcgen::generate_simple_self_signed(names)
        .map_err(|e| TlsError::Config(format!("cannot make a self-signed certificate: {e}")))?;
    if let Some(path) = cert_out {
        write_whole(path, certified.cert.pem().as_bytes())?;
    }
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    server_config(vec![certified.cert.der().clone()], key)
}

/// A configuration from a PEM certificate chain and its PEM private key.
pub fn tls_from_pem(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let cert_pem = read(cert)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem {
            path: cert.to_owned(),
            message: format!("not a PEM certificate chain: {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: cert.to_owned(),
            message: "no certificate in the file".to_owned(),
        });
    }
    let key_pem = alipay::Secret::new(read(key)?);
    let key_der = PrivateKeyDer::from_pem_slice(key_pem.expose()).map_err(|_| TlsError::Pem {
        path: key.to_owned(),
        message: "no PEM private key (PKCS#8, PKCS#1 or SEC1) in the file".to_owned(),
    })?;
    server_config(certs, key_der)
}

fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(format!("certificate and key do not fit: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::File {
        path: path.to_owned(),
        source,
    })
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`, so a client
/// never reads half a certificate.
fn write_whole(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    let fail = |source| TlsError::File {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_writes_a_certificate_that_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("sub/cert.pem");
        let _config = self_signed(Some(&out)).unwrap();
        let pem = std::fs::read(&out).unwrap();
        let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(certs.len(), 1);
    }

    #[test]
    fn pem_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, "not pem").unwrap();
        std::fs::write(&key, "not pem").unwrap();
        let e = tls_from_pem(&cert, &key).unwrap_err().to_string();
        assert!(e.contains("cert.pem"), "{e}");
        let missing = dir.path().join("missing.pem");
        let e = tls_from_pem(&missing, &key).unwrap_err().to_string();
        assert!(e.contains("missing.pem"), "{e}");
    }

    #[test]
    fn a_key_that_does_not_fit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = rcgen::generate_simple_self_signed(vec!["a".to_owned()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["b".to_owned()]).unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, a.cert.pem()).unwrap();
        std::fs::write(&key, b.key_pair.serialize_pem()).unwrap();
        assert!(tls_from_pem(&cert, &key).is_err());
        std::fs::write(&key, a.key_pair.serialize_pem()).unwrap();
        assert!(tls_from_pem(&cert, &key).is_ok());
    }
}
