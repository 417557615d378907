//! The certificate SIP over TLS presents: read from the PEM files `[sip] tls_certificate` and
//! `tls_key` name, at start and again on SIGHUP. And the roots a carrier's certificate is
//! checked against when hotline connects to a TLS trunk.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A TLS server config for the chain in `certificate` and the key in `key`; the error says
/// which file is wrong and why.
pub fn load(certificate: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(certificate)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| format!("[sip] tls_certificate {}: {e}", certificate.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "[sip] tls_certificate {}: no certificate in it (a PEM file with BEGIN CERTIFICATE)",
            certificate.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("[sip] tls_key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("[sip] tls_certificate and tls_key do not go together: {e}"))?;
    Ok(Arc::new(config))
}

/// A TLS client config trusting the certificates in `ca_file` (a PEM file), else the
/// system's roots; the error says which file is wrong, or that the system has no roots.
pub fn client(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(file) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(file)
                .and_then(|certs| certs.collect::<Result<_, _>>())
                .map_err(|e| format!("ca_file {}: {e}", file.display()))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!(
                    "ca_file {}: no certificate in it (a PEM file with BEGIN CERTIFICATE)",
                    file.display()
                ));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err("the system has no trusted root certificates (Debian: the ca-certificates package); give the trunk a ca_file".into());
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_or_wrong_files_are_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let nowhere = dir.path().join("nowhere.pem");
        let e = load(&nowhere, &nowhere).unwrap_err();
        assert!(
            e.contains("tls_certificate") && e.contains("nowhere.pem"),
            "{e}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = load(&empty, &empty).unwrap_err();
        assert!(e.contains("no certificate"), "{e}");
    }
}
