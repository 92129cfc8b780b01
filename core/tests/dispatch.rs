//! The event-dispatch API both bindings sit on: `Client::dispatch` (poll mode, handlers on
//! the caller's thread), `in_handler`, the wake hook, `wait_status` / `status`, the handler
//! lifecycle around `connect` and `shutdown`, and `Disconnect::is_normal`.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::Duration;

use common::ref_server::{Kind, RefServer};
use common::{fast, wait_until, SOON};
use tether_core::{
    Client, ConfigBuilder, ConnectError, DeliveryError, DeliveryStatus, Disconnect, DispatchError,
    Event, EventDelivery, Message, MessageId, NotReady, Protocol, SendFailure, State, Want,
};
use tether_test_peers::Peer;

fn poll_client(config: ConfigBuilder) -> Client {
    Client::connect(config.build().expect("valid config"), EventDelivery::Poll).expect("starts")
}

/// Dispatch until `pred` holds for an event (returns the events handled so far).
fn dispatch_until(client: &Client, mut pred: impl FnMut(&Event) -> bool) -> Vec<Event> {
    let mut seen = Vec::new();
    let mut done = false;
    assert!(
        wait_until(SOON, || {
            client
                .dispatch(0, Duration::from_millis(100), &mut |e| {
                    done |= pred(&e);
                    seen.push(e);
                })
                .expect("dispatch runs");
            done
        }),
        "condition not met; events: {seen:?}"
    );
    seen
}

fn text(e: &Event) -> Option<String> {
    match e {
        Event::Message(Message::Text(t)) => Some(t.to_string()),
        _ => None,
    }
}

/// A ready poll-mode client of an echo peer with `n` echoes pending in its queue.
fn with_echoes_pending(peer: &Peer, n: usize) -> Client {
    let client = poll_client(fast(&peer.url()).event_queue_capacity(4 * n));
    dispatch_until(&client, |e| {
        matches!(
            e,
            Event::State {
                to: State::Ready,
                ..
            }
        )
    });
    for i in 0..n {
        client.send_text(format!("m{i}")).expect("queued");
    }
    // The peer echoed everything; wait until the echoes are all in the client's queue (a
    // readiness wait: what is delivered is checked from the handler's side below).
    assert!(peer.wait_received(n, SOON));
    assert!(wait_until(SOON, || client.pending_events() > n));
    client
}

#[test]
fn dispatch_keeps_order_across_chunks_and_respects_max() {
    let peer = Peer::start();
    let n = 1000; // several chunks of 256
    let client = with_echoes_pending(&peer, n);

    // A bounded call: exactly `max` events (more are pending).
    let mut first = Vec::new();
    let ran = client
        .dispatch(10, Duration::ZERO, &mut |e| first.push(e))
        .expect("dispatch");
    assert_eq!((ran, first.len()), (10, 10));

    // "All pending": one call takes the rest, across chunks, in order.
    let mut rest = Vec::new();
    let ran = client
        .dispatch(0, Duration::ZERO, &mut |e| rest.push(e))
        .expect("dispatch");
    assert_eq!(ran, rest.len());
    let texts: Vec<String> = first.iter().chain(&rest).filter_map(text).collect();
    let want: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
    assert_eq!(texts, want, "every echo once, in order");
    assert!(rest.len() > 256, "crossed a chunk boundary: {}", rest.len());

    // Nothing left: a call returns 0 without waiting (or after its wait).
    assert_eq!(client.dispatch(0, Duration::ZERO, &mut |_| {}), Ok(0));
    assert_eq!(
        client.dispatch(5, Duration::from_millis(10), &mut |_| {}),
        Ok(0)
    );
    assert!(client.shutdown(SOON));
}

#[test]
fn dispatch_from_a_handler_is_refused_and_in_handler_tells() {
    let peer = Peer::start();
    let client = poll_client(fast(&peer.url()));
    assert!(!client.in_handler());
    let mut nested = Vec::new();
    let mut inside = Vec::new();
    client
        .dispatch(1, SOON, &mut |_| {
            inside.push(client.in_handler());
            nested.push(client.dispatch(0, Duration::ZERO, &mut |_| {}));
        })
        .expect("dispatch");
    assert_eq!(nested, vec![Err(DispatchError::Reentered)]);
    assert_eq!(inside, vec![true]);
    assert!(!client.in_handler());
    assert!(!client.is_dispatching());
    assert!(client.shutdown(SOON));
}

