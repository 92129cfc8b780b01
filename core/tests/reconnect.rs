//! Reconnect: backoff, retry classification, limits, and the outbox across outages.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{fast, Recorder, SOON};
use tether_core::{ConnectError, Disconnect, Event, RetryDecision, SendFailure, State};
use tether_test_peers::Peer;

#[test]
fn server_close_with_a_retryable_code_reconnects_and_the_outbox_flushes_first() {
    let peer = Peer::start();
    peer.set_echo(false);
    let mut rec = Recorder::connect(fast(&peer.url()).backoff(
        Duration::from_millis(200),
        Duration::from_millis(400),
        2.0,
    ));
    rec.wait_state(State::Ready);
    rec.client.send_text("before").expect("queued");
    assert!(peer.wait_received(1, SOON));
    peer.close_all(1001, "going away");
    let disc = rec.next_disconnect();
    assert_eq!(
        disc,
        Event::Disconnected {
            reason: Disconnect::ServerClosed {
                code: 1001,
                reason: "going away".into()
            },
            will_reconnect: true
        }
    );
    let rc = rec.wait_for("Reconnecting", SOON, |e| {
        matches!(e, Event::Reconnecting { .. })
    });
    let Event::Reconnecting { attempt, delay } = rc else {
        unreachable!()
    };
    assert_eq!(attempt, 1);
    assert!(
        delay <= Duration::from_millis(200),
        "full jitter below the first ceiling: {delay:?}"
    );
    // During the outage: queued, in order.
    let during: Vec<_> = (0..50)
        .map(|i| rec.client.send_text(format!("during-{i}")).expect("queued"))
        .collect();
    rec.wait_state(State::Ready);
    rec.client.send_text("after").expect("queued");
    assert!(peer.wait_received(52, SOON));
    let texts: Vec<String> = peer
        .received()
        .into_iter()
        .skip(1)
        .map(|r| format!("{:?}", r.msg))
        .collect();
    assert!(
        texts[0].contains("during-0")
            && texts[49].contains("during-49")
            && texts[50].contains("after"),
        "{texts:?}"
    );
    assert_eq!(during.len(), 50);
    assert_eq!(rec.client.stats().reconnects, 1);
    assert_eq!(peer.connections_accepted(), 2);
}

#[test]
fn final_close_code_stops_without_a_reconnect_loop() {
    let peer = Peer::start();
    let mut rec = Recorder::connect(fast(&peer.url()));
    rec.wait_state(State::Ready);
    peer.close_all(1008, "policy");
    let disc = rec.next_disconnect();
    assert!(
        matches!(
            disc,
            Event::Disconnected {
                will_reconnect: false,
                ..
            }
        ),
        "{disc:?}"
    );
    rec.wait_for("Closed", SOON, |e| matches!(e, Event::Closed { .. }));
    assert_eq!(rec.client.state(), State::Closed);
    assert_eq!(
        rec.client.send_text("x"),
        Err(tether_core::SendError::Closed)
    );
    // Nothing more happens: no reconnect attempts reach the server.
    assert!(rec.collect_for(Duration::from_millis(300)).is_empty());
    assert_eq!(peer.connections_accepted(), 1);
}

#[test]
fn http_401_on_upgrade_is_final_and_503_is_retried_with_backoff() {
    let peer = Peer::start();
    peer.set_reject_upgrade(Some(401));
    let mut rec = Recorder::connect(fast(&peer.url()));
    let closed = rec.wait_for("Closed", SOON, |e| matches!(e, Event::Closed { .. }));
    assert!(
        matches!(
            &closed,
            Event::Closed {
                reason: Disconnect::ConnectFailed(ConnectError::HttpStatus { status: 401, .. }),
                ..
            }
        ),
        "{closed:?}"
    );
    assert!(rec.attempts().is_empty(), "no retries after 401");

    let peer = Peer::start();
    peer.set_reject_upgrade(Some(503));
    let mut rec = Recorder::connect(fast(&peer.url()));
    rec.wait_for("third retry", SOON, |e| {
        matches!(e, Event::Reconnecting { attempt: 3, .. })
    });
    assert_eq!(
        rec.attempts(),
        [1, 2, 3],
        "attempt numbers grow while the outage lasts"
    );
    peer.set_reject_upgrade(None);
    rec.wait_state(State::Ready);
}

