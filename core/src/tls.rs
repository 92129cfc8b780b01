//! TLS client configuration for `wss://` (rustls with the `ring` provider).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
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

/// A client certificate chain (leaf first) and its private key, for servers that ask for one
/// (mutual TLS). Parsed and checked against each other when the config is built.
pub(crate) struct ClientIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Clone for ClientIdentity {
    fn clone(&self) -> Self {
        ClientIdentity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("certificates", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// Parse a client certificate chain and key from PEM (the key as PKCS#8, PKCS#1 RSA or SEC1
/// EC) and check that the key belongs to the leaf certificate. Errors name `cert_option` or
/// `key_option` (the option ids the PEM came from).
pub(crate) fn client_identity(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_option: &'static str,
    key_option: &'static str,
) -> Result<ClientIdentity, ConfigError> {
    let invalid = |option, problem: String| ConfigError::InvalidValue { option, problem };
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            invalid(
                cert_option,
                format!("the certificate PEM could not be parsed: {e}"),
            )
        })?;
    if chain.is_empty() {
        return Err(invalid(
            cert_option,
            "the certificate PEM contains no CERTIFICATE block".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
        invalid(
            key_option,
            format!("no private key (PKCS#8, PKCS#1 RSA or SEC1 EC PEM) could be read: {e}"),
        )
    })?;
    let provider = ring::default_provider();
    CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider).map_err(|e| {
        let problem = match e {
            rustls::Error::InconsistentKeys(_) => {
                "the private key does not belong to the client certificate".to_owned()
            }
            other => format!("the private key cannot be used: {other}"),
        };
        invalid(key_option, problem)
    })?;
    Ok(ClientIdentity { chain, key })
}

/// Build the rustls client config for a client. Called once per client, not per connect.
pub(crate) fn client_config(
    roots: &TlsRoots,
    insecure: bool,
    identity: Option<&ClientIdentity>,
) -> Result<Arc<rustls::ClientConfig>, ConfigError> {
    let provider = Arc::new(ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::Tls(e.to_string()))?;
    let builder = if insecure {
        tracing::warn!("TLS certificate verification is DISABLED (danger_accept_invalid_certs): use this only in tests");
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(
                provider.signature_verification_algorithms,
            )))
    } else {
        builder.with_root_certificates(root_store(roots)?)
    };
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(id) => builder
            .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
            .map_err(|e| ConfigError::Tls(format!("client certificate rejected: {e}")))?,
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
