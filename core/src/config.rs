//! Client configuration: a builder that validates everything at `build()` time, so a running
//! client never meets a bad value. Errors name the option by its stable id from the option
//! table (`crate::options`), and their text is the same for every binding.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};

use crate::error::ConfigError;
use crate::retry::{default_retry_decision, RetryDecision};
use crate::Disconnect;

/// Which certificate authorities a `wss://` connection trusts.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TlsRoots {
    /// The operating system's trust store (via `rustls-native-certs`), falling back to the
    /// bundled Mozilla roots when the system store is empty or unreadable.
    #[default]
    System,
    /// The bundled Mozilla root set (`webpki-roots`): the same on every machine.
    WebPki,
    /// Only the CA certificates in this PEM text (for private PKI and tests).
    CustomCa(Vec<u8>),
}

/// What `send_*` does when the outbox is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OverflowPolicy {
    /// Refuse the new message with [`crate::SendError::QueueFull`].
    #[default]
    Reject,
    /// Block the calling thread until there is room, up to the timeout, then `QueueFull`.
    Wait(Duration),
    /// Accept the new message and drop the oldest queued message that is not already being
    /// written; the dropped one gets [`crate::Event::SendFailed`] with
    /// [`crate::SendFailure::DroppedOldest`].
    DropOldest,
}

/// What the persistent outbox (`outbox_path`) makes durable, beyond the process: every record
/// is written to the file before the call that made it returns, so a killed process loses
/// nothing in any mode; this says what survives a crash of the machine (`docs/PERSISTENCE.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OutboxSync {
    /// No `fdatasync`: the operating system writes the file back when it will (typically within
    /// 30 s). The fastest; a power loss may lose the last seconds' messages.
    None,
    /// One `fdatasync` per batch written to the socket: a message is on disk before it goes on
    /// the wire, so the server never acknowledges one a power loss could take back.
    #[default]
    Batch,
    /// One `fdatasync` per accepted message, before `send` returns: `send`'s id is a promise
    /// that survives a power loss. The slowest (one disk flush per message).
    Always,
}

/// Which thread runs a client's I/O (reading and writing the socket, timers, reconnects).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum IoDriver {
    /// Tether's shared runtime (see [`crate::runtime`]): I/O goes on whatever the
    /// application does; each event crosses from that runtime's thread to the application's.
    #[default]
    Runtime,
    /// The application's thread, while it waits on the client (poll delivery only): no
    /// thread hop per message. A keeper thread drives when nobody has waited for
    /// `keeper_after` (unset: no keeper, no thread besides the application's; then nothing
    /// happens between polls). See `docs/CALLER_IO.md`.
    Caller,
}

/// A value kept out of `Debug` output (tokens, keys).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret<T>(pub(crate) T);

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// What the client speaks on top of WebSocket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Protocol {
    /// Bare WebSocket messages, to any server. Reconnect, heartbeat and the outbox apply; acks
    /// do not (`wait_acked` answers [`crate::DeliveryError::NotSupported`]).
    #[default]
    Raw,
    /// The Tether envelope (`docs/PROTOCOL.md`): application handshake, sequence ids, acks,
    /// resend after reconnect, de-duplication, optional signatures and compression. The server
    /// must speak it.
    Envelope,
}

/// The function that decides whether a disconnect is retried. See [`crate::default_retry_decision`].
pub type RetryClassifier = Arc<dyn Fn(&Disconnect) -> RetryDecision + Send + Sync>;

/// Reconnect behaviour: exponential backoff with full jitter, limits, and the retry classifier.
#[derive(Clone)]
pub struct ReconnectPolicy {
    /// Reconnect at all. Default: true.
    pub enabled: bool,
    /// Upper bound of the first delay. Default: 500 ms.
    pub initial_delay: Duration,
    /// Cap on any one delay. Default: 30 s.
    pub max_delay: Duration,
    /// Growth of the delay bound per attempt. Default: 2.0.
    pub multiplier: f64,
    /// Attempts allowed per outage (None: unlimited). Default: None.
    pub max_attempts: Option<u32>,
    /// Cap on the time spent retrying in one outage (None: unlimited). Default: None.
    pub max_retry_duration: Option<Duration>,
    /// A connection must stay up this long before the attempt counter and backoff reset, so a
    /// server that accepts and drops at once is not hammered. Default: 5 s.
    pub min_uptime: Duration,
    /// Classifies each disconnect as retryable or final. Default: [`crate::default_retry_decision`].
    pub classifier: RetryClassifier,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            enabled: true,
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            multiplier: 2.0,
            max_attempts: None,
            max_retry_duration: None,
            min_uptime: Duration::from_secs(5),
            classifier: Arc::new(default_retry_decision),
        }
    }
}

impl fmt::Debug for ReconnectPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReconnectPolicy")
            .field("enabled", &self.enabled)
            .field("initial_delay", &self.initial_delay)
            .field("max_delay", &self.max_delay)
            .field("multiplier", &self.multiplier)
            .field("max_attempts", &self.max_attempts)
            .field("max_retry_duration", &self.max_retry_duration)
            .field("min_uptime", &self.min_uptime)
            .finish_non_exhaustive()
    }
}

