//! TLS client configuration for `wss://` (rustls with the `ring` provider).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config::TlsRoots;
use crate::error::ConfigError;

/// Parse every certificate in a PEM bundle; an empty or unparsable bundle is an error.
pub(crate) fn parse_ca_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConfigError::Tls(format!("CA PEM could not be parsed: {e}")))?;
    if certs.is_empty() {
        return Err(ConfigError::Tls(
            "CA PEM contains no CERTIFICATE block".into(),
        ));
    }
    Ok(certs)
}

fn root_store(roots: &TlsRoots) -> Result<RootCertStore, ConfigError> {
    let mut store = RootCertStore::empty();
    match roots {
        TlsRoots::WebPki => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        TlsRoots::System => {
            let loaded = rustls_native_certs::load_native_certs();
            if !loaded.errors.is_empty() {
                tracing::warn!(errors = ?loaded.errors, "some system root certificates could not be loaded");
            }
            let (added, _ignored) = store.add_parsable_certificates(loaded.certs);
            if added == 0 {
                tracing::warn!(
                    "no usable system root certificates; using the bundled Mozilla roots"
                );
                store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
        }
        TlsRoots::CustomCa(pem) => {
            for cert in parse_ca_pem(pem)? {
                store
                    .add(cert)
                    .map_err(|e| ConfigError::Tls(format!("CA certificate rejected: {e}")))?;
            }
        }
    }
    Ok(store)
}

/// Build the rustls client config for a client. Called once per client, not per connect.
pub(crate) fn client_config(
    roots: &TlsRoots,
    insecure: bool,
) -> Result<Arc<rustls::ClientConfig>, ConfigError> {
    let provider = Arc::new(ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::Tls(e.to_string()))?;
    let config = if insecure {
        tracing::warn!("TLS certificate verification is DISABLED (danger_accept_invalid_certs): use this only in tests");
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(
                provider.signature_verification_algorithms,
            )))
            .with_no_client_auth()
    } else {
        builder
            .with_root_certificates(root_store(roots)?)
            .with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// The verifier behind `danger_accept_invalid_certs`: accepts any certificate chain but still
/// checks handshake signatures, so the connection is at least internally consistent.
#[derive(Debug)]
struct AcceptAnyCert(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
