//! TLS on the API, served by the node itself (rustls), and the local
//! certificate authority `rr-node localnet` makes for its replicas.
//!
//! A replica's certificate and key come from PEM files (`[tls]` in
//! `node.toml`, or `--tls-cert`/`--tls-key` for `rr-node dev`). Clients pin
//! the CA that issued them: `cluster.json` carries it (`ca`), and
//! [`crate::http::HttpClient::with_ca`] trusts that CA and no other.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::api::NodeError;

fn setup(what: impl std::fmt::Display) -> NodeError {
    NodeError::Setup(what.to_string())
}

/// A rustls server configuration serving `cert_pem` (the chain, leaf first)
/// with `key_pem`, over TLS 1.3 and 1.2, HTTP/1.1.
pub fn server_config(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<rustls::ServerConfig>, NodeError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| setup(format!("the TLS certificate is not PEM: {e}")))?;
    if chain.is_empty() {
        return Err(setup("the TLS certificate file holds no certificate"));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| setup(format!("the TLS key is not a PEM private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| setup(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            setup(format!(
                "the TLS certificate and key do not go together: {e}"
            ))
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// [`server_config`] from PEM files.
pub fn server_config_from_files(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<Arc<rustls::ServerConfig>, NodeError> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| setup(format!("cannot read {}: {e}", p.display())))
    };
    server_config(&read(cert)?, &read(key)?)
}

/// A certificate authority of one's own, for a local or private cluster:
/// it issues each replica's API certificate, and clients pin it.
pub struct LocalCa {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl std::fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCa").finish_non_exhaustive()
    }
}

/// A certificate and its private key, PEM.
#[derive(Clone)]
pub struct IssuedCert {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key (keep it 0600).
    pub key_pem: zeroize::Zeroizing<String>,
}

impl std::fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCert").finish_non_exhaustive()
    }
}

impl LocalCa {
    /// A new CA named `name` (ECDSA P-256), valid for ten years.
    pub fn generate(name: &str) -> Result<Self, NodeError> {
        let key = rcgen::KeyPair::generate().map_err(|e| setup(format!("CA key: {e}")))?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
            .map_err(|e| setup(format!("CA: {e}")))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let now = std::time::SystemTime::now();
        params.not_before = now.into();
        params.not_after = (now + std::time::Duration::from_secs(10 * 365 * 24 * 3600)).into();
        let issuer = rcgen::CertifiedIssuer::self_signed(params, key)
            .map_err(|e| setup(format!("CA certificate: {e}")))?;
        Ok(Self { issuer })
    }

    /// The CA's certificate, PEM: what clients pin.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `names` (DNS names or IP addresses, such as
    /// `127.0.0.1` and `localhost`), valid for ten years.
    pub fn issue(&self, names: &[String]) -> Result<IssuedCert, NodeError> {
        let key = rcgen::KeyPair::generate().map_err(|e| setup(format!("TLS key: {e}")))?;
        let mut params = rcgen::CertificateParams::new(names.to_vec())
            .map_err(|e| setup(format!("certificate names {names:?}: {e}")))?;
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "rr-node replica API");
        // Strict verifiers (OpenSSL's X509_V_FLAG_X509_STRICT, Python 3.13's
        // default context) refuse a certificate a CA issued without the
        // authority key identifier.
        params.use_authority_key_identifier_extension = true;
        let now = std::time::SystemTime::now();
        params.not_before = now.into();
        params.not_after = (now + std::time::Duration::from_secs(10 * 365 * 24 * 3600)).into();
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| setup(format!("signing the certificate: {e}")))?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: zeroize::Zeroizing::new(key.serialize_pem()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;

    /// The DER of the first certificate in `pem`.
    fn der(pem: &str) -> Vec<u8> {
        CertificateDer::pem_slice_iter(pem.as_bytes())
            .next()
            .expect("a certificate")
            .expect("PEM")
            .to_vec()
    }

    /// Whether `der` holds the extension whose OID ends in 2.5.29.`id`.
    fn has_extension(der: &[u8], id: u8) -> bool {
        der.windows(5).any(|w| w == [0x06, 0x03, 0x55, 0x1d, id])
    }

    #[test]
    fn issued_certificates_name_their_issuer_key_for_strict_verifiers() {
        let ca = LocalCa::generate("test CA").unwrap();
        let cert = ca
            .issue(&["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
        let leaf = der(&cert.cert_pem);
        // 2.5.29.35: authority key identifier (X509_V_FLAG_X509_STRICT,
        // Python 3.13's default, refuses a CA-issued certificate without
        // it); 2.5.29.15: key usage; 2.5.29.17: subject alternative names.
        assert!(has_extension(&leaf, 35), "no authority key identifier");
        assert!(has_extension(&leaf, 15), "no key usage");
        assert!(has_extension(&leaf, 17), "no subject alternative names");
        // The CA has its subject key identifier, which the leaf's names.
        assert!(has_extension(&der(&ca.cert_pem()), 14));
    }
}
