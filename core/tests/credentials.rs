//! Fresh credentials on every (re)connect: a provider is called before each attempt, its
//! headers and envelope token are used for that attempt, and a server that takes each token
//! once (or only the newest) keeps accepting the client, where a static token is refused on
//! the first reconnect. A failing or panicking provider is a retryable connect failure.

mod common;

use std::sync::{Arc, Mutex};

use common::ref_server::{Kind, RefServer};
use common::{fast, Recorder, SOON};
use tether_core::{ConnectAttempt, ConnectError, Credentials, Disconnect, Event, Protocol, State};
use tether_test_peers::{Peer, PeerOptions};

fn single_use_peer() -> Peer {
    Peer::start_with(PeerOptions {
        single_use_header: Some("authorization".into()),
        ..PeerOptions::default()
    })
}

fn authorization(peer: &Peer) -> Option<String> {
    peer.last_request_headers()
        .into_iter()
        .find(|(k, _)| k == "authorization")
        .map(|(_, v)| v)
}

#[test]
fn a_static_token_is_refused_on_reconnect_by_a_server_that_takes_each_once() {
    let peer = single_use_peer();
    let mut rec = Recorder::connect(fast(&peer.url()).header("Authorization", "Bearer static"));
    rec.wait_state(State::Ready);
    peer.drop_all();
    rec.wait_disconnected();
    let (reason, will_reconnect) = rec.wait_disconnected();
    assert!(
        matches!(
            reason,
            Disconnect::ConnectFailed(ConnectError::HttpStatus { status: 401, .. })
        ),
        "{reason:?}"
    );
    assert!(!will_reconnect);
}

#[test]
fn the_provider_gives_each_attempt_a_fresh_token() {
    let peer = single_use_peer();
    let seen: Arc<Mutex<Vec<ConnectAttempt>>> = Arc::default();
    let log = seen.clone();
    let config = fast(&peer.url())
        // Replaced by the provider's header of the same name on every attempt.
        .header("Authorization", "Bearer static")
        .credentials_provider(move |attempt| {
            let mut log = log.lock().map_err(|e| e.to_string())?;
            log.push(attempt.clone());
            Ok(Credentials::new().header("Authorization", format!("Bearer t{}", log.len())))
        });
    let mut rec = Recorder::connect(config);
    rec.wait_state(State::Ready);
    assert_eq!(authorization(&peer).as_deref(), Some("Bearer t1"));
    for n in 2..=4 {
        peer.drop_all();
        let (reason, will_reconnect) = rec.wait_disconnected();
        assert!(will_reconnect, "{reason}");
        rec.wait_state(State::Ready);
        assert_eq!(authorization(&peer), Some(format!("Bearer t{n}")));
        let info = rec.client.connection_info().expect("info");
        assert_eq!(info.connection, n as u64);
        assert_eq!(
            info.header("x-tether-connection"),
            Some(n.to_string().as_str())
        );
    }
    assert_eq!(peer.connections_accepted(), 4);
    let seen = seen.lock().expect("log").clone();
    assert_eq!(seen.len(), 4);
    assert_eq!((seen[0].attempt, seen[0].reconnect), (0, false));
    assert!(seen[0].last_failure.is_none());
    for later in &seen[1..] {
        assert!(later.reconnect && later.attempt >= 1, "{later:?}");
        assert!(
            matches!(later.last_failure, Some(Disconnect::ConnectionLost(_))),
            "{later:?}"
        );
    }
}

