//! Making one connection: credentials, resolve, TCP, the proxy's tunnel, TLS, HTTP upgrade,
//! all under `connect_timeout` (tokio-tungstenite has no timeout of its own).
//!
//! TCP tries the host's addresses the Happy Eyeballs way (RFC 8305 §5): one at a time, the
//! next started alongside when the previous has not connected within `happy_eyeballs_delay`
//! (or at once when it failed), the first to connect wins and the others are dropped. The
//! connector remembers across attempts which address worked and which were slow or failed, so
//! a retry starts with the one that worked and leaves a black hole for last.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::stream::{FuturesUnordered, StreamExt};

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::http::header::{
    HeaderName, HeaderValue, LOCATION, SEC_WEBSOCKET_PROTOCOL,
};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::config::{Config, Protocol};
use crate::error::ConnectError;
use crate::meter::{Metered, WriteMeter};
use crate::proxy::{ProxyKind, Target};
use crate::reach::{ConnectAttempt, ConnectionInfo};

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

/// A connection made: the WebSocket, what was negotiated, and the envelope token to use.
pub(crate) struct Connected {
    pub(crate) ws: Ws,
    /// `connection` is 0 here: the session numbers connections.
    pub(crate) info: ConnectionInfo,
    /// The provider's token for this attempt, or the configured one.
    pub(crate) token: Option<String>,
    /// Caller-driven I/O on Unix: a duplicate of the TCP socket's descriptor, for an event
    /// loop that watches it (dropped as soon as the link ends).
    pub(crate) fd: Option<crate::shared::LinkFd>,
}

/// What the credentials provider gave for one attempt, checked.
#[derive(Default)]
struct Fresh {
    headers: Vec<(HeaderName, HeaderValue)>,
    token: Option<String>,
}

