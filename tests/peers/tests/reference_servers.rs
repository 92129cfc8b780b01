//! The three Tether protocol reference servers (Rust `tether-ref-server`, Python
//! `tests/peers/python/tether_server.py`, Node `tests/peers/node/tether_server.js`) checked
//! against docs/PROTOCOL.md with a raw tokio-tungstenite client: every test runs against each.
//!
//! Python comes from `TETHER_PYTHON` or `.venv/bin/python`; Node is `node` on PATH, and
//! `npm ci` is run here if `tests/peers/node/node_modules` is missing. A missing Python venv or
//! Node skips that server with a message, unless `TETHER_REQUIRE_INTEROP` is set (as
//! `make test` does), which turns it into a failure.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{connect, expect_silence, next, runtime, LineChild, Ws, T};
use data_encoding::{BASE64, HEXLOWER};
use futures_util::{SinkExt, StreamExt};
use ring::hmac;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

const KEY: &str = "tether-test-key";
const SIGNED_TEXT: &str = r#"{"v":1,"t":"msg","id":1,"d":"hello","sig":"0bf4069de8e657a8c44f56535968191d90a1ac9c72d7c3cb84115f6be7b4c918"}"#;
const COMPRESSED_TEXT: &str = r#"{"v":1,"t":"msg","id":2,"z":1,"d":"tcCBAAAAAIAg1vwlpjh+AQ=="}"#;
const BINARY: &str = "0102000000000000000000030000000400010203";
const SIGNED_BINARY: &str = "010202000000000000000003000000040a0afc38fd9d3345a1a3501a89adf9a09ab739faf12cad3d60b986de9fa2cfd800010203";

// ---- spawning the servers ----

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Rust,
    Python,
    Node,
}

const KINDS: [Kind; 3] = [Kind::Rust, Kind::Python, Kind::Node];

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Skips a server that cannot run here, or fails if TETHER_REQUIRE_INTEROP is set.
fn unavailable(kind: Kind, why: &str) -> Option<Command> {
    assert!(
        std::env::var_os("TETHER_REQUIRE_INTEROP").is_none(),
        "TETHER_REQUIRE_INTEROP is set but the {kind:?} reference server cannot run: {why}"
    );
    eprintln!("SKIPPED {kind:?} reference server: {why}");
    None
}

/// Installs the Node server's dependencies from its lockfile, once per test process.
fn npm_ci() -> &'static Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let dir = workspace().join("tests/peers/node");
        if dir.join("node_modules/ws").exists() {
            return Ok(());
        }
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .stdout(Stdio::null())
            .status();
        match status {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(format!("`npm ci --prefix {}` failed ({s})", dir.display())),
            Err(e) => Err(format!("cannot run npm: {e}")),
        }
    })
}

fn command(kind: Kind) -> Option<Command> {
    match kind {
        Kind::Rust => Some(Command::new(env!("CARGO_BIN_EXE_tether-ref-server"))),
        Kind::Python => {
            let venv = workspace().join(".venv/bin/python");
            let python = std::env::var_os("TETHER_PYTHON")
                .map(PathBuf::from)
                .or_else(|| venv.exists().then_some(venv));
            let Some(python) = python else {
                return unavailable(kind, "no TETHER_PYTHON and no .venv (run `make venv`)");
            };
            let mut cmd = Command::new(python);
            cmd.arg(workspace().join("tests/peers/python/tether_server.py"));
            Some(cmd)
        }
        Kind::Node => {
            if Command::new("node").arg("--version").output().is_err() {
                return unavailable(kind, "`node` is not on PATH");
            }
            if let Err(e) = npm_ci() {
                panic!("Node reference server: {e}; run `npm ci --prefix tests/peers/node`");
            }
            let mut cmd = Command::new("node");
            cmd.arg(workspace().join("tests/peers/node/tether_server.js"));
            Some(cmd)
        }
    }
}

/// A running reference server, killed on drop.
struct Server {
    kind: Kind,
    process: LineChild,
}

impl Server {
    /// Starts `kind` with `args`; None if it cannot run here (see [`unavailable`]).
    fn start(kind: Kind, args: &[&str]) -> Option<Server> {
        let mut command = command(kind)?;
        let name = format!("{kind:?} reference server ({:?})", command.get_program());
        // The servers report bad frames on stderr, on purpose here.
        command.args(args).stderr(Stdio::null());
        let process = LineChild::spawn(&mut command, &name);
        Some(Server { kind, process })
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/", self.process.port)
    }

    /// Runs a control command; returns the whole answer line.
    fn cmd(&mut self, command: &str) -> String {
        self.process.cmd(command)
    }

    /// Runs a control command that must succeed; returns what follows `OK`.
    fn ok(&mut self, command: &str) -> String {
        let answer = self.cmd(command);
        let rest = (answer.strip_prefix("OK"))
            .unwrap_or_else(|| panic!("{:?}: {command:?} answered {answer:?}", self.kind));
        rest.trim().to_owned()
    }

    fn stats(&mut self) -> Value {
        serde_json::from_str(&self.ok("stats")).expect("stats is JSON")
    }