/// A validated client configuration. Build it with [`Config::builder`].
#[derive(Clone, Debug)]
pub struct Config {
    pub(crate) url: url::Url,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) subprotocols: Vec<String>,
    pub(crate) connect_timeout: Duration,
    pub(crate) happy_eyeballs_delay: Duration,
    /// Addresses pinned for the URL's host with [`ConfigBuilder::resolve`]: no DNS lookup.
    pub(crate) resolve: Option<Vec<SocketAddr>>,
    pub(crate) tls_roots: TlsRoots,
    pub(crate) tls_insecure: bool,
    pub(crate) reconnect: ReconnectPolicy,
    pub(crate) ping_interval: Option<Duration>,
    pub(crate) pong_timeout: Duration,
    pub(crate) outbox_max_messages: usize,
    pub(crate) outbox_max_bytes: usize,
    pub(crate) overflow: OverflowPolicy,
    pub(crate) queue_while_disconnected: bool,
    pub(crate) max_outbound_message_size: usize,
    pub(crate) max_inbound_message_size: usize,
    pub(crate) max_inbound_frame_size: usize,
    pub(crate) close_timeout: Duration,
    pub(crate) event_queue_capacity: usize,
    pub(crate) read_buffer_size: usize,
    pub(crate) write_batch_bytes: usize,
    pub(crate) protocol: Protocol,
    pub(crate) session_id: String,
    /// Whether the application chose `session_id` (else it is random, or the outbox file's).
    pub(crate) session_id_set: bool,
    pub(crate) outbox_path: Option<std::path::PathBuf>,
    pub(crate) outbox_sync: OutboxSync,
    pub(crate) io_driver: IoDriver,
    pub(crate) keeper_after: Option<Duration>,
    pub(crate) auth_token: Option<Secret<String>>,
    pub(crate) signing_key: Option<Secret<Vec<u8>>>,
    pub(crate) compression_threshold: Option<usize>,
    pub(crate) ack_timeout: Duration,
    pub(crate) ack_retries: u32,
    pub(crate) handshake_timeout: Duration,
    pub(crate) app_ping: bool,
    /// The proxy chosen at build (the `proxy` option or the environment); None: direct.
    pub(crate) proxy: Option<crate::proxy::Proxy>,
    /// Addresses pinned for the proxy's host with [`ConfigBuilder::resolve`].
    pub(crate) proxy_resolve: Option<Vec<SocketAddr>>,
    /// The client certificate and key (mutual TLS), parsed and checked.
    pub(crate) client_identity: Option<crate::tls::ClientIdentity>,
    /// Called before each connect attempt.
    pub(crate) credentials: Option<crate::reach::ProviderSlot>,
}

impl Config {
    /// Start a builder for `url` (validated at [`ConfigBuilder::build`]).
    pub fn builder(url: impl Into<String>) -> ConfigBuilder {
        ConfigBuilder::new(url)
    }

    /// The validated server URL.
    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// The reconnect policy in force.
    pub fn reconnect(&self) -> &ReconnectPolicy {
        &self.reconnect
    }

    /// The inbound message limit in bytes.
    pub fn max_inbound_message_size(&self) -> usize {
        self.max_inbound_message_size
    }

    /// The outbound message limit in bytes.
    pub fn max_outbound_message_size(&self) -> usize {
        self.max_outbound_message_size
    }

    /// Raw or envelope mode.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The envelope session id (stable across reconnects).
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The persistent outbox's file, if one is set.
    pub fn outbox_path(&self) -> Option<&std::path::Path> {
        self.outbox_path.as_deref()
    }

    /// The time `close` spends draining and closing (bindings add their join margin to it).
    pub fn close_timeout(&self) -> Duration {
        self.close_timeout
    }

    /// Inbound messages buffered for the application before reading pauses.
    pub fn event_queue_capacity(&self) -> usize {
        self.event_queue_capacity
    }

    /// What `send_*` does when the outbox is full.
    pub fn overflow_policy(&self) -> OverflowPolicy {
        self.overflow
    }
}

/// Builder for [`Config`]. Every setter stores its value; [`ConfigBuilder::build`] checks them
/// all and returns the first problem as a [`ConfigError`] that names the option.
#[derive(Clone, Debug)]
pub struct ConfigBuilder {
    pub(crate) url: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) subprotocols: Vec<String>,
    pub(crate) connect_timeout: Duration,
    /// None: the default (not checked against `connect_timeout`, see the setter).
    pub(crate) happy_eyeballs_delay: Option<Duration>,
    /// (host, addresses) as given; parsed and checked against the URL at build.
    pub(crate) resolve: Vec<(String, Vec<String>)>,
    pub(crate) tls_roots: TlsRoots,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) tls_insecure: bool,
    pub(crate) reconnect: ReconnectPolicy,
    pub(crate) ping_interval: Option<Duration>,
    pub(crate) pong_timeout: Duration,
    pub(crate) outbox_max_messages: usize,
    pub(crate) outbox_max_bytes: usize,
    pub(crate) overflow: OverflowPolicy,
    pub(crate) queue_while_disconnected: bool,
    /// None: the default, clamped to the outbox byte bound.
    pub(crate) max_outbound_message_size: Option<usize>,
    pub(crate) max_inbound_message_size: usize,
    pub(crate) max_inbound_frame_size: usize,
    pub(crate) close_timeout: Duration,
    pub(crate) event_queue_capacity: usize,
    pub(crate) read_buffer_size: usize,
    pub(crate) write_batch_bytes: usize,
    pub(crate) protocol: Protocol,
    pub(crate) session_id: Option<String>,
    pub(crate) outbox_path: Option<std::path::PathBuf>,
    pub(crate) outbox_sync: OutboxSync,
    pub(crate) io_driver: IoDriver,
    pub(crate) keeper_after: Option<Duration>,
    pub(crate) auth_token: Option<Secret<String>>,
    pub(crate) signing_key: Option<Secret<Vec<u8>>>,
    pub(crate) compression_threshold: Option<usize>,
    pub(crate) ack_timeout: Duration,
    pub(crate) ack_retries: u32,
    pub(crate) handshake_timeout: Duration,
    pub(crate) app_ping: Option<bool>,
    /// Set through the option table: the `wait` policy's timeout (checked at build).
    pub(crate) overflow_timeout: Option<Duration>,
    /// `ca_pem`: a custom CA as PEM text (set through the option table). A custom CA replaces
    /// the named root set, whichever was set first (see `check_tls`).
    pub(crate) ca_pem: Option<Vec<u8>>,
    /// None: from the environment; `"none"` (or empty): direct; else a proxy URL.
    pub(crate) proxy: Option<String>,
    pub(crate) client_cert_file: Option<PathBuf>,
    pub(crate) client_cert_pem: Option<Vec<u8>>,
    pub(crate) client_key_file: Option<PathBuf>,
    pub(crate) client_key_pem: Option<Secret<Vec<u8>>>,
    pub(crate) credentials: Option<crate::reach::ProviderSlot>,
}

