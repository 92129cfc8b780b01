//! Making one connection: resolve, TCP, TLS, HTTP upgrade, all under `connect_timeout`
//! (tokio-tungstenite has no timeout of its own).
//!
//! TCP tries the host's addresses the Happy Eyeballs way (RFC 8305 §5): one at a time, the
//! next started alongside when the previous has not connected within `happy_eyeballs_delay`
//! (or at once when it failed), the first to connect wins and the others are dropped. The
//! connector remembers across attempts which address worked and which were slow or failed, so
//! a retry starts with the one that worked and leaves a black hole for last.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::stream::{FuturesUnordered, StreamExt};

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
    /// What earlier attempts taught about the host's addresses. Locked only between awaits.
    memory: Mutex<AddressMemory>,
}

/// Most addresses remembered as demoted: enough for any real host, bounded if DNS churns.
const MAX_DEMOTED: usize = 32;

/// Address preferences learnt from earlier connects of this client.
#[derive(Debug, Default)]
struct AddressMemory {
    /// The address of the last successful TCP connect, tried first next time.
    last_good: Option<SocketAddr>,
    /// Addresses that failed or did not connect within the attempt delay, the one demoted
    /// longest ago first: they are tried after all others, in that order, so successive
    /// retries rotate through them instead of repeating the same one first.
    demoted: Vec<SocketAddr>,
}

impl AddressMemory {
    /// The order to try `addrs` in: families interleaved (RFC 8305 §4), then the address that
    /// worked last, the untried or never-failed ones, and the demoted ones last.
    fn order(&self, addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
        let mut ordered = interleave_families(addrs);
        ordered.sort_by_key(|a| {
            if Some(*a) == self.last_good {
                0
            } else {
                match self.demoted.iter().position(|d| d == a) {
                    None => 1,
                    Some(i) => 2 + i,
                }
            }
        });
        ordered
    }

    fn worked(&mut self, addr: SocketAddr) {
        self.last_good = Some(addr);
        self.demoted.retain(|d| *d != addr);
    }

    fn demote(&mut self, addr: SocketAddr) {
        if self.last_good == Some(addr) {
            self.last_good = None;
        }
        self.demoted.retain(|d| *d != addr);
        if self.demoted.len() == MAX_DEMOTED {
            self.demoted.remove(0);
        }
        self.demoted.push(addr);
    }
}

/// Drop duplicates and alternate address families, starting with the family of the first
/// address (RFC 8305 §4, "First Address Family Count" 1), so one broken family cannot hold up
/// the other for more than one attempt delay.
fn interleave_families(addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let mut unique: Vec<SocketAddr> = Vec::with_capacity(addrs.len());
    for a in addrs {
        if !unique.contains(&a) {
            unique.push(a);
        }
    }
    let Some(first) = unique.first() else {
        return unique;
    };
    let first_v6 = first.is_ipv6();
    let (mut same, mut other): (Vec<_>, Vec<_>) =
        unique.into_iter().partition(|a| a.is_ipv6() == first_v6);
    let mut out = Vec::with_capacity(same.len() + other.len());
    same.reverse();
    other.reverse();
    loop {
        match (same.pop(), other.pop()) {
            (None, None) => break,
            (a, b) => out.extend(a.into_iter().chain(b)),
        }
    }
    out
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
        Ok(Connector {
            config,
            tls,
            memory: Mutex::default(),
        })
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
        let addrs: Vec<_> = match &self.config.resolve {
            Some(pinned) => pinned.clone(),
            None => tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|e| ConnectError::Resolve(format!("{host}: {e}")))?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(ConnectError::Resolve(format!("{host}: no addresses")));
        }
        let tcp = self.connect_tcp(addrs).await?;
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

