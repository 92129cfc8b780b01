//! Interop with a server we did not write: the Python `websockets` library
//! (tests/peers/python/echo_server.py), run from the venv that `make test` creates.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use common::{fast, Recorder, SOON};
use tether_core::{Disconnect, Event, Message, State};

/// A running Python peer, killed on drop.
struct PyPeer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    port: u16,
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The venv's Python, or None (then the test is skipped unless TETHER_REQUIRE_INTEROP=1, which
/// `make test` sets, so CI can never skip it silently).
fn python() -> Option<PathBuf> {
    let from_env = std::env::var_os("TETHER_PYTHON").map(PathBuf::from);
    let venv = workspace().join(".venv/bin/python");
    let found = from_env.or_else(|| venv.exists().then_some(venv));
    if found.is_none() {
        assert!(
            std::env::var_os("TETHER_REQUIRE_INTEROP").is_none(),
            "TETHER_REQUIRE_INTEROP is set but no Python venv was found (run `make test`)"
        );
        eprintln!("SKIPPED: no Python venv with `websockets`; run `make test` to include the interop tests");
    }
    found
}

impl PyPeer {
    fn start(python: &PathBuf, port: u16) -> PyPeer {
        let mut child = Command::new(python)
            .arg(workspace().join("tests/peers/python/echo_server.py"))
            .args(["--port", &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python peer starts");
        let stdin = child.stdin.take().expect("stdin piped");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout piped"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("PORT line");
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("bad first line {line:?}"));
        PyPeer {
            child,
            stdin,
            stdout,
            port,
        }
    }

    fn command(&mut self, cmd: &str) -> String {
        writeln!(self.stdin, "{cmd}").expect("write command");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("answer");
        assert!(line.starts_with("OK"), "{cmd}: {line}");
        line.trim().to_string()
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/", self.port)
    }
}

impl Drop for PyPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn echo_reconnect_and_restart_against_python_websockets() {
    let Some(python) = python() else { return };
    let mut peer = PyPeer::start(&python, 0);
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
    let disc = rec.wait_for("Disconnected", SOON, |e| {
        matches!(e, Event::Disconnected { .. })
    });
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
    let mut peer = PyPeer::start(&python, port);
    let got = rec.recv_texts(100, SOON);
    assert_eq!(got, (0..100).map(|i| format!("q{i}")).collect::<Vec<_>>());
    assert_eq!(peer.command("count"), "OK 1 100");
    assert!(rec.client.stats().reconnects >= 3);
}
