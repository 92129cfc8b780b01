//! Hostile and broken servers: hand-written (raw TCP, HTTP and WebSocket bytes written by hand
//! where that is the point) servers that lie, stall, flood and speak garbage. Each case checks
//! the precise event the client reports, that nothing crashes or grows without bound, and that
//! the retry decision is the one the default classifier documents (README, "Reconnect").
//!
//! Every server runs on a small tokio runtime on its own thread, and every handler is bounded
//! in time ([`HANDLER_LIMIT`]).

mod common;

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use common::{fast, wait_until, Recorder, SOON};
use futures_util::{SinkExt, StreamExt};
use tether_core::envelope::Codec;
use tether_core::{ConnectError, Disconnect, Event, Message, Protocol, State};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// No handler runs longer than this.
const HANDLER_LIMIT: Duration = Duration::from_secs(30);
/// Generous allowance for RSS growth in the memory checks (the attacks would need GiBs).
const RSS_MARGIN: u64 = 64 << 20;

// ---------------------------------------------------------------------------------------------
// A hostile server: a runtime thread, an accept loop, one handler per connection.
// ---------------------------------------------------------------------------------------------

/// What the handlers report back to the test.
#[derive(Default)]
struct Seen {
    accepted: AtomicUsize,
    /// Free-form notes, with the 1-based connection index they came from.
    notes: Mutex<Vec<(usize, String)>>,
    /// Flood server: frames fully written.
    frames_written: AtomicU64,
    /// Flood server: the longest a single frame write was blocked, in microseconds.
    longest_write_us: AtomicU64,
    /// Flood server: when the write in progress started (None between writes).
    write_started: Mutex<Option<Instant>>,
}

impl Seen {
    fn note(&self, conn: usize, note: impl Into<String>) {
        lock(&self.notes).push((conn, note.into()));
    }