impl Connector {
    fn remember(&self) -> std::sync::MutexGuard<'_, AddressMemory> {
        // The memory is only a preference: a panic elsewhere cannot leave it unusable.
        self.memory.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Happy Eyeballs over `addrs` (see the module doc). Cancelled with the whole attempt when
    /// `connect_timeout` runs out; the memory is updated as things happen, so what was learnt
    /// before the timeout is kept.
    async fn connect_tcp(&self, addrs: Vec<SocketAddr>) -> Result<TcpStream, ConnectError> {
        let addrs = self.remember().order(addrs);
        let delay = self.config.happy_eyeballs_delay;
        let mut attempts = FuturesUnordered::new();
        let mut next = 0;
        let mut errors: Vec<String> = Vec::new();
        let timer = tokio::time::sleep(delay);
        tokio::pin!(timer);
        // Each turn of the loop starts the next address: first at once, then after each
        // failure or each attempt delay that passed without a connection.
        loop {
            if next < addrs.len() {
                let addr = addrs[next];
                next += 1;
                tracing::debug!(%addr, "connecting");
                attempts.push(async move { (addr, TcpStream::connect(addr).await) });
                timer.as_mut().reset(tokio::time::Instant::now() + delay);
            }
            if attempts.is_empty() {
                // Every address was tried and failed.
                return Err(ConnectError::Io(errors.join("; ")));
            }
            tokio::select! {
                Some((addr, result)) = attempts.next() => match result {
                    Ok(stream) => {
                        self.remember().worked(addr);
                        if next > 1 {
                            tracing::info!(%addr, tried = next, "connected to a fallback address");
                        }
                        return Ok(stream);
                    }
                    Err(e) => {
                        tracing::debug!(%addr, error = %e, "address failed");
                        self.remember().demote(addr);
                        errors.push(format!("{addr}: {e}"));
                        // RFC 8305 §5: a failure starts the next attempt without waiting.
                    }
                },
                () = &mut timer, if next < addrs.len() => {
                    // The newest attempt is slow (maybe a black hole): keep it going, start
                    // the next alongside, and try it later next time unless it wins now.
                    let slow = addrs[next - 1];
                    tracing::debug!(addr = %slow, ?delay, "no connection yet, trying the next address too");
                    self.remember().demote(slow);
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn families_alternate_starting_with_the_first_one() {
        let got = interleave_families(vec![
            addr("[::1]:1"),
            addr("[::2]:1"),
            addr("[::3]:1"),
            addr("10.0.0.1:1"),
            addr("[::1]:1"),
            addr("10.0.0.2:1"),
        ]);
        assert_eq!(
            got,
            [
                addr("[::1]:1"),
                addr("10.0.0.1:1"),
                addr("[::2]:1"),
                addr("10.0.0.2:1"),
                addr("[::3]:1"),
            ]
        );
        assert!(interleave_families(Vec::new()).is_empty());
    }

    #[test]
    fn the_address_that_worked_goes_first_and_demoted_ones_rotate_last() {
        let (a, b, c) = (addr("10.0.0.1:1"), addr("10.0.0.2:1"), addr("10.0.0.3:1"));
        let mut memory = AddressMemory::default();
        assert_eq!(memory.order(vec![a, b, c]), [a, b, c]);
        memory.demote(a);
        assert_eq!(memory.order(vec![a, b, c]), [b, c, a]);
        memory.worked(c);
        assert_eq!(memory.order(vec![a, b, c]), [c, b, a]);
        // The one that worked fails later: demoted behind the one demoted before it.
        memory.demote(c);
        memory.demote(b);
        assert_eq!(memory.order(vec![a, b, c]), [a, c, b]);
        memory.worked(a);
        assert_eq!(memory.order(vec![a, b, c]), [a, c, b]);
        // A remembered address that DNS no longer returns is ignored.
        assert_eq!(memory.order(vec![b]), [b]);
    }

    #[test]
    fn demoted_addresses_are_bounded() {
        let mut memory = AddressMemory::default();
        for port in 1..=(MAX_DEMOTED as u16 + 10) {
            memory.demote(SocketAddr::from(([10, 0, 0, 1], port)));
        }
        assert_eq!(memory.demoted.len(), MAX_DEMOTED);
        assert_eq!(memory.demoted[0].port(), 11);
    }
}
