//! Helpers shared by the integration tests: a tokio-tungstenite client in a
//! small runtime, and a child process speaking the test binaries' stdin/stdout
//! line protocol; every wait is bounded.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

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

/// Bound on waiting for one line from a [`LineChild`]: generous, since a
/// reference server may start an interpreter first.
pub const LINE_TIMEOUT: Duration = Duration::from_secs(20);

/// A child process speaking the line protocol of the test binaries (see
/// `tether_test_peers::stdin_commands`): it prints `PORT <n>`, then answers
/// each command line on stdin with one line. Killed on drop if still running.
pub struct LineChild {
    pub child: Child,
    /// `None` once a test has closed it (to check that the child exits).
    pub stdin: Option<ChildStdin>,
    /// Stdout lines, read on a thread so that every wait can be bounded.
    lines: mpsc::Receiver<String>,
    /// The port from the first line.
    pub port: u16,
    /// Names the child in panic messages.
    name: String,
}

impl LineChild {
    /// Spawns `command` with stdin and stdout piped (stderr as the caller set
    /// it) and waits for its `PORT <n>` line. Panics, naming the child
    /// `name`, if it cannot be spawned or does not announce a port.
    pub fn spawn(command: &mut Command, name: &str) -> LineChild {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{name} does not start: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut process = LineChild {
            child,
            stdin,
            lines,
            port: 0,
            name: name.to_owned(),
        };
        let first = process.line();
        process.port = first
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{name}: expected `PORT <n>`, got {first:?}"));
        process
    }

    /// The next stdout line (bounded by [`LINE_TIMEOUT`]).
    pub fn line(&self) -> String {
        self.lines
            .recv_timeout(LINE_TIMEOUT)
            .unwrap_or_else(|e| panic!("{}: no line within {LINE_TIMEOUT:?}: {e}", self.name))
    }

    /// Sends one command line; returns the answer line.
    pub fn cmd(&mut self, command: &str) -> String {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{command}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("{}: writing {command:?}: {e}", self.name));
        self.line()
    }

    /// Waits (bounded) for the child to exit; `None` if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills and reaps the child unless it has already exited.
    fn kill(&mut self) -> io::Result<()> {
        if let Ok(Some(_)) = self.child.try_wait() {
            return Ok(());
        }
        self.child.kill()?;
        self.child.wait().map(drop)
    }
}

impl Drop for LineChild {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}