    /// Polls `stats` until `pred` holds (bounded).
    fn wait_stats(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + T;
        loop {
            let stats = self.stats();
            if pred(&stats) {
                return stats;
            }
            assert!(
                Instant::now() < deadline,
                "{:?}: waiting for {what}: {stats}",
                self.kind
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every payload delivered to the server application, per session.
    fn dump(&mut self) -> Value {
        let path = std::env::temp_dir().join(format!(
            "tether-ref-dump-{}-{:?}-{}.json",
            std::process::id(),
            self.kind,
            self.process.port
        ));
        self.ok(&format!("dump {}", path.display()));
        let text = std::fs::read_to_string(&path).expect("dump file");
        let _ = std::fs::remove_file(&path);
        serde_json::from_str(&text).expect("dump is JSON")
    }
}

/// Runs `check` against each server that can run here, started with `args`.
fn each(args: &[&str], check: impl Fn(&mut Server)) {
    for kind in KINDS {
        if let Some(mut server) = Server::start(kind, args) {
            check(&mut server);
            assert_eq!(server.cmd("quit"), "OK", "{kind:?}");
        }
    }
}

// ---- the client side ----

/// The next text or binary message (bounded).
async fn recv(ws: &mut Ws, kind: Kind) -> Message {
    loop {
        match next(ws).await {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(msg @ (Message::Text(_) | Message::Binary(_)))) => return msg,
            other => panic!("{kind:?}: expected a message, got {other:?}"),
        }
    }
}

async fn recv_json(ws: &mut Ws, kind: Kind) -> Value {
    match recv(ws, kind).await {
        Message::Text(text) => serde_json::from_str(&text).expect("a JSON frame"),
        other => panic!("{kind:?}: expected a JSON frame, got {other:?}"),
    }
}

async fn send(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).await.expect("client send");
}

async fn send_bin(ws: &mut Ws, data: &[u8]) {
    ws.send(Message::binary(data.to_vec()))
        .await
        .expect("client send");
}

/// Connects and says hello; returns the socket and `welcome.last`.
async fn open(server: &Server, sid: &str, last: u64) -> (Ws, u64) {
    let mut ws = connect(&server.url()).await;
    send(
        &mut ws,
        &json!({"v":1,"t":"hello","sid":sid,"last":last}).to_string(),
    )
    .await;
    let welcome = recv_json(&mut ws, server.kind).await;
    assert_eq!(welcome["t"], "welcome", "{:?}: {welcome}", server.kind);
    (ws, welcome["last"].as_u64().expect("welcome.last"))
}

async fn expect_ack(ws: &mut Ws, kind: Kind, upto: u64) {
    let ack = recv_json(ws, kind).await;
    assert_eq!(ack, json!({"v":1,"t":"ack","upto":upto}), "{kind:?}");
}

async fn expect_nack(ws: &mut Ws, kind: Kind, id: u64, reason: &str) {
    let nack = recv_json(ws, kind).await;
    assert_eq!(
        nack,
        json!({"v":1,"t":"nack","id":id,"reason":reason}),
        "{kind:?}"
    );
}

/// Expects a text msg from the server; returns (id, frame).
async fn expect_text(ws: &mut Ws, kind: Kind, text: &str) -> (u64, Value) {
    let msg = recv_json(ws, kind).await;
    assert_eq!(msg["t"], "msg", "{kind:?}: {msg}");
    assert_eq!(msg["d"], text, "{kind:?}: {msg}");
    (msg["id"].as_u64().expect("msg.id"), msg)
}

/// Sends a text msg (unsigned, uncompressed) and expects its ack and echo; returns the echo's id.
async fn exchange(ws: &mut Ws, kind: Kind, id: u64, text: &str) -> u64 {
    send(ws, &json!({"v":1,"t":"msg","id":id,"d":text}).to_string()).await;
    expect_ack(ws, kind, id).await;
    expect_text(ws, kind, text).await.0
}

/// Reads until the server closes; returns the close frame's (code, reason), or None if the
/// link ended without one.
async fn closed(ws: &mut Ws, kind: Kind) -> Option<(u16, String)> {
    loop {
        match next(ws).await {
            Some(Ok(Message::Close(frame))) => {
                return frame.map(|f| (u16::from(f.code), f.reason.to_string()))
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(other)) => panic!("{kind:?}: expected the link to end, got {other:?}"),
            Some(Err(_)) | None => return None,
        }
    }
}

/// A binary msg frame split up: (flags, id, signature, payload); checks the length.
fn split_binary(frame: &[u8]) -> (u8, u64, Vec<u8>, Vec<u8>) {
    let flags = frame[2];
    let id = u64::from_be_bytes(frame[4..12].try_into().unwrap());
    let len = u32::from_be_bytes(frame[12..16].try_into().unwrap()) as usize;
    let start = if flags & 2 != 0 { 48 } else { 16 };
    assert_eq!((frame[0], frame[1], frame[3]), (1, 2, 0), "binary header");
    assert_eq!(frame.len(), start + len, "binary frame length");
    (
        flags,
        id,
        frame[16..start].to_vec(),
        frame[start..].to_vec(),
    )
}

fn signature(kind: u8, id: u64, z: bool, carried: &[u8]) -> Vec<u8> {
    let data = [&[1, kind][..], &id.to_be_bytes(), &[u8::from(z)], carried].concat();
    let key = hmac::Key::new(hmac::HMAC_SHA256, KEY.as_bytes());
    hmac::sign(&key, &data).as_ref().to_vec()
}

fn hex(s: &str) -> Vec<u8> {
    HEXLOWER.decode(s.as_bytes()).expect("hex")
}

// ---- the tests ----

#[test]
fn signed_vectors_are_delivered_and_tampered_ones_nacked() {
    each(&["--key", KEY], |server| {
        let kind = server.kind;
        runtime().block_on(async {
            let (mut ws, last) = open(server, "vectors", 0).await;
            assert_eq!(last, 0, "{kind:?}");

            // The signed text vector; the echo (server id 1, same text) must carry the same
            // signature as the vector.
            send(&mut ws, SIGNED_TEXT).await;
            expect_ack(&mut ws, kind, 1).await;
            let (id, echo) = expect_text(&mut ws, kind, "hello").await;
            assert_eq!(id, 1, "{kind:?}");
            let vector: Value = serde_json::from_str(SIGNED_TEXT).unwrap();
            assert_eq!(echo["sig"], vector["sig"], "{kind:?}: server signature");

            // The signed binary vector; the echo is a signed binary msg with server id 2.
            send_bin(&mut ws, &hex(SIGNED_BINARY)).await;
            expect_ack(&mut ws, kind, 3).await;
            let Message::Binary(echo) = recv(&mut ws, kind).await else {
                panic!("{kind:?}: binary echo expected")
            };
            let (flags, id, sig, payload) = split_binary(&echo);
            assert_eq!(
                (flags, id, payload.as_slice()),
                (2, 2, &[0, 1, 2, 3][..]),
                "{kind:?}"
            );
            assert_eq!(
                sig,
                signature(2, 2, false, &payload),
                "{kind:?}: binary signature"
            );

            // Tampered copies: nacked, even though their ids are old (signatures come first).
            send(&mut ws, &SIGNED_TEXT.replace("hello", "hellO")).await;
            expect_nack(&mut ws, kind, 1, "bad signature").await;
            let mut tampered = hex(SIGNED_BINARY);
            *tampered.last_mut().unwrap() ^= 1;
            send_bin(&mut ws, &tampered).await;
            expect_nack(&mut ws, kind, 3, "bad signature").await;
            // New ids, tampered or unsigned: nacked, not delivered.
            send_bin(
                &mut ws,
                &hex(&SIGNED_BINARY.replace("0000000003", "0000000009")),
            )
            .await;
            expect_nack(&mut ws, kind, 9, "bad signature").await;
            send(&mut ws, r#"{"v":1,"t":"msg","id":10,"d":"unsigned"}"#).await;
            expect_nack(&mut ws, kind, 10, "bad signature").await;
            expect_silence(&mut ws, Duration::from_millis(100)).await;
        });
        let stats = server.stats();
        assert_eq!(stats["bad_signatures"], 4, "{kind:?}: {stats}");
        assert_eq!(
            stats["sessions"]["vectors"]["delivered"], 2,
            "{kind:?}: {stats}"
        );
        assert_eq!(
            stats["sessions"]["vectors"]["last_in"], 3,
            "{kind:?}: {stats}"
        );
        assert_eq!(
            server.dump(),
            json!({"vectors": ["hello", "b64:AAECAw=="]}),
            "{kind:?}"
        );
    });
}

#[test]
fn unsigned_vectors_are_delivered_without_a_key() {
    each(&[], |server| {
        let kind = server.kind;
        runtime().block_on(async {
            let (mut ws, _) = open(server, "plain", 0).await;
            // Without a key, signatures are ignored.
            send(&mut ws, SIGNED_TEXT).await;
            expect_ack(&mut ws, kind, 1).await;
            let (_, echo) = expect_text(&mut ws, kind, "hello").await;
            assert!(
                echo.get("sig").is_none(),
                "{kind:?}: unsigned server: {echo}"
            );
            send(&mut ws, COMPRESSED_TEXT).await;
            expect_ack(&mut ws, kind, 2).await;
            expect_text(&mut ws, kind, &"a".repeat(100)).await; // no threshold: not compressed
            send_bin(&mut ws, &hex(BINARY)).await;
            expect_ack(&mut ws, kind, 3).await;
            let Message::Binary(echo) = recv(&mut ws, kind).await else {
                panic!("{kind:?}: binary echo expected")
            };
            assert_eq!(
                split_binary(&echo),
                (0, 3, vec![], vec![0, 1, 2, 3]),
                "{kind:?}"
            );
        });
        let a100 = "a".repeat(100);
        assert_eq!(
            server.dump(),
            json!({"plain": ["hello", a100, "b64:AAECAw=="]}),
            "{kind:?}"
        );
    });
}

#[test]
fn duplicates_are_reacked_and_echoes_resent_after_reconnect() {
    each(&[], |server| {
        let kind = server.kind;
        runtime().block_on(async {
            let (mut ws, last) = open(server, "s1", 0).await;
            assert_eq!(last, 0, "{kind:?}");
            assert_eq!(exchange(&mut ws, kind, 1, "one").await, 1, "{kind:?}");
            assert_eq!(exchange(&mut ws, kind, 2, "two").await, 2, "{kind:?}");
            // A resend of id 2: acknowledged again, not delivered, not echoed.
            send(&mut ws, r#"{"v":1,"t":"msg","id":2,"d":"two"}"#).await;
            expect_ack(&mut ws, kind, 2).await;
            // App-level ping.
            send(&mut ws, r#"{"v":1,"t":"ping","ts":1700000000000}"#).await;
            let pong = recv_json(&mut ws, kind).await;
            assert_eq!(
                pong,
                json!({"v":1,"t":"pong","ts":1700000000000u64}),
                "{kind:?}"
            );
            // Ids may have gaps: greater than last_in is the test.
            assert_eq!(exchange(&mut ws, kind, 5, "five").await, 3, "{kind:?}");
            // The server application sends while we are connected.
            assert_eq!(server.ok("send s1 from  the server"), "4", "{kind:?}");
            assert_eq!(
                expect_text(&mut ws, kind, "from  the server").await.0,
                4,
                "{kind:?}"
            );
            drop(ws);
            server.wait_stats("the link to close", |s| s["connections"] == 0);

            // Sent while disconnected: queued.
            assert_eq!(server.ok("send s1 queued"), "5", "{kind:?}");
            // Reconnect claiming server id 2: 3, 4, 5 are resent in order, then new ones.
            let (mut ws, last) = open(server, "s1", 2).await;
            assert_eq!(
                last, 5,
                "{kind:?}: welcome.last is the last client id delivered"
            );
            assert_eq!(expect_text(&mut ws, kind, "five").await.0, 3, "{kind:?}");
            assert_eq!(
                expect_text(&mut ws, kind, "from  the server").await.0,
                4,
                "{kind:?}"
            );
            assert_eq!(expect_text(&mut ws, kind, "queued").await.0, 5, "{kind:?}");
            // Acknowledge 3 and 4 (upto), 5 (by id); a new echo gets id 6.
            send(&mut ws, r#"{"v":1,"t":"ack","upto":4}"#).await;
            send(&mut ws, r#"{"v":1,"t":"ack","id":5}"#).await;
            assert_eq!(exchange(&mut ws, kind, 6, "six").await, 6, "{kind:?}");

            // A second connection for the same session takes over; the old one is closed.
            let (mut ws2, last) = open(server, "s1", 0).await;
            assert_eq!(last, 6, "{kind:?}");
            assert_eq!(
                expect_text(&mut ws2, kind, "six").await.0,
                6,
                "{kind:?}: unacked"
            );
            assert_eq!(
                closed(&mut ws, kind).await.map(|c| c.0),
                Some(1000),
                "{kind:?}"
            );
            send(&mut ws2, r#"{"v":1,"t":"ack","upto":6}"#).await;
            send(&mut ws2, r#"{"v":1,"t":"ping","ts":6}"#).await; // the ack is in once pong is
            assert_eq!(recv_json(&mut ws2, kind).await["t"], "pong", "{kind:?}");
            drop(ws2);
            // Everything acknowledged: nothing is resent (the pong is the first thing after
            // the welcome).
            let (mut ws, _) = open(server, "s1", 0).await;
            send(&mut ws, r#"{"v":1,"t":"ping","ts":7}"#).await;
            assert_eq!(recv_json(&mut ws, kind).await["t"], "pong", "{kind:?}");
        });
        let stats = server.stats();
        let s1 = &stats["sessions"]["s1"];
        assert_eq!(
            (&s1["delivered"], &s1["duplicates"], &s1["last_in"]),
            (&json!(4), &json!(1), &json!(6)),
            "{kind:?}: {stats}"
        );
        assert_eq!(
            server.dump(),
            json!({"s1": ["one", "two", "five", "six"]}),
            "{kind:?}"
        );
    });
}

#[test]
fn compressed_messages_in_and_out() {
    each(
        &["--compression-threshold", "64", "--max-size", "4096"],
        |server| {
            let kind = server.kind;
            runtime().block_on(async {
                let (mut ws, _) = open(server, "z", 0).await;
                // The compressed vector (100 × "a") is inflated; its echo is over the threshold
                // and compressible, so it comes back compressed.
                send(&mut ws, COMPRESSED_TEXT).await;
                expect_ack(&mut ws, kind, 2).await;
                let echo = recv_json(&mut ws, kind).await;
                assert_eq!(
                    (&echo["t"], &echo["id"], &echo["z"]),
                    (&json!("msg"), &json!(1), &json!(1)),
                    "{kind:?}: {echo}"
                );
                let packed = BASE64
                    .decode(echo["d"].as_str().unwrap().as_bytes())
                    .expect("base64");
                let plain = miniz_oxide::inflate::decompress_to_vec(&packed).expect("raw DEFLATE");
                assert_eq!(plain, "a".repeat(100).as_bytes(), "{kind:?}");
                // Under the threshold: plain.
                assert_eq!(exchange(&mut ws, kind, 3, "short").await, 2, "{kind:?}");
                // A compressed binary msg; its echo comes back compressed too.
                let data = vec![7u8; 1000];
                let packed = miniz_oxide::deflate::compress_to_vec(&data, 6);
                let mut frame = vec![1, 2, 1, 0];
                frame.extend_from_slice(&4u64.to_be_bytes());
                frame.extend_from_slice(&(packed.len() as u32).to_be_bytes());
                frame.extend_from_slice(&packed);
                send_bin(&mut ws, &frame).await;
                expect_ack(&mut ws, kind, 4).await;
                let Message::Binary(echo) = recv(&mut ws, kind).await else {
                    panic!("{kind:?}: binary echo expected")
                };
                let (flags, id, _, carried) = split_binary(&echo);
                assert_eq!((flags, id), (1, 3), "{kind:?}: compressed, unsigned");
                assert_eq!(
                    miniz_oxide::inflate::decompress_to_vec(&carried).unwrap(),
                    data,
                    "{kind:?}"
                );
                // Corrupt DEFLATE, bad base64, and a bomb over --max-size: nacked, not delivered.
                send(&mut ws, r#"{"v":1,"t":"msg","id":5,"z":1,"d":"//79/A=="}"#).await;
                expect_nack(&mut ws, kind, 5, "corrupt").await;
                send(
                    &mut ws,
                    r#"{"v":1,"t":"msg","id":6,"z":1,"d":"not base64!"}"#,
                )
                .await;
                expect_nack(&mut ws, kind, 6, "corrupt").await;
                let bomb = BASE64.encode(&miniz_oxide::deflate::compress_to_vec(&[b'x'; 5000], 6));
                send(
                    &mut ws,
                    &json!({"v":1,"t":"msg","id":7,"z":1,"d":bomb}).to_string(),
                )
                .await;
                expect_nack(&mut ws, kind, 7, "too large").await;
                assert_eq!(exchange(&mut ws, kind, 8, "still up").await, 4, "{kind:?}");
            });
            let a100 = "a".repeat(100);
            let bin = format!("b64:{}", BASE64.encode(&[7u8; 1000]));
            assert_eq!(
                server.dump(),
                json!({"z": [a100, "short", bin, "still up"]}),
                "{kind:?}"
            );
        },
    );
}

#[test]
fn messages_over_max_size_close_the_link() {
    each(&["--max-size", "4096"], |server| {
        let kind = server.kind;
        runtime().block_on(async {
            let (mut ws, _) = open(server, "big", 0).await;
            let big = "b".repeat(5000);
            send(
                &mut ws,
                &json!({"v":1,"t":"msg","id":1,"d":big}).to_string(),
            )
            .await;
            assert_eq!(
                closed(&mut ws, kind).await.map(|c| c.0),
                Some(1009),
                "{kind:?}"
            );
            // The server is still up.
            let (mut ws, _) = open(server, "big", 0).await;
            assert_eq!(exchange(&mut ws, kind, 1, "small").await, 1, "{kind:?}");
        });
    });
}

/// A message far larger than the socket buffers and --max-size: after its 1009 close the server
/// goes on reading (and discarding) what the client is still writing, as RFC 6455 7.1.1 lets a
/// peer that is still sending expect, and half-closes, so the client's write completes, the
/// close handshake finishes and the link ends cleanly (no reset, no wait for a grace period).
#[test]
fn a_message_far_over_max_size_is_drained_and_the_link_ends_cleanly() {
    each(&["--max-size", "4096"], |server| {
        let kind = server.kind;
        runtime().block_on(async {
            let (mut ws, _) = open(server, "huge", 0).await;
            let huge = json!({"v":1,"t":"msg","id":1,"d":"h".repeat(32 << 20)}).to_string();
            tokio::time::timeout(T, ws.send(Message::text(huge)))
                .await
                .unwrap_or_else(|_| panic!("{kind:?}: the server stopped reading"))
                .unwrap_or_else(|e| panic!("{kind:?}: the write failed: {e}"));
            assert_eq!(
                closed(&mut ws, kind).await.map(|c| c.0),
                Some(1009),
                "{kind:?}"
            );
            match next(&mut ws).await {
                None | Some(Err(WsError::ConnectionClosed)) => {}
                other => panic!("{kind:?}: expected a clean end, got {other:?}"),
            }
        });
    });
}

#[test]
fn bad_token_is_rejected_for_good() {
    each(&["--token", "secret"], |server| {
        let kind = server.kind;
        runtime().block_on(async {
            for hello in [
                json!({"v":1,"t":"hello","sid":"t","last":0,"token":"wrong"}),
                json!({"v":1,"t":"hello","sid":"t","last":0}),
            ] {
                let mut ws = connect(&server.url()).await;
                send(&mut ws, &hello.to_string()).await;
                let reject = recv_json(&mut ws, kind).await;
                assert_eq!(
                    reject,
                    json!({"v":1,"t":"reject","reason":"bad token","final":true}),
                    "{kind:?}"
                );
                assert_eq!(
                    closed(&mut ws, kind).await.map(|c| c.0),
                    Some(1008),
                    "{kind:?}"
                );
            }
            let mut ws = connect(&server.url()).await;
            send(
                &mut ws,
                r#"{"v":1,"t":"hello","sid":"t","last":0,"token":"secret"}"#,
            )
            .await;
            assert_eq!(
                recv_json(&mut ws, kind).await,
                json!({"v":1,"t":"welcome","last":0}),
                "{kind:?}"
            );
        });
    });
}

#[test]
fn reject_next_refuses_one_hello() {
    each(&[], |server| {
        let kind = server.kind;
        for (mode, fin, code) in [("transient", false, 1013), ("final", true, 1008)] {
            server.ok(&format!("reject-next {mode} try again later"));
            runtime().block_on(async {
                let mut ws = connect(&server.url()).await;
                send(&mut ws, r#"{"v":1,"t":"hello","sid":"r","last":0}"#).await;
                let reject = recv_json(&mut ws, kind).await;
                let want = json!({"v":1,"t":"reject","reason":"try again later","final":fin});
                assert_eq!(reject, want, "{kind:?}");
                assert_eq!(
                    closed(&mut ws, kind).await.map(|c| c.0),
                    Some(code),
                    "{kind:?}"
                );
                // Only the next hello.
                let (_ws, last) = open(server, "r", 0).await;
                assert_eq!(last, 0, "{kind:?}");
            });
        }
        assert!(
            server.cmd("reject-next maybe x").starts_with("ERR"),
            "{kind:?}"
        );
    });
}

#[test]
fn restart_keeps_session_state() {
    each(&[], |server| {
        let kind = server.kind;
        runtime().block_on(async {
            let (mut ws, _) = open(server, "persist", 0).await;
            for id in 1..=3 {
                exchange(&mut ws, kind, id, &format!("m{id}")).await;
            }
            send(&mut ws, r#"{"v":1,"t":"ack","id":1}"#).await;
            send(&mut ws, r#"{"v":1,"t":"ping","ts":1}"#).await; // the ack is in once pong is
            assert_eq!(recv_json(&mut ws, kind).await["t"], "pong", "{kind:?}");
            let port = server.process.port;
            server.ok("restart");
            assert_eq!(
                closed(&mut ws, kind).await,
                None,
                "{kind:?}: dropped, no close frame"
            );
            assert_eq!(server.process.port, port);
            let (mut ws, last) = open(server, "persist", 0).await;
            assert_eq!(last, 3, "{kind:?}: welcome.last survives the restart");
            assert_eq!(expect_text(&mut ws, kind, "m2").await.0, 2, "{kind:?}");
            assert_eq!(expect_text(&mut ws, kind, "m3").await.0, 3, "{kind:?}");
            assert_eq!(exchange(&mut ws, kind, 4, "m4").await, 4, "{kind:?}");
            let stats = server.stats();
            let delivered = &stats["sessions"]["persist"]["delivered"];
            assert_eq!(delivered, 4, "{kind:?}: {stats}");
            assert_eq!(stats["connections"], 1, "{kind:?}: {stats}");
        });
    });
}

#[test]
fn malformed_frames_are_not_delivered_and_the_server_stays_up() {
    each(&[], |server| {
        let kind = server.kind;
        runtime().block_on(async {
            let (mut ws, _) = open(server, "m", 0).await;
            // The header claims 10 payload bytes, the frame carries 4.
            send_bin(&mut ws, &hex("0102000000000000000000070000000a00010203")).await;
            expect_nack(&mut ws, kind, 7, "malformed").await;
            // Unknown flag bits; a msg without `d`.
            send_bin(&mut ws, &hex("0102080000000000000000080000000400010203")).await;
            expect_nack(&mut ws, kind, 8, "malformed").await;
            send(&mut ws, r#"{"v":1,"t":"msg","id":9}"#).await;
            expect_nack(&mut ws, kind, 9, "malformed").await;
            // No id to nack: ignored. (Text that is not a UTF-8 JSON object, unknown type or
            // version, a too-short binary frame.)
            for text in [
                "not json",
                "[1]",
                r#"{"v":1,"t":"bogus"}"#,
                r#"{"v":2,"t":"ping","ts":1}"#,
            ] {
                send(&mut ws, text).await;
            }
            send_bin(&mut ws, &[1, 2, 0]).await;
            expect_silence(&mut ws, Duration::from_millis(100)).await;
            // Still up, and id 7 was not delivered: it is new now.
            assert_eq!(exchange(&mut ws, kind, 7, "after").await, 1, "{kind:?}");
        });
        assert_eq!(server.dump(), json!({"m": ["after"]}), "{kind:?}");
    });
}

#[test]
fn first_frame_must_be_hello() {
    each(&[], |server| {
        let kind = server.kind;
        runtime().block_on(async {
            let mut ws = connect(&server.url()).await;
            send(&mut ws, r#"{"v":1,"t":"msg","id":1,"d":"too early"}"#).await;
            assert_eq!(
                closed(&mut ws, kind).await.map(|c| c.0),
                Some(1002),
                "{kind:?}"
            );
            let mut ws = connect(&server.url()).await;
            send(&mut ws, r#"{"v":1,"t":"hello","sid":"","last":0}"#).await;
            assert_eq!(
                closed(&mut ws, kind).await.map(|c| c.0),
                Some(1002),
                "{kind:?}: empty sid"
            );
        });
        assert_eq!(server.stats()["sessions"], json!({}), "{kind:?}");
    });
}

#[test]
fn silent_connections_are_closed_after_the_hello_timeout() {
    // The three at once: the timeout is 10 s.
    let mut servers: Vec<Server> = KINDS
        .iter()
        .filter_map(|&k| Server::start(k, &[]))
        .collect();
    runtime().block_on(async {
        let mut links = Vec::new();
        for server in &servers {
            links.push((server.kind, connect(&server.url()).await));
        }
        let started = Instant::now();
        for (kind, ws) in &mut links {
            let end = tokio::time::timeout(Duration::from_secs(15), ws.next()).await;
            let end = end.unwrap_or_else(|_| panic!("{kind:?}: not closed within 15 s"));
            let Some(Ok(Message::Close(Some(frame)))) = end else {
                panic!("{kind:?}: expected a close frame, got {end:?}")
            };
            assert_eq!(u16::from(frame.code), 1008, "{kind:?}");
        }
        assert!(
            started.elapsed() >= Duration::from_secs(8),
            "closed too early"
        );
    });
    for server in &mut servers {
        assert_eq!(server.cmd("quit"), "OK");
    }
}

#[test]
fn control_commands_close_drop_and_stall() {
    each(&[], |server| {
        let kind = server.kind;
        runtime().block_on(async {
            // close <code> <reason>
            let (mut ws, _) = open(server, "c", 0).await;
            server.ok("close 4001 going away now");
            let end = closed(&mut ws, kind).await;
            assert_eq!(end, Some((4001, "going away now".to_owned())), "{kind:?}");
            assert!(server.cmd("close 99").starts_with("ERR"), "{kind:?}");

            // drop: no close frame
            let (mut ws, _) = open(server, "c", 0).await;
            server.ok("drop");
            assert_eq!(closed(&mut ws, kind).await, None, "{kind:?}");
            server.wait_stats("no connections", |s| s["connections"] == 0);

            // stall: nothing is read or answered, new upgrades wait; all resumes on `stall off`.
            let (mut ws, _) = open(server, "c", 0).await;
            server.ok("stall on");
            send(&mut ws, r#"{"v":1,"t":"msg","id":1,"d":"held"}"#).await;
            send(&mut ws, r#"{"v":1,"t":"ping","ts":3}"#).await;
            assert_eq!(server.ok("send c queued while stalled"), "1", "{kind:?}");
            let url = server.url();
            let late = tokio::spawn(async move {
                tokio_tungstenite::connect_async(url.as_str())
                    .await
                    .map(|_| ())
            });
            expect_silence(&mut ws, Duration::from_millis(300)).await;
            assert!(
                !late.is_finished(),
                "{kind:?}: upgrade answered while stalled"
            );
            server.ok("stall off");
            // The server msg queued first, then what the held frames cause.
            assert_eq!(
                expect_text(&mut ws, kind, "queued while stalled").await.0,
                1,
                "{kind:?}"
            );
            expect_ack(&mut ws, kind, 1).await;
            assert_eq!(expect_text(&mut ws, kind, "held").await.0, 2, "{kind:?}");
            assert_eq!(
                recv_json(&mut ws, kind).await,
                json!({"v":1,"t":"pong","ts":3}),
                "{kind:?}"
            );
            let late = tokio::time::timeout(T, late)
                .await
                .expect("upgrade after stall off");
            late.expect("join").expect("late upgrade succeeds");

            assert!(server.cmd("no-such-command").starts_with("ERR"), "{kind:?}");
        });
    });
}

// ---- revision 2: stream epochs ----

/// The revision-2 control-frame vectors of PROTOCOL.md, verbatim.
const HELLO_V2: &str = r#"{"v":1,"t":"hello","sid":"4f1c2a","last":0,"rev":2,"ep":"9b1d6f3c2a7e4d10","token":"secret"}"#;
const HELLO_V2_SEP: &str = r#"{"v":1,"t":"hello","sid":"4f1c2a","last":7,"rev":2,"ep":"9b1d6f3c2a7e4d10","sep":"c4a8e1f0b2d39576"}"#;
const WELCOME_V2: &str = r#"{"v":1,"t":"welcome","last":12,"rev":2,"ep":"c4a8e1f0b2d39576"}"#;
const WELCOME_V2_KNOWN: &str =
    r#"{"v":1,"t":"welcome","last":0,"rev":2,"ep":"c4a8e1f0b2d39576","known":true}"#;

/// A revision-2 hello.
fn hello_v2(sid: &str, last: u64, ep: &str, sep: Option<&str>) -> String {
    let mut hello = json!({"v":1,"t":"hello","sid":sid,"last":last,"rev":2,"ep":ep});
    if let Some(sep) = sep {
        hello["sep"] = json!(sep);
    }
    hello.to_string()
}

/// Connects and sends `hello` as is; returns the socket and the first frame's text, which must
/// be a welcome.
async fn open_with(server: &Server, hello: &str) -> (Ws, String) {
    let mut ws = connect(&server.url()).await;
    send(&mut ws, hello).await;
    let welcome = match recv(&mut ws, server.kind).await {
        Message::Text(text) => text.to_string(),
        other => panic!("{:?}: expected a welcome, got {other:?}", server.kind),
    };
    let parsed: Value = serde_json::from_str(&welcome).expect("a JSON welcome");
    assert_eq!(parsed["t"], "welcome", "{:?}: {welcome}", server.kind);
    (ws, welcome)
}

/// The welcome of a revision-2 server with `last`, our epoch `ep` and `known`, byte for byte
/// in the layout of the PROTOCOL.md vectors.
fn welcome_v2(last: u64, ep: &str, known: bool) -> String {
    let known = if known { r#","known":true"# } else { "" };
    format!(r#"{{"v":1,"t":"welcome","last":{last},"rev":2,"ep":"{ep}"{known}}}"#)
}

/// Asserts that nothing is pending before the answer to a ping (nothing resent, nothing new).
async fn expect_nothing_queued(ws: &mut Ws, kind: Kind, ts: u64) {
    send(ws, &json!({"v":1,"t":"ping","ts":ts}).to_string()).await;
    assert_eq!(
        recv_json(ws, kind).await,
        json!({"v":1,"t":"pong","ts":ts}),
        "{kind:?}: nothing should come before the pong"
    );
}

/// Ends a link from the client side (TCP only) and waits until the server has seen it go.
fn hang_up(server: &mut Server, ws: Ws) {
    drop(ws);
    server.wait_stats("the link to close", |s| s["connections"] == 0);
}

#[test]
fn revision_2_vectors_and_the_server_rules() {
    // The server epoch of the vectors, replaced by the server's own in what we expect.
    const DOC_EP: &str = "c4a8e1f0b2d39576";
    assert!(WELCOME_V2.contains(DOC_EP) && WELCOME_V2_KNOWN.contains(DOC_EP));
    each(&[], |server| {
        let kind = server.kind;
        let sid = "4f1c2a";
        runtime().block_on(async {
            // A new session: the server's stream gets a fresh epoch, nothing is `known`.
            let (mut ws, welcome) = open_with(server, HELLO_V2).await;
            let ep = serde_json::from_str::<Value>(&welcome).expect("JSON")["ep"]
                .as_str()
                .unwrap_or_else(|| panic!("{kind:?}: welcome without ep: {welcome}"))
                .to_owned();
            assert!(
                ep.len() == 16
                    && ep
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
                "{kind:?}: the epoch should be 16 lowercase hex digits: {ep:?}"
            );
            let expected = WELCOME_V2.replace(r#""last":12"#, r#""last":0"#);
            assert_eq!(welcome, expected.replace(DOC_EP, &ep), "{kind:?}");
            assert_eq!(exchange(&mut ws, kind, 1, "one").await, 1, "{kind:?}");
            for i in 2..=8 {
                assert_eq!(server.ok(&format!("send {sid} m{i}")), i.to_string());
                expect_text(&mut ws, kind, &format!("m{i}")).await;
            }
            hang_up(server, ws);

            // `last: 7` counted in another server epoch says nothing about this stream: all
            // eight unacked messages are resent.
            let (mut ws, welcome) = open_with(server, HELLO_V2_SEP).await;
            assert_eq!(welcome, welcome_v2(1, &ep, false), "{kind:?}");
            assert_eq!(expect_text(&mut ws, kind, "one").await.0, 1, "{kind:?}");
            for i in 2..=8 {
                let (id, _) = expect_text(&mut ws, kind, &format!("m{i}")).await;
                assert_eq!(id, i, "{kind:?}");
            }
            // The same client epoch: its resend of id 1 is a duplicate.
            send(&mut ws, r#"{"v":1,"t":"msg","id":1,"d":"one"}"#).await;
            expect_ack(&mut ws, kind, 1).await;
            hang_up(server, ws);

            // `last: 7` in the server's current epoch: 1..7 count as acknowledged, 8 is resent.
            let hello = hello_v2(sid, 7, "9b1d6f3c2a7e4d10", Some(&ep));
            let (mut ws, welcome) = open_with(server, &hello).await;
            assert_eq!(welcome, welcome_v2(1, &ep, false), "{kind:?}");
            assert_eq!(expect_text(&mut ws, kind, "m8").await.0, 8, "{kind:?}");
            expect_nothing_queued(&mut ws, kind, 1).await;
            hang_up(server, ws);

            // Another client epoch for a known sid: the client lost its state. `known`, and
            // its ids start again: id 1 is delivered, not taken for a duplicate. The server's
            // stream goes on (same epoch, 8 still unacked, the echo is 9).
            let hello = hello_v2(sid, 0, "0123456789abcdef", None);
            let (mut ws, welcome) = open_with(server, &hello).await;
            assert_eq!(welcome, WELCOME_V2_KNOWN.replace(DOC_EP, &ep), "{kind:?}");
            assert_eq!(expect_text(&mut ws, kind, "m8").await.0, 8, "{kind:?}");
            assert_eq!(exchange(&mut ws, kind, 1, "again").await, 9, "{kind:?}");
            send(&mut ws, r#"{"v":1,"t":"ack","upto":9}"#).await;
            expect_nothing_queued(&mut ws, kind, 2).await;
            hang_up(server, ws);
            // The same new epoch again: a plain resume, not `known`.
            let hello = hello_v2(sid, 9, "0123456789abcdef", Some(&ep));
            let (mut ws, welcome) = open_with(server, &hello).await;
            assert_eq!(welcome, welcome_v2(1, &ep, false), "{kind:?}");
            expect_nothing_queued(&mut ws, kind, 3).await;
        });
        let stats = server.stats();
        assert_eq!(
            stats["sessions"][sid],
            json!({"delivered": 2, "duplicates": 1, "last_in": 1,
                   "ep": stats["sessions"][sid]["ep"], "cep": "0123456789abcdef"}),
            "{kind:?}: {stats}"
        );
        assert_eq!(
            stats["sessions"][sid]["ep"].as_str().map(str::len),
            Some(16)
        );
        assert_eq!(server.dump(), json!({sid: ["one", "again"]}), "{kind:?}");
    });
}

#[test]
fn revision_2_sessions_from_send_and_from_revision_1_hellos() {
    each(&[], |server| {
        let kind = server.kind;
        runtime().block_on(async {
            // A session the application created with `send`, before any hello: no client
            // stream was lost, so not `known`; the queued message comes after the welcome.
            assert_eq!(server.ok("send made early"), "1", "{kind:?}");
            let (mut ws, welcome) = open_with(server, &hello_v2("made", 0, "aaaa", None)).await;
            let ep = serde_json::from_str::<Value>(&welcome).expect("JSON")["ep"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_default();
            assert_eq!(welcome, welcome_v2(0, &ep, false), "{kind:?}");
            assert_eq!(expect_text(&mut ws, kind, "early").await.0, 1, "{kind:?}");
            assert_eq!(exchange(&mut ws, kind, 1, "x").await, 2, "{kind:?}");
            hang_up(server, ws);

            // A revision-1 hello (no `rev`) on it: a revision-1 welcome, no new fields, and
            // `last` counts as in revision 1 (1 and 2 acknowledged).
            let (mut ws, welcome) =
                open_with(server, r#"{"v":1,"t":"hello","sid":"made","last":2}"#).await;
            assert_eq!(welcome, r#"{"v":1,"t":"welcome","last":1}"#, "{kind:?}");
            assert_eq!(exchange(&mut ws, kind, 2, "y").await, 3, "{kind:?}");
            send(&mut ws, r#"{"v":1,"t":"ack","upto":3}"#).await;
            expect_nothing_queued(&mut ws, kind, 1).await;
            hang_up(server, ws);
            assert_eq!(server.stats()["sessions"]["made"]["cep"], Value::Null);

            // Then the first client epoch again: `last_in` now counts in the revision-1
            // client's stream, not in this one, so the session is `known` and id 3 is new.
            let hello = hello_v2("made", 3, "aaaa", Some(&ep));
            let (mut ws, welcome) = open_with(server, &hello).await;
            assert_eq!(welcome, welcome_v2(0, &ep, true), "{kind:?}");
            assert_eq!(exchange(&mut ws, kind, 1, "z").await, 4, "{kind:?}");
        });
        assert_eq!(server.dump(), json!({"made": ["x", "y", "z"]}), "{kind:?}");
    });
}

#[test]
fn revision_2_hellos_with_malformed_epochs_are_refused() {
    let long = "e".repeat(65);
    let bad = [
        r#"{"v":1,"t":"hello","sid":"b","last":0,"rev":2}"#.to_owned(),
        hello_v2("b", 0, "", None),
        hello_v2("b", 0, "not an epoch", None),
        hello_v2("b", 0, &long, None),
        hello_v2("b", 0, "9b1d6f3c2a7e4d10", Some("")),
        hello_v2("b", 0, "9b1d6f3c2a7e4d10", Some("é")),
        r#"{"v":1,"t":"hello","sid":"b","last":0,"rev":2,"ep":"a","sep":null}"#.to_owned(),
        r#"{"v":1,"t":"hello","sid":"b","last":0,"rev":2,"ep":7}"#.to_owned(),
    ];
    each(&[], |server| {
        let kind = server.kind;
        runtime().block_on(async {
            for hello in &bad {
                let mut ws = connect(&server.url()).await;
                send(&mut ws, hello).await;
                assert_eq!(
                    closed(&mut ws, kind).await.map(|c| c.0),
                    Some(1002),
                    "{kind:?}: {hello}"
                );
            }
            // The longest epoch is fine, and a later revision is answered with 2.
            let ep = "e".repeat(64);
            let hello = hello_v2("b", 0, &ep, None).replace(r#""rev":2"#, r#""rev":3"#);
            let (_ws, welcome) = open_with(server, &hello).await;
            let welcome: Value = serde_json::from_str(&welcome).expect("JSON");
            assert_eq!(welcome["rev"], 2, "{kind:?}: {welcome}");
        });
        let stats = server.stats();
        assert_eq!(
            stats["sessions"]["b"]["cep"],
            "e".repeat(64),
            "{kind:?}: {stats}"
        );
        assert_eq!(stats["sessions"].as_object().map(|s| s.len()), Some(1));
    });
}

#[test]
fn a_revision_1_server_ignores_epochs() {
    each(&["--rev", "1"], |server| {
        let kind = server.kind;
        runtime().block_on(async {
            // The revision-2 vector gets a revision-1 welcome.
            let (mut ws, welcome) = open_with(server, HELLO_V2).await;
            assert_eq!(welcome, r#"{"v":1,"t":"welcome","last":0}"#, "{kind:?}");
            assert_eq!(exchange(&mut ws, kind, 1, "one").await, 1, "{kind:?}");
            hang_up(server, ws);
            // `sep` is ignored: `last` counts in its one stream (echo 1 acknowledged) ...
            let (mut ws, welcome) = open_with(server, HELLO_V2_SEP).await;
            assert_eq!(welcome, r#"{"v":1,"t":"welcome","last":1}"#, "{kind:?}");
            expect_nothing_queued(&mut ws, kind, 1).await;
            hang_up(server, ws);
            // ... and so is a new client epoch: id 1 is a duplicate under revision 1.
            let hello = hello_v2("4f1c2a", 1, "0123456789abcdef", None);
            let (mut ws, welcome) = open_with(server, &hello).await;
            assert_eq!(welcome, r#"{"v":1,"t":"welcome","last":1}"#, "{kind:?}");
            send(&mut ws, r#"{"v":1,"t":"msg","id":1,"d":"lost"}"#).await;
            expect_ack(&mut ws, kind, 1).await;
            expect_nothing_queued(&mut ws, kind, 2).await;
            // Malformed epochs are unknown fields too.
            hang_up(server, ws);
            let hello = hello_v2("4f1c2a", 1, "not an epoch", None);
            let (_ws, welcome) = open_with(server, &hello).await;
            assert_eq!(welcome, r#"{"v":1,"t":"welcome","last":1}"#, "{kind:?}");
        });
        assert_eq!(server.dump(), json!({"4f1c2a": ["one"]}), "{kind:?}");
    });
}
