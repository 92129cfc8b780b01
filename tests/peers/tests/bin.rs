//! The `tether-peer` binary's stdin/stdout protocol.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{
    connect, connector_trusting, next, next_data, runtime, try_connect, try_connect_tls, LineChild,
    T,
};
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// Starts a `tether-peer` process with `args` (killed on drop if still
/// running).
fn spawn_peer(args: &[&str]) -> LineChild {
    LineChild::spawn(
        Command::new(env!("CARGO_BIN_EXE_tether-peer")).args(args),
        "tether-peer",
    )
}

/// Waits (bounded) for the process to exit; returns whether it did. It must
/// exit successfully.
fn wait_exit(peer: &mut LineChild, timeout: Duration) -> bool {
    let status = peer.wait_exit(timeout);
    if let Some(status) = status {
        assert!(status.success(), "tether-peer exited with {status}");
    }
    status.is_some()
}

#[test]
fn binary_speaks_the_line_protocol() {
    let mut peer = spawn_peer(&[]);
    let url = format!("ws://127.0.0.1:{}/", peer.port);
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
    assert!(wait_exit(&mut peer, T), "tether-peer exits after quit");
}

#[test]
fn binary_exits_when_stdin_closes() {
    let mut peer = spawn_peer(&["--port", "0"]);
    assert_ne!(peer.port, 0);
    drop(peer.stdin.take());
    assert!(
        wait_exit(&mut peer, T),
        "tether-peer exits when stdin closes"
    );
}

#[test]
fn binary_serves_tls_with_a_self_signed_ca() {
    let dir = std::env::temp_dir().join(format!("tether-peer-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ca_path = dir.join("ca.pem");
    let ca_arg = ca_path.to_str().expect("UTF-8 temp path");
    let mut peer = spawn_peer(&["--tls-self-signed", ca_arg]);
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