#[test]
fn a_failing_or_panicking_provider_is_a_retryable_connect_failure() {
    let peer = Peer::start();
    let calls = Arc::new(Mutex::new(0u32));
    let counter = calls.clone();
    let config = fast(&peer.url()).credentials_provider(move |_| {
        let n = {
            let mut calls = counter.lock().map_err(|e| e.to_string())?;
            *calls += 1;
            *calls
        };
        match n {
            1 => Err("token service down".into()),
            2 => panic!("provider bug"),
            3 => Ok(Credentials::new().header("bad header", "x")),
            _ => Ok(Credentials::new().header("X-Fresh", "yes")),
        }
    });
    let mut rec = Recorder::connect(config);
    for want in [
        "token service down",
        "the provider panicked",
        "bad header name",
    ] {
        let (reason, will_reconnect) = rec.wait_disconnected();
        assert!(will_reconnect, "{reason}");
        match &reason {
            Disconnect::ConnectFailed(ConnectError::Credentials(why)) => {
                assert!(why.contains(want), "{why}")
            }
            other => panic!("{other:?}"),
        }
    }
    rec.wait_state(State::Ready);
    assert!(peer
        .last_request_headers()
        .contains(&("x-fresh".into(), "yes".into())));
    assert_eq!(*calls.lock().expect("calls"), 4);
}

#[test]
fn envelope_hello_carries_the_providers_newest_token() {
    let Some(mut server) = RefServer::start(Kind::Rust, &["--token", "t1"]) else {
        return;
    };
    let current = Arc::new(Mutex::new(String::from("t1")));
    let token = current.clone();
    let config = fast(&server.url())
        .protocol(Protocol::Envelope)
        .credentials_provider(move |_| {
            let t = token.lock().map_err(|e| e.to_string())?.clone();
            Ok(Credentials::new().token(t))
        });
    let mut rec = Recorder::connect(config);
    rec.wait_state(State::Ready);
    // A client with the old token configured statically, for comparison.
    let stale = fast(&server.url())
        .protocol(Protocol::Envelope)
        .auth_token("t1")
        .reconnect_enabled(false);

    // The server now takes only the newest token; the provider hands it out.
    server.command("token t2");
    *current.lock().expect("token") = "t2".into();
    server.command("drop");
    let (reason, will_reconnect) = rec.wait_disconnected();
    assert!(will_reconnect, "{reason}");
    rec.wait_state(State::Ready);
    rec.client.send_text("with t2").expect("queued");
    assert_eq!(rec.recv_texts(1, SOON), ["with t2"]);

    let mut old = Recorder::connect(stale);
    let closed = old.wait_for("Closed", SOON, |e| matches!(e, Event::Closed { .. }));
    assert!(
        matches!(
            &closed,
            Event::Closed {
                reason: Disconnect::Rejected { is_final: true, .. },
                ..
            }
        ),
        "{closed:?}"
    );
}

#[test]
fn a_token_from_the_provider_in_raw_mode_is_reported() {
    let peer = Peer::start();
    let config = fast(&peer.url())
        .max_reconnect_attempts(Some(1))
        .credentials_provider(|_| Ok(Credentials::new().token("t")));
    let mut rec = Recorder::connect(config);
    let (reason, _) = rec.wait_disconnected();
    assert!(
        matches!(&reason, Disconnect::ConnectFailed(ConnectError::Credentials(why)) if why.contains("envelope")),
        "{reason:?}"
    );
    assert_eq!(peer.connections_accepted(), 0);
}

#[test]
fn what_the_server_chose_is_read_per_connection() {
    let peer = Peer::start();
    let mut rec = Recorder::connect(
        fast(&peer.url())
            .subprotocol("chat.v2")
            .subprotocol("chat.v1"),
    );
    rec.wait_state(State::Open);
    let first = rec.client.connection_info().expect("set before Open");
    assert_eq!(first.connection, 1);
    assert_eq!(first.subprotocol.as_deref(), Some("chat.v2"));
    assert_eq!(first.header("Sec-WebSocket-Protocol"), Some("chat.v2"));
    assert_eq!(first.header("x-tether-connection"), Some("1"));
    assert!(first.proxy.is_none());
    assert_eq!(first.peer.map(|p| p.port()), Some(peer.port()));
    peer.drop_all();
    rec.wait_disconnected();
    rec.wait_state(State::Open);
    let second = rec.client.connection_info().expect("info");
    assert_eq!(second.connection, 2);
    assert_eq!(second.header("x-tether-connection"), Some("2"));
}
