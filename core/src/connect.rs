//! Making one connection: resolve, TCP, TLS, HTTP upgrade, all under `connect_timeout`
//! (tokio-tungstenite has no timeout of its own).

use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::http::header::{HeaderValue, LOCATION, SEC_WEBSOCKET_PROTOCOL};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::config::Config;
use crate::error::ConnectError;
use crate::meter::{Metered, WriteMeter};

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<Metered>>;

/// The byte counter of the link's TCP socket (under TLS, so it counts what the network took).
pub(crate) fn write_meter(ws: &Ws) -> Option<WriteMeter> {
    match ws.get_ref() {
        MaybeTlsStream::Plain(tcp) => Some(tcp.meter()),
        MaybeTlsStream::Rustls(tls) => Some(tls.get_ref().0.meter()),
        _ => None,
    }
}

/// Per-client connection parameters prepared once (the TLS config is costly to build).
pub(crate) struct Connector {
    config: Arc<Config>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Connector {
    pub(crate) fn new(config: Arc<Config>) -> Result<Self, crate::ConfigError> {
        let tls = if config.url.scheme() == "wss" {
            Some(crate::tls::client_config(
                &config.tls_roots,
                config.tls_insecure,
            )?)
        } else {
            None
        };
        Ok(Connector { config, tls })
    }

    /// The tungstenite settings: inbound limits, and a bounded write buffer.
    fn ws_config(&self) -> WebSocketConfig {
        let c = &self.config;
        let write_buffer = c.write_batch_bytes.min(128 << 10);
        WebSocketConfig::default()
            .read_buffer_size(c.read_buffer_size)
            .write_buffer_size(write_buffer)
            // Room for one full batch plus the largest message on top of the target size.
            .max_write_buffer_size(
                write_buffer + c.write_batch_bytes + c.max_outbound_message_size + (64 << 10),
            )
            .max_message_size(Some(c.max_inbound_message_size))
            .max_frame_size(Some(c.max_inbound_frame_size))
    }

    /// Connect once. Returns the stream and the subprotocol the server chose.
    pub(crate) async fn connect(&self) -> Result<(Ws, Option<String>), ConnectError> {
        let timeout = self.config.connect_timeout;
        match tokio::time::timeout(timeout, self.connect_inner()).await {
            Ok(result) => result,
            Err(_) => Err(ConnectError::Timeout(timeout)),
        }
    }

    async fn connect_inner(&self) -> Result<(Ws, Option<String>), ConnectError> {
        let url = &self.config.url;
        let port = url.port_or_known_default().unwrap_or(80);
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_string(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => a.to_string(),
            None => return Err(ConnectError::Resolve("no host".into())),
        };
        let addrs: Vec<_> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| ConnectError::Resolve(format!("{host}: {e}")))?
            .collect();
        if addrs.is_empty() {
            return Err(ConnectError::Resolve(format!("{host}: no addresses")));
        }
        let mut last_err = None;
        let mut tcp = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last_err = Some(format!("{addr}: {e}")),
            }
        }
        let tcp = tcp.ok_or_else(|| ConnectError::Io(last_err.unwrap_or_default()))?;
        // Small messages must not wait for Nagle; batching is done by the session's flushes.
        tcp.set_nodelay(true)
            .map_err(|e| ConnectError::Io(e.to_string()))?;
        limit_unsent(&tcp);
        let tcp = Metered::new(tcp);

        let stream = match &self.tls {
            None => MaybeTlsStream::Plain(tcp),
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from(host.clone())
                    .map_err(|e| ConnectError::Tls(format!("invalid server name {host:?}: {e}")))?;
                let tls_stream = tokio_rustls::TlsConnector::from(tls.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| ConnectError::Tls(e.to_string()))?;
                MaybeTlsStream::Rustls(tls_stream)
            }
        };

        let mut request = url.as_str().into_client_request().map_err(|e| {
            ConnectError::Handshake(format!("cannot build the upgrade request: {e}"))
        })?;
        for (name, value) in &self.config.headers {
            request.headers_mut().append(name.clone(), value.clone());
        }
        if !self.config.subprotocols.is_empty() {
            let offered = HeaderValue::from_str(&self.config.subprotocols.join(", "))
                .map_err(|e| ConnectError::Handshake(format!("bad subprotocol list: {e}")))?;
            request
                .headers_mut()
                .insert(SEC_WEBSOCKET_PROTOCOL, offered);
        }
        let (ws, response) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(self.ws_config()))
                .await
                .map_err(map_handshake_error)?;
        let protocol = response
            .headers()
            .get(SEC_WEBSOCKET_PROTOCOL)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok((ws, protocol))
    }
}

/// At most this many bytes that have not even been sent wait in the kernel's send buffer.
///
/// Without a bound the kernel takes a whole multi-MiB message at once on a fast local path
/// (loopback grows the buffer to 4 MiB) and the write looks finished while the bytes are still
/// queued: a ping written after it waits behind them, invisible to the heartbeat. With it the
/// write stays pending while the message trickles out, which the heartbeat sees as progress,
/// and a ping waits behind at most this much. Data in flight (sent, not yet acknowledged) is
/// not counted, so throughput on long fat links is not capped.
const NOTSENT_LOWAT: u32 = 128 << 10;

/// Best effort: where the option does not exist the kernel's default applies.
fn limit_unsent(tcp: &TcpStream) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Err(e) = socket2::SockRef::from(tcp).set_tcp_notsent_lowat(NOTSENT_LOWAT) {
        tracing::debug!(error = %e, "TCP_NOTSENT_LOWAT not set");
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = (tcp, NOTSENT_LOWAT);
}

fn map_handshake_error(e: WsError) -> ConnectError {
    match e {
        WsError::Http(response) => ConnectError::HttpStatus {
            status: response.status().as_u16(),
            location: response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        },
        WsError::Io(io) => ConnectError::Io(io.to_string()),
        WsError::Tls(t) => ConnectError::Tls(t.to_string()),
        // The peer hung up mid-upgrade: a network failure (retryable), not a bad server.
        WsError::Protocol(ProtocolError::HandshakeIncomplete) => {
            ConnectError::Io("connection closed during the upgrade".into())
        }
        WsError::ConnectionClosed | WsError::AlreadyClosed => {
            ConnectError::Io("connection closed during the upgrade".into())
        }
        other => ConnectError::Handshake(other.to_string()),
    }
}
