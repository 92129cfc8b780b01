//! Reaching the server: fresh credentials for every connect attempt, and what the server chose
//! for each connection. (Proxies are `proxy.rs`, client certificates `tls.rs`.)

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crate::error::Disconnect;

/// What [`CredentialsProvider`] is told about the attempt it provides for.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectAttempt {
    /// 0 for the client's first connect; then the number of the reconnect attempt in the
    /// current outage, from 1 (the `attempt` of the [`crate::Event::Reconnecting`] before it).
    pub attempt: u32,
    /// Whether a connection was up before (this is a reconnect after a lost link or failures).
    pub reconnect: bool,
    /// Why the previous connection or attempt ended, if there was one: a provider can refresh
    /// its token when the server refused the last one (HTTP 401, an envelope `reject`).
    pub last_failure: Option<Disconnect>,
}

impl ConnectAttempt {
    /// The client's first connect.
    pub(crate) fn first() -> Self {
        ConnectAttempt {
            attempt: 0,
            reconnect: false,
            last_failure: None,
        }
    }

    /// The attempt after `step` (the retry decision on `reason`).
    pub(crate) fn after(
        step: &crate::retry::RetryStep,
        connected_before: bool,
        reason: &Disconnect,
    ) -> Self {
        let attempt = match step {
            crate::retry::RetryStep::Retry { attempt, .. } => *attempt,
            crate::retry::RetryStep::Stop(_) => 0,
        };
        ConnectAttempt {
            attempt,
            reconnect: connected_before,
            last_failure: Some(reason.clone()),
        }
    }
}

/// Credentials for one connect attempt, from a [`CredentialsProvider`].
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Credentials {
    /// HTTP headers for the upgrade request. A header with the name of a configured one
    /// replaces it for this attempt (so a fresh `Authorization` replaces a static one).
    pub headers: Vec<(String, String)>,
    /// Envelope mode: the token for `hello`, instead of the configured `token`.
    pub token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Credentials")
            .field("headers", &names)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Credentials {
    /// No headers and no token (the configured ones apply).
    pub fn new() -> Self {
        Credentials::default()
    }

    /// Add a header for this attempt.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Envelope mode: the `hello` token for this attempt.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }
}

/// Called before every connect attempt (the first and each reconnect) for that attempt's
/// credentials, like SignalR's `accessTokenFactory` or Socket.IO's `auth` function. It runs on
/// a blocking worker thread, so it may block (refresh a token over HTTP); the time it takes
/// counts against `connect_timeout`. Calls for one client never overlap: one that outlived its
/// attempt's timeout delays the next. An `Err`, or a panic, fails the attempt with
/// [`crate::ConnectError::Credentials`], which is retried with backoff.
pub type CredentialsProvider =
    Arc<dyn Fn(&ConnectAttempt) -> Result<Credentials, String> + Send + Sync>;

/// A provider with the lock that keeps its calls apart.
#[derive(Clone)]
pub(crate) struct ProviderSlot {
    pub(crate) provider: CredentialsProvider,
    pub(crate) lock: Arc<Mutex<()>>,
}

impl std::fmt::Debug for ProviderSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<credentials provider>")
    }
}

/// What one connection negotiated, read with [`crate::Client::connection_info`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// This connection's number: 1 for the client's first, then one more per connection made.
    pub connection: u64,
    /// The subprotocol the server chose (`Sec-WebSocket-Protocol` of the 101 answer), if any.
    pub subprotocol: Option<String>,
    /// The headers of the server's 101 answer, names in lower case, in order (values that are
    /// not UTF-8 are decoded lossily).
    pub headers: Vec<(String, String)>,
    /// The proxy the connection went through, as `host:port`, if any.
    pub proxy: Option<String>,
    /// The TCP peer: the server, or the proxy.
    pub peer: Option<SocketAddr>,
}

impl ConnectionInfo {
    /// The first value of the response header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}
