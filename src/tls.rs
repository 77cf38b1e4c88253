//! TLS for our own HTTP listeners (the API and `/metrics`): a PEM certificate chain and key
//! loaded into a rustls server config on ring (never aws-lc, like reqwest here). Loading
//! happens during config validation, so a bad file stops the start before any socket is bound.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A loaded key pair, ready for a listener.
#[derive(Clone)]
pub struct TlsConfig(Arc<rustls::ServerConfig>);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: no PEM certificate found ({reason})")]
    Certificate { path: String, reason: String },
    #[error("{path}: no PEM private key found ({reason})")]
    Key { path: String, reason: String },
    #[error("certificate and key do not make a TLS config: {0}")]
    Rustls(#[from] rustls::Error),
}

impl TlsError {
    /// Whether the key file, rather than the certificate, is at fault.
    pub fn is_about_key(&self) -> bool {
        matches!(self, TlsError::Key { .. } | TlsError::Rustls(_))
    }
}

impl TlsConfig {
    /// Reads `cert` (a PEM chain, leaf first) and `key` (PEM PKCS#8, PKCS#1 or SEC1).
    pub fn load(cert: &Path, key: &Path) -> Result<TlsConfig, TlsError> {
        let cert_err = |reason: String| TlsError::Certificate {
            path: cert.display().to_string(),
            reason,
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|e| cert_err(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| cert_err(e.to_string()))?;
        if chain.is_empty() {
            return Err(cert_err("the file holds no CERTIFICATE block".into()));
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
            path: key.display().to_string(),
            reason: e.to_string(),
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        Ok(TlsConfig(Arc::new(config)))
    }

    /// The rustls config (actix-web takes it by value).
    pub fn server_config(&self) -> rustls::ServerConfig {
        (*self.0).clone()
    }
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsConfig(..)")
    }
}