#[test]
fn a_concurrent_dispatch_is_refused() {
    let peer = Peer::start();
    let client = poll_client(fast(&peer.url()));
    let (inside_tx, inside_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        let c = &client;
        let holder = s.spawn(move || {
            c.dispatch(1, SOON, &mut |_| {
                inside_tx.send(()).expect("test alive");
                go_rx.recv_timeout(SOON).expect("released");
            })
        });
        inside_rx.recv_timeout(SOON).expect("a handler runs");
        assert!(client.is_dispatching());
        assert!(!client.in_handler(), "not on this thread");
        assert_eq!(
            client.dispatch(0, Duration::ZERO, &mut |_| {}),
            Err(DispatchError::Busy)
        );
        go_tx.send(()).expect("holder alive");
        assert_eq!(holder.join().expect("no panic"), Ok(1));
    });
    assert!(client.shutdown(SOON));
}

#[test]
fn dispatch_in_callback_mode_is_refused() {
    let peer = Peer::start();
    let config = fast(&peer.url()).build().expect("valid");
    let client = Client::connect(config, EventDelivery::callback(|_| {})).expect("starts");
    assert_eq!(
        client.dispatch(0, Duration::ZERO, &mut |_| {}),
        Err(DispatchError::CallbackMode)
    );
    assert!(client.shutdown(SOON));
}

#[test]
fn a_panicking_handler_is_caught_and_dispatch_carries_on() {
    let peer = Peer::start();
    let client = with_echoes_pending(&peer, 20);
    let mut seen = Vec::new();
    let ran = client
        .dispatch(0, Duration::ZERO, &mut |e| {
            if let Some(t) = text(&e) {
                seen.push(t.clone());
                if t == "m3" {
                    panic!("handler bug");
                }
            }
        })
        .expect("dispatch");
    assert!(ran >= 20);
    let want: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
    assert_eq!(seen, want, "the events after the panic were handled too");
    assert!(client.shutdown(SOON));
}

#[test]
fn the_wake_hook_never_misses_and_fires_at_most_twice_per_dispatch() {
    let peer = Peer::start();
    let client = poll_client(fast(&peer.url()).event_queue_capacity(4096));
    let calls = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let c = calls.clone();
    client.set_wake_hook(Some(Arc::new(move || {
        c.fetch_add(1, Ordering::SeqCst);
        let _ = tx.lock().expect("not poisoned").send(());
    })));
    // The hook says when to look: drain on each call until the client is ready.
    let mut events = 0;
    let mut ready = false;
    while !ready {
        rx.recv_timeout(SOON).expect("woken");
        client
            .dispatch(0, Duration::ZERO, &mut |e| {
                events += 1;
                ready |= matches!(
                    e,
                    Event::State {
                        to: State::Ready,
                        ..
                    }
                );
            })
            .expect("dispatch");
    }
    // The event loop's pattern: wait for the hook, dispatch once, wait again. It must never
    // miss an event (a missed wake-up would hang here), and the hook fires at most twice per
    // dispatch call (once after it, once for an event that arrived after it found the queue
    // empty), never once per event of a batch. How far below one per event it stays depends
    // on how the session batches, which load changes, so it is reported, not asserted (the
    // once-per-batch rule itself is unit-tested without sockets in event_queue.rs).
    let n = 2000;
    let before = calls.load(Ordering::SeqCst);
    for i in 0..n {
        client.send_text(format!("m{i}")).expect("queued");
    }
    assert!(peer.wait_received(n, SOON));
    let mut echoes = 0;
    let mut dispatches = 0;
    while echoes < n {
        if rx.recv_timeout(SOON).is_err() {
            panic!(
                "not woken: echoes {echoes}, events {events}, hooks {}, pending {}, dispatch {:?}",
                calls.load(Ordering::SeqCst),
                client.pending_events(),
                client.dispatch(0, Duration::ZERO, &mut |_| {})
            );
        }
        dispatches += 1;
        client
            .dispatch(0, Duration::ZERO, &mut |e| {
                events += 1;
                echoes += usize::from(text(&e).is_some());
            })
            .expect("dispatch");
    }
    let hooks = calls.load(Ordering::SeqCst) - before;
    assert!(hooks >= 1);
    assert!(
        hooks <= 2 * dispatches + 1,
        "{hooks} hook calls for {dispatches} dispatch calls ({events} events in all)"
    );
    println!("{hooks} hook calls, {dispatches} dispatch calls, {n} echoes");
    client.set_wake_hook(None);
    assert!(client.shutdown(SOON));
}

