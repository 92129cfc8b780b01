//! TLS material for `wss://` test peers: a throw-away CA plus a `localhost`
//! leaf certificate, and the rustls server configuration built from them.

use std::io;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A server identity for a TLS peer: a PEM certificate chain (leaf first) and
/// the PEM private key of the leaf certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsIdentity {
    /// PEM-encoded certificate chain, leaf certificate first.
    pub cert_chain_pem: String,
    /// PEM-encoded private key (PKCS#8, SEC1 or PKCS#1) of the leaf certificate.
    pub key_pem: String,
}

/// Generates a fresh, throw-away certificate authority and a server identity
/// signed by it.
///
/// The leaf certificate is valid for the DNS name `localhost` and the IP
/// address `127.0.0.1`. Returns the server identity and the PEM of the CA
/// certificate, which a client must trust as a custom root to connect to a
/// peer started with this identity.
///
/// # Panics
///
/// Panics if key generation or signing fails (which would be a bug in the
/// crypto backend, not a plausible runtime condition).
pub fn self_signed_identity() -> (TlsIdentity, String) {
    let ca_key = KeyPair::generate().expect("rcgen: generating the CA key pair must not fail");
    let mut ca_params = CertificateParams::new(Vec::<String>::new())
        .expect("rcgen: empty subject alt names are always valid");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Tether test CA");
    ca_params
        .distinguished_name
        .push(DnType::OrganizationName, "Tether test peers");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key)
        .expect("rcgen: self-signing the test CA must not fail");

    let leaf_key = KeyPair::generate().expect("rcgen: generating the leaf key pair must not fail");
    let mut leaf_params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("rcgen: `localhost` and `127.0.0.1` are valid subject alt names");
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf_params.is_ca = IsCa::ExplicitNoCa;
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf_params.use_authority_key_identifier_extension = true;
    let leaf = leaf_params
        .signed_by(&leaf_key, &ca)
        .expect("rcgen: signing the leaf certificate with the test CA must not fail");

    let identity = TlsIdentity {
        cert_chain_pem: leaf.pem(),
        key_pem: leaf_key.serialize_pem(),
    };
    (identity, ca.pem())
}

fn invalid(what: &str, err: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("{what}: {err}"))
}

/// Generates a fresh, throw-away CA and a client identity (a certificate for client
/// authentication, CN `tether test client`) signed by it, for mutual TLS tests. Returns the
/// identity and the CA's PEM, which a peer started with
/// [`PeerOptions::client_ca`](crate::PeerOptions::client_ca) trusts.
///
/// # Panics
///
/// Panics if key generation or signing fails (a bug in the crypto backend).
pub fn client_identity() -> (TlsIdentity, String) {
    let ca_key = KeyPair::generate().expect("rcgen: generating the CA key pair must not fail");
    let mut ca_params = CertificateParams::new(Vec::<String>::new())
        .expect("rcgen: empty subject alt names are always valid");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Tether test client CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key)
        .expect("rcgen: self-signing the test CA must not fail");
    let key = KeyPair::generate().expect("rcgen: generating the client key pair must not fail");
    let mut params = CertificateParams::new(Vec::<String>::new())
        .expect("rcgen: empty subject alt names are always valid");
    params
        .distinguished_name
        .push(DnType::CommonName, "tether test client");
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    let cert = params
        .signed_by(&key, &ca)
        .expect("rcgen: signing the client certificate must not fail");
    (
        TlsIdentity {
            cert_chain_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        },
        ca.pem(),
    )
}

/// Builds a rustls server configuration (ring provider) from `identity`; with `client_ca`,
/// a client certificate signed by that CA is required.
pub(crate) fn server_config(
    identity: &TlsIdentity,
    client_ca: Option<&str>,
) -> io::Result<Arc<rustls::ServerConfig>> {
    let certs = CertificateDer::pem_slice_iter(identity.cert_chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid("invalid certificate chain PEM", e))?;
    if certs.is_empty() {
        return Err(invalid(
            "invalid certificate chain PEM",
            "no CERTIFICATE block found",
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes())
        .map_err(|e| invalid("invalid private key PEM", e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("rustls protocol versions", e))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| invalid("invalid client CA PEM", e))?;
                roots
                    .add(cert)
                    .map_err(|e| invalid("client CA rejected", e))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| invalid("client certificate verifier", e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| invalid("certificate and key rejected by rustls", e))?;
    Ok(Arc::new(config))
}
