//! # tether-core
//!
//! The engine of Tether: a resilient WebSocket client that keeps its connection alive by
//! itself and never loses a message silently.
//!
//! * `ws://` and `wss://` (rustls) only; the URL and every option are validated when the
//!   [`Config`] is built.
//! * Automatic reconnect with exponential backoff and full jitter, attempt and time limits,
//!   and a retry classifier for close codes and connect errors ([`default_retry_decision`]).
//! * Dead-link detection by heartbeat: a link on which nothing arrives within
//!   `interval + timeout` is dropped and reconnected.
//! * `send_*` returns a [`MessageId`] or a precise [`SendError`]; accepted messages wait in a
//!   bounded, ordered outbox while the link is down and are flushed first after a reconnect.
//!   Each one is later reported [`Event::Written`] or [`Event::SendFailed`]: never dropped in
//!   silence.
//! * Inbound size limits, and backpressure: a slow application pauses reading from the socket.
//! * Events through a callback on a dispatcher thread, or dispatched to a handler on the
//!   caller's thread ([`Client::dispatch`], with a wake-up hook for event loops).
//!
//! ```no_run
//! use std::time::Duration;
//! use tether_core::{Client, Config, Event, EventDelivery};
//!
//! let config = Config::builder("ws://127.0.0.1:9001/").build()?;
//! let client = Client::connect(config, EventDelivery::Poll)?;
//! let id = client.send_text("hello")?; // queued until the link is ready
//! while let Some(event) = client.next_event(Duration::from_secs(5)) {
//!     match event {
//!         Event::Written { up_to } if up_to >= id => println!("message {id} is on the wire"),
//!         Event::Message(m) => { println!("got {m:?}"); break; }
//!         other => println!("{other:?}"),
//!     }
//! }
//! client.shutdown(Duration::from_secs(5));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod config;
mod connect;
mod dispatch;
mod driver;
pub mod envelope;
mod error;
mod event;
mod event_queue;
mod heartbeat;
mod hook;
mod kept;
mod kind;
pub mod log;
mod meter;
pub mod options;
mod outbox;
mod proxy;
mod reach;
mod resume;
mod retry;
pub mod routing;
pub mod runtime;
mod session;
mod shared;
mod store;
mod tls;
pub mod wake;

pub use bytes::Bytes;
pub use client::{AckFuture, Client, EventDelivery, StartError, StatusFuture};
pub use config::{
    defaults, parse_ws_url, Config, ConfigBuilder, IoDriver, OutboxSync, OverflowPolicy, Protocol,
    ReconnectPolicy, RetryClassifier, TlsRoots,
};
pub use dispatch::DispatchError;
pub use error::{
    CloseError, ConfigError, ConnectError, DeliveryError, Disconnect, NotReady, ProxyRefusal,
    SendError, SendFailure,
};
pub use event::{Event, EventKind, IdRange, Message, MessageId, SessionReset, State, Stats, Text};
pub use kind::{Classify, ErrorKind};
pub use options::{OptionKind, OptionSpec, OptionValue};
pub use outbox::{DeliveryStatus, Want};
pub use reach::{ConnectAttempt, ConnectionInfo, Credentials, CredentialsProvider};
pub use retry::{backoff_ceiling, backoff_delay, default_retry_decision, RetryDecision};
pub use store::StoreError;

/// A message fails with [`SendFailure::RefusedTooLarge`] once the server has closed this many
/// links with 1009 ("message too big") while it was the largest message in flight. More than
/// one, so that a 1009 the server sends for a reason of its own does not fail a message at
/// once; few, so that a message over the server's limit does not block the queue behind it.
pub const TOO_LARGE_STRIKES: u32 = 3;

// The README's Rust quickstarts are compiled as doctests, so they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeQuickstarts;
