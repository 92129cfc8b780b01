//! Connect, exchange messages, observe states and per-message lifecycle, close, and both event
//! delivery styles — against the real test peer over loopback.

mod common;

use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use common::{fast, Recorder, SOON};
use tether_core::{
    Client, Disconnect, Event, EventDelivery, Message, MessageId, SendError, SendFailure, State,
};
use tether_test_peers::{Peer, ReceivedMsg};

#[test]
fn states_go_connecting_open_ready_and_messages_echo() {
    let peer = Peer::start();
    let mut rec = Recorder::connect(fast(&peer.url()));
    let first = rec.wait_for("first state change", SOON, |e| {
        matches!(e, Event::State { .. })
    });
    assert_eq!(
        first,
        Event::State {
            from: State::Connecting,
            to: State::Open
        }
    );
    rec.wait_state(State::Ready);
    assert_eq!(rec.client.state(), State::Ready);

    let t = rec.client.send_text("hello").expect("queued");
    let b = rec.client.send_binary(vec![1u8, 2, 3]).expect("queued");
    assert_eq!(
        (t, b),
        (MessageId(1), MessageId(2)),
        "ids start at 1 and follow send order"
    );
    let m1 = rec.wait_for("echo 1", SOON, |e| matches!(e, Event::Message(_)));
    let m2 = rec.wait_for("echo 2", SOON, |e| matches!(e, Event::Message(_)));
    assert!(
        matches!(m1, Event::Message(Message::Text(ref s)) if s.as_str() == "hello"),
        "{m1:?}"
    );
    assert!(
        matches!(m2, Event::Message(Message::Binary(ref b)) if b.as_ref() == [1, 2, 3]),
        "{m2:?}"
    );
    assert!(
        rec.log
            .iter()
            .any(|e| matches!(e, Event::Written { up_to } if *up_to >= MessageId(2))),
        "each message reports written before its echo can arrive: {:?}",
        rec.log
    );
    let stats = rec.client.stats();
    assert_eq!((stats.messages_sent, stats.bytes_sent), (2, 8));
    assert_eq!((stats.messages_received, stats.bytes_received), (2, 8));
    assert_eq!(stats.outbox_messages, 0);
    assert_eq!(peer.received().len(), 2);
}

#[test]
fn messages_sent_before_the_link_is_up_are_delivered_in_order() {
    let peer = Peer::start();
    let mut rec = Recorder::connect(fast(&peer.url()));
    // Sent at once, before connecting finished: they wait in the outbox.
    for i in 0..500 {
        rec.client.send_text(format!("m{i}")).expect("queued");
    }
    let got = rec.recv_texts(500, SOON);
    let want: Vec<String> = (0..500).map(|i| format!("m{i}")).collect();
    assert_eq!(got, want);
}

#[test]
fn close_drains_the_outbox_then_completes_the_closing_handshake() {
    let peer = Peer::start();
    peer.set_echo(false);
    let mut rec = Recorder::connect(fast(&peer.url()));
    rec.wait_state(State::Ready);
    for i in 0..2000 {
        rec.client.send_text(format!("{i}")).expect("queued");
    }
    rec.client.close(1000, "bye").expect("valid close");
    assert_eq!(
        rec.client.send_text("late"),
        Err(SendError::Closed),
        "sends after close are refused"
    );
    let closed = rec.wait_for("Closed", SOON, |e| matches!(e, Event::Closed { .. }));
    assert_eq!(
        closed,
        Event::Closed {
            reason: Disconnect::UserClose {
                code: 1000,
                reason: "bye".into()
            },
            undelivered: 0
        }
    );
    assert!(
        peer.wait_received(2000, SOON),
        "all 2000 drained before the close frame"
    );
    assert_eq!(
        peer.wait_close_received(SOON),
        Some((1000, "bye".to_string()))
    );
    assert_eq!(rec.client.state(), State::Closed);
    assert!(rec.client.wait_closed(Duration::ZERO));
    assert!(!rec
        .log
        .iter()
        .any(|e| matches!(e, Event::SendFailed { .. })));
}