/// Default limits, shared with the C and Python layers' documentation.
pub mod defaults {
    use std::time::Duration;
    /// Connect (TCP + TLS + upgrade) timeout.
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    /// Happy Eyeballs (RFC 8305) connection attempt delay: how long one address may try
    /// before the next is started alongside it.
    pub const HAPPY_EYEBALLS_DELAY: Duration = Duration::from_millis(250);
    /// WebSocket ping interval.
    pub const PING_INTERVAL: Duration = Duration::from_secs(15);
    /// Time allowed for any frame to arrive after a ping.
    pub const PONG_TIMEOUT: Duration = Duration::from_secs(10);
    /// Outbox bound by count.
    pub const OUTBOX_MAX_MESSAGES: usize = 4096;
    /// Outbox bound by bytes.
    pub const OUTBOX_MAX_BYTES: usize = 16 << 20;
    /// Largest message `send_*` accepts.
    pub const MAX_OUTBOUND_MESSAGE_SIZE: usize = 4 << 20;
    /// Largest inbound message.
    pub const MAX_INBOUND_MESSAGE_SIZE: usize = 16 << 20;
    /// Largest inbound frame.
    pub const MAX_INBOUND_FRAME_SIZE: usize = 16 << 20;
    /// Time `close` spends draining the outbox and completing the closing handshake.
    pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
    /// Inbound messages buffered for the application before reading pauses.
    pub const EVENT_QUEUE_CAPACITY: usize = 1024;
    /// Socket read buffer.
    pub const READ_BUFFER_SIZE: usize = 32 << 10;
    /// Bytes written per batch before one flush.
    pub const WRITE_BATCH_BYTES: usize = 256 << 10;
    /// Envelope mode: time to wait for an ack before writing a message again.
    pub const ACK_TIMEOUT: Duration = Duration::from_secs(10);
    /// Envelope mode: ack timeouts a message may have before it is reported failed.
    pub const ACK_RETRIES: u32 = 2;
    /// Envelope mode: time allowed for `hello` → `welcome`.
    pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
    /// The `wait` overflow policy set by name (option table): how long a send may block.
    pub const OVERFLOW_TIMEOUT: Duration = Duration::from_secs(5);
    /// Caller-driven I/O: the keeper drives once nobody has waited on the client this long.
    pub const KEEPER_AFTER: Duration = Duration::from_millis(10);
}

impl ConfigBuilder {
    /// A builder with Tether's defaults (see [`defaults`]).
    pub fn new(url: impl Into<String>) -> Self {
        ConfigBuilder {
            url: url.into(),
            headers: Vec::new(),
            subprotocols: Vec::new(),
            connect_timeout: defaults::CONNECT_TIMEOUT,
            happy_eyeballs_delay: None,
            resolve: Vec::new(),
            tls_roots: TlsRoots::System,
            ca_file: None,
            tls_insecure: false,
            reconnect: ReconnectPolicy::default(),
            ping_interval: Some(defaults::PING_INTERVAL),
            pong_timeout: defaults::PONG_TIMEOUT,
            outbox_max_messages: defaults::OUTBOX_MAX_MESSAGES,
            outbox_max_bytes: defaults::OUTBOX_MAX_BYTES,
            overflow: OverflowPolicy::Reject,
            queue_while_disconnected: true,
            max_outbound_message_size: None,
            max_inbound_message_size: defaults::MAX_INBOUND_MESSAGE_SIZE,
            max_inbound_frame_size: defaults::MAX_INBOUND_FRAME_SIZE,
            close_timeout: defaults::CLOSE_TIMEOUT,
            event_queue_capacity: defaults::EVENT_QUEUE_CAPACITY,
            read_buffer_size: defaults::READ_BUFFER_SIZE,
            write_batch_bytes: defaults::WRITE_BATCH_BYTES,
            protocol: Protocol::Raw,
            session_id: None,
            outbox_path: None,
            outbox_sync: OutboxSync::Batch,
            io_driver: IoDriver::Runtime,
            keeper_after: Some(defaults::KEEPER_AFTER),
            auth_token: None,
            signing_key: None,
            compression_threshold: None,
            ack_timeout: defaults::ACK_TIMEOUT,
            ack_retries: defaults::ACK_RETRIES,
            handshake_timeout: defaults::HANDSHAKE_TIMEOUT,
            app_ping: None,
            overflow_timeout: None,
            ca_pem: None,
            proxy: None,
            client_cert_file: None,
            client_cert_pem: None,
            client_key_file: None,
            client_key_pem: None,
            credentials: None,
        }
    }

    /// Replace the URL given to [`ConfigBuilder::new`] (validated at build).
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// Raw WebSocket (default) or the Tether envelope with acks.
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// Envelope mode: the session id sent in `hello` (1 to 128 printable ASCII characters).
    /// Default: 32 random hex digits, new per client. Stable across reconnects. Reusing it in a
    /// new process does not resume the old process's messages (they lived in its memory): the
    /// server starts the session over, and the new client reports [`crate::Event::SessionReset`]
    /// with `client_state_lost`. Resuming for real needs a persistent outbox (not yet).
    pub fn session_id(mut self, id: impl Into<String>) -> Self {
        self.session_id = Some(id.into());
        self
    }

    /// Envelope mode: the token sent in `hello` for the server to check.
    pub fn auth_token(mut self, token: impl Into<String>) -> Self {
        self.auth_token = Some(Secret(token.into()));
        self
    }

