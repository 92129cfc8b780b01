//! The asynchronous half of a [`Peer`](crate::Peer): everything here runs on
//! the peer's private single-threaded tokio runtime.
//!
//! Layout:
//! - one *controller* future (driven by `block_on`) that executes commands sent
//!   by the synchronous API;
//! - one *accept loop* task owning the listener (absent while stopped);
//! - one task per accepted TCP connection. After the WebSocket upgrade that
//!   task runs a reader and a writer concurrently, so the peer keeps reading
//!   while it writes (a flooding client can never deadlock it).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{header, HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::observed::Observed;
use crate::runtime_thread::RuntimeCommand;
use crate::tasks::{abort_and_wait, wait_acks, Registry};
use crate::{Received, ReceivedMsg};

/// Bound on the TLS + WebSocket opening handshake of one connection.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection waits for the client's close reply after the peer
/// sent a close frame, before dropping the TCP connection anyway.
const CLOSE_LINGER: Duration = Duration::from_secs(5);
/// How long a broadcast waits for its frames to be handed to the sockets.
pub(crate) const BROADCAST_ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `restart` keeps retrying to bind the port.
pub(crate) const REBIND_TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// State shared with the synchronous API.
// ---------------------------------------------------------------------------

/// Counters and recordings, guarded by [`Shared::state`].
#[derive(Default)]
pub(crate) struct State {
    pub(crate) accepted: usize,
    pub(crate) open: usize,
    pub(crate) received: Vec<Received>,
    pub(crate) pings: usize,
    pub(crate) last_close: Option<(u16, String)>,
}

/// State shared between the synchronous [`Peer`](crate::Peer) handle and the
/// runtime thread.
pub(crate) struct Shared {
    state: Observed<State>,
    pub(crate) echo: AtomicBool,
    reject: Mutex<Option<u16>>,
    /// Headers of the most recent upgrade request, in order.
    pub(crate) last_request_headers: Mutex<Vec<(String, String)>>,
    /// `true` while the peer is stalled. `watch` so that tasks can await
    /// changes; its sender is usable from any thread without a runtime.
    pub(crate) stall: watch::Sender<bool>,
    /// [`crate::PeerOptions::single_use_header`], lower case.
    pub(crate) single_use_header: Option<String>,
    /// The values of that header seen so far.
    pub(crate) seen_values: Mutex<std::collections::HashSet<String>>,
}

