//! A Tether protocol reference server (docs/PROTOCOL.md: frames v1, session revision 2 with
//! stream epochs, or revision 1 with `--rev 1`) on tokio-tungstenite.
//!
//! Written from the spec, independently of the client's codec in `tether-core`, so the two
//! check each other. It is the Rust sibling of `tests/peers/python/tether_server.py` and
//! `tests/peers/node/tether_server.js`: same options, same behaviour, same control commands
//! (see `tests/peers/README.md`). The application on top records every delivered message and
//! echoes it back as a new server message.
//!
//! The protocol core (sessions, hello/welcome, msg/ack/nack, dedup, resend, signatures,
//! compression) comes first; the control channel used by tests ([`Server::command`]) last.
//! The `tether-ref-server` binary wraps it with the command line and stdin.
//!
//! Concurrency model: one `Mutex<State>` holds every session and link; each connection is a
//! task whose writes go through an unbounded channel, filled only under that lock, so server
//! message ids reach each client in order.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use data_encoding::{BASE64, HEXLOWER};
use futures_util::{SinkExt, StreamExt};
use ring::hmac;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::tasks::abort_and_wait;

/// Default for [`Options::max_size`]: 16 MiB.
pub const DEFAULT_MAX_SIZE: usize = 16 << 20;
/// How long a new connection has to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection we closed waits for the client's close frame before dropping TCP.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// The command-line options shared by the three reference servers.
#[derive(Clone, Debug)]
pub struct Options {
    /// TCP port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// If set, a hello with another token is rejected (final, "bad token").
    pub token: Option<String>,
    /// HMAC-SHA256 key: every inbound msg must be signed with it, every outbound msg is.
    pub key: Option<String>,
    /// Compress outbound payloads of at least this many bytes (when that makes them smaller).
    pub compression_threshold: Option<usize>,
    /// Inbound WebSocket message limit, and the inflate limit.
    pub max_size: usize,
    /// The session revision spoken: 2 (stream epochs), or 1 to behave like a server written
    /// before revision 2 (it ignores the epoch fields and answers revision-1 welcomes).
    pub rev: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            port: 0,
            token: None,
            key: None,
            compression_threshold: None,
            max_size: DEFAULT_MAX_SIZE,
            rev: 2,
        }
    }
}

/// An application payload.
enum Payload {
    Text(String),
    Binary(Vec<u8>),
}

struct Session {
    /// Revision 2: the epoch of our outbound stream for this session, new whenever the state
    /// is created (so a restarted process never reuses one).
    ep: String,
    /// Revision 2: the client epoch whose ids `last_in` counts (None: no revision-2 hello yet).
    cep: Option<String>,
    /// Highest client msg id delivered to the application.
    last_in: u64,
    /// Id of the next server msg.
    next_out: u64,
    /// Server msgs the client has not acknowledged yet, encoded once (a resend is identical).
    unacked: BTreeMap<u64, Message>,
    /// The link currently serving this session, if any.
    link: Option<u64>,
    delivered: u64,
    duplicates: u64,
    /// Delivered payloads, for `dump`.
    log: Vec<String>,
}

impl Session {
    fn new() -> Session {
        Session {
            ep: new_epoch(),
            cep: None,
            last_in: 0,
            next_out: 1,
            unacked: BTreeMap::new(),
            link: None,
            delivered: 0,
            duplicates: 0,
            log: Vec::new(),
        }
    }
}

/// What a link's writer does next.
enum Out {
    Frame(Message),
    Close(u16, String),
}

/// One TCP connection, upgraded or not.
struct Link {
    tx: mpsc::UnboundedSender<Out>,
    task: Option<JoinHandle<()>>,
    /// The WebSocket upgrade is done.
    open: bool,
}

#[derive(Default)]
struct State {
    /// Kept for the life of the process, also across `restart`.
    sessions: BTreeMap<String, Session>,
    links: Links,
    next_link: u64,
    bad_signatures: u64,
    /// (final, reason) for the next hello, set by `reject-next`.
    reject_next: Option<(bool, String)>,
    /// The token required from now on, set by `token` (replaces `--token`).
    token: Option<String>,
}

/// Every TCP connection, upgraded or not, by link id.
#[derive(Default)]
struct Links(HashMap<u64, Link>);

