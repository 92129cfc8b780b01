//! Client-side helpers shared by the integration tests: a tokio-tungstenite
//! client in a small runtime, with every wait bounded.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

/// The client stream type used by the tests.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Bound on every single wait in the tests.
pub const T: Duration = Duration::from_secs(5);

/// A small single-threaded runtime for the test's client side.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("building a current-thread tokio runtime")
}

/// Connects (bounded), returning the client's result.
pub async fn try_connect(url: &str) -> Result<Ws, WsError> {
    tokio::time::timeout(T, tokio_tungstenite::connect_async(url))
        .await
        .expect("connect timed out")
        .map(|(ws, _response)| ws)
}

/// Connects (bounded); panics on failure.
pub async fn connect(url: &str) -> Ws {
    try_connect(url).await.expect("connect failed")
}

/// Connects with a client-side message/frame size limit.
pub async fn connect_with_limit(url: &str, limit: usize) -> Ws {
    let config = WebSocketConfig::default()
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit));
    tokio::time::timeout(
        T,
        tokio_tungstenite::connect_async_with_config(url, Some(config), false),
    )
    .await
    .expect("connect timed out")
    .expect("connect failed")
    .0
}

/// A rustls client connector trusting only `ca_pem` (ring provider).
pub fn connector_trusting(ca_pem: Option<&str>) -> Connector {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca_pem) = ca_pem {
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots
                .add(cert.expect("CA PEM parses"))
                .expect("CA certificate is accepted as a root");
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Connector::Rustls(Arc::new(config))
}

/// Connects over TLS with `connector` (bounded), returning the result.
pub async fn try_connect_tls(url: &str, connector: Connector) -> Result<Ws, WsError> {
    tokio::time::timeout(
        T,
        tokio_tungstenite::connect_async_tls_with_config(url, None, false, Some(connector)),
    )
    .await
    .expect("TLS connect timed out")
    .map(|(ws, _response)| ws)
}

/// The next item of the stream (bounded).
pub async fn next(ws: &mut Ws) -> Option<Result<Message, WsError>> {
    tokio::time::timeout(T, ws.next())
        .await
        .expect("timed out waiting for the next message")
}

/// The next message that is not a ping/pong; panics on end or error.
pub async fn next_data(ws: &mut Ws) -> Message {
    loop {
        match next(ws).await {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(message)) => return message,
            other => panic!("expected a message, got {other:?}"),
        }
    }
}

/// Asserts that nothing arrives within `window` (a negative check: only a
/// bounded wait can show it).
pub async fn expect_silence(ws: &mut Ws, window: Duration) {
    if let Ok(item) = tokio::time::timeout(window, ws.next()).await {
        panic!("expected silence, got {item:?}");
    }
}