#[test]
fn attempt_limit_gives_up_and_fails_queued_messages_with_the_reason() {
    let peer = Peer::start();
    let url = peer.url();
    peer.stop();
    let mut rec = Recorder::connect(fast(&url).max_reconnect_attempts(Some(3)));
    let id = rec.client.send_text("stranded").expect("queued");
    let closed = rec.wait_for("Closed", SOON, |e| matches!(e, Event::Closed { .. }));
    assert!(
        matches!(
            &closed,
            Event::Closed {
                reason: Disconnect::RetriesExhausted { .. },
                undelivered: 1
            }
        ),
        "{closed:?}"
    );
    assert_eq!(rec.attempts(), [1, 2, 3]);
    let failed = rec.log.iter().find_map(|e| match e {
        Event::SendFailed {
            id: failed,
            reason: SendFailure::ConnectionFailed(why),
        } if *failed == id => Some(why.clone()),
        _ => None,
    });
    assert!(
        failed.is_some_and(|why| why.contains("3 reconnect attempts")),
        "{:?}",
        rec.log
    );
    let disconnects = rec
        .log
        .iter()
        .filter(|e| matches!(e, Event::Disconnected { .. }))
        .count();
    assert_eq!(disconnects, 4, "first connect + 3 retries each reported");
}

#[test]
fn total_retry_time_cap_gives_up() {
    let peer = Peer::start();
    let url = peer.url();
    peer.stop();
    let cap = Duration::from_millis(300);
    let started = Instant::now();
    let mut rec = Recorder::connect(fast(&url).max_retry_duration(Some(cap)));
    let closed = rec.wait_for("Closed", SOON, |e| matches!(e, Event::Closed { .. }));
    assert!(
        matches!(&closed, Event::Closed { reason: Disconnect::RetriesExhausted { reason, .. }, .. } if reason.contains("time cap")),
        "{closed:?}"
    );
    assert!(
        started.elapsed() < cap + Duration::from_secs(2),
        "gave up near the cap: {:?}",
        started.elapsed()
    );
}

#[test]
fn backoff_resets_only_after_min_uptime() {
    // min_uptime long: a server that keeps dropping us does not reset the attempt counter.
    let peer = Peer::start();
    let mut rec = Recorder::connect(fast(&peer.url()).min_uptime(Duration::from_secs(60)));
    for _ in 0..3 {
        rec.wait_state(State::Ready);
        peer.drop_all();
        rec.wait_for("Reconnecting", SOON, |e| {
            matches!(e, Event::Reconnecting { .. })
        });
    }
    assert_eq!(rec.attempts(), [1, 2, 3]);

    // min_uptime zero: every connection counts as stable, so each outage starts at attempt 1.
    let peer = Peer::start();
    let mut rec = Recorder::connect(fast(&peer.url()).min_uptime(Duration::ZERO));
    for _ in 0..3 {
        rec.wait_state(State::Ready);
        peer.drop_all();
        rec.wait_for("Reconnecting", SOON, |e| {
            matches!(e, Event::Reconnecting { .. })
        });
    }
    assert_eq!(rec.attempts(), [1, 1, 1]);
}

#[test]
fn tcp_drop_without_close_frame_is_connection_lost_and_retried() {
    let peer = Peer::start();
    let mut rec = Recorder::connect(fast(&peer.url()));
    rec.wait_state(State::Ready);
    peer.drop_all();
    let disc = rec.next_disconnect();
    assert!(
        matches!(
            &disc,
            Event::Disconnected {
                reason: Disconnect::ConnectionLost(_),
                will_reconnect: true
            }
        ),
        "{disc:?}"
    );
    rec.wait_state(State::Ready);
}

#[test]
fn server_restart_on_the_same_port_is_survived() {
    let peer = Peer::start();
    peer.set_echo(false);
    let mut rec = Recorder::connect(fast(&peer.url()));
    rec.wait_state(State::Ready);
    peer.stop();
    rec.wait_for("Reconnecting", SOON, |e| {
        matches!(e, Event::Reconnecting { .. })
    });
    for i in 0..10 {
        rec.client.send_text(format!("q{i}")).expect("queued");
    }
    peer.restart();
    rec.wait_state(State::Ready);
    assert!(peer.wait_received(10, SOON));
}

#[test]
fn a_custom_classifier_overrides_the_defaults() {
    let peer = Peer::start();
    let config = fast(&peer.url()).retry_classifier(|reason| match reason {
        Disconnect::ServerClosed { code: 1001, .. } => RetryDecision::Stop,
        other => tether_core::default_retry_decision(other),
    });
    let mut rec = Recorder::connect(config);
    rec.wait_state(State::Ready);
    peer.close_all(1001, "");
    rec.wait_for("Closed", SOON, |e| matches!(e, Event::Closed { .. }));
    assert!(rec.attempts().is_empty());
}

