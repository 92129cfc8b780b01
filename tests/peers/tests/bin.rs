//! The `tether-peer` binary's stdin/stdout protocol.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{
    connect, connector_trusting, next, next_data, runtime, try_connect, try_connect_tls, T,
};
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// A running `tether-peer` process; killed on drop if still running.
struct PeerProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    port: u16,
}

impl PeerProcess {
    fn spawn(args: &[&str]) -> PeerProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tether-peer"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning tether-peer");
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
        let mut process = PeerProcess {
            child,
            stdin,
            lines,
            port: 0,
        };
        let first = process.line();
        let port = first
            .strip_prefix("PORT ")
            .unwrap_or_else(|| panic!("expected `PORT <n>`, got {first:?}"));
        process.port = port.parse().expect("port number");
        process
    }

    fn line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(20))
            .expect("tether-peer answers within the deadline")
    }

    fn cmd(&mut self, command: &str) -> String {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{command}")
            .and_then(|()| stdin.flush())
            .expect("writing a command");
        self.line()
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/", self.port)
    }

    /// Waits (bounded) for the process to exit; returns whether it did.
    fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "tether-peer exited with {status}");
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn binary_speaks_the_line_protocol() {
    let mut peer = PeerProcess::spawn(&[]);
    let url = peer.url();
    runtime().block_on(async {
        assert_eq!(peer.cmd("count"), "OK 0 0");
        let mut ws = connect(&url).await;
        ws.send(Message::text("hi")).await.expect("send");
        assert_eq!(next_data(&mut ws).await, Message::text("hi"));
        assert_eq!(peer.cmd("count"), "OK 1 1");
        assert_eq!(peer.cmd("open"), "OK 1");

        assert_eq!(peer.cmd("echo off"), "OK");
        assert_eq!(peer.cmd("send-text hello  world"), "OK");
        assert_eq!(next_data(&mut ws).await, Message::text("hello  world"));
        assert_eq!(peer.cmd("echo on"), "OK");

        assert_eq!(peer.cmd("send-oversized 10"), "OK");
        assert_eq!(next_data(&mut ws).await.len(), 10);

        assert_eq!(peer.cmd("stall on"), "OK");
        assert_eq!(peer.cmd("stall off"), "OK");
        ws.send(Message::Ping(b"x".to_vec().into()))
            .await
            .expect("ping");
        assert!(matches!(next(&mut ws).await, Some(Ok(Message::Pong(_)))));
        assert_eq!(peer.cmd("pings"), "OK 1");

        assert_eq!(peer.cmd("close 4002 bye now"), "OK");
        match next(&mut ws).await {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(u16::from(frame.code), 4002);
                assert_eq!(frame.reason.as_str(), "bye now");
            }
            other => panic!("expected a close frame, got {other:?}"),
        }
        assert!(next(&mut ws).await.is_none());
        assert_eq!(peer.cmd("last-close"), "OK 4002 bye now");

        assert_eq!(peer.cmd("reject 403"), "OK");
        match try_connect(&url).await {
            Err(WsError::Http(response)) => assert_eq!(response.status().as_u16(), 403),
            other => panic!("expected HTTP 403, got {:?}", other.map(|_| ())),
        }
        assert_eq!(peer.cmd("reject off"), "OK");

        let mut ws = connect(&url).await;
        assert_eq!(peer.cmd("send-invalid-utf8"), "OK");
        assert!(matches!(next(&mut ws).await, Some(Err(WsError::Utf8(_)))));

        let mut ws = connect(&url).await;
        assert_eq!(peer.cmd("drop"), "OK");
        assert!(matches!(next(&mut ws).await, Some(Err(_))));

        assert_eq!(peer.cmd("stop"), "OK");
        assert!(try_connect(&url).await.is_err());
        assert_eq!(peer.cmd("restart"), "OK");
        connect(&url).await;
        assert_eq!(peer.cmd("count"), "OK 4 1");

        assert!(peer.cmd("frobnicate").starts_with("ERR "));
        assert!(peer.cmd("close notanumber").starts_with("ERR "));
        assert!(peer.cmd("stall maybe").starts_with("ERR "));
    });
    assert_eq!(peer.cmd("quit"), "OK");
    assert!(peer.wait_exit(T), "tether-peer exits after quit");
}

#[test]
fn binary_exits_when_stdin_closes() {
    let mut peer = PeerProcess::spawn(&["--port", "0"]);
    assert_ne!(peer.port, 0);
    drop(peer.stdin.take());
    assert!(peer.wait_exit(T), "tether-peer exits when stdin closes");
}

#[test]
fn binary_serves_tls_with_a_self_signed_ca() {
    let dir = std::env::temp_dir().join(format!("tether-peer-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ca_path = dir.join("ca.pem");
    let ca_arg = ca_path.to_str().expect("UTF-8 temp path");
    let mut peer = PeerProcess::spawn(&["--tls-self-signed", ca_arg]);
    let ca_pem = std::fs::read_to_string(&ca_path).expect("CA PEM written");
    let url = format!("wss://localhost:{}/", peer.port);
    runtime().block_on(async {
        let mut ws = try_connect_tls(&url, connector_trusting(Some(&ca_pem)))
            .await
            .expect("TLS connect");
        ws.send(Message::text("tls")).await.expect("send");
        assert_eq!(next_data(&mut ws).await, Message::text("tls"));
    });
    assert_eq!(peer.cmd("count"), "OK 1 1");
    let _ = std::fs::remove_dir_all(&dir);
}
