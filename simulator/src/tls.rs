//! TLS for both sides: the gateway's server configuration (from PEM files or a self-signed
//! certificate made at start), and client configurations that trust a given PEM certificate.
//!
//! rustls with the `ring` provider only. The self-signed certificate names `localhost`,
//! `127.0.0.1` and `::1`, so a client on the same machine can trust exactly it.

use std::sync::Arc;

use rustls::crypto::ring::default_provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{Result, SimError};

/// The names the self-signed certificate covers.
pub const SELF_SIGNED_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// A certificate chain and key, as PEM text.
#[derive(Clone)]
pub struct PemPair {
    /// Certificate chain, PEM.
    pub cert_pem: String,
    /// Private key, PEM. Never logged.
    key_pem: alipay::Secret<String>,
}

impl std::fmt::Debug for PemPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PemPair(cert, ***)")
    }
}

impl PemPair {
    /// A pair from PEM text.
    pub fn new(cert_pem: String, key_pem: String) -> PemPair {
        PemPair {
            cert_pem,
            key_pem: alipay::Secret::new(key_pem),
        }
    }

    /// The private key, PEM (to hand to another server, such as a test's nginx).
    pub fn key_pem(&self) -> &str {
        self.key_pem.expose()
    }

    /// A fresh self-signed certificate for [`SELF_SIGNED_NAMES`].
    pub fn self_signed() -> Result<PemPair> {
        let names: Vec<String> = SELF_SIGNED_NAMES.iter().map(|n| (*n).to_owned()).collect();
        let certified = rcgen::generate_simple_self_signed(names)
            .map_err(|e| SimError::Tls(format!("cannot make a self-signed certificate: {e}")))?;
        Ok(PemPair::new(
            certified.cert.pem(),
            certified.key_pair.serialize_pem(),
        ))
    }

    /// The rustls server configuration (HTTP/1.1 only).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>> {
        let certs = parse_certs(self.cert_pem.as_bytes())?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.expose().as_bytes())
            .map_err(|e| SimError::Tls(format!("cannot read the TLS private key: {e}")))?;
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| SimError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| SimError::Tls(format!("certificate and key do not fit: {e}")))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

fn parse_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| SimError::Tls(format!("cannot read a PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(SimError::Tls("no certificate in the PEM text".to_owned()));
    }
    Ok(certs)
}

/// A client configuration trusting exactly the certificates in `trust_pem`.
pub fn client_config(trust_pem: &[u8]) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in parse_certs(trust_pem)? {
        roots
            .add(cert)
            .map_err(|e| SimError::Tls(format!("cannot trust the certificate: {e}")))?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| SimError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