    fn notes(&self) -> Vec<(usize, String)> {
        lock(&self.notes).clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Hostile {
    port: u16,
    seen: Arc<Seen>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Hostile {
    /// Listen on 127.0.0.1:0 and run `handler(stream, connection index, seen)` for each
    /// accepted connection, each bounded by [`HANDLER_LIMIT`].
    fn start<F, Fut>(handler: F) -> Hostile
    where
        F: Fn(TcpStream, usize, Arc<Seen>) -> Fut + Send + 'static,
        Fut: Future<Output = io::Result<()>> + Send + 'static,
    {
        let seen = Arc::new(Seen::default());
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let shared = seen.clone();
        let thread = std::thread::Builder::new()
            .name("hostile-server".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async move {
                    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                    let port = listener.local_addr().expect("local addr").port();
                    let _ = port_tx.send(port);
                    let accept = async {
                        loop {
                            let Ok((stream, _)) = listener.accept().await else {
                                continue;
                            };
                            let conn = shared.accepted.fetch_add(1, Ordering::SeqCst) + 1;
                            let work = handler(stream, conn, shared.clone());
                            let seen = shared.clone();
                            tokio::spawn(async move {
                                match tokio::time::timeout(HANDLER_LIMIT, work).await {
                                    Ok(Ok(())) => {}
                                    Ok(Err(e)) => seen.note(conn, format!("handler error: {e}")),
                                    Err(_) => seen.note(conn, "handler timed out"),
                                }
                            });
                        }
                    };
                    tokio::select! {
                        () = accept => {}
                        _ = stop_rx => {}
                    }
                });
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .expect("spawn the server thread");
        let port = port_rx
            .recv_timeout(SOON)
            .expect("hostile server listening");
        Hostile {
            port,
            seen,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/", self.port)
    }

    fn accepted(&self) -> usize {
        self.seen.accepted.load(Ordering::SeqCst)
    }

    /// Wait for a note matching `pred`; panics with all notes on timeout.
    fn wait_note(&self, what: &str, mut pred: impl FnMut(usize, &str) -> bool) -> (usize, String) {
        let mut found = None;
        let ok = wait_until(SOON, || {
            found = self
                .seen
                .notes()
                .into_iter()
                .find(|(conn, note)| pred(*conn, note));
            found.is_some()
        });
        assert!(
            ok,
            "server never noted {what}; notes: {:?}",
            self.seen.notes()
        );
        found.expect("found")
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Hand-written HTTP and WebSocket bytes.
// ---------------------------------------------------------------------------------------------

fn other(what: &str) -> io::Error {
    io::Error::other(what.to_owned())
}

/// Read the client's HTTP request (up to the blank line; at most 16 KiB).
async fn read_request(stream: &mut TcpStream) -> io::Result<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() > 16 << 10 {
            return Err(other("request too long"));
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// The `Sec-WebSocket-Accept` value the request asks for.
fn accept_for(request: &str) -> String {
    let key = request
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("sec-websocket-key")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    derive_accept_key(key.as_bytes())
}

fn switching_protocols(accept: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    )
}

/// A correct upgrade, by hand.
async fn upgrade(stream: &mut TcpStream) -> io::Result<()> {
    let request = read_request(stream).await?;
    stream
        .write_all(switching_protocols(&accept_for(&request)).as_bytes())
        .await
}

/// A server frame (unmasked) with first byte `first` (FIN, RSV bits, opcode).
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= 0xffff => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

/// Read one (masked) client frame: its first byte and unmasked payload (at most 1 MiB).
async fn read_client_frame(stream: &mut TcpStream) -> io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).await?;
    let len = match head[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            stream.read_exact(&mut b).await?;
            u64::from(u16::from_be_bytes(b))
        }
        127 => {
            let mut b = [0u8; 8];
            stream.read_exact(&mut b).await?;
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    };
    if len > 1 << 20 {
        return Err(other("client frame over 1 MiB"));
    }
    let mut mask = [0u8; 4];
    if head[1] & 0x80 != 0 {
        stream.read_exact(&mut mask).await?;
    }
    let mut payload = vec![0u8; len as usize];
    stream.read_exact(&mut payload).await?;
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
    Ok((head[0], payload))
}

/// Read client frames until its close frame; note it as `close CODE REASON`. An EOF first is
/// noted as `eof`.
async fn note_client_close(stream: &mut TcpStream, conn: usize, seen: &Seen) -> io::Result<()> {
    loop {
        match read_client_frame(stream).await {
            Ok((first, payload)) if first & 0x0f == 0x8 => {
                let code = if payload.len() >= 2 {
                    u16::from_be_bytes([payload[0], payload[1]])
                } else {
                    1005
                };
                let reason = String::from_utf8_lossy(payload.get(2..).unwrap_or_default());
                seen.note(conn, format!("close {code} {reason}"));
                return Ok(());
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                seen.note(conn, "eof");
                return Ok(());
            }
            Err(e) => return Err(e),
        }
    }
}

/// What a peer does that is still sending when the client's close frame arrives (RFC 6455
/// §5.5.1, §7.1.1): it writes what it had started (`rest`), then its own close frame if the frame
/// stream still allows one (`close_code`), then closes its side of TCP and reads until the
/// client's end of file. A client that drops the socket right after its close frame makes the
/// kernel answer these writes with a reset: the handler then ends with an error ("handler
/// error: Connection reset by peer" or "Broken pipe") instead of noting "clean end".
async fn finish_as_a_busy_peer(
    stream: &mut TcpStream,
    conn: usize,
    seen: &Seen,
    rest: &[u8],
    close_code: Option<u16>,
) -> io::Result<()> {
    stream.write_all(rest).await?;
    if let Some(code) = close_code {
        stream.write_all(&frame(0x88, &code.to_be_bytes())).await?;
    }
    stream.shutdown().await?;
    let mut sink = [0u8; 4096];
    let mut after = 0usize;
    loop {
        match stream.read(&mut sink).await? {
            0 => break,
            n => after += n,
        }
    }
    seen.note(conn, format!("clean end, {after} bytes after the close"));
    Ok(())
}

/// Wait for connection `conn` to end and return how: "clean end ..." or "handler error: ...".
fn wait_end(server: &Hostile, conn: usize) -> String {
    server
        .wait_note("the end of the connection", |c, note| {
            c == conn && (note.starts_with("clean end") || note.starts_with("handler"))
        })
        .1
}

/// Keep the connection open (and idle) until the client goes away or the handler limit.
async fn hold(stream: &mut TcpStream) -> io::Result<()> {
    let mut sink = [0u8; 4096];
    while stream.read(&mut sink).await? > 0 {}
    Ok(())
}

/// Resident set size of this process, from /proc/self/statm.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .expect("resident pages");
    pages * 4096
}

/// Memory-sensitive cases run one at a time (RSS is per process; tests run in parallel).
static MEMORY: Mutex<()> = Mutex::new(());

// ---------------------------------------------------------------------------------------------
// Assertions shared by the cases.
// ---------------------------------------------------------------------------------------------

fn disconnects(log: &[Event]) -> Vec<(Disconnect, bool)> {
    log.iter()
        .filter_map(|e| match e {
            Event::Disconnected {
                reason,
                will_reconnect,
            } => Some((reason.clone(), *will_reconnect)),
            _ => None,
        })
        .collect()
}

/// The client stops for good on the first failure: one `Disconnected` without reconnect, then
/// `Closed` with the same reason, no reconnect attempt, and no second connection reaches the
/// server. Returns the connect error.
fn assert_final_connect_failure(rec: &mut Recorder, server: &Hostile) -> ConnectError {
    let closed = rec.wait_for("Closed", SOON, |e| matches!(e, Event::Closed { .. }));
    let Event::Closed { reason, .. } = closed else {
        unreachable!()
    };
    assert_eq!(
        disconnects(&rec.log),
        [(reason.clone(), false)],
        "{rec_log:?}",
        rec_log = rec.log
    );
    // Nothing happens afterwards: no reconnect loop.
    let after = rec.collect_for(Duration::from_millis(300));
    assert!(after.is_empty(), "{after:?}");
    assert!(rec.attempts().is_empty(), "{:?}", rec.log);
    assert_eq!(server.accepted(), 1, "no second connection");
    assert_eq!(rec.client.state(), State::Closed);
    match reason {
        Disconnect::ConnectFailed(e) => e,
        other => panic!("expected ConnectFailed, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The upgrade: garbage, lies, refusals, redirects, slowness.
// ---------------------------------------------------------------------------------------------

#[test]
fn garbage_instead_of_an_http_response_is_a_final_handshake_error() {
    let server = Hostile::start(|mut stream, _, _| async move {
        read_request(&mut stream).await?;
        stream
            .write_all(b"\x00\x13\x37\xffNOT HTTP AT ALL\xfe\r\n\x01\x02\r\n\r\n")
            .await?;
        hold(&mut stream).await
    });
    let mut rec = Recorder::connect(fast(&server.url()));
    let error = assert_final_connect_failure(&mut rec, &server);
    let ConnectError::Handshake(message) = &error else {
        panic!("expected Handshake, got {error:?}");
    };
    assert!(message.contains("httparse"), "{message}");
}

#[test]
fn a_wrong_sec_websocket_accept_is_a_final_handshake_error() {
    let server = Hostile::start(|mut stream, _, _| async move {
        read_request(&mut stream).await?;
        // The accept value for a different key (RFC 6455's sample).
        let lie = switching_protocols(&derive_accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        stream.write_all(lie.as_bytes()).await?;
        hold(&mut stream).await
    });
    let mut rec = Recorder::connect(fast(&server.url()));
    let error = assert_final_connect_failure(&mut rec, &server);
    let ConnectError::Handshake(message) = &error else {
        panic!("expected Handshake, got {error:?}");
    };
    assert!(message.contains("Sec-WebSocket-Accept"), "{message}");
}

/// A server answering every upgrade with this HTTP response, then closing.
fn http_server(response: &'static str) -> Hostile {
    Hostile::start(move |mut stream, _, _| async move {
        read_request(&mut stream).await?;
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    })
}

#[test]
fn http_403_on_the_upgrade_is_final_without_a_reconnect_loop() {
    let server = http_server("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
    let mut rec = Recorder::connect(fast(&server.url()));
    let error = assert_final_connect_failure(&mut rec, &server);
    assert_eq!(
        error,
        ConnectError::HttpStatus {
            status: 403,
            location: None
        }
    );
}

#[test]
fn http_503_on_the_upgrade_is_retried_with_growing_backoff() {
    let server = http_server(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n",
    );
    let initial = Duration::from_millis(40);
    let mut rec =
        Recorder::connect(fast(&server.url()).backoff(initial, Duration::from_secs(1), 2.0));
    rec.wait_for("attempt 3", SOON, |e| {
        matches!(e, Event::Reconnecting { attempt: 3, .. })
    });
    assert_eq!(rec.attempts(), [1, 2, 3]);
    // Full jitter under a doubling ceiling: 40, 80, 160 ms.
    let delays: Vec<Duration> = rec
        .log
        .iter()
        .filter_map(|e| match e {
            Event::Reconnecting { delay, .. } => Some(*delay),
            _ => None,
        })
        .collect();
    for (n, delay) in delays.iter().enumerate() {
        assert!(
            *delay <= initial * 2u32.pow(n as u32),
            "attempt {}: {delay:?}",
            n + 1
        );
    }
    let seen = disconnects(&rec.log);
    assert_eq!(seen.len(), 3);
    for (reason, will_reconnect) in &seen {
        assert_eq!(
            *reason,
            Disconnect::ConnectFailed(ConnectError::HttpStatus {
                status: 503,
                location: None
            })
        );
        assert!(will_reconnect);
    }
    assert!(server.accepted() >= 3);
    rec.client.close(1000, "").expect("close");
    let closed = rec.wait_for("Closed", SOON, |e| matches!(e, Event::Closed { .. }));
    assert!(
        matches!(
            closed,
            Event::Closed {
                reason: Disconnect::UserClose { .. },
                ..
            }
        ),
        "{closed:?}"
    );
}

#[test]
fn a_redirect_is_final_and_the_error_names_the_location() {
    for (status, text) in [(301, "Moved Permanently"), (302, "Found")] {
        let response: &'static str = Box::leak(
            format!(
                "HTTP/1.1 {status} {text}\r\nLocation: wss://elsewhere.example/socket\r\n\
                 Content-Length: 0\r\n\r\n"
            )
            .into_boxed_str(),
        );
        let server = http_server(response);
        let mut rec = Recorder::connect(fast(&server.url()));
        let error = assert_final_connect_failure(&mut rec, &server);
        assert_eq!(
            error,
            ConnectError::HttpStatus {
                status,
                location: Some("wss://elsewhere.example/socket".into())
            }
        );
        let message = Disconnect::ConnectFailed(error).to_string();
        assert!(
            message.contains("redirect to wss://elsewhere.example/socket")
                && message.contains("not followed"),
            "{message}"
        );
    }
}

#[test]
fn a_handshake_dripped_one_byte_at_a_time_hits_the_connect_timeout() {
    let server = Hostile::start(|mut stream, conn, seen| async move {
        let request = read_request(&mut stream).await?;
        stream.set_nodelay(true)?;
        let response = switching_protocols(&accept_for(&request));
        for (i, byte) in response.bytes().enumerate() {
            if stream.write_all(&[byte]).await.is_err() {
                seen.note(conn, format!("client hung up after {i} bytes"));
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        seen.note(conn, "whole response written");
        Ok(())
    });
    let timeout = Duration::from_millis(400);
    let started = Instant::now();
    let mut rec = Recorder::connect(fast(&server.url()).connect_timeout(timeout));
    let (reason, will_reconnect) = rec.wait_disconnected();
    let took = started.elapsed();
    assert_eq!(
        reason,
        Disconnect::ConnectFailed(ConnectError::Timeout(timeout))
    );
    assert!(will_reconnect, "a timeout is retried");
    assert!(
        took >= timeout && took <= timeout + Duration::from_millis(700),
        "gave up after {took:?}"
    );
    rec.client.close(1000, "").expect("close");
    rec.wait_for("Closed", SOON, |e| matches!(e, Event::Closed { .. }));
    // The client really let go of the socket: the server's next writes fail.
    let (_, note) = server.wait_note("the client hanging up", |conn, note| {
        conn == 1 && note.starts_with("client hung up")
    });
    assert!(!note.contains("whole response"), "{note}");
}

#[test]
fn a_handshake_dripped_in_tiny_packets_is_cut_off_by_the_attack_check_before_the_timeout() {
    // tungstenite refuses a handshake that arrives in more than 64 packets averaging under
    // 128 bytes ("Attack attempt detected"), long before a generous connect_timeout. Tether
    // maps it to ConnectError::Handshake, which the default classifier treats as final.
    let server = Hostile::start(|mut stream, conn, seen| async move {
        read_request(&mut stream).await?;
        stream.set_nodelay(true)?;
        let junk = b"HTTP/1.1 101 Switching Protocols\r\nX-Drip: ";
        let drip = junk.iter().copied().chain(std::iter::repeat(b'a'));
        for (sent, byte) in drip.enumerate() {
            if stream.write_all(&[byte]).await.is_err() {
                seen.note(conn, format!("client hung up after {sent} bytes"));
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    });
    let started = Instant::now();
    let mut rec = Recorder::connect(fast(&server.url()).connect_timeout(Duration::from_secs(20)));
    let error = assert_final_connect_failure(&mut rec, &server);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        error,
        ConnectError::Handshake("Attack attempt detected".into())
    );
    server.wait_note("the client hanging up", |_, note| {
        note.starts_with("client hung up")
    });
}

#[test]
fn endless_response_headers_are_bounded_and_final() {
    let _serial = lock(&MEMORY);
    let server = Hostile::start(|mut stream, conn, seen| async move {
        read_request(&mut stream).await?;
        stream
            .write_all(b"HTTP/1.1 101 Switching Protocols\r\nX-Flood: ")
            .await?;
        let chunk = vec![b'a'; 16 << 10];
        let mut sent = 0usize;
        loop {
            if stream.write_all(&chunk).await.is_err() {
                seen.note(conn, format!("client hung up after {sent} bytes"));
                return Ok(());
            }
            sent += chunk.len();
        }
    });
    let before = rss_bytes();
    let mut rec = Recorder::connect(fast(&server.url()));
    let error = assert_final_connect_failure(&mut rec, &server);
    assert_eq!(
        error,
        ConnectError::Handshake("Attack attempt detected".into())
    );
    let (_, note) = server.wait_note("the client hanging up", |_, note| {
        note.starts_with("client hung up")
    });
    let grown = rss_bytes().saturating_sub(before);
    assert!(grown < RSS_MARGIN, "RSS grew by {grown} bytes ({note})");
}

#[test]
fn a_server_hanging_up_during_the_upgrade_is_a_network_error_and_retried() {
    // Connection by connection: close at once; read the request then FIN; read the request
    // then RST; half a status line then FIN; then a correct upgrade.
    let server = Hostile::start(|mut stream, conn, _| async move {
        match conn {
            1 => Ok(()),
            2 => {
                read_request(&mut stream).await?;
                stream.shutdown().await
            }
            3 => {
                read_request(&mut stream).await?;
                stream.set_zero_linger()?;
                Ok(())
            }
            4 => {
                read_request(&mut stream).await?;
                stream.write_all(b"HTTP/1.1 101 Swi").await?;
                stream.shutdown().await
            }
            _ => {
                upgrade(&mut stream).await?;
                hold(&mut stream).await
            }
        }
    });
    let mut rec = Recorder::connect(fast(&server.url()));
    rec.wait_state(State::Ready);
    let seen = disconnects(&rec.log);
    assert_eq!(seen.len(), 4, "{:?}", rec.log);
    for (i, (reason, will_reconnect)) in seen.iter().enumerate() {
        assert!(
            matches!(reason, Disconnect::ConnectFailed(ConnectError::Io(_))),
            "case {}: {reason:?}",
            i + 1
        );
        assert!(will_reconnect, "case {}: {reason:?}", i + 1);
    }
}

// ---------------------------------------------------------------------------------------------
// After the upgrade: garbage frames, lying lengths, floods.
// ---------------------------------------------------------------------------------------------

/// Byte sequences that are not valid server frames: (case, bytes, what tungstenite calls it).
fn bad_frames() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let mut big_ping = vec![0x89, 126, 0, 126];
    big_ping.extend_from_slice(&[b'p'; 126]);
    vec![
        (
            "random bytes",
            b"\x17\x03\x03\x00\x45\xde\xad\xbe\xef garbage".to_vec(),
            "Encountered invalid opcode: 7",
        ),
        (
            "reserved bits set",
            b"\xf1\x01x".to_vec(),
            "Reserved bits are non-zero",
        ),
        (
            "reserved control opcode",
            b"\x8b\x00".to_vec(),
            "Encountered invalid opcode: 11",
        ),
        (
            "masked frame from a server",
            b"\x81\x85\x01\x02\x03\x04\x69\x67\x6f\x68\x6e".to_vec(),
            "Received a masked frame from server",
        ),
        (
            "continuation with nothing to continue",
            b"\x80\x01x".to_vec(),
            "Continue frame but nothing to continue",
        ),
        (
            "fragmented ping",
            b"\x09\x00".to_vec(),
            "Fragmented control frame",
        ),
        ("ping over 125 bytes", big_ping, "Control frame too big"),
        (
            "new message inside a fragmented one",
            b"\x01\x01a\x81\x01b".to_vec(),
            "While waiting for more fragments received",
        ),
        (
            "close frame with a 1-byte payload",
            b"\x88\x01\x03".to_vec(),
            "Invalid close sequence",
        ),
    ]
}

#[test]
fn garbage_instead_of_frames_is_a_protocol_error_answered_with_1002_and_retried() {
    // Connection n gets case n of bad_frames() right after a valid 101; the one after the last gets
    // a healthy (idle) link. The client survives every one and reconnects.
    let server = Hostile::start(|mut stream, conn, seen| async move {
        upgrade(&mut stream).await?;
        match bad_frames().get(conn - 1) {
            Some((_, bytes, _)) => {
                stream.write_all(bytes).await?;
                note_client_close(&mut stream, conn, &seen).await
            }
            None => hold(&mut stream).await,
        }
    });
    let mut rec = Recorder::connect(fast(&server.url()));
    let cases = bad_frames();
    for (i, (case, _, expected)) in cases.iter().enumerate() {
        let (reason, will_reconnect) = rec.wait_disconnected();
        let Disconnect::ProtocolError { code, detail } = &reason else {
            panic!("{case}: expected ProtocolError, got {reason:?}");
        };
        assert_eq!(*code, 1002, "{case}");
        assert!(detail.contains(expected), "{case}: {detail}");
        assert!(
            will_reconnect,
            "{case}: a protocol error from the server is retried"
        );
        let conn = i + 1;
        let (_, note) = server.wait_note("the client's close frame", |c, _| c == conn);
        assert!(note.starts_with("close 1002 "), "{case}: {note}");
    }
    rec.wait_state(State::Ready);
    assert_eq!(server.accepted(), cases.len() + 1);
    assert_eq!(rec.client.stats().messages_received, 0);
}

#[test]
fn a_close_frame_with_a_code_that_may_not_be_sent_is_not_mistaken_for_a_final_1002() {
    // RFC 6455 forbids 1005, 1006 and 1015 (and codes below 1000) on the wire. tungstenite
    // substitutes 1002 "Protocol violation" for them. The server never sent 1002: the README's
    // classifier lists 1005 and 1006 as retried, and a protocol error from the server as
    // retried too, so either way the client must reconnect.
    let mut outcomes = Vec::new();
    for code in [1006u16, 1005, 1015, 999] {
        let server = Hostile::start(move |mut stream, conn, seen| async move {
            upgrade(&mut stream).await?;
            if conn > 1 {
                return hold(&mut stream).await;
            }
            let mut payload = code.to_be_bytes().to_vec();
            payload.extend_from_slice(b"bogus");
            stream.write_all(&frame(0x88, &payload)).await?;
            note_client_close(&mut stream, conn, &seen).await
        });
        let mut rec = Recorder::connect(fast(&server.url()));
        rec.wait_state(State::Ready);
        let (reason, will_reconnect) = rec.wait_disconnected();
        outcomes.push((code, reason, will_reconnect));
    }
    let wrong: Vec<_> = outcomes
        .iter()
        .filter(|(code, reason, will_reconnect)| {
            let honest = matches!(reason, Disconnect::ServerClosed { code: c, .. } if c == code)
                || matches!(reason, Disconnect::ProtocolError { code: 1002, .. });
            !(honest && *will_reconnect)
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "(code sent, reported, will_reconnect): {wrong:?}"
    );
}

#[test]
fn a_frame_announcing_a_huge_length_is_refused_with_1009_and_memory_stays_bounded() {
    let _serial = lock(&MEMORY);
    const LIMIT: usize = 256 << 10;
    const FRAME_LIMIT: usize = 128 << 10;
    // Each connection goes on writing after the client's close frame, as a peer does that has
    // not read it yet, and ends with a clean TCP close only if the client keeps its socket
    // open until then (reading and discarding) instead of dropping it at once.
    let server = Hostile::start(|mut stream, conn, seen| async move {
        upgrade(&mut stream).await?;
        let piece = vec![b'x'; 64 << 10];
        match conn {
            // 2^62 bytes announced, then (after the client's close) 1 MiB of them. The frame
            // stream cannot be read past such a header: no close frame can follow.
            1 => {
                let mut head = vec![0x82, 127];
                head.extend_from_slice(&(1u64 << 62).to_be_bytes());
                stream.write_all(&head).await?;
                note_client_close(&mut stream, conn, &seen).await?;
                finish_as_a_busy_peer(&mut stream, conn, &seen, &vec![0; 1 << 20], None).await
            }
            // The largest length the header can carry (MSB set: illegal too).
            2 => {
                let mut head = vec![0x82, 127];
                head.extend_from_slice(&u64::MAX.to_be_bytes());
                stream.write_all(&head).await?;
                note_client_close(&mut stream, conn, &seen).await?;
                finish_as_a_busy_peer(&mut stream, conn, &seen, &vec![0; 1 << 20], None).await
            }
            // Fragments each under the frame limit, over the message limit together: the fifth
            // crosses it; the other four and a close frame follow the client's close.
            3 => {
                stream.write_all(&frame(0x02, &piece)).await?;
                for _ in 0..4 {
                    stream.write_all(&frame(0x00, &piece)).await?;
                }
                note_client_close(&mut stream, conn, &seen).await?;
                let mut rest = Vec::new();
                for _ in 0..3 {
                    rest.extend_from_slice(&frame(0x00, &piece));
                }
                rest.extend_from_slice(&frame(0x80, &piece));
                finish_as_a_busy_peer(&mut stream, conn, &seen, &rest, Some(1009)).await
            }
            _ => hold(&mut stream).await,
        }
    });
    let before = rss_bytes();
    let mut rec = Recorder::connect(fast(&server.url()).max_inbound_size(LIMIT, FRAME_LIMIT));
    let expected = [
        (1usize << 62, FRAME_LIMIT),
        (u64::MAX as usize, FRAME_LIMIT),
        (LIMIT + (64 << 10), LIMIT),
    ];
    for (conn, (size, limit)) in expected.into_iter().enumerate().map(|(i, e)| (i + 1, e)) {
        let (reason, will_reconnect) = rec.wait_disconnected();
        assert_eq!(
            reason,
            Disconnect::InboundTooLarge { size, limit },
            "connection {conn}"
        );
        assert_eq!(reason.close_code(), 1009);
        assert!(
            will_reconnect,
            "connection {conn}: oversized inbound is retried"
        );
        let (_, note) = server.wait_note("the client's close frame", |c, _| c == conn);
        assert!(
            note.starts_with("close 1009 ") && note.contains("exceeds the limit"),
            "connection {conn}: {note}"
        );
        let end = wait_end(&server, conn);
        assert!(
            end.starts_with("clean end"),
            "connection {conn}: the client must keep its socket open after its close frame \
             until the server closes; the server saw: {end}"
        );
    }
    rec.wait_state(State::Ready);
    assert!(
        !rec.log.iter().any(|e| matches!(e, Event::Message(_))),
        "nothing oversized is delivered"
    );
    let grown = rss_bytes().saturating_sub(before);
    assert!(grown < RSS_MARGIN, "RSS grew by {grown} bytes");
}

#[test]
fn a_flooding_server_meets_tcp_backpressure_while_the_application_does_not_consume() {
    let _serial = lock(&MEMORY);
    const TOTAL: u64 = 4096;
    const SIZE: usize = 16 << 10; // 64 MiB in all: far more than the socket buffers hold
    let server = Hostile::start(|mut stream, conn, seen| async move {
        upgrade(&mut stream).await?;
        for i in 0..TOTAL {
            let mut payload = format!("{i:08} ").into_bytes();
            payload.resize(SIZE, b'.');
            let bytes = frame(0x81, &payload);
            let started = Instant::now();
            *lock(&seen.write_started) = Some(started);
            stream.write_all(&bytes).await?;
            *lock(&seen.write_started) = None;
            let took = started.elapsed().as_micros() as u64;
            seen.longest_write_us.fetch_max(took, Ordering::SeqCst);
            seen.frames_written.fetch_add(1, Ordering::SeqCst);
        }
        seen.note(conn, "flood done");
        hold(&mut stream).await
    });
    let capacity = 8;
    let mut rec = Recorder::connect(fast(&server.url()).event_queue_capacity(capacity));
    rec.wait_state(State::Ready);
    assert!(
        wait_until(SOON, || rec.client.pending_events() >= capacity),
        "the event queue fills"
    );
    // The application does not consume. The client stops reading; the server's write blocks.
    let pause = Duration::from_millis(600);
    std::thread::sleep(pause);
    let written = server.seen.frames_written.load(Ordering::SeqCst);
    let received = rec.client.stats().messages_received;
    std::thread::sleep(pause);
    assert_eq!(
        server.seen.frames_written.load(Ordering::SeqCst),
        written,
        "the server made no progress while the application was not consuming"
    );
    assert_eq!(rec.client.stats().messages_received, received);
    assert!(
        received <= capacity as u64 + 1,
        "read {received} with a queue of {capacity}"
    );
    assert!(
        written < TOTAL,
        "the flood was not absorbed: {written} frames written"
    );
    let blocked_for = lock(&server.seen.write_started)
        .map(|since| since.elapsed())
        .unwrap_or_default();
    assert!(
        blocked_for >= pause,
        "the server's current write is blocked ({blocked_for:?})"
    );
    eprintln!(
        "flood: server blocked after {written} frames ({} KiB in flight), client read {received}",
        (written - received) * (SIZE as u64 + 4) / 1024
    );

    // Consuming resumes everything, in order, nothing lost.
    let got = rec.recv_texts(TOTAL as usize, Duration::from_secs(60));
    for (i, text) in got.iter().enumerate() {
        assert!(text.starts_with(&format!("{i:08} ")), "message {i}");
    }
    assert_eq!(rec.client.stats().messages_received, TOTAL);
    server.wait_note("flood done", |_, note| note == "flood done");
    let longest = Duration::from_micros(server.seen.longest_write_us.load(Ordering::SeqCst));
    assert!(
        longest >= blocked_for,
        "the server measured its own stall: {longest:?} (blocked {blocked_for:?} at the check)"
    );
    eprintln!("flood: longest server write stall {longest:?}");
    assert!(
        disconnects(&rec.log).is_empty(),
        "{:?}",
        disconnects(&rec.log)
    );
}

// ---------------------------------------------------------------------------------------------
// Envelope mode: a server that completes the handshake, then lies.
// ---------------------------------------------------------------------------------------------

const KEY: &[u8] = b"tether-test-key";

fn ws_io(e: tokio_tungstenite::tungstenite::Error) -> io::Error {
    io::Error::other(e.to_string())
}

/// Envelope server: hello → welcome, then `script` frames, then note every text frame the
/// client sends (`text <json>`) until it goes away.
fn envelope_server(script: fn() -> Vec<WsMessage>) -> Hostile {
    Hostile::start(move |stream, conn, seen| async move {
        let mut ws = tokio_tungstenite::accept_async(stream)
            .await
            .map_err(ws_io)?;
        let hello = match ws.next().await {
            Some(Ok(WsMessage::Text(t))) => t.to_string(),
            unexpected => return Err(other(&format!("expected hello, got {unexpected:?}"))),
        };
        seen.note(conn, format!("hello {hello}"));
        for frame in script() {
            ws.send(frame).await.map_err(ws_io)?;
        }
        while let Some(frame) = ws.next().await {
            if let WsMessage::Text(t) = frame.map_err(ws_io)? {
                seen.note(conn, format!("text {t}"));
            }
        }
        Ok(())
    })
}

fn text(s: &str) -> WsMessage {
    WsMessage::Text(s.to_owned().into())
}

#[test]
fn envelope_server_lies_are_rejected_one_by_one_and_the_link_stays_up() {
    let server = envelope_server(|| {
        let forger = Codec::new(Some(b"not the key"), None, 1 << 20);
        let genuine = Codec::new(Some(KEY), None, 1 << 20);
        let mut lying_binary = vec![1, 2, 0, 0];
        lying_binary.extend_from_slice(&7u64.to_be_bytes());
        lying_binary.extend_from_slice(&100u32.to_be_bytes()); // says 100, carries 4
        lying_binary.extend_from_slice(&[0, 1, 2, 3]);
        vec![
            text(r#"{"v":1,"t":"welcome","last":0}"#),
            // A forged id far ahead: if it counted, the genuine id 2 below would look like a
            // duplicate and be dropped.
            forger.text_msg(100, "forged"),
            text(r#"{"v":2,"t":"msg","id":3,"d":"from the future"}"#),
            text(r#"{"v":1,"t":"msg","id":4,"d":"#),
            WsMessage::Binary(lying_binary.into()),
            text(r#"{"v":1,"t":"welcome","last":0}"#),
            genuine.text_msg(2, "genuine"),
        ]
    });
    let mut rec = Recorder::connect(
        fast(&server.url())
            .protocol(Protocol::Envelope)
            .signing_key(KEY.to_vec()),
    );
    rec.wait_state(State::Ready);
    let message = rec.wait_for("the genuine message", SOON, |e| {
        matches!(e, Event::Message(_))
    });
    assert_eq!(message, Event::Message(Message::Text("genuine".into())));
    let rejected: Vec<String> = rec
        .log
        .iter()
        .filter_map(|e| match e {
            Event::InboundRejected { reason } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    let expected = [
        "message 100: bad signature",
        "unsupported protocol version 2",
        "malformed envelope: invalid JSON",
        "message 7: binary header says 116 bytes in all, the frame has 20",
        "unexpected welcome after the handshake",
    ];
    assert_eq!(rejected.len(), expected.len(), "{rejected:?}");
    for (got, want) in rejected.iter().zip(expected) {
        assert!(got.starts_with(want), "{got:?} should start with {want:?}");
    }
    // The forged message is nacked by id; the genuine one is acked.
    server.wait_note("the nack", |_, note| {
        note.starts_with(r#"text {"v":1,"t":"nack","id":100,"reason":"#)
            && note.contains("bad signature")
    });
    server.wait_note("the ack", |_, note| {
        note == r#"text {"v":1,"t":"ack","upto":2}"#
    });
    assert!(
        !server
            .seen
            .notes()
            .iter()
            .any(|(_, n)| n.contains(r#""t":"nack","id":2,"#)),
        "the genuine message is not nacked"
    );
    let stats = rec.client.stats();
    assert_eq!(stats.inbound_rejected, expected.len() as u64);
    assert_eq!(stats.messages_received, 1);
    assert!(
        disconnects(&rec.log).is_empty(),
        "the link stayed up: {:?}",
        rec.log
    );
    assert_eq!(server.accepted(), 1);
    assert_eq!(rec.client.state(), State::Ready);
}

#[test]
fn malformed_envelope_messages_that_carry_an_id_are_nacked_as_the_protocol_says() {
    // PROTOCOL.md, "Errors": a malformed frame is reported and ignored, and "if it carried a
    // message id, it is nacked", so the sender fails it at once instead of resending it.
    let server = envelope_server(|| {
        let binary = |flags: u8, id: u64, said: u32, body: &[u8]| {
            let mut frame = vec![1, 2, flags, 0];
            frame.extend_from_slice(&id.to_be_bytes());
            frame.extend_from_slice(&said.to_be_bytes());
            frame.extend_from_slice(body);
            WsMessage::Binary(frame.into())
        };
        vec![
            text(r#"{"v":1,"t":"welcome","last":0}"#),
            text(r#"{"v":1,"t":"msg","id":11}"#),
            text(r#"{"v":1,"t":"msg","id":12,"d":"x","z":7}"#),
            binary(0, 13, 100, b"abcd"),
            binary(0x80, 14, 1, b"x"),
            text(r#"{"v":1,"t":"msg","id":15,"d":"ok"}"#),
        ]
    });
    let mut rec = Recorder::connect(fast(&server.url()).protocol(Protocol::Envelope));
    let message = rec.wait_for("the valid message", SOON, |e| {
        matches!(e, Event::Message(_))
    });
    assert_eq!(message, Event::Message(Message::Text("ok".into())));
    server.wait_note("the ack", |_, note| {
        note == r#"text {"v":1,"t":"ack","upto":15}"#
    });
    assert_eq!(rec.client.stats().inbound_rejected, 4);
    let nacked: Vec<u64> = (11..=14)
        .filter(|id| {
            let prefix = format!(r#"text {{"v":1,"t":"nack","id":{id},"#);
            wait_until(Duration::from_millis(500), || {
                server
                    .seen
                    .notes()
                    .iter()
                    .any(|(_, n)| n.starts_with(&prefix))
            })
        })
        .collect();
    assert_eq!(
        nacked,
        [11, 12, 13, 14],
        "ids nacked; rejections: {:?}",
        rec.log
            .iter()
            .filter(|e| matches!(e, Event::InboundRejected { .. }))
            .collect::<Vec<_>>()
    );
}

#[test]
fn envelope_final_reject_closes_the_client_without_a_reconnect() {
    let server = Hostile::start(|stream, conn, seen| async move {
        let mut ws = tokio_tungstenite::accept_async(stream)
            .await
            .map_err(ws_io)?;
        if let Some(Ok(WsMessage::Text(hello))) = ws.next().await {
            seen.note(conn, format!("hello {hello}"));
        }
        ws.send(text(
            r#"{"v":1,"t":"reject","reason":"banned","final":true}"#,
        ))
        .await
        .map_err(ws_io)?;
        let _ = ws.close(None).await;
        while let Some(Ok(_)) = ws.next().await {}
        Ok(())
    });
    let mut rec = Recorder::connect(fast(&server.url()).protocol(Protocol::Envelope));
    let closed = rec.wait_for("Closed", SOON, |e| matches!(e, Event::Closed { .. }));
    let rejected = Disconnect::Rejected {
        reason: "banned".into(),
        is_final: true,
    };
    assert_eq!(
        closed,
        Event::Closed {
            reason: rejected.clone(),
            undelivered: 0
        }
    );
    assert_eq!(disconnects(&rec.log), [(rejected, false)]);
    assert!(rec.collect_for(Duration::from_millis(300)).is_empty());
    assert!(rec.attempts().is_empty());
    assert_eq!(server.accepted(), 1);
    server.wait_note("the hello", |_, note| {
        note.starts_with(r#"hello {"v":1,"t":"hello","sid":"#)
    });
}
