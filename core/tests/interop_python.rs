//! Interop with a server we did not write: the Python `websockets` library
//! (tests/peers/python/echo_server.py), run from the venv that `make test` creates.

mod common;

use std::process::Command;

use common::ref_server::{missing, python, workspace, PeerProcess};
use common::{fast, Recorder, SOON};
use tether_core::{Disconnect, Event, Message, State};

/// The echo peer on Python `websockets` (tests/peers/python/echo_server.py) on `port` (0: any).
fn echo_peer(python: &std::path::Path, port: u16) -> PeerProcess {
    let mut cmd = Command::new(python);
    cmd.arg(workspace().join("tests/peers/python/echo_server.py"))
        .args(["--port", &port.to_string()]);
    PeerProcess::spawn("python echo peer", cmd)
}

#[test]
fn echo_reconnect_and_restart_against_python_websockets() {
    let Some(python) = python() else {
        missing("the Python echo peer");
        return;
    };
    let mut peer = echo_peer(&python, 0);
    let mut rec = Recorder::connect(fast(&peer.url()));
    rec.wait_state(State::Ready);

    rec.client.send_text("héllo").expect("queued");
    rec.client.send_binary(vec![0u8, 255, 1]).expect("queued");
    let m1 = rec.wait_for("text echo", SOON, |e| matches!(e, Event::Message(_)));
    let m2 = rec.wait_for("binary echo", SOON, |e| matches!(e, Event::Message(_)));
    assert!(matches!(m1, Event::Message(Message::Text(ref t)) if t.as_str() == "héllo"));
    assert!(matches!(m2, Event::Message(Message::Binary(ref b)) if b.as_ref() == [0, 255, 1]));

    // Server-initiated close with a retryable code.
    peer.command("close 1012 restarting");
    let disc = rec.next_disconnect();
    assert!(
        matches!(
            &disc,
            Event::Disconnected {
                reason: Disconnect::ServerClosed { code: 1012, .. },
                will_reconnect: true
            }
        ),
        "{disc:?}"
    );
    rec.wait_state(State::Ready);

    // Abrupt TCP drop.
    peer.command("drop");
    rec.wait_for("Disconnected", SOON, |e| {
        matches!(
            e,
            Event::Disconnected {
                reason: Disconnect::ConnectionLost(_),
                ..
            }
        )
    });
    rec.wait_state(State::Ready);

    // The server process dies; messages queue; a new process on the same port gets them in order.
    let port = peer.port;
    drop(peer);
    rec.wait_for("Reconnecting", SOON, |e| {
        matches!(e, Event::Reconnecting { .. })
    });
    for i in 0..100 {
        rec.client.send_text(format!("q{i}")).expect("queued");
    }
    let mut peer = echo_peer(&python, port);
    let got = rec.recv_texts(100, SOON);
    assert_eq!(got, (0..100).map(|i| format!("q{i}")).collect::<Vec<_>>());
    assert_eq!(peer.command("count"), "1 100");
    assert!(rec.client.stats().reconnects >= 3);
}