#[test]
fn wait_status_written_in_raw_mode_and_failed() {
    let peer = Peer::start();
    let client = poll_client(fast(&peer.url()));
    // Queued before the link is up, written soon after, without any event being read.
    let id = client.send_text("one").expect("queued");
    assert_eq!(
        client.wait_status(id, Want::Written, SOON),
        DeliveryStatus::Written
    );
    // Raw mode has no acks: Written is final, so waiting for the ack returns at once.
    assert_eq!(
        client.wait_status(id, Want::Acked, SOON),
        DeliveryStatus::Written
    );
    assert_eq!(
        client.wait_status(MessageId(99), Want::Written, SOON),
        DeliveryStatus::Unknown
    );
    // The same without waiting, as a waiter's outcome.
    assert_eq!(client.delivery_outcome(id, Want::Written), Some(Ok(())));
    let no_acks = Some(Err(DeliveryError::NotSupported));
    assert_eq!(client.delivery_outcome(id, Want::Acked), no_acks);
    let unknown = Some(Err(DeliveryError::Unknown));
    assert_eq!(
        client.delivery_outcome(MessageId(99), Want::Written),
        unknown
    );
    assert!(client.shutdown(SOON));

    // Nothing listens: the message stays queued (timeout), then fails when the client closes.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let client = poll_client(fast(&format!("ws://127.0.0.1:{port}/")));
    let id = client.send_text("never").expect("queued");
    assert_eq!(
        client.wait_status(id, Want::Written, Duration::from_millis(50)),
        DeliveryStatus::Queued
    );
    assert_eq!(client.delivery_outcome(id, Want::Written), None, "pending");
    let status = client.status(id, Want::Written);
    client.close(1000, "").expect("valid");
    assert_eq!(
        client.wait_status(id, Want::Written, SOON),
        DeliveryStatus::Failed(SendFailure::Closed)
    );
    assert_eq!(
        block_on(status),
        DeliveryStatus::Failed(SendFailure::Closed)
    );
    let failed = Some(Err(DeliveryError::Failed(SendFailure::Closed)));
    assert_eq!(client.delivery_outcome(id, Want::Written), failed);
    assert!(client.shutdown(SOON));
}

#[test]
fn wait_status_and_the_future_in_envelope_mode() {
    let Some(mut server) = RefServer::start(Kind::Rust, &[]) else {
        return;
    };
    let config = fast(&server.url())
        .protocol(Protocol::Envelope)
        .session_id("dispatch-status")
        .handshake_timeout(Duration::from_secs(5));
    // Callback mode: waiting works without the poller's help.
    let client = Client::connect(
        config.build().expect("valid"),
        EventDelivery::callback(|_| {}),
    )
    .expect("starts");
    let id = client.send_text("a").expect("queued");
    assert_eq!(
        client.wait_status(id, Want::Acked, SOON),
        DeliveryStatus::Acked
    );
    assert_eq!(
        block_on(client.status(id, Want::Acked)),
        DeliveryStatus::Acked
    );

    // A stalled server reads nothing and acks nothing: written, then a timeout on the ack.
    server.command("stall on");
    let id = client.send_text("b").expect("queued");
    let written = client.status(id, Want::Written);
    assert_eq!(block_on(written), DeliveryStatus::Written);
    assert_eq!(
        client.wait_status(id, Want::Written, SOON),
        DeliveryStatus::Written
    );
    assert_eq!(
        client.wait_status(id, Want::Acked, Duration::from_millis(100)),
        DeliveryStatus::Written
    );
    server.command("stall off");
    assert_eq!(
        client.wait_status(id, Want::Acked, SOON),
        DeliveryStatus::Acked
    );
    assert!(client.shutdown(SOON));
}

/// Poll a future to completion on this thread (no runtime needed: the outbox wakes it).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    let deadline = std::time::Instant::now() + SOON;
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "future not ready");
        std::thread::park_timeout(Duration::from_millis(100));
    }
}