#[test]
fn reconnect_disabled_closes_on_the_first_loss() {
    let peer = Peer::start();
    let mut rec = Recorder::connect(fast(&peer.url()).reconnect_enabled(false));
    rec.wait_state(State::Ready);
    peer.drop_all();
    rec.wait_for("Closed", SOON, |e| matches!(e, Event::Closed { .. }));
    assert!(rec.attempts().is_empty());
}

#[test]
fn connect_timeout_covers_a_server_that_never_answers_the_upgrade() {
    // A real socket that accepts TCP and never says a word.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut rec = Recorder::connect(
        fast(&format!("ws://127.0.0.1:{port}/"))
            .connect_timeout(Duration::from_millis(300))
            .max_reconnect_attempts(Some(1)),
    );
    let disc = rec.next_disconnect();
    assert_eq!(
        disc,
        Event::Disconnected {
            reason: Disconnect::ConnectFailed(ConnectError::Timeout(Duration::from_millis(300))),
            will_reconnect: true
        }
    );
    drop(listener);
}

#[test]
fn connection_refused_is_retried() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let mut rec = Recorder::connect(fast(&format!("ws://127.0.0.1:{port}/")));
    let disc = rec.next_disconnect();
    assert!(
        matches!(
            &disc,
            Event::Disconnected {
                reason: Disconnect::ConnectFailed(ConnectError::Io(_)),
                will_reconnect: true
            }
        ),
        "{disc:?}"
    );
}

#[test]
fn a_connection_cut_during_the_upgrade_is_a_network_error_and_retried() {
    // Found by the chaos soak: EOF in the middle of the HTTP upgrade used to be classified as
    // an invalid handshake (final). It is a network failure.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || {
        use std::io::Read;
        let (mut socket, _) = listener.accept().expect("accept");
        let mut request = [0u8; 1024];
        let _ = socket.read(&mut request); // read the upgrade request, then hang up
    });
    let mut rec = Recorder::connect(fast(&format!("ws://127.0.0.1:{port}/")));
    let disc = rec.next_disconnect();
    assert_eq!(
        disc,
        Event::Disconnected {
            reason: Disconnect::ConnectFailed(ConnectError::Io(
                "connection closed during the upgrade".into()
            )),
            will_reconnect: true
        }
    );
    server.join().expect("server thread");
}

/// An application that takes `Disconnected` and then asks for the state (or waits for
/// `Ready`) must not be told the lost link is still `Ready`: the state leaves `Ready` before
/// the event is emitted. (A Python test that took `Disconnected` and called `wait_ready()`
/// returned at once, on the lost link, and missed what the server sent on the next one.)
#[test]
fn a_disconnect_taken_by_the_application_is_never_followed_by_the_lost_links_ready() {
    let peer = Peer::start();
    let mut rec = Recorder::connect(fast(&peer.url()));
    rec.wait_state(State::Ready);
    for round in 0..150 {
        let before = rec.client.connection_info().expect("connected").connection;
        peer.drop_all();
        rec.next_disconnect();
        // State first: a Ready of a newer link implies its connection number is already set.
        let state = rec.client.state();
        let now = rec.client.connection_info().expect("connected").connection;
        assert!(
            !(state == State::Ready && now == before),
            "round {round}: Disconnected taken while the lost connection {before} was still Ready"
        );
        rec.wait_state(State::Ready);
    }
}

/// The same when reconnecting stops: after the final `Disconnected` the client is not `Ready`
/// (and refuses sends) even before `Closed` arrives.
#[test]
fn a_final_disconnect_leaves_ready_before_it_is_emitted() {
    let peer = Peer::start();
    for round in 0..40 {
        let mut rec = Recorder::connect(fast(&peer.url()).reconnect_enabled(false));
        rec.wait_state(State::Ready);
        peer.drop_all();
        let (_, will_reconnect) = rec.wait_disconnected();
        assert!(!will_reconnect);
        let state = rec.client.state();
        assert!(
            matches!(state, State::Closing | State::Closed),
            "round {round}: state {state} after the final Disconnected"
        );
        rec.wait_for("Closed", SOON, |e| matches!(e, Event::Closed { .. }));
    }
}