    /// Envelope mode: sign every message with HMAC-SHA256 under this key, and refuse inbound
    /// messages without a valid signature.
    pub fn signing_key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.signing_key = Some(Secret(key.into()));
        self
    }

    /// Envelope mode: compress payloads of at least this many bytes (raw DEFLATE), when that
    /// makes them smaller. None (default): never.
    pub fn compression_threshold(mut self, bytes: Option<usize>) -> Self {
        self.compression_threshold = bytes;
        self
    }

    /// Envelope mode: ack timeout and how many timeouts a message may have before it fails.
    pub fn ack_timeout(mut self, timeout: Duration, retries: u32) -> Self {
        self.ack_timeout = timeout;
        self.ack_retries = retries;
        self
    }

    /// Envelope mode: time allowed for the application handshake.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Envelope mode: also send app-level pings (for the app RTT) with each heartbeat.
    /// Default: on in envelope mode.
    pub fn app_ping(mut self, on: bool) -> Self {
        self.app_ping = Some(on);
        self
    }

    /// Add an HTTP header to the upgrade request (validated at build).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Offer a subprotocol (`Sec-WebSocket-Protocol`); may be called several times.
    pub fn subprotocol(mut self, protocol: impl Into<String>) -> Self {
        self.subprotocols.push(protocol.into());
        self
    }

    /// Time allowed for TCP connect, TLS and the HTTP upgrade together.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Happy Eyeballs (RFC 8305) connection attempt delay: when the host has several addresses
    /// and one has not connected within this time, the next is tried alongside it (the first
    /// to connect wins). Default: 250 ms. A value set here must be at least 10 ms (the RFC's
    /// floor) and below `connect_timeout`, which still bounds the whole attempt. (With the
    /// default and a `connect_timeout` under 250 ms, the next address is tried only when one
    /// fails.)
    pub fn happy_eyeballs_delay(mut self, delay: Duration) -> Self {
        self.happy_eyeballs_delay = Some(delay);
        self
    }

    /// Connect to these addresses for `host` instead of asking DNS (like curl's `--resolve`):
    /// pin a name to known addresses, or test address fallback. `host` must be the URL's host;
    /// each address is an IP (`"10.0.0.7"`, `"::1"`, the URL's port is used) or an IP and port
    /// (`"10.0.0.7:8443"`, `"[::1]:8443"`). The URL's host is still what the upgrade request,
    /// TLS server name and certificate check use. Calling it again for the same host adds
    /// addresses. Checked at build.
    pub fn resolve<I, S>(mut self, host: impl Into<String>, addrs: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.resolve
            .push((host.into(), addrs.into_iter().map(Into::into).collect()));
        self
    }

    /// Which CAs to trust for `wss://`. A CA file ([`ConfigBuilder::tls_ca_file`]) wins over
    /// it, whatever the order of the calls.
    pub fn tls_roots(mut self, roots: TlsRoots) -> Self {
        self.tls_roots = roots;
        self
    }

    /// Trust only the CA certificates in this PEM file (read at build time).
    pub fn tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Accept any server certificate. For tests only: it removes all protection TLS gives, and
    /// a warning is logged each time a client is built with it.
    pub fn danger_accept_invalid_certs(mut self, insecure: bool) -> Self {
        self.tls_insecure = insecure;
        self
    }

    /// Replace the whole reconnect policy.
    pub fn reconnect(mut self, policy: ReconnectPolicy) -> Self {
        self.reconnect = policy;
        self
    }

    /// Turn automatic reconnect on or off.
    pub fn reconnect_enabled(mut self, enabled: bool) -> Self {
        self.reconnect.enabled = enabled;
        self
    }

    /// Backoff bounds: first delay bound, cap, and growth factor.
    pub fn backoff(mut self, initial: Duration, max: Duration, multiplier: f64) -> Self {
        self.reconnect.initial_delay = initial;
        self.reconnect.max_delay = max;
        self.reconnect.multiplier = multiplier;
        self
    }

    /// Attempts allowed per outage (None: unlimited).
    pub fn max_reconnect_attempts(mut self, attempts: Option<u32>) -> Self {
        self.reconnect.max_attempts = attempts;
        self
    }

    /// Cap on the time spent retrying in one outage (None: unlimited).
    pub fn max_retry_duration(mut self, cap: Option<Duration>) -> Self {
        self.reconnect.max_retry_duration = cap;
        self
    }

    /// How long a connection must stay up before backoff resets.
    pub fn min_uptime(mut self, uptime: Duration) -> Self {
        self.reconnect.min_uptime = uptime;
        self
    }

    /// Override the retry classifier (start from [`crate::default_retry_decision`] to keep its
    /// defaults for the cases you do not care about).
    pub fn retry_classifier(
        mut self,
        classifier: impl Fn(&Disconnect) -> RetryDecision + Send + Sync + 'static,
    ) -> Self {
        self.reconnect.classifier = Arc::new(classifier);
        self
    }

    /// Heartbeat: send a WebSocket ping every `interval`; if no frame at all arrives within
    /// `timeout` of a ping, the link is dead. `None` turns the heartbeat off.
    pub fn heartbeat(mut self, interval: Option<Duration>, timeout: Duration) -> Self {
        self.ping_interval = interval;
        self.pong_timeout = timeout;
        self
    }

    /// Outbox bounds: messages and bytes queued (including those being written).
    pub fn outbox_limits(mut self, max_messages: usize, max_bytes: usize) -> Self {
        self.outbox_max_messages = max_messages;
        self.outbox_max_bytes = max_bytes;
        self
    }

    /// What `send_*` does when the outbox is full.
    pub fn overflow_policy(mut self, policy: OverflowPolicy) -> Self {
        self.overflow = policy;
        self
    }

    /// Queue messages while not ready (default) or refuse them with `NotReady`.
    pub fn queue_while_disconnected(mut self, queue: bool) -> Self {
        self.queue_while_disconnected = queue;
        self
    }

    /// Largest message `send_*` accepts, in bytes, counted as it goes on the wire: in envelope
    /// mode the whole frame (envelope fields, signature, and the text after JSON escaping).
    /// Set it to the server's limit and no accepted message is refused by the server for its
    /// size. Default: 4 MiB, or the outbox byte bound if that is smaller; a value set here must
    /// not exceed the outbox byte bound.
    pub fn max_outbound_message_size(mut self, bytes: usize) -> Self {
        self.max_outbound_message_size = Some(bytes);
        self
    }

    /// Largest inbound message and frame, in bytes.
    pub fn max_inbound_size(mut self, message: usize, frame: usize) -> Self {
        self.max_inbound_message_size = message;
        self.max_inbound_frame_size = frame;
        self
    }

    /// Time `close` spends draining the outbox and completing the closing handshake.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Inbound messages buffered for the application before the client stops reading from the
    /// socket (TCP backpressure).
    pub fn event_queue_capacity(mut self, capacity: usize) -> Self {
        self.event_queue_capacity = capacity;
        self
    }

    /// Socket read buffer size (memory per connection versus read throughput).
    pub fn read_buffer_size(mut self, bytes: usize) -> Self {
        self.read_buffer_size = bytes;
        self
    }

    /// Bytes fed to the socket per batch before one flush.
    pub fn write_batch_bytes(mut self, bytes: usize) -> Self {
        self.write_batch_bytes = bytes;
        self
    }

    /// Keep the outbox in this file (created if missing): queued and unacknowledged messages,
    /// the id sequence and the session's resume state survive the process, and a client
    /// started again with the same path resumes the session (`docs/PERSISTENCE.md`). One live
    /// client per file.
    pub fn outbox_path(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.outbox_path = Some(path.into());
        self
    }

    /// What the persistent outbox makes durable against a machine crash (default
    /// [`OutboxSync::Batch`]).
    pub fn outbox_sync(mut self, sync: OutboxSync) -> Self {
        self.outbox_sync = sync;
        self
    }

    /// Which thread runs the client's I/O (default [`IoDriver::Runtime`]).
    pub fn io_driver(mut self, driver: IoDriver) -> Self {
        self.io_driver = driver;
        self
    }

    /// Caller-driven I/O: how long nobody may wait on the client before the keeper thread
    /// drives its I/O (default [`defaults::KEEPER_AFTER`]); `None`: no keeper thread.
    pub fn keeper_after(mut self, after: Option<Duration>) -> Self {
        self.keeper_after = after;
        self
    }

    /// The proxy: `http://[user:password@]host[:port]` (HTTP `CONNECT`), `socks5://...` (SOCKS5,
    /// this client resolves the server's name) or `socks5h://...` (SOCKS5, the proxy resolves
    /// it), or `"none"` to connect directly. Not set (the default): from the environment
    /// (`https_proxy` / `http_proxy` / `all_proxy` / `no_proxy`, see `docs/PROXIES.md`). An
    /// explicit proxy is used for every host, whatever `no_proxy` says.
    pub fn proxy(mut self, proxy: impl Into<String>) -> Self {
        self.proxy = Some(proxy.into());
        self
    }

    /// Mutual TLS: present this client certificate (PEM chain, leaf first) and private key
    /// (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC) when the server asks for one. Read and checked
    /// against each other at build.
    pub fn client_cert_files(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.client_cert_file = Some(cert.into());
        self.client_key_file = Some(key.into());
        self
    }

    /// Mutual TLS from PEM text: see [`ConfigBuilder::client_cert_files`].
    pub fn client_cert_pem(mut self, cert: impl Into<Vec<u8>>, key: impl Into<Vec<u8>>) -> Self {
        self.client_cert_pem = Some(cert.into());
        self.client_key_pem = Some(Secret(key.into()));
        self
    }

    /// Fresh credentials on every connect attempt: `provider` is called before each one (the
    /// first and every reconnect) and its headers and envelope token are used for that attempt
    /// only. See [`crate::CredentialsProvider`] for where it runs and what its errors do.
    pub fn credentials_provider(
        mut self,
        provider: impl Fn(&crate::ConnectAttempt) -> Result<crate::Credentials, String>
            + Send
            + Sync
            + 'static,
    ) -> Self {
        self.credentials = Some(crate::reach::ProviderSlot {
            provider: Arc::new(provider),
            lock: Arc::default(),
        });
        self
    }

    /// Validate everything and produce a [`Config`].
    pub fn build(self) -> Result<Config, ConfigError> {
        let url = parse_ws_url(&self.url)?;
        let headers = self.check_http()?;
        let proxy = self.check_proxy(&url, &|name| std::env::var(name).ok())?;
        let (resolve, proxy_resolve) = self.check_timing(&url, proxy.as_ref())?;
        let client_identity = self.check_client_cert()?;
        let (max_outbound_message_size, overflow) = self.check_limits()?;
        let tls_roots = self.check_tls()?;
        let envelope = self.protocol == Protocol::Envelope;
        self.check_envelope(envelope)?;
        let session_id = match &self.session_id {
            Some(id) => {
                if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(invalid(
                        "session_id",
                        format!("{id:?} must be 1 to 128 printable ASCII characters"),
                    ));
                }
                id.clone()
            }
            None => format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)),
        };
        self.check_sessions()?;
        if let TlsRoots::CustomCa(pem) = &tls_roots {
            // Parse now so a bad file is a build-time error, not a connect-time surprise.
            crate::tls::parse_ca_pem(pem)?;
        }
        Ok(Config {
            url,
            headers,
            subprotocols: self.subprotocols,
            connect_timeout: self.connect_timeout,
            happy_eyeballs_delay: self
                .happy_eyeballs_delay
                .unwrap_or(defaults::HAPPY_EYEBALLS_DELAY),
            resolve,
            tls_roots,
            tls_insecure: self.tls_insecure,
            reconnect: self.reconnect,
            ping_interval: self.ping_interval,
            pong_timeout: self.pong_timeout,
            outbox_max_messages: self.outbox_max_messages,
            outbox_max_bytes: self.outbox_max_bytes,
            overflow,
            queue_while_disconnected: self.queue_while_disconnected,
            max_outbound_message_size,
            max_inbound_message_size: self.max_inbound_message_size,
            max_inbound_frame_size: self.max_inbound_frame_size,
            close_timeout: self.close_timeout,
            event_queue_capacity: self.event_queue_capacity,
            read_buffer_size: self.read_buffer_size,
            write_batch_bytes: self.write_batch_bytes,
            protocol: self.protocol,
            session_id_set: self.session_id.is_some(),
            session_id,
            outbox_path: self.outbox_path,
            outbox_sync: self.outbox_sync,
            io_driver: self.io_driver,
            keeper_after: self.keeper_after,
            auth_token: self.auth_token,
            signing_key: self.signing_key,
            compression_threshold: self.compression_threshold,
            ack_timeout: self.ack_timeout,
            ack_retries: self.ack_retries,
            handshake_timeout: self.handshake_timeout,
            app_ping: envelope && self.app_ping.unwrap_or(true),
            proxy,
            proxy_resolve,
            client_identity,
            credentials: self.credentials,
        })
    }

    /// The proxy: the option if set, else the environment (`env` reads one variable).
    pub(crate) fn check_proxy(
        &self,
        url: &url::Url,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<crate::proxy::Proxy>, ConfigError> {
        match self.proxy.as_deref().map(str::trim) {
            Some("" | "none") => Ok(None),
            Some(explicit) => crate::proxy::parse(explicit, "the proxy option")
                .map(Some)
                .map_err(|problem| invalid("proxy", problem)),
            None => crate::proxy::from_env(url, env).map_err(|(name, problem)| {
                invalid(
                    "proxy",
                    format!("from environment variable {name}: {problem} (set proxy=\"none\" to ignore the environment)"),
                )
            }),
        }
    }

    /// The client certificate and key: both or neither, from files or PEM text.
    fn check_client_cert(&self) -> Result<Option<crate::tls::ClientIdentity>, ConfigError> {
        let read = |option: &'static str, path: &PathBuf| {
            std::fs::read(path)
                .map_err(|e| invalid(option, format!("cannot read {}: {e}", path.display())))
        };
        let cert = match (&self.client_cert_file, &self.client_cert_pem) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "client_cert_pem",
                    "give client_cert_file or client_cert_pem, not both".into(),
                ))
            }
            (Some(path), None) => Some(("client_cert_file", read("client_cert_file", path)?)),
            (None, Some(pem)) => Some(("client_cert_pem", pem.clone())),
            (None, None) => None,
        };
        let key = match (&self.client_key_file, &self.client_key_pem) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "client_key_pem",
                    "give client_key_file or client_key_pem, not both".into(),
                ))
            }
            (Some(path), None) => Some(("client_key_file", read("client_key_file", path)?)),
            (None, Some(pem)) => Some(("client_key_pem", pem.0.clone())),
            (None, None) => None,
        };
        match (cert, key) {
            (None, None) => Ok(None),
            (Some((option, _)), None) => Err(invalid(
                option,
                "a client certificate needs its private key (client_key_file or client_key_pem)"
                    .into(),
            )),
            (None, Some((option, _))) => Err(invalid(
                option,
                "a private key needs its client certificate (client_cert_file or client_cert_pem)"
                    .into(),
            )),
            (Some((cert_option, cert)), Some((key_option, key))) => {
                crate::tls::client_identity(&cert, &key, cert_option, key_option).map(Some)
            }
        }
    }

    /// Headers and subprotocols: valid HTTP.
    fn check_http(&self) -> Result<Vec<(HeaderName, HeaderValue)>, ConfigError> {
        let headers = self
            .headers
            .iter()
            .map(|(name, value)| {
                let n = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|e| invalid("headers", format!("bad header name {name:?}: {e}")))?;
                let v = HeaderValue::from_str(value).map_err(|e| {
                    invalid("headers", format!("bad value for header {name:?}: {e}"))
                })?;
                Ok((n, v))
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        for p in &self.subprotocols {
            let token_ok = !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
            if !token_ok {
                return Err(invalid(
                    "subprotocols",
                    format!("{p:?} is not an HTTP token"),
                ));
            }
        }
        Ok(headers)
    }

    /// Timeouts, Happy Eyeballs, the resolve override (for the URL's host and the proxy's),
    /// backoff and heartbeat.
    #[allow(clippy::type_complexity)]
    fn check_timing(
        &self,
        url: &url::Url,
        proxy: Option<&crate::proxy::Proxy>,
    ) -> Result<(Option<Vec<SocketAddr>>, Option<Vec<SocketAddr>>), ConfigError> {
        positive("connect_timeout", self.connect_timeout)?;
        if let Some(delay) = self.happy_eyeballs_delay {
            if delay < MIN_HAPPY_EYEBALLS_DELAY {
                return Err(invalid(
                    "happy_eyeballs_delay",
                    format!(
                        "{delay:?} is below the minimum of {MIN_HAPPY_EYEBALLS_DELAY:?} (RFC 8305)"
                    ),
                ));
            }
            if delay >= self.connect_timeout {
                return Err(invalid(
                    "happy_eyeballs_delay",
                    format!(
                        "{delay:?} is not below connect_timeout {:?}: a slow address would use up the whole attempt",
                        self.connect_timeout
                    ),
                ));
            }
        }
        let resolve = resolve_override(url, proxy, &self.resolve)?;
        positive("close_timeout", self.close_timeout)?;
        let r = &self.reconnect;
        positive("backoff_initial", r.initial_delay)?;
        if r.max_delay < r.initial_delay {
            return Err(invalid(
                "backoff_max",
                format!(
                    "{:?} is below the initial delay {:?} (backoff_initial)",
                    r.max_delay, r.initial_delay
                ),
            ));
        }
        if !(r.multiplier.is_finite() && r.multiplier >= 1.0) {
            return Err(invalid(
                "backoff_multiplier",
                format!("{} must be a finite number >= 1.0", r.multiplier),
            ));
        }
        if r.max_attempts == Some(0) {
            return Err(invalid(
                "max_reconnect_attempts",
                "0 attempts: turn reconnect off instead (reconnect=false)".into(),
            ));
        }
        if let Some(interval) = self.ping_interval {
            positive("ping_interval", interval)?;
            positive("ping_timeout", self.pong_timeout)?;
        }
        Ok(resolve)
    }

    /// Queue and size bounds, and the overflow policy.
    fn check_limits(&self) -> Result<(usize, OverflowPolicy), ConfigError> {
        nonzero("outbox_max_messages", self.outbox_max_messages)?;
        nonzero("outbox_max_bytes", self.outbox_max_bytes)?;
        let max_outbound_message_size = match self.max_outbound_message_size {
            None => defaults::MAX_OUTBOUND_MESSAGE_SIZE.min(self.outbox_max_bytes),
            Some(explicit) => {
                nonzero("max_message_size", explicit)?;
                if explicit > self.outbox_max_bytes {
                    return Err(invalid(
                        "max_message_size",
                        format!(
                            "{explicit} exceeds the outbox byte bound {} (outbox_max_bytes): such a message could never be queued",
                            self.outbox_max_bytes
                        ),
                    ));
                }
                explicit
            }
        };
        nonzero("max_inbound_message_size", self.max_inbound_message_size)?;
        nonzero("max_inbound_frame_size", self.max_inbound_frame_size)?;
        nonzero("event_queue_capacity", self.event_queue_capacity)?;
        if self.event_queue_capacity > tokio::sync::Semaphore::MAX_PERMITS / 2 {
            return Err(invalid(
                "event_queue_capacity",
                format!("{} is too large", self.event_queue_capacity),
            ));
        }
        if self.read_buffer_size < 1024 {
            return Err(invalid(
                "read_buffer_size",
                format!(
                    "{} is below the minimum of 1024 bytes",
                    self.read_buffer_size
                ),
            ));
        }
        nonzero("write_batch_bytes", self.write_batch_bytes)?;
        let overflow = match (self.overflow, self.overflow_timeout) {
            (OverflowPolicy::Wait(_), Some(t)) => OverflowPolicy::Wait(t),
            (_, Some(_)) => {
                return Err(invalid(
                    "overflow_timeout",
                    "only meaningful with overflow=\"wait\"".into(),
                ))
            }
            (policy, None) => policy,
        };
        if let OverflowPolicy::Wait(t) = overflow {
            positive("overflow_timeout", t)?;
        }
        Ok((max_outbound_message_size, overflow))
    }

    /// The trust roots, one rule for every binding: a CA file wins over CA PEM text, and a
    /// custom CA (file or PEM) wins over the named root set (`tls_roots`), whatever the order
    /// they were set in. The CA file is read now.
    fn check_tls(&self) -> Result<TlsRoots, ConfigError> {
        let tls_roots = match (&self.ca_file, &self.ca_pem) {
            (Some(path), _) => TlsRoots::CustomCa(std::fs::read(path).map_err(|e| {
                ConfigError::Tls(format!("cannot read CA file {}: {e}", path.display()))
            })?),
            (None, Some(pem)) => TlsRoots::CustomCa(pem.clone()),
            (None, None) => self.tls_roots.clone(),
        };
        Ok(tls_roots)
    }

    /// Options that only envelope mode gives a meaning to.
    fn check_envelope(&self, envelope: bool) -> Result<(), ConfigError> {
        if !envelope {
            let envelope_only = [
                ("token", self.auth_token.is_some()),
                ("session_id", self.session_id.is_some()),
                ("signing_key", self.signing_key.is_some()),
                (
                    "compression_threshold",
                    self.compression_threshold.is_some(),
                ),
                ("app_ping", self.app_ping == Some(true)),
            ];
            if let Some((field, _)) = envelope_only.iter().find(|(_, set)| *set) {
                return Err(invalid(
                    field,
                    "only with protocol=\"envelope\" (raw mode sends bare messages)".into(),
                ));
            }
        }
        Ok(())
    }

    /// Envelope-session settings: key, compression, ack and handshake timeouts.
    fn check_sessions(&self) -> Result<(), ConfigError> {
        if self.signing_key.as_ref().is_some_and(|k| k.0.is_empty()) {
            return Err(invalid("signing_key", "must not be empty".into()));
        }
        if self.compression_threshold == Some(0) {
            return Err(invalid(
                "compression_threshold",
                "must be greater than zero (unset turns compression off)".into(),
            ));
        }
        positive("ack_timeout", self.ack_timeout)?;
        positive("handshake_timeout", self.handshake_timeout)?;
        Ok(())
    }
}