#[test]
fn callback_handlers_see_the_client_and_none_runs_after_shutdown() {
    let peer = Peer::start();
    let slot: Arc<OnceLock<Client>> = Arc::new(OnceLock::new());
    let after = Arc::new(AtomicBool::new(false));
    let late = Arc::new(AtomicUsize::new(0));
    let handled = Arc::new(AtomicUsize::new(0));
    let in_handler = Arc::new(AtomicBool::new(true));
    let (ready_tx, ready_rx) = mpsc::channel();
    let (gone_tx, gone_rx) = mpsc::channel::<()>();
    let handler = {
        let (slot, after, late, handled, in_handler) = (
            slot.clone(),
            after.clone(),
            late.clone(),
            handled.clone(),
            in_handler.clone(),
        );
        move |e: Event| {
            let _gone = &gone_tx; // dropped with the handler, when the dispatcher ends
            if after.load(Ordering::SeqCst) {
                late.fetch_add(1, Ordering::SeqCst);
            }
            if let Some(c) = slot.get() {
                if !c.in_handler() {
                    in_handler.store(false, Ordering::SeqCst);
                }
            }
            handled.fetch_add(1, Ordering::SeqCst);
            if matches!(
                e,
                Event::State {
                    to: State::Ready,
                    ..
                }
            ) {
                let _ = ready_tx.send(());
            }
            if text(&e).is_some() {
                // A slow handler, so that events are left when shutdown's timeout expires.
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    };
    let config = fast(&peer.url())
        .close_timeout(Duration::from_millis(200))
        .build()
        .expect("valid");
    let client = Client::connect(config, EventDelivery::callback(handler)).expect("starts");
    assert!(!client.in_handler());
    let client = slot.get_or_init(|| client);
    ready_rx.recv_timeout(SOON).expect("ready");
    for i in 0..300 {
        client.send_text(format!("m{i}")).expect("queued");
    }
    assert!(peer.wait_received(300, SOON));
    // The timeout expires with events left (about 0.6 s of handler work): they are dropped.
    client.shutdown(Duration::from_millis(1));
    after.store(true, Ordering::SeqCst);
    let at_return = handled.load(Ordering::SeqCst);
    // The dispatcher thread ends (dropping the handler) once it passed Closed.
    assert_eq!(
        gone_rx.recv_timeout(SOON),
        Err(mpsc::RecvTimeoutError::Disconnected)
    );
    assert_eq!(
        late.load(Ordering::SeqCst),
        0,
        "a handler ran after shutdown"
    );
    assert_eq!(handled.load(Ordering::SeqCst), at_return);
    assert!(
        in_handler.load(Ordering::SeqCst),
        "in_handler on the dispatcher"
    );
}

#[test]
fn shutdown_waits_for_a_handler_running_on_another_thread() {
    let peer = Peer::start();
    let client = with_echoes_pending(&peer, 50);
    let done = AtomicBool::new(false);
    let after = AtomicBool::new(false);
    let late = AtomicUsize::new(0);
    let (inside_tx, inside_rx) = mpsc::channel();
    std::thread::scope(|s| {
        let c = &client;
        let (done, after, late) = (&done, &after, &late);
        let poller = s.spawn(move || {
            let mut first = true;
            c.dispatch(0, Duration::ZERO, &mut |_| {
                if after.load(Ordering::SeqCst) {
                    late.fetch_add(1, Ordering::SeqCst);
                }
                if first {
                    first = false;
                    inside_tx.send(()).expect("test alive");
                    // Long enough for the shutdown below to start waiting.
                    std::thread::sleep(Duration::from_millis(100));
                    done.store(true, Ordering::SeqCst);
                }
            })
        });
        inside_rx.recv_timeout(SOON).expect("a handler runs");
        // No wait for the close: what is left to wait for is the running handler.
        client.shutdown(Duration::ZERO);
        after.store(true, Ordering::SeqCst);
        assert!(done.load(Ordering::SeqCst), "shutdown returned mid-handler");
        let ran = poller.join().expect("no panic").expect("dispatch ran");
        assert!(ran >= 1);
    });
    assert_eq!(
        late.load(Ordering::SeqCst),
        0,
        "a handler ran after shutdown"
    );
    assert_eq!(
        client.dispatch(0, Duration::ZERO, &mut |_| panic!("after shutdown")),
        Ok(0)
    );
}

#[test]
fn shutdown_from_inside_a_handler_makes_it_the_last() {
    let peer = Peer::start();
    let client = with_echoes_pending(&peer, 50);
    let mut handled = 0;
    let ran = client
        .dispatch(0, Duration::ZERO, &mut |_| {
            handled += 1;
            if handled == 1 {
                client.shutdown(Duration::ZERO);
            }
        })
        .expect("dispatch");
    assert_eq!((ran, handled), (1, 1));
    assert!(client.wait_closed(SOON));
}

#[test]
fn is_normal_is_the_one_definition_of_a_normal_end() {
    let server = |code| Disconnect::ServerClosed {
        code,
        reason: String::new(),
    };
    let user = Disconnect::UserClose {
        code: 4000,
        reason: "app".into(),
    };
    let table = [
        (user.clone(), true),
        (server(1000), true),
        (server(1001), true),
        (server(1005), false),
        (server(1011), false),
        (server(4000), false),
        (Disconnect::ConnectionLost("reset".into()), false),
        (Disconnect::HeartbeatTimeout(Duration::from_secs(1)), false),
        (Disconnect::HandshakeTimeout(Duration::from_secs(1)), false),
        (Disconnect::HandshakeFailed("echo".into()), false),
        (
            Disconnect::ConnectFailed(ConnectError::Io("refused".into())),
            false,
        ),
        (
            Disconnect::ProtocolError {
                code: 1002,
                detail: "bad".into(),
            },
            false,
        ),
        (
            Disconnect::Rejected {
                reason: "no".into(),
                is_final: true,
            },
            false,
        ),
        (
            Disconnect::RetriesExhausted {
                reason: "attempts".into(),
                last: Box::new(server(1000)),
            },
            false,
        ),
    ];
    for (d, normal) in table {
        assert_eq!(d.is_normal(), normal, "{d:?}");
    }
}

/// Routed delivery: the handler takes some events and hands the others back; those wait for
/// the poll calls, in order, and inbound messages are buffered once: with nobody taking the
/// kept ones, the client holds at most `event_queue_capacity` messages and stops reading.
/// Taking them resumes reading; the end is `is_finished` after the handler saw `Closed`, with
/// a change counted.
#[test]
fn routed_delivery_keeps_what_the_handler_declines_and_buffers_messages_once() {
    let peer = Peer::start();
    let capacity = 8;
    let (tx, rx) = mpsc::channel::<Event>();
    let handler = move |event: Event| match event {
        Event::Message(_) => Some(event),
        other => {
            let _ = tx.send(other);
            None
        }
    };
    let config = fast(&peer.url()).event_queue_capacity(capacity);
    let client = Client::connect(
        config.build().expect("valid"),
        EventDelivery::routed(handler),
    )
    .expect("starts");
    let total = 200;
    for i in 0..total {
        client.send_text(format!("m{i}")).expect("queued");
    }
    assert!(
        wait_until(SOON, || client.pending_events() >= capacity),
        "the kept queue fills"
    );
    std::thread::sleep(Duration::from_millis(300));
    let read = client.stats().messages_received;
    assert!(
        read <= capacity as u64 + 1,
        "read {read} with room for {capacity}: messages must be buffered once"
    );
    assert!(client
        .poll_event()
        .is_some_and(|e| text(&e).as_deref() == Some("m0")));
    let mut got = vec!["m0".to_owned()];
    let mut out = Vec::new();
    assert!(wait_until(SOON, || {
        out.clear();
        client.next_events(&mut out, 64, Duration::from_millis(100));
        got.extend(out.iter().filter_map(text));
        got.len() >= total
    }));
    assert_eq!(got, (0..total).map(|i| format!("m{i}")).collect::<Vec<_>>());
    assert!(rx.try_iter().any(|e| matches!(
        e,
        Event::State {
            to: State::Ready,
            ..
        }
    )));
    // The end: the handler sees Closed, then the client is finished, with a change counted.
    assert!(!client.is_finished());
    let seen = client.changes();
    client.close(1000, "").expect("closes");
    assert!(wait_until(SOON, || client.is_finished()));
    assert!(client.wait_change(seen, Duration::ZERO) > seen);
    assert!(rx.try_iter().any(|e| matches!(e, Event::Closed { .. })));
    assert_eq!(
        client.next_event(Duration::from_secs(5)),
        None,
        "nothing kept, no wait"
    );
}

/// `wait_change` wakes on a change and times out without one; `release_backpressure` lets a
/// poll-mode client read on with nobody taking its events.
#[test]
fn wait_change_and_release_backpressure() {
    let peer = Peer::start();
    let client = poll_client(fast(&peer.url()).event_queue_capacity(4));
    let seen = client.changes();
    let later = client.wait_change(seen, SOON);
    assert!(later > seen, "connecting is a change");
    assert!(wait_until(SOON, || client.state() == State::Ready));
    // Once the client is quiet (the state moves a moment before its event is counted, and a
    // loaded machine can stretch that moment), a wait without a change times out unchanged.
    let quiet = (0..100).any(|_| {
        let now = client.changes();
        client.wait_change(now, Duration::from_millis(50)) == now
    });
    assert!(quiet, "wait_change never timed out on a quiet client");
    for i in 0..50 {
        client.send_text(format!("m{i}")).expect("queued");
    }
    assert!(wait_until(SOON, || client.stats().messages_received >= 4));
    client.release_backpressure();
    assert!(
        wait_until(SOON, || client.stats().messages_received == 50),
        "reads on without a consumer"
    );
    assert!(!client.is_finished());
    client.close(1000, "").expect("closes");
    assert!(wait_until(SOON, || client.is_finished()));
}

/// `wait_ready`: ready (and at once when asked again), a timeout that names the state and the
/// last failure, and the reason of a client that closed for good before it was ready.
#[test]
fn wait_ready_answers_ready_timeout_or_why_the_client_ended_first() {
    let peer = Peer::start();
    let client = poll_client(fast(&peer.url()));
    assert_eq!(client.wait_ready(SOON), Ok(()));
    assert_eq!(client.wait_ready(Duration::ZERO), Ok(()));

    // Nothing listens: attempts fail until the one allowed reconnect gave up.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("ws://{}/", listener.local_addr().expect("addr"));
    drop(listener);
    let client = poll_client(fast(&url).max_reconnect_attempts(Some(1)));
    match client.wait_ready(Duration::ZERO) {
        Err(NotReady::Timeout { state, .. }) => assert_ne!(state, State::Ready),
        other => panic!("not ready yet, got {other:?}"),
    }
    match client.wait_ready(SOON) {
        Err(NotReady::Closed(reason @ Disconnect::RetriesExhausted { .. })) => {
            let err = client.wait_ready(Duration::ZERO).expect_err("still closed");
            assert_eq!(err, NotReady::Closed(reason));
            assert!(
                err.to_string().contains("closed before it was ready"),
                "{err}"
            );
        }
        other => panic!("closed before ready, got {other:?}"),
    }

    // A timeout names the last failure (here: every attempt is refused, without end).
    let client = poll_client(fast(&url));
    assert!(wait_until(SOON, || client.last_disconnect().is_some()));
    let err = client
        .wait_ready(Duration::from_millis(50))
        .expect_err("never ready");
    assert!(
        matches!(err, NotReady::Timeout { last: Some(_), .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("last failure"), "{err}");
}

/// `take_events`: only the kinds the reader keeps (the others before them dropped), at most
/// `max`, and "ended" once the client is finished and everything was read.
#[test]
fn take_events_keeps_the_wanted_kinds_and_tells_when_the_stream_ended() {
    let peer = Peer::start();
    let client = poll_client(fast(&peer.url()));
    let messages = |e: &Event| matches!(e, Event::Message(_));
    for i in 0..3 {
        client.send_text(format!("m{i}")).expect("queued");
    }
    let mut out = Vec::new();
    assert!(wait_until(SOON, || {
        !client.take_events(&mut out, 2, Duration::from_millis(100), &messages) && out.len() >= 3
    }));
    let texts: Vec<_> = out.iter().filter_map(text).collect();
    assert_eq!(
        texts,
        ["m0", "m1", "m2"],
        "state changes dropped, order kept"
    );
    out.clear();
    assert!(!client.take_events(&mut out, 8, Duration::from_millis(20), &messages));
    assert!(out.is_empty(), "the wait ended with nothing");
    assert!(!client.is_drained());
    client.close(1000, "").expect("closes");
    assert!(wait_until(SOON, || client.take_events(
        &mut out,
        8,
        Duration::from_millis(100),
        &messages
    )));
    assert!(out.is_empty(), "the end events are not messages");
    assert!(client.is_drained());
}
