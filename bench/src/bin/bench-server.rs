//! The benchmark's echo server: tokio-tungstenite 0.30 on a single-threaded runtime (the
//! harness pins it to its own core), built to stay out of the way.
//!
//! * Raw mode (any path but `/tether`): every text or binary message is echoed as it came.
//! * Tether mode (path `/tether`): just enough of the protocol (docs/PROTOCOL.md) for the
//!   envelope workload: `hello` is answered with `welcome` (a fresh session per connection,
//!   `last: 0`), every client `msg` is echoed back as a server `msg` (the same frame when the
//!   ids line up, which they do on a fresh session; otherwise re-numbered), `ping` gets `pong`,
//!   client acks are read and ignored (the server keeps no resend log: nothing is lost on
//!   loopback), and one cumulative `{"t":"ack","upto":N}` goes out per read batch.
//!
//! Per connection the loop is: wait for one frame, take every further frame that is already
//! buffered (up to a cap), feed all replies, flush once. Writing never waits on reading by
//! design of the clients (each of them reads while it writes), so one task per connection is
//! enough.
//!
//! Usage: `bench-server [--port N] [--exit-on-stdin-close]` (port 0 or absent: any free port).
//! Prints `LISTENING <port>`, then serves until killed (or until stdin closes, with the flag).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Frames handled per batch before the replies are flushed.
const BATCH_FRAMES: usize = 512;

fn main() {
    let mut port: u16 = 0;
    let mut watch_stdin = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => port = args.next().and_then(|v| v.parse().ok()).unwrap_or(0),
            "--exit-on-stdin-close" => watch_stdin = true,
            other => {
                eprintln!("bench-server: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(serve(port, watch_stdin));
}

async fn serve(port: u16, watch_stdin: bool) {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_reuseaddr(true).expect("reuseaddr");
    socket.bind(addr).expect("bind");
    // Room for 10,000 clients connecting at once.
    let listener = socket.listen(8192).expect("listen");
    let port = listener.local_addr().expect("addr").port();
    println!("LISTENING {port}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // Exit when the harness goes away (stdin closes), so no server outlives a run.
    if watch_stdin {
        std::thread::spawn(|| {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
            std::process::exit(0);
        });
    }
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(connection(stream));
            }
            Err(e) => {
                // EMFILE and friends: back off a little rather than spin.
                eprintln!("bench-server: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

// tungstenite's handshake callback type returns its (large) error response by value.
#[allow(clippy::result_large_err)]
async fn connection(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let envelope = Arc::new(AtomicBool::new(false));
    let flag = envelope.clone();
    let callback = move |req: &Request, resp: Response| {
        if req.uri().path() == "/tether" {
            flag.store(true, Ordering::Relaxed);
        }
        Ok(resp)
    };
    // tungstenite's defaults (128 KiB read buffer, 128 KiB write buffer target).
    let config = WebSocketConfig::default();
    let Ok(mut ws) =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await
    else {
        return;
    };
    let envelope = envelope.load(Ordering::Relaxed);
    let mut session = Session::default();
    loop {
        let first = match ws.next().await {
            Some(Ok(m)) => m,
            _ => return,
        };
        let mut frames = 0usize;
        let mut next = Some(first);
        while let Some(m) = next.take() {
            frames += 1;
            match m {
                Message::Text(_) | Message::Binary(_) => {
                    let reply = if envelope {
                        session.on_frame(m)
                    } else {
                        Some(m)
                    };
                    if let Some(reply) = reply {
                        if ws.feed(reply).await.is_err() {
                            return;
                        }
                    }
                }
                Message::Close(_) => {
                    // tungstenite has queued the close reply; flush it and end.
                    let _ = ws.flush().await;
                    while let Some(Ok(_)) = ws.next().await {}
                    return;
                }
                // Pings are answered by tungstenite itself.
                _ => {}
            }
            if frames >= BATCH_FRAMES {
                break;
            }
            next = match ws.next().now_or_never() {
                Some(Some(Ok(m))) => Some(m),
                Some(Some(Err(_))) | Some(None) => {
                    let _ = ws.flush().await;
                    return;
                }
                None => None,
            };
        }
        if let Some(ack) = session.ack_due() {
            if ws.feed(ack).await.is_err() {
                return;
            }
        }
        if ws.flush().await.is_err() {
            return;
        }
    }
}

/// The Tether protocol state of one connection (a fresh session each time).
#[derive(Default)]
struct Session {
    /// Highest client msg id received.
    last_in: u64,
    /// The cumulative ack already sent.
    acked: u64,
    /// Ids of server msgs sent so far.
    last_out: u64,
    welcomed: bool,
}

impl Session {
    /// The reply to one data frame, if any.
    fn on_frame(&mut self, m: Message) -> Option<Message> {
        match m {
            Message::Binary(b) => self.on_binary(b),
            Message::Text(t) => self.on_text(t),
            _ => None,
        }
    }

    fn on_binary(&mut self, b: Bytes) -> Option<Message> {
        // version 1, kind 2, flags, reserved, id (8, BE), length (4, BE), [sig 32], payload
        if b.len() < 16 || b[0] != 1 || b[1] != 2 {
            return None;
        }
        let id = u64::from_be_bytes(b[4..12].try_into().ok()?);
        self.last_in = self.last_in.max(id);
        self.last_out += 1;
        if id == self.last_out {
            Some(Message::Binary(b))
        } else {
            let mut copy = BytesMut::from(&b[..]);
            copy[4..12].copy_from_slice(&self.last_out.to_be_bytes());
            Some(Message::Binary(copy.freeze()))
        }
    }

    fn on_text(&mut self, t: Utf8Bytes) -> Option<Message> {
        const MSG: &str = r#"{"v":1,"t":"msg","id":"#;
        let s = t.as_str();
        if let Some(rest) = s.strip_prefix(MSG) {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let id: u64 = rest[..digits].parse().ok()?;
            self.last_in = self.last_in.max(id);
            self.last_out += 1;
            if id == self.last_out {
                return Some(Message::Text(t));
            }
            let renumbered = format!("{MSG}{}{}", self.last_out, &rest[digits..]);
            return Some(Message::text(renumbered));
        }
        // Control frames: only the ones the benchmark meets.
        if s.contains(r#""t":"hello""#) {
            if self.welcomed {
                return None;
            }
            self.welcomed = true;
            return Some(Message::text(r#"{"v":1,"t":"welcome","last":0}"#));
        }
        if let Some(at) = s.find(r#""t":"ping","ts":"#) {
            let rest = &s[at + r#""t":"ping","ts":"#.len()..];
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            return Some(Message::text(format!(
                r#"{{"v":1,"t":"pong","ts":{}}}"#,
                &rest[..digits]
            )));
        }
        // Client acks of our msgs (and anything else): nothing to do.
        None
    }

    /// One cumulative ack per read batch, when something new arrived.
    fn ack_due(&mut self) -> Option<Message> {
        if self.last_in > self.acked {
            self.acked = self.last_in;
            Some(Message::text(format!(
                r#"{{"v":1,"t":"ack","upto":{}}}"#,
                self.last_in
            )))
        } else {
            None
        }
    }
}