/// RFC 8305 §5: the connection attempt delay MUST NOT be below 10 ms, or a client floods the
/// network with parallel attempts.
const MIN_HAPPY_EYEBALLS_DELAY: Duration = Duration::from_millis(10);

/// Host names compare without case and IPv6 literals without their brackets.
fn normalize_host(host: &str) -> String {
    host.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

/// Parse the `resolve` entries: they must name the URL's host or the proxy's (the client
/// never connects to another host, so any other entry is a mistake) and hold at least one
/// valid address. Returns the URL host's addresses and the proxy host's.
#[allow(clippy::type_complexity)]
fn resolve_override(
    url: &url::Url,
    proxy: Option<&crate::proxy::Proxy>,
    entries: &[(String, Vec<String>)],
) -> Result<(Option<Vec<SocketAddr>>, Option<Vec<SocketAddr>>), ConfigError> {
    let url_host = normalize_host(url.host_str().unwrap_or_default());
    let port = url.port_or_known_default().unwrap_or(80);
    let proxy_host = proxy.map(|p| (normalize_host(&p.host), p.port));
    let (mut for_url, mut for_proxy) = (Vec::new(), Vec::new());
    for (host, addrs) in entries {
        let host_n = normalize_host(host);
        let (port, out) = if host_n == url_host {
            (port, &mut for_url)
        } else {
            match &proxy_host {
                Some((h, p)) if *h == host_n => (*p, &mut for_proxy),
                _ => {
                    return Err(invalid(
                        "resolve",
                        format!(
                            "host {host:?} is not the URL's host {url_host:?}{}",
                            proxy_host
                                .as_ref()
                                .map(|(h, _)| format!(" nor the proxy's {h:?}"))
                                .unwrap_or_default()
                        ),
                    ))
                }
            }
        };
        if addrs.is_empty() {
            return Err(invalid(
                "resolve",
                format!("no addresses given for {host:?}"),
            ));
        }
        for a in addrs {
            let text = a.trim();
            let addr = if let Ok(sa) = text.parse::<SocketAddr>() {
                sa
            } else if let Ok(ip) = normalize_host(text).parse::<IpAddr>() {
                SocketAddr::new(ip, port)
            } else {
                return Err(invalid(
                    "resolve",
                    format!("{a:?} is not an IP address or IP:port"),
                ));
            };
            if addr.port() == 0 {
                return Err(invalid(
                    "resolve",
                    format!("{a:?}: port 0 cannot be connected to"),
                ));
            }
            if !out.contains(&addr) {
                out.push(addr);
            }
        }
    }
    let some = |v: Vec<SocketAddr>| (!v.is_empty()).then_some(v);
    Ok((some(for_url), some(for_proxy)))
}

fn invalid(option: &'static str, problem: String) -> ConfigError {
    ConfigError::InvalidValue { option, problem }
}

fn positive(field: &'static str, d: Duration) -> Result<(), ConfigError> {
    if d.is_zero() {
        Err(invalid(field, "must be greater than zero".into()))
    } else {
        Ok(())
    }
}

fn nonzero(field: &'static str, n: usize) -> Result<(), ConfigError> {
    if n == 0 {
        Err(invalid(field, "must be greater than zero".into()))
    } else {
        Ok(())
    }
}

/// Parse and check a WebSocket URL: `ws://` or `wss://`, a host, a valid port, no fragment and
/// no credentials. The error names the problem.
pub fn parse_ws_url(input: &str) -> Result<url::Url, ConfigError> {
    let bad = |problem: String| ConfigError::InvalidUrl {
        url: input.to_string(),
        problem,
    };
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(bad("the URL is empty".into()));
    }
    let url = url::Url::parse(trimmed).map_err(|e| match e {
        url::ParseError::RelativeUrlWithoutBase => {
            bad("no scheme: write ws://host/path or wss://host/path".into())
        }
        url::ParseError::InvalidPort => bad("the port is not a number from 1 to 65535".into()),
        url::ParseError::EmptyHost => bad("the host is missing".into()),
        other => bad(other.to_string()),
    })?;
    match url.scheme() {
        "ws" | "wss" => {}
        other => {
            return Err(bad(format!(
                "unsupported scheme `{other}`: Tether speaks ws:// and wss:// only{}",
                match other {
                    "http" => " (did you mean ws://?)",
                    "https" => " (did you mean wss://?)",
                    _ => "",
                }
            )))
        }
    }
    match url.host_str() {
        None | Some("") => return Err(bad("the host is missing".into())),
        Some(_) => {}
    }
    if url.port() == Some(0) {
        return Err(bad("port 0 cannot be connected to".into()));
    }
    if url.fragment().is_some() {
        return Err(bad("a WebSocket URL may not have a #fragment".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "credentials in the URL are not sent; pass them in a header instead".into(),
        ));
    }
    // The URL crate accepts hosts that HTTP does not (`a{b`, `%7B`): check now that it makes a
    // valid upgrade request, not at every connect attempt (found by fuzzing).
    if let Err(e) = url.as_str().into_client_request() {
        return Err(bad(format!("not a valid HTTP request target: {e}")));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OptionValue;

    /// One TLS rule for every binding: a CA file wins over CA PEM text, and a custom CA wins
    /// over the named root set (`tls_roots`), whatever the order they were set in.
    #[test]
    fn a_custom_ca_wins_over_the_named_roots_in_any_order() {
        let custom = TlsRoots::CustomCa(b"pem".to_vec());
        for pem_first in [true, false] {
            let mut b = Config::builder("wss://example.com/");
            let mut steps = [
                ("ca_pem", OptionValue::Bytes(b"pem".to_vec())),
                ("tls_roots", OptionValue::Text("webpki".into())),
            ];
            if !pem_first {
                steps.reverse();
            }
            for (name, value) in steps {
                b.set(name, value).expect("stored");
            }
            assert_eq!(b.check_tls(), Ok(custom.clone()), "pem first: {pem_first}");
        }
        let b = Config::builder("wss://example.com/").tls_roots(TlsRoots::WebPki);
        assert_eq!(b.check_tls(), Ok(TlsRoots::WebPki));
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("ca.pem");
        std::fs::write(&file, b"file").expect("written");
        let mut b = Config::builder("wss://example.com/").tls_ca_file(&file);
        b.set("ca_pem", OptionValue::Bytes(b"pem".to_vec()))
            .expect("stored");
        let b = b.tls_roots(TlsRoots::System);
        assert_eq!(b.check_tls(), Ok(TlsRoots::CustomCa(b"file".to_vec())));
    }
}