impl Shared {
    pub(crate) fn new(echo: bool, reject: Option<u16>) -> Self {
        Shared {
            state: Observed::new(State::default()),
            echo: AtomicBool::new(echo),
            reject: Mutex::new(reject),
            last_request_headers: Mutex::new(Vec::new()),
            stall: watch::Sender::new(false),
            single_use_header: None,
            seen_values: Mutex::default(),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// Mutates the state and wakes every waiter.
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        self.state.update(f)
    }

    /// Blocks until `f` returns `Some` or `timeout` elapses.
    pub(crate) fn wait_until<R>(
        &self,
        timeout: Duration,
        f: impl FnMut(&State) -> Option<R>,
    ) -> Option<R> {
        self.state.wait_until(timeout, f)
    }

    pub(crate) fn reject_status(&self) -> Option<u16> {
        *self.reject.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn set_reject_status(&self, status: Option<u16>) {
        *self.reject.lock().unwrap_or_else(PoisonError::into_inner) = status;
    }

    fn stalled(&self) -> bool {
        *self.stall.borrow()
    }
}

// ---------------------------------------------------------------------------
// Commands from the synchronous API.
// ---------------------------------------------------------------------------

/// What a broadcast writes to every open connection.
#[derive(Clone, Debug)]
pub(crate) enum OutKind {
    /// A data (or raw) message.
    Msg(Message),
    /// A close frame; the connection then waits for the client's reply.
    Close(CloseFrame),
}

impl OutKind {
    pub(crate) fn close(code: u16, reason: &str) -> Self {
        OutKind::Close(CloseFrame {
            code: CloseCode::from(code),
            reason: reason.to_owned().into(),
        })
    }

    pub(crate) fn invalid_utf8_text() -> Self {
        OutKind::Msg(Message::Frame(Frame::message(
            vec![0xff_u8, 0xfe, 0xfd],
            OpCode::Data(Data::Text),
            true,
        )))
    }
}

/// A command for the controller. Every command but `Shutdown` carries a
/// reply channel; the synchronous caller waits on it (with a timeout).
pub(crate) enum Command {
    Broadcast {
        kind: OutKind,
        reply: std::sync::mpsc::Sender<()>,
    },
    DropAll {
        reply: std::sync::mpsc::Sender<()>,
    },
    Stop {
        reply: std::sync::mpsc::Sender<()>,
    },
    Restart {
        reply: std::sync::mpsc::Sender<io::Result<()>>,
    },
    Shutdown,
}

impl RuntimeCommand for Command {
    fn shutdown() -> Self {
        Command::Shutdown
    }
}

// ---------------------------------------------------------------------------
// Runtime-side context.
// ---------------------------------------------------------------------------

/// One frame queued for a connection's writer. `ack` is dropped once the
/// frame has been handed to the socket (or was discarded).
struct Outbound {
    kind: OutKind,
    ack: Option<oneshot::Sender<()>>,
}

/// A connection's outbound queue: set once the WebSocket upgrade succeeded.
type OutSlot = Option<mpsc::UnboundedSender<Outbound>>;

/// Everything the runtime-side tasks need.
pub(crate) struct Ctx {
    pub(crate) port: u16,
    pub(crate) shared: Arc<Shared>,
    pub(crate) tls: Option<TlsAcceptor>,
    pub(crate) ws_config: WebSocketConfig,
    registry: Mutex<Registry<OutSlot>>,
}

impl Ctx {
    pub(crate) fn new(
        port: u16,
        shared: Arc<Shared>,
        tls: Option<TlsAcceptor>,
        ws_config: WebSocketConfig,
    ) -> Self {
        Ctx {
            port,
            shared,
            tls,
            ws_config,
            registry: Mutex::new(Registry::default()),
        }
    }

    fn registry(&self) -> MutexGuard<'_, Registry<OutSlot>> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Binds a listener on `127.0.0.1:port` with `SO_REUSEADDR`, so that a
/// stopped peer can listen again on the same port while old connections are
/// in `TIME_WAIT`. Must be called inside the runtime.
pub(crate) fn bind(port: u16) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
    socket.listen(1024)
}

/// Binds `port`, retrying for a while if it is still in use.
async fn rebind(port: u16) -> io::Result<TcpListener> {
    let deadline = tokio::time::Instant::now() + REBIND_TIMEOUT;
    loop {
        match bind(port) {
            Ok(listener) => return Ok(listener),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(e);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

// ---------------------------------------------------------------------------
// Controller.
// ---------------------------------------------------------------------------

/// Runs until `Shutdown` (or until the command channel closes), then tears
/// everything down.
pub(crate) async fn controller(
    ctx: Arc<Ctx>,
    listener: TcpListener,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut accept_task = Some(tokio::spawn(accept_loop(listener, ctx.clone())));
    while let Some(command) = commands.recv().await {
        match command {
            Command::Broadcast { kind, reply } => {
                broadcast(&ctx, kind).await;
                let _ = reply.send(());
            }
            Command::DropAll { reply } => {
                kill_all(&ctx).await;
                let _ = reply.send(());
            }
            Command::Stop { reply } => {
                stop_listening(&mut accept_task).await;
                kill_all(&ctx).await;
                let _ = reply.send(());
            }
            Command::Restart { reply } => {
                let result = if accept_task.is_some() {
                    Ok(())
                } else {
                    rebind(ctx.port).await.map(|listener| {
                        accept_task = Some(tokio::spawn(accept_loop(listener, ctx.clone())));
                    })
                };
                let _ = reply.send(result);
            }
            Command::Shutdown => break,
        }
    }
    stop_listening(&mut accept_task).await;
    kill_all(&ctx).await;
}

async fn stop_listening(accept_task: &mut Option<JoinHandle<()>>) {
    if let Some(task) = accept_task.take() {
        task.abort();
        // Awaiting guarantees the listener has been dropped (port freed).
        let _ = task.await;
    }
}

/// Aborts every connection task (upgraded or still handshaking) and waits
/// until each has been dropped, i.e. its socket is closed without any close
/// frame.
async fn kill_all(ctx: &Ctx) {
    let tasks = ctx.registry().drain_tasks();
    abort_and_wait(tasks).await;
}

/// Queues `kind` on every upgraded connection and waits (bounded) until it
/// has been written. Does not wait while stalled: nothing is written then.
async fn broadcast(ctx: &Ctx, kind: OutKind) {
    let targets: Vec<mpsc::UnboundedSender<Outbound>> = ctx
        .registry()
        .channels()
        .filter_map(|out| out.clone())
        .collect();
    let mut acks = Vec::with_capacity(targets.len());
    for target in targets {
        let (ack_tx, ack_rx) = oneshot::channel();
        let out = Outbound {
            kind: kind.clone(),
            ack: Some(ack_tx),
        };
        if target.send(out).is_ok() {
            acks.push(ack_rx);
        }
    }
    if ctx.shared.stalled() {
        return;
    }
    wait_acks(acks, BROADCAST_ACK_TIMEOUT).await;
}

// ---------------------------------------------------------------------------
// Accepting and serving connections.
// ---------------------------------------------------------------------------

async fn accept_loop(listener: TcpListener, ctx: Arc<Ctx>) {
    loop {
        match listener.accept().await {
            Ok((tcp, _addr)) => {
                // The runtime is single-threaded: the spawned task cannot run
                // before its entry is registered below (no await in between).
                ctx.registry()
                    .insert(None, |id| tokio::spawn(serve_tcp(tcp, id, ctx.clone())));
            }
            Err(e) => {
                // E.g. EMFILE: back off instead of spinning.
                eprintln!("tether test peer: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Removes the connection from the registry and fixes the open count when
/// the connection task ends or is aborted.
struct ConnGuard {
    id: u64,
    ctx: Arc<Ctx>,
    /// The connection's 1-based index once its upgrade has been accepted
    /// (counted as open), else 0. Set from the handshake callback.
    conn: Arc<AtomicUsize>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.ctx.registry().remove(self.id);
        if self.conn.load(Ordering::SeqCst) != 0 {
            self.ctx
                .shared
                .update(|s| s.open = s.open.saturating_sub(1));
        }
    }
}

/// Waits until the peer is not stalled. Returns `false` if the stall sender
/// is gone (the peer is shutting down).
async fn wait_unstalled(stall: &mut watch::Receiver<bool>) -> bool {
    let ok = stall.wait_for(|stalled| !*stalled).await.is_ok();
    ok
}

async fn serve_tcp(tcp: TcpStream, id: u64, ctx: Arc<Ctx>) {
    let guard = ConnGuard {
        id,
        ctx: ctx.clone(),
        conn: Arc::new(AtomicUsize::new(0)),
    };
    let _ = tcp.set_nodelay(true);
    let mut stall = ctx.shared.stall.subscribe();
    // A stalled peer does not even answer the opening handshake; the TCP
    // connection stays open.
    if !wait_unstalled(&mut stall).await {
        return;
    }
    match &ctx.tls {
        Some(acceptor) => {
            // A failed or timed-out TLS handshake just drops the connection.
            let accepted = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await;
            if let Ok(Ok(tls)) = accepted {
                serve_stream(tls, &guard, &ctx, stall).await;
            }
        }
        None => serve_stream(tcp, &guard, &ctx, stall).await,
    }
}

fn rejection(status: u16) -> ErrorResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = format!("rejected by tether test peer: {status}\n");
    let mut response = ErrorResponse::new(Some(body.clone()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

async fn serve_stream<S>(stream: S, guard: &ConnGuard, ctx: &Arc<Ctx>, stall: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    // The upgrade is accounted for (counted, indexed, reachable by
    // broadcasts) in the callback, i.e. *before* the `101` response is
    // written: once a client sees its connection open, the peer's counters
    // already include it.
    let callback_ctx = ctx.clone();
    let callback_slot = guard.conn.clone();
    let callback_out = out_tx.clone();
    let id = guard.id;
    // The `Err` type is imposed by tungstenite's `Callback` trait.
    #[allow(clippy::result_large_err)]
    let callback = move |request: &Request, mut response: Response| {
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        *callback_ctx
            .shared
            .last_request_headers
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = headers;
        // Like a typical server: accept the first subprotocol the client offers.
        if let Some(first) = request
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .and_then(|p| p.parse().ok())
        {
            response
                .headers_mut()
                .insert("sec-websocket-protocol", first);
        }
        if let Some(status) = callback_ctx.shared.reject_status() {
            return Err(rejection(status));
        }
        if let Some(name) = &callback_ctx.shared.single_use_header {
            let value = request
                .headers()
                .get(name.as_str())
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            let fresh = value.is_some_and(|v| {
                callback_ctx
                    .shared
                    .seen_values
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(v)
            });
            if !fresh {
                return Err(rejection(401));
            }
        }
        let conn = callback_ctx.shared.update(|s| {
            s.accepted += 1;
            s.open += 1;
            s.accepted
        });
        callback_slot.store(conn, Ordering::SeqCst);
        // Which connection this is, for clients that read the 101 answer's headers.
        response
            .headers_mut()
            .insert("x-tether-connection", HeaderValue::from(conn));
        if let Some(out) = callback_ctx.registry().channel_mut(id) {
            *out = Some(callback_out);
        }
        Ok(response)
    };
    let handshake =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(ctx.ws_config));
    let ws = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(ws)) => ws,
        // Rejected (the error response has been written), failed, or timed out.
        Ok(Err(_)) | Err(_) => return,
    };

    let conn = guard.conn.load(Ordering::SeqCst);

    let (mut sink, mut source) = ws.split();
    let reader = read_loop(&mut source, conn, ctx.shared.clone(), out_tx, stall.clone());
    let writer = write_loop(&mut sink, out_rx, stall);
    // Whichever finishes first ends the connection; dropping both halves
    // closes the socket.
    let failed = tokio::select! {
        failed = reader => failed,
        () = writer => false,
    };
    if failed {
        // We refused a frame and sent our close; the client may still be writing (RFC 6455
        // 7.1.1: it goes on until it reads our close). Dropping the socket with its bytes
        // unread would answer them with a reset: half-close and discard what comes until
        // the client's end of file instead (bounded).
        if let Ok(mut ws) = sink.reunite(source) {
            let raw = ws.get_mut();
            let _ = tokio::time::timeout(CLOSE_LINGER, async {
                let _ = raw.shutdown().await;
                let mut discard = vec![0u8; 64 << 10];
                while matches!(raw.read(&mut discard).await, Ok(n) if n > 0) {}
            })
            .await;
        }
    }
}

/// Reads until the connection ends; true if it ended because we refused a frame (and sent
/// our close frame for it).
async fn read_loop<S>(
    source: &mut SplitStream<WebSocketStream<S>>,
    conn: usize,
    shared: Arc<Shared>,
    out: mpsc::UnboundedSender<Outbound>,
    mut stall: watch::Receiver<bool>,
) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        if *stall.borrow_and_update() {
            if !wait_unstalled(&mut stall).await {
                return false;
            }
            continue;
        }
        let next = tokio::select! {
            biased;
            changed = stall.changed() => {
                if changed.is_err() {
                    return false;
                }
                continue;
            }
            next = source.next() => next,
        };
        let message = match next {
            None => return false, // closing handshake completed or stream ended
            Some(Ok(message)) => message,
            Some(Err(err)) => return fail_connection(&err, &out).await,
        };
        match message {
            Message::Text(text) => {
                let msg = ReceivedMsg::Text(text.as_str().to_owned());
                record(&shared, conn, msg);
                if shared.echo.load(Ordering::SeqCst) {
                    let _ = out.send(Outbound {
                        kind: OutKind::Msg(Message::Text(text)),
                        ack: None,
                    });
                }
            }
            Message::Binary(data) => {
                record(&shared, conn, ReceivedMsg::Binary(data.to_vec()));
                if shared.echo.load(Ordering::SeqCst) {
                    let _ = out.send(Outbound {
                        kind: OutKind::Msg(Message::Binary(data)),
                        ack: None,
                    });
                }
            }
            // tungstenite has queued the pong; it is flushed by the next read.
            Message::Ping(_) => shared.update(|s| s.pings += 1),
            Message::Pong(_) => {}
            Message::Close(frame) => {
                let close = match frame {
                    Some(frame) => (u16::from(frame.code), frame.reason.as_str().to_owned()),
                    // RFC 6455 7.1.5: "no status code was present".
                    None => (1005, String::new()),
                };
                shared.update(|s| s.last_close = Some(close));
                // Keep reading: the next read flushes tungstenite's close
                // reply and then reports the end of the stream.
            }
            Message::Frame(_) => {}
        }
    }
}

fn record(shared: &Shared, conn: usize, msg: ReceivedMsg) {
    shared.update(|s| s.received.push(Received { conn, msg }));
}

/// After a read error, tells the client why (when a close code fits) and
/// waits briefly for that close frame to be written. True if a close was sent.
async fn fail_connection(err: &WsError, out: &mpsc::UnboundedSender<Outbound>) -> bool {
    let code = match err {
        WsError::Capacity(_) => 1009,
        WsError::Utf8(_) => 1007,
        WsError::Protocol(_) => 1002,
        _ => return false,
    };
    let (ack_tx, ack_rx) = oneshot::channel();
    let out_msg = Outbound {
        kind: OutKind::close(code, ""),
        ack: Some(ack_tx),
    };
    if out.send(out_msg).is_err() {
        return false;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), ack_rx).await;
    true
}

async fn write_loop<S>(
    sink: &mut SplitSink<WebSocketStream<S>, Message>,
    mut queue: mpsc::UnboundedReceiver<Outbound>,
    mut stall: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // After a write error (or after our close frame), further frames are
    // discarded; the reader decides when the connection ends.
    let mut broken = false;
    while let Some(Outbound { kind, ack }) = queue.recv().await {
        if broken {
            continue;
        }
        if !wait_unstalled(&mut stall).await {
            return;
        }
        match kind {
            OutKind::Msg(message) => {
                if sink.send(message).await.is_err() {
                    broken = true;
                }
                drop(ack);
            }
            OutKind::Close(frame) => {
                let _ = sink.send(Message::Close(Some(frame))).await;
                drop(ack);
                // Give the client time to answer (the reader sees its reply
                // and ends the connection), then drop the TCP connection.
                tokio::time::sleep(CLOSE_LINGER).await;
                return;
            }
        }
    }
    // The queue never closes while the reader holds a sender; be safe anyway.
    std::future::pending::<()>().await;
}