#[test]
fn close_against_a_stalled_server_times_out_and_reports_every_unsent_message() {
    let peer = Peer::start();
    let mut rec = Recorder::connect(
        fast(&peer.url())
            .close_timeout(Duration::from_millis(500))
            .outbox_limits(100_000, 64 << 20),
    );
    rec.wait_state(State::Ready);
    peer.set_stalled(true);
    // Enough to fill the socket buffers so that some stay in the outbox.
    let payload = vec![7u8; 64 << 10];
    let mut ids = Vec::new();
    for _ in 0..400 {
        ids.push(rec.client.send_binary(payload.clone()).expect("queued"));
    }
    rec.client.close(1000, "").expect("valid close");
    let closed = rec.wait_for("Closed", SOON, |e| matches!(e, Event::Closed { .. }));
    let Event::Closed { undelivered, .. } = closed else {
        unreachable!()
    };
    assert!(undelivered > 0, "a stalled peer cannot take 25 MiB");
    let failed: Vec<MessageId> = rec
        .log
        .iter()
        .filter_map(|e| match e {
            Event::SendFailed {
                id,
                reason: SendFailure::Closed,
            } => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(
        failed.len(),
        undelivered,
        "one SendFailed per undelivered message"
    );
    let written = rec.log.iter().filter_map(|e| match e {
        Event::Written { up_to } => Some(*up_to),
        _ => None,
    });
    let written_up_to = written.max().unwrap_or(MessageId(0));
    // Every id is either written or failed, never both, never neither.
    for id in ids {
        assert!(
            (id <= written_up_to) != failed.contains(&id),
            "id {id}: written up to {written_up_to}"
        );
    }
}

#[test]
fn callbacks_run_serially_on_the_dispatcher_thread_and_may_send() {
    let peer = Peer::start();
    let (tx, rx) = mpsc::channel::<(Event, String)>();
    let client_slot: Arc<Mutex<Option<Arc<Client>>>> = Arc::new(Mutex::new(None));
    let slot = client_slot.clone();
    let handler = move |event: Event| {
        // Sending from inside a callback must not deadlock: send only enqueues.
        if let Event::Message(Message::Text(t)) = &event {
            if t.as_str() == "ping" {
                if let Some(c) = slot.lock().ok().and_then(|s| s.clone()) {
                    c.send_text("pong-from-callback")
                        .expect("send inside a callback");
                }
            }
        }
        let name = std::thread::current().name().unwrap_or("").to_string();
        let _ = tx.send((event, name));
    };
    let config = fast(&peer.url()).build().expect("config");
    let client =
        Arc::new(Client::connect(config, EventDelivery::callback(handler)).expect("start"));
    *client_slot.lock().expect("lock") = Some(client.clone());
    assert_eq!(
        client.poll_event(),
        None,
        "poll returns nothing in callback mode"
    );
    client.send_text("ping").expect("queued");
    let mut texts = Vec::new();
    while texts.len() < 2 {
        let (event, thread) = rx.recv_timeout(SOON).expect("event within time");
        assert_eq!(
            thread, "tether-dispatch",
            "callbacks never run on the caller's or the runtime's threads"
        );
        if let Event::Message(Message::Text(t)) = event {
            texts.push(t.to_string());
        }
    }
    assert_eq!(texts, ["ping", "pong-from-callback"]);
    *client_slot.lock().expect("lock") = None;
    let client = Arc::try_unwrap(client).expect("last handle");
    assert!(
        client.shutdown(SOON),
        "shutdown closes and joins the dispatcher"
    );
    let rest: Vec<Event> = rx.try_iter().map(|(e, _)| e).collect();
    assert!(
        matches!(rest.last(), Some(Event::Closed { .. })),
        "Closed is the last callback: {rest:?}"
    );
}

#[test]
fn a_panicking_callback_does_not_kill_the_client() {
    let peer = Peer::start();
    let (tx, rx) = mpsc::channel::<String>();
    let handler = move |event: Event| {
        if let Event::Message(Message::Text(t)) = event {
            if t.as_str() == "boom" {
                panic!("handler bug");
            }
            let _ = tx.send(t.to_string());
        }
    };
    let client = Client::connect(
        fast(&peer.url()).build().expect("config"),
        EventDelivery::callback(handler),
    )
    .expect("start");
    client.send_text("boom").expect("queued");
    client.send_text("after").expect("queued");
    assert_eq!(rx.recv_timeout(SOON).ok().as_deref(), Some("after"));
    assert!(client.shutdown(SOON));
}

#[test]
fn poll_is_non_blocking_and_next_event_waits() {
    let peer = Peer::start();
    let mut rec = Recorder::connect(fast(&peer.url()));
    rec.wait_state(State::Ready);
    peer.set_stalled(true); // from now on nothing more happens
    let started = std::time::Instant::now();
    assert_eq!(rec.client.poll_event(), None);
    assert!(started.elapsed() < Duration::from_millis(50));
    assert_eq!(rec.client.pending_events(), 0);
    assert_eq!(rec.client.next_event(Duration::from_millis(100)), None);
    assert!(started.elapsed() >= Duration::from_millis(100));
}

#[test]
fn dropping_a_client_closes_it_gracefully() {
    let peer = Peer::start();
    let mut rec = Recorder::connect(fast(&peer.url()));
    rec.wait_state(State::Ready);
    drop(rec);
    assert_eq!(peer.wait_close_received(SOON), Some((1000, String::new())));
}

#[test]
fn close_rejects_codes_an_endpoint_may_not_send() {
    let peer = Peer::start();
    let rec = Recorder::connect(fast(&peer.url()));
    assert!(rec.client.close(1006, "").is_err());
    assert!(rec.client.close(2000, "").is_err());
    assert!(rec.client.close(1000, &"x".repeat(124)).is_err());
    assert!(rec.client.close(4000, "app").is_ok());
    assert!(rec.client.wait_closed(SOON));
}

#[test]
fn closing_while_reconnecting_fails_the_queued_messages_at_once() {
    let peer = Peer::start();
    let port = peer.port();
    drop(peer); // nothing listens: every attempt is refused
    let mut rec = Recorder::connect(fast(&format!("ws://127.0.0.1:{port}/")));
    rec.wait_for("a reconnect", SOON, |e| {
        matches!(e, Event::Reconnecting { .. })
    });
    let id = rec
        .client
        .send_text("never")
        .expect("queued while disconnected");
    rec.client.close(1000, "").expect("close");
    rec.wait_for("Closed", SOON, |e| {
        matches!(e, Event::Closed { undelivered: 1, .. })
    });
    assert!(rec.log.contains(&Event::SendFailed {
        id,
        reason: SendFailure::Closed
    }));
}

#[test]
fn received_order_matches_send_order_under_load() {
    let peer = Peer::start();
    let mut rec = Recorder::connect(fast(&peer.url()).outbox_limits(10_000, 1 << 20));
    rec.wait_state(State::Ready);
    for i in 0..5000 {
        rec.client.send_text(format!("{i}")).expect("queued");
    }
    let got = rec.recv_texts(5000, SOON);
    assert!(got.iter().enumerate().all(|(i, s)| *s == i.to_string()));
    let server: Vec<String> = peer
        .received()
        .into_iter()
        .map(|r| match r.msg {
            ReceivedMsg::Text(t) => t,
            ReceivedMsg::Binary(_) => String::new(),
        })
        .collect();
    assert_eq!(server.len(), 5000);
    assert!(server.iter().enumerate().all(|(i, s)| *s == i.to_string()));
}

#[test]
fn extra_headers_and_subprotocols_go_into_the_upgrade_request() {
    let peer = Peer::start();
    let mut rec = Recorder::connect(
        fast(&peer.url())
            .header("Authorization", "Bearer secret")
            .header("X-Client", "tether-test")
            .subprotocol("chat.v2")
            .subprotocol("chat.v1"),
    );
    rec.wait_state(State::Ready);
    let headers = peer.last_request_headers();
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(get("authorization").as_deref(), Some("Bearer secret"));
    assert_eq!(get("x-client").as_deref(), Some("tether-test"));
    assert_eq!(
        get("sec-websocket-protocol").as_deref(),
        Some("chat.v2, chat.v1")
    );
}

/// A poll-mode client whose application stopped reading (its event queue full, reading
/// paused) and is then shut down or dropped: nobody can read events any more, so the client
/// reads on to finish the close handshake instead of waiting out `close_timeout` for room.
#[test]
fn a_client_that_stopped_reading_still_closes_promptly_when_shut_down_or_dropped() {
    for dropped in [false, true] {
        let peer = Peer::start();
        let mut rec = Recorder::connect(
            fast(&peer.url())
                .event_queue_capacity(4)
                .close_timeout(Duration::from_secs(60)),
        );
        rec.wait_state(State::Ready);
        // Far more echoes than the queue holds: reading pauses with the queue full.
        for i in 0..200 {
            rec.client.send_text(format!("m{i}")).expect("send");
        }
        assert!(peer.wait_received(200, SOON), "the peer got the messages");
        let Recorder { client, .. } = rec;
        if dropped {
            drop(client);
            assert!(
                peer.wait_open_connections(0, SOON),
                "the dropped client kept its connection open"
            );
        } else {
            assert!(client.shutdown(SOON), "shutdown waited for room");
        }
        assert_eq!(
            peer.wait_close_received(SOON).map(|(code, _)| code),
            Some(1000)
        );
    }
}

/// The change hook runs on the session task, inside the emit of each event. One that asks
/// whether the client is finished while `Closed` is being emitted (Python's asyncio bridge
/// does) must get an answer at once: it used to wait there for the end to be marked, which
/// only happens after that very emit, so every close took a second (`wait_closed`'s bound).
#[test]
fn a_change_hook_asking_whether_the_client_finished_does_not_hold_up_the_close() {
    let peer = Peer::start();
    let client = Arc::new(
        Client::connect(
            fast(&peer.url()).build().expect("config"),
            EventDelivery::Poll,
        )
        .expect("client"),
    );
    let slowest = Arc::new(Mutex::new(Duration::ZERO));
    let weak = Arc::downgrade(&client);
    let seen = slowest.clone();
    client.set_change_hook(Some(Arc::new(move || {
        if let Some(client) = weak.upgrade() {
            let started = std::time::Instant::now();
            let _ = client.is_finished();
            let took = started.elapsed();
            let mut slowest = seen.lock().unwrap();
            *slowest = (*slowest).max(took);
        }
    })));
    let deadline = std::time::Instant::now() + SOON;
    while client.state() != State::Ready {
        assert!(std::time::Instant::now() < deadline, "never ready");
        let _ = client.next_event(Duration::from_millis(50));
    }
    client.close(1000, "").expect("close");
    assert!(client.wait_closed(SOON), "closed");
    let slowest = *slowest.lock().unwrap();
    assert!(
        slowest < Duration::from_millis(500),
        "is_finished() inside the change hook blocked for {slowest:?}"
    );
    assert!(client.is_finished());
}