impl Links {
    /// Queues `out` on `link` (a link that is gone just drops it).
    fn put(&self, link: u64, out: Out) {
        if let Some(link) = self.0.get(&link) {
            let _ = link.tx.send(out);
        }
    }

    fn put_text(&self, link: u64, text: String) {
        self.put(link, Out::Frame(Message::text(text)));
    }
}

/// An unusable frame: reported and, if it carried a msg id, nacked with the reason.
struct Bad(&'static str, Option<u64>);

/// A msg as received: payload as carried (compressed or not), signature if any.
struct Inbound {
    kind: u8,
    id: u64,
    z: bool,
    carried: Vec<u8>,
    sig: Option<Vec<u8>>,
}

struct Shared {
    opts: Options,
    key: Option<hmac::Key>,
    state: Mutex<State>,
    /// `true` while stalled: nothing is read or written (not even the upgrade).
    stalled: watch::Sender<bool>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Returns once not stalled.
    async fn running(&self) {
        let _ = self.stalled.subscribe().wait_for(|stalled| !stalled).await;
    }

    /// The frame for server msg `id`.
    fn encode_msg(&self, id: u64, payload: &Payload) -> Message {
        let (kind, plain) = match payload {
            Payload::Text(text) => (1, text.as_bytes()),
            Payload::Binary(data) => (2, data.as_slice()),
        };
        let mut carried = plain.to_vec();
        let mut z = false;
        if self
            .opts
            .compression_threshold
            .is_some_and(|n| plain.len() >= n)
        {
            let packed = miniz_oxide::deflate::compress_to_vec(plain, 6); // raw DEFLATE
            if packed.len() < plain.len() {
                (carried, z) = (packed, true);
            }
        }
        let signed = signed_data(kind, id, z, &carried);
        let sig = self.key.as_ref().map(|key| hmac::sign(key, &signed));
        match payload {
            Payload::Binary(_) => {
                let flags = u8::from(z) | if sig.is_some() { 2 } else { 0 };
                let mut frame = vec![1, 2, flags, 0];
                frame.extend_from_slice(&id.to_be_bytes());
                frame.extend_from_slice(&(carried.len() as u32).to_be_bytes());
                frame.extend_from_slice(sig.as_ref().map_or(&[][..], |sig| sig.as_ref()));
                frame.extend_from_slice(&carried);
                Message::binary(frame)
            }
            Payload::Text(text) => {
                let d = if z {
                    BASE64.encode(&carried)
                } else {
                    text.clone()
                };
                let mut json = format!(r#"{{"v":1,"t":"msg","id":{id},"d":{}"#, json_str(&d));
                if z {
                    json.push_str(r#","z":1"#);
                }
                if let Some(sig) = sig {
                    json.push_str(&format!(r#","sig":"{}""#, HEXLOWER.encode(sig.as_ref())));
                }
                json.push('}');
                Message::text(json)
            }
        }
    }

    /// Sends one application message: numbers it, keeps it until acked, writes it if connected.
    fn app_send(&self, state: &mut State, sid: &str, payload: Payload) -> u64 {
        let session = state
            .sessions
            .entry(sid.to_owned())
            .or_insert_with(Session::new);
        let id = session.next_out;
        session.next_out += 1;
        let frame = self.encode_msg(id, &payload);
        session.unacked.insert(id, frame.clone());
        if let Some(link) = session.link {
            state.links.put(link, Out::Frame(frame));
        }
        id
    }

    /// Answers the first frame: reject, or welcome plus resends. The session id, or None.
    fn handshake(&self, link: u64, first: &Message) -> Option<String> {
        let hello = match first {
            Message::Text(text) => serde_json::from_str::<Value>(text).ok(),
            _ => None,
        };
        let hello = hello.filter(|h| {
            let sid_ok = h["sid"].as_str().is_some_and(valid_sid);
            h["v"] == 1 && h["t"] == "hello" && sid_ok && h["last"].is_u64()
        });
        let mut state = self.lock();
        let Some(hello) = hello else {
            refuse(&state, link, None, 1002, "expected hello");
            return None;
        };
        if let Some((fin, reason)) = state.reject_next.take() {
            let code = if fin { 1008 } else { 1013 };
            refuse(&state, link, Some((fin, &reason)), code, "rejected");
            return None;
        }
        let required = state.token.clone().or_else(|| self.opts.token.clone());
        if let Some(token) = &required {
            if hello["token"].as_str() != Some(token.as_str()) {
                refuse(&state, link, Some((true, "bad token")), 1008, "rejected");
                return None;
            }
        }
        let sid = hello["sid"].as_str().unwrap_or_default().to_owned();
        let last = hello["last"].as_u64().unwrap_or_default();
        // Revision 2 when both sides speak it: the client says so, with a valid epoch.
        let epoch = |field: &str| hello[field].as_str().filter(|ep| valid_epoch(ep));
        let rev2 = self.opts.rev >= 2 && hello["rev"].as_u64().is_some_and(|rev| rev >= 2);
        let (cep, sep) = (epoch("ep"), epoch("sep"));
        if rev2 && (cep.is_none() || (hello.get("sep").is_some() && sep.is_none())) {
            refuse(&state, link, None, 1002, "expected hello");
            return None;
        }
        let state = &mut *state;
        let session = state
            .sessions
            .entry(sid.clone())
            .or_insert_with(Session::new);
        if let Some(old) = session.link.replace(link) {
            // The client reconnected before we noticed its old link died.
            let reason = "session resumed on a new connection".to_owned();
            state.links.put(old, Out::Close(1000, reason));
        }
        let welcome = if rev2 {
            // A client stream other than the one `last_in` counts in (another epoch, or one
            // without an epoch): the client lost its state, and its ids start again (never a
            // run of duplicates). A session created by `send` before any hello has no client
            // stream yet: nothing was lost.
            let other = session.cep.is_some() || session.last_in > 0;
            let known = other && session.cep.as_deref() != cep;
            if session.cep.as_deref() != cep {
                session.cep = cep.map(str::to_owned);
                session.last_in = 0;
            }
            // `last` counts only in our current stream; otherwise resend everything unacked.
            if sep == Some(session.ep.as_str()) {
                session.unacked.retain(|&id, _| id > last);
            }
            let known = if known { r#","known":true"# } else { "" };
            format!(
                r#"{{"v":1,"t":"welcome","last":{},"rev":2,"ep":"{}"{known}}}"#,
                session.last_in, session.ep
            )
        } else {
            // Revision 1: the client has everything up to `last`: that counts as acknowledged.
            // From now on `last_in` counts in a client stream without an epoch.
            session.cep = None;
            session.unacked.retain(|&id, _| id > last);
            format!(r#"{{"v":1,"t":"welcome","last":{}}}"#, session.last_in)
        };
        state.links.put_text(link, welcome);
        // The rest, in order, before anything new.
        for frame in session.unacked.values() {
            state.links.put(link, Out::Frame(frame.clone()));
        }
        Some(sid)
    }

    fn on_frame(&self, link: u64, sid: &str, frame: Message) {
        let mut state = self.lock();
        let result = match frame {
            Message::Binary(data) => {
                parse_binary(&data).and_then(|msg| self.on_msg(&mut state, link, sid, msg))
            }
            Message::Text(text) => self.on_text(&mut state, link, sid, &text),
            _ => Ok(()),
        };
        if let Err(Bad(reason, id)) = result {
            // Reported, and nacked if it had a msg id; the link stays up.
            eprintln!("tether-ref-server: {reason} (msg id {id:?})");
            if let Some(id) = id {
                let reason = json_str(reason);
                state.links.put_text(
                    link,
                    format!(r#"{{"v":1,"t":"nack","id":{id},"reason":{reason}}}"#),
                );
            }
        }
    }

    fn on_text(&self, state: &mut State, link: u64, sid: &str, text: &str) -> Result<(), Bad> {
        let f: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        let t = f["t"].as_str().unwrap_or_default();
        let msg_id = f["id"].as_u64().filter(|&id| t == "msg" && id >= 1);
        if !f.is_object() || f["v"] != 1 {
            return Err(Bad("malformed", msg_id));
        }
        let z = match f.get("z") {
            None => Some(false),
            Some(z) if *z == 0 => Some(false),
            Some(z) if *z == 1 => Some(true),
            Some(_) => None,
        };
        let session = state
            .sessions
            .get_mut(sid)
            .expect("a link's session exists");
        let (id, upto) = (f["id"].as_u64(), f["upto"].as_u64());
        match (t, id, f["d"].as_str(), z) {
            ("msg", Some(id), Some(d), Some(z)) if id >= 1 => {
                let carried = if z {
                    let base64 = BASE64.decode(d.as_bytes());
                    base64.map_err(|_| Bad("corrupt", Some(id)))?
                } else {
                    d.as_bytes().to_vec()
                };
                let sig = f["sig"]
                    .as_str()
                    .and_then(|s| HEXLOWER.decode(s.as_bytes()).ok());
                let msg = Inbound {
                    kind: 1,
                    id,
                    z,
                    carried,
                    sig,
                };
                return self.on_msg(state, link, sid, msg);
            }
            ("ack", ..) if id.is_some() || upto.is_some() => {
                let upto = upto.unwrap_or(0);
                session.unacked.retain(|&k, _| Some(k) != id && k > upto);
            }
            ("nack", Some(id), ..) => {
                session.unacked.remove(&id); // refused for good: never resend it
            }
            ("ping", ..) if f["ts"].is_u64() => {
                let pong = format!(r#"{{"v":1,"t":"pong","ts":{}}}"#, f["ts"]);
                state.links.put_text(link, pong);
            }
            ("pong", ..) => {}
            _ => return Err(Bad("malformed", msg_id)),
        }
        Ok(())
    }

    fn on_msg(&self, state: &mut State, link: u64, sid: &str, msg: Inbound) -> Result<(), Bad> {
        let Inbound {
            kind,
            id,
            z,
            carried,
            sig,
        } = msg;
        if let Some(key) = &self.key {
            // Checked first, before dedup and inflate.
            let data = signed_data(kind, id, z, &carried);
            if hmac::verify(key, &data, sig.as_deref().unwrap_or_default()).is_err() {
                state.bad_signatures += 1;
                return Err(Bad("bad signature", Some(id)));
            }
        }
        let session = state
            .sessions
            .get_mut(sid)
            .expect("a link's session exists");
        if id <= session.last_in {
            // A resend of something we have: acknowledge it again, do not deliver it.
            session.duplicates += 1;
            let upto = session.last_in;
            state
                .links
                .put_text(link, format!(r#"{{"v":1,"t":"ack","upto":{upto}}}"#));
            return Ok(());
        }
        let plain = if z {
            self.inflate(&carried, id)?
        } else {
            carried
        };
        let payload = if kind == 1 {
            Payload::Text(String::from_utf8(plain).map_err(|_| Bad("corrupt", Some(id)))?)
        } else {
            Payload::Binary(plain)
        };
        session.last_in = id;
        session.delivered += 1;
        session.log.push(match &payload {
            Payload::Text(text) => text.clone(),
            Payload::Binary(data) => format!("b64:{}", BASE64.encode(data)),
        });
        state
            .links
            .put_text(link, format!(r#"{{"v":1,"t":"ack","upto":{id}}}"#));
        self.app_send(state, sid, payload); // the application: echo it as a new server msg
        Ok(())
    }

    /// Raw inflate, bounded by `max_size` (no inflation bombs).
    fn inflate(&self, data: &[u8], id: u64) -> Result<Vec<u8>, Bad> {
        use miniz_oxide::inflate::{decompress_to_vec_with_limit, TINFLStatus};
        decompress_to_vec_with_limit(data, self.opts.max_size).map_err(|e| match e.status {
            TINFLStatus::HasMoreOutput => Bad("too large", Some(id)),
            _ => Bad("corrupt", Some(id)),
        })
    }
}

/// What a msg signature covers: version, kind (1 text, 2 binary), id, compressed flag, and the
/// payload as carried (after compression).
fn signed_data(kind: u8, id: u64, z: bool, carried: &[u8]) -> Vec<u8> {
    [&[1, kind][..], &id.to_be_bytes(), &[u8::from(z)], carried].concat()
}

/// Splits a binary msg frame: 16-byte header, optional 32-byte signature, payload.
fn parse_binary(frame: &[u8]) -> Result<Inbound, Bad> {
    let Some((head, rest)) = frame.split_first_chunk::<16>() else {
        return Err(Bad("malformed", None));
    };
    let [version, kind, flags, reserved, ..] = *head;
    let id = u64::from_be_bytes(head[4..12].try_into().unwrap_or_default());
    let len = u32::from_be_bytes(head[12..16].try_into().unwrap_or_default()) as usize;
    let sig_len = if flags & 2 != 0 { 32 } else { 0 };
    if version != 1 || kind != 2 || flags & !3 != 0 || reserved != 0 || id == 0 {
        return Err(Bad("malformed", (id >= 1).then_some(id)));
    }
    if rest.len() != sig_len + len {
        return Err(Bad("malformed", Some(id))); // a header that lies about its length
    }
    Ok(Inbound {
        kind: 2,
        id,
        z: flags & 1 != 0,
        carried: rest[sig_len..].to_vec(),
        sig: (sig_len > 0).then(|| rest[..sig_len].to_vec()),
    })
}

/// Queues a reject (if any) and a close on `link`.
fn refuse(state: &State, link: u64, reject: Option<(bool, &str)>, code: u16, reason: &str) {
    if let Some((fin, why)) = reject {
        let why = json_str(why);
        state.links.put_text(
            link,
            format!(r#"{{"v":1,"t":"reject","reason":{why},"final":{fin}}}"#),
        );
    }
    state.links.put(link, Out::Close(code, reason.to_owned()));
}

/// A stream epoch: 1-64 characters from `[0-9A-Za-z_-]`.
fn valid_epoch(ep: &str) -> bool {
    (1..=64).contains(&ep.len())
        && ep
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A fresh stream epoch: 16 random lowercase hex digits from the OS generator.
fn new_epoch() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        // No OS randomness: the clock, the process id and a counter still differ between
        // processes and sessions.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        bytes = (nanos ^ (u64::from(std::process::id()) << 40) ^ n).to_be_bytes();
    }
    HEXLOWER.encode(&bytes)
}

fn valid_sid(sid: &str) -> bool {
    (1..=128).contains(&sid.len()) && sid.bytes().all(|b| (b' '..=b'~').contains(&b))
}

fn json_str(s: &str) -> String {
    Value::from(s).to_string()
}

/// Reads the next text or binary message (answering pings on the way); None when the link
/// ends. Reads nothing while stalled. A message over `--max-size` queues a 1009 close, sets
/// `too_big` and reads no more frames (the frame stream cannot be read past it): the link then
/// ends as [`serve_link`] says.
async fn next_data<S>(
    shared: &Shared,
    link: u64,
    stream: &mut S,
    too_big: &AtomicBool,
) -> Option<Message>
where
    S: futures_util::Stream<Item = Result<Message, WsError>> + Unpin,
{
    loop {
        shared.running().await;
        let mut stalled = shared.stalled.subscribe();
        let item = tokio::select! {
            // Stall first: when the stall and a frame are both ready at one poll (a busy
            // machine that did not run this task between `stall on` and the frame), an
            // unbiased select would read the frame half of the time.
            biased;
            _ = stalled.wait_for(|stalled| *stalled) => continue, // stop reading right away
            item = stream.next() => item?,
        };
        match item {
            Ok(msg @ (Message::Text(_) | Message::Binary(_))) => return Some(msg),
            Ok(_) => {}
            Err(WsError::Capacity(_)) => {
                // Over --max-size. Close like the Python and Node libraries do (tungstenite does
                // not), and read no more frames: the writer ends the link after the close.
                too_big.store(true, Ordering::SeqCst);
                let reason = "message too big".to_owned();
                shared.lock().links.put(link, Out::Close(1009, reason));
                std::future::pending::<()>().await;
            }
            Err(_) => return None,
        }
    }
}

/// One connection: upgrade, hello, then frames until it ends.
async fn serve_link(
    shared: Arc<Shared>,
    tcp: TcpStream,
    link: u64,
    mut rx: mpsc::UnboundedReceiver<Out>,
) {
    let _guard = LinkGuard(shared.clone(), link);
    shared.running().await; // a stalled server does not even answer the upgrade
    let config = WebSocketConfig::default()
        .max_message_size(Some(shared.opts.max_size))
        .max_frame_size(Some(shared.opts.max_size));
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(tcp, Some(config)).await else {
        return;
    };
    if let Some(link) = shared.lock().links.0.get_mut(&link) {
        link.open = true;
    }
    let (mut sink, mut stream) = ws.split();
    let too_big = AtomicBool::new(false);
    let writer = async {
        while let Some(out) = rx.recv().await {
            shared.running().await;
            let (frame, closing) = match out {
                Out::Frame(frame) => (frame, false),
                Out::Close(code, reason) => {
                    let (code, reason) = (CloseCode::from(code), reason.into());
                    (Message::Close(Some(CloseFrame { code, reason })), true)
                }
            };
            if sink.send(frame).await.is_err() {
                return;
            }
            if closing {
                if too_big.load(Ordering::SeqCst) {
                    return; // drained below
                }
                // The reader ends first when the client answers the close.
                tokio::time::sleep(CLOSE_GRACE).await;
                return;
            }
        }
    };
    let reader = async {
        let first = tokio::time::timeout(
            HELLO_TIMEOUT,
            next_data(&shared, link, &mut stream, &too_big),
        )
        .await;
        let sid = match first {
            Ok(Some(first)) => shared.handshake(link, &first),
            Ok(None) => return,
            Err(_) => {
                refuse(&shared.lock(), link, None, 1008, "no hello");
                None
            }
        };
        while let Some(frame) = next_data(&shared, link, &mut stream, &too_big).await {
            if let Some(sid) = &sid {
                shared.on_frame(link, sid, frame);
            }
        }
    };
    tokio::select! {
        () = writer => {}
        () = reader => {}
    }
    if too_big.load(Ordering::SeqCst) {
        // Our 1009 close is out, and the client may still be writing the message we refused
        // (RFC 6455 7.1.1: a peer goes on sending until it reads our close). Dropping the
        // socket with its bytes unread would answer them with a reset; instead half-close
        // and discard what comes until the client's end of file (bounded), as the Python and
        // Node libraries do.
        if let Ok(mut ws) = sink.reunite(stream) {
            let raw = ws.get_mut();
            let _ = tokio::time::timeout(CLOSE_GRACE, async {
                let _ = raw.shutdown().await;
                let mut discard = vec![0u8; 64 << 10];
                while matches!(raw.read(&mut discard).await, Ok(n) if n > 0) {}
            })
            .await;
        }
    }
}

/// Forgets a link when its task ends or is aborted.
struct LinkGuard(Arc<Shared>, u64);

impl Drop for LinkGuard {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.links.0.remove(&self.1);
        for session in state.sessions.values_mut() {
            if session.link == Some(self.1) {
                session.link = None;
            }
        }
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await; // e.g. out of file descriptors
            continue;
        };
        let mut state = shared.lock();
        let link = state.next_link;
        state.next_link += 1;
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(serve_link(shared.clone(), tcp, link, rx));
        let task = Some(task);
        state.links.0.insert(
            link,
            Link {
                tx,
                task,
                open: false,
            },
        );
    }
}

/// Binds 127.0.0.1:`port` with SO_REUSEADDR, so `restart` can listen again on the same port
/// while the dropped connections sit in TIME_WAIT.
fn bind(port: u16) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
    socket.listen(1024)
}

// ---- control channel (for tests; not part of the protocol) ----

/// A running reference server (inside a tokio runtime).
pub struct Server {
    shared: Arc<Shared>,
    port: u16,
    acceptor: Mutex<Option<JoinHandle<()>>>,
}

impl Server {
    /// Starts listening on 127.0.0.1. Must be called inside a tokio runtime.
    pub async fn start(opts: Options) -> io::Result<Server> {
        let listener = bind(opts.port)?;
        let port = listener.local_addr()?.port();
        let key = opts
            .key
            .as_ref()
            .map(|k| hmac::Key::new(hmac::HMAC_SHA256, k.as_bytes()));
        let shared = Arc::new(Shared {
            opts,
            key,
            state: Mutex::new(State::default()),
            stalled: watch::Sender::new(false),
        });
        let acceptor = tokio::spawn(accept_loop(shared.clone(), listener));
        Ok(Server {
            shared,
            port,
            acceptor: Mutex::new(Some(acceptor)),
        })
    }

    /// The port it listens on (the same after `restart`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Takes every connection's task out of the registry, so that the caller can abort them
    /// outside the lock (an aborted task's LinkGuard takes it).
    fn take_link_tasks(&self) -> Vec<JoinHandle<()>> {
        (self.shared.lock().links.0.values_mut())
            .filter_map(|l| l.task.take())
            .collect()
    }

    /// Aborts every connection (no close frame) and waits until their sockets are closed.
    async fn drop_links(&self) {
        abort_and_wait(self.take_link_tasks()).await;
    }

    /// Runs one control command line and returns its one-line answer (`OK ...` / `ERR ...`).
    /// `quit` answers `OK`; exiting is the caller's job.
    pub async fn command(&self, line: &str) -> String {
        let (name, rest) = line.split_once(' ').unwrap_or((line, ""));
        match name {
            "drop" => self.drop_links().await,
            "close" => {
                let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
                let Some(code) = code
                    .parse::<u16>()
                    .ok()
                    .filter(|c| (1000..=4999).contains(c))
                else {
                    return "ERR bad close code".into();
                };
                let state = self.shared.lock();
                for link in state.links.0.values().filter(|l| l.open) {
                    let _ = link.tx.send(Out::Close(code, reason.to_owned()));
                }
            }
            "stall" if rest == "on" || rest == "off" => {
                self.shared.stalled.send_replace(rest == "on");
            }
            "reject-next" => {
                let (kind, reason) = rest.split_once(' ').unwrap_or((rest, ""));
                if !matches!(kind, "final" | "transient") || reason.is_empty() {
                    return "ERR usage: reject-next final|transient <reason>".into();
                }
                self.shared.lock().reject_next = Some((kind == "final", reason.to_owned()));
            }
            "token" => {
                if rest.is_empty() {
                    return "ERR usage: token <token>".into();
                }
                self.shared.lock().token = Some(rest.to_owned());
            }
            "send" => {
                let (sid, text) = rest.split_once(' ').unwrap_or((rest, ""));
                if !valid_sid(sid) {
                    return "ERR bad sid".into();
                }
                let mut state = self.shared.lock();
                let payload = Payload::Text(text.to_owned());
                return format!("OK {}", self.shared.app_send(&mut state, sid, payload));
            }
            "restart" => {
                let acceptor = self
                    .acceptor
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                if let Some(acceptor) = acceptor {
                    acceptor.abort();
                    let _ = acceptor.await; // the listener is closed once this returns
                }
                self.drop_links().await;
                let listener = match bind(self.port) {
                    Ok(listener) => listener,
                    Err(e) => return format!("ERR {e}"),
                };
                let acceptor = tokio::spawn(accept_loop(self.shared.clone(), listener));
                *self.acceptor.lock().unwrap_or_else(PoisonError::into_inner) = Some(acceptor);
            }
            "stats" => {
                let state = self.shared.lock();
                let sessions: Vec<String> = (state.sessions.iter())
                    .map(|(sid, s)| {
                        format!(
                            r#"{}:{{"delivered":{},"duplicates":{},"last_in":{},"ep":"{}","cep":{}}}"#,
                            json_str(sid),
                            s.delivered,
                            s.duplicates,
                            s.last_in,
                            s.ep,
                            s.cep.as_deref().map_or("null".to_owned(), json_str)
                        )
                    })
                    .collect();
                let connections = state.links.0.values().filter(|l| l.open).count();
                return format!(
                    r#"OK {{"sessions":{{{}}},"connections":{connections},"bad_signatures":{}}}"#,
                    sessions.join(","),
                    state.bad_signatures
                );
            }
            "dump" if !rest.is_empty() => {
                let logs: serde_json::Map<String, Value> = (self.shared.lock().sessions.iter())
                    .map(|(sid, s)| (sid.clone(), Value::from(s.log.clone())))
                    .collect();
                if let Err(e) = std::fs::write(rest, Value::Object(logs).to_string()) {
                    return format!("ERR {e}");
                }
            }
            "quit" => {}
            _ => return format!("ERR unknown command {line:?}"),
        }
        "OK".into()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(acceptor) = self
            .acceptor
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            acceptor.abort();
        }
        // Abort only: `drop` cannot wait for the tasks to end.
        for task in self.take_link_tasks() {
            task.abort();
        }
    }
}