impl Connector {
    pub(crate) fn new(config: Arc<Config>) -> Result<Self, crate::ConfigError> {
        let tls = if config.url.scheme() == "wss" {
            Some(crate::tls::client_config(
                &config.tls_roots,
                config.tls_insecure,
                config.client_identity.as_ref(),
            )?)
        } else {
            None
        };
        if let Some(proxy) = &config.proxy {
            tracing::info!(proxy = %proxy.redacted_url(), source = %proxy.source, "connecting through a proxy");
        }
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

    /// Connect once: credentials, resolve, TCP (to the server or the proxy), the proxy's
    /// tunnel, TLS, upgrade, all within `connect_timeout`.
    pub(crate) async fn connect(
        &self,
        attempt: &ConnectAttempt,
    ) -> Result<Connected, ConnectError> {
        let timeout = self.config.connect_timeout;
        match tokio::time::timeout(timeout, self.connect_inner(attempt)).await {
            Ok(result) => result,
            Err(_) => Err(ConnectError::Timeout(timeout)),
        }
    }

    /// Run the credentials provider on a blocking thread, one call at a time.
    async fn credentials(&self, attempt: &ConnectAttempt) -> Result<Fresh, ConnectError> {
        let Some(slot) = self.config.credentials.clone() else {
            return Ok(Fresh::default());
        };
        let attempt = attempt.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let _one_at_a_time = slot.lock.lock().unwrap_or_else(PoisonError::into_inner);
            (slot.provider)(&attempt)
        })
        .await;
        let given = match joined {
            Ok(Ok(given)) => given,
            Ok(Err(e)) => return Err(ConnectError::Credentials(e)),
            Err(e) if e.is_panic() => {
                return Err(ConnectError::Credentials("the provider panicked".into()))
            }
            Err(e) => return Err(ConnectError::Credentials(e.to_string())),
        };
        let mut fresh = Fresh::default();
        for (name, value) in &given.headers {
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| ConnectError::Credentials(format!("bad header name {name:?}: {e}")))?;
            let v = HeaderValue::from_str(value).map_err(|e| {
                ConnectError::Credentials(format!("bad value for header {name:?}: {e}"))
            })?;
            fresh.headers.push((n, v));
        }
        if given.token.is_some() && self.config.protocol != Protocol::Envelope {
            return Err(ConnectError::Credentials(
                "a token is only sent in envelope mode (protocol=\"envelope\"); return headers in raw mode".into(),
            ));
        }
        fresh.token = given.token;
        Ok(fresh)
    }

    /// Addresses for `host:port`: the pinned ones, or DNS. `what` prefixes errors.
    async fn lookup(
        pinned: Option<&Vec<SocketAddr>>,
        host: &str,
        port: u16,
        what: &str,
    ) -> Result<Vec<SocketAddr>, ConnectError> {
        let addrs: Vec<_> = match pinned {
            Some(pinned) => pinned.clone(),
            None => tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| ConnectError::Resolve(format!("{what}{host}: {e}")))?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(ConnectError::Resolve(format!("{what}{host}: no addresses")));
        }
        Ok(addrs)
    }

    /// TCP to the server, or through the proxy's tunnel to it.
    async fn open_tcp(&self, host: &str, port: u16) -> Result<TcpStream, ConnectError> {
        let c = &self.config;
        let Some(proxy) = &c.proxy else {
            let addrs = Self::lookup(c.resolve.as_ref(), host, port, "").await?;
            return self.connect_tcp(addrs).await;
        };
        let name = proxy.name();
        let addrs =
            Self::lookup(c.proxy_resolve.as_ref(), &proxy.host, proxy.port, "proxy ").await?;
        let mut tcp = self.connect_tcp(addrs).await.map_err(|e| match e {
            ConnectError::Io(e) => ConnectError::Io(format!("proxy {name}: {e}")),
            other => other,
        })?;
        // What the tunnel leads to: an address pinned with `resolve` (the first), the name
        // for the proxy to resolve (HTTP, socks5h), or one this client resolved (socks5).
        let pinned = c.resolve.as_ref().and_then(|a| a.first()).map(|a| a.ip());
        let target = match (pinned, proxy.kind, host.parse::<IpAddr>()) {
            (_, _, Ok(ip)) => Target::Ip(ip),
            (Some(ip), _, _) => Target::Ip(ip),
            (None, ProxyKind::Socks5, _) => {
                let addrs = Self::lookup(None, host, port, "").await?;
                Target::Ip(addrs[0].ip())
            }
            (None, _, _) => Target::Name(host.to_owned()),
        };
        tracing::debug!(proxy = %name, ?target, "opening a tunnel");
        crate::proxy::tunnel(&mut tcp, proxy, &target, port).await?;
        Ok(tcp)
    }

    async fn connect_inner(&self, attempt: &ConnectAttempt) -> Result<Connected, ConnectError> {
        let fresh = self.credentials(attempt).await?;
        let url = &self.config.url;
        let port = url.port_or_known_default().unwrap_or(80);
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_string(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => a.to_string(),
            None => return Err(ConnectError::Resolve("no host".into())),
        };
        let tcp = self.open_tcp(&host, port).await?;
        let peer = tcp.peer_addr().ok();
        let fd = (self.config.io_driver == crate::config::IoDriver::Caller)
            .then(|| watch_fd(&tcp))
            .flatten();
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
                    .map_err(map_tls_error)?;
                MaybeTlsStream::Rustls(tls_stream)
            }
        };

        let request = self.request(fresh.headers)?;
        let (ws, response) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(self.ws_config()))
                .await
                .map_err(map_handshake_error)?;
        let subprotocol = response
            .headers()
            .get(SEC_WEBSOCKET_PROTOCOL)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let info = ConnectionInfo {
            connection: 0,
            subprotocol,
            headers,
            proxy: self.config.proxy.as_ref().map(|p| p.name()),
            peer,
        };
        let token = fresh
            .token
            .or_else(|| self.config.auth_token.as_ref().map(|t| t.0.clone()));
        Ok(Connected {
            ws,
            info,
            token,
            fd,
        })
    }

    /// The upgrade request: configured headers, this attempt's (replacing same-named ones),
    /// and the offered subprotocols.
    fn request(
        &self,
        fresh: Vec<(HeaderName, HeaderValue)>,
    ) -> Result<tokio_tungstenite::tungstenite::handshake::client::Request, ConnectError> {
        let mut request = self
            .config
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| {
                ConnectError::Handshake(format!("cannot build the upgrade request: {e}"))
            })?;
        let headers = request.headers_mut();
        for (name, value) in &self.config.headers {
            if !fresh.iter().any(|(n, _)| n == name) {
                headers.append(name.clone(), value.clone());
            }
        }
        for (name, value) in fresh {
            headers.append(name, value);
        }
        if !self.config.subprotocols.is_empty() {
            let offered = HeaderValue::from_str(&self.config.subprotocols.join(", "))
                .map_err(|e| ConnectError::Handshake(format!("bad subprotocol list: {e}")))?;
            headers.insert(SEC_WEBSOCKET_PROTOCOL, offered);
        }
        Ok(request)
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
/// A duplicate of the socket's descriptor, where there is one (Unix).
fn watch_fd(tcp: &TcpStream) -> Option<crate::shared::LinkFd> {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        tcp.as_fd().try_clone_to_owned().ok()
    }
    #[cfg(not(unix))]
    {
        let _ = tcp;
        None
    }
}

fn limit_unsent(tcp: &TcpStream) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Err(e) = socket2::SockRef::from(tcp).set_tcp_notsent_lowat(NOTSENT_LOWAT) {
        tracing::debug!(error = %e, "TCP_NOTSENT_LOWAT not set");
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = (tcp, NOTSENT_LOWAT);
}

/// A TLS failure is a [`ConnectError::Tls`] (final), also when rustls reports it through an
/// I/O error. With TLS 1.3 a server that refuses the client certificate says so only after
/// the client's handshake is done: its alert arrives as a read error during the upgrade.
fn map_tls_error(e: std::io::Error) -> ConnectError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => ConnectError::Tls(tls.to_string()),
        None => ConnectError::Tls(e.to_string()),
    }
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
        WsError::Io(io)
            if io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some()) =>
        {
            map_tls_error(io)
        }
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
