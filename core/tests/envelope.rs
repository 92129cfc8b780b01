//! Envelope mode against the three reference servers (Rust, Python `websockets`, Node `ws`):
//! acks, resend and de-duplication across forced disconnects, signatures, compression, the
//! application handshake.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::ref_server::{Kind, RefServer};
use common::{fast, Recorder, SOON};
use tether_core::{
    ConfigBuilder, DeliveryError, DeliveryStatus, Disconnect, Event, Message, MessageId, Protocol,
    SendFailure, State,
};
use tether_test_peers::{Direction, Fault, Peer, Proxy};

fn envelope(url: &str, sid: &str) -> ConfigBuilder {
    fast(url)
        .protocol(Protocol::Envelope)
        .session_id(sid)
        .handshake_timeout(Duration::from_secs(5))
}

/// Generate one #[test] per reference server for a scenario `fn(Kind)`.
macro_rules! per_server {
    ($scenario:ident: $($name:ident => $kind:expr),+ $(,)?) => {
        $(#[test] fn $name() { $scenario($kind) })+
    };
}

/// Per-id outcomes seen in the events.
#[derive(Default)]
struct Tally {
    acked: HashMap<u64, u32>,
    failed: HashMap<u64, u32>,
    echoes: HashMap<String, u32>,
}

impl Tally {
    /// Count one event; true once every sent id is resolved and every acked one echoed.
    fn add(&mut self, e: &Event, sent: u64) -> bool {
        match e {
            Event::Acked { id } => *self.acked.entry(id.0).or_default() += 1,
            Event::SendFailed { id, .. } => *self.failed.entry(id.0).or_default() += 1,
            Event::Message(Message::Text(t)) => *self.echoes.entry(t.to_string()).or_default() += 1,
            _ => {}
        }
        (self.acked.len() + self.failed.len()) as u64 == sent
            && self.echoes.len() >= self.acked.len()
    }
}

/// N messages while the server drops the link M times at random points: every id is acked
/// exactly once or failed exactly once, the server's application sees each message exactly once
/// and in order, the client sees each echo exactly once, and the counters add up.
fn accounting_under_forced_disconnects(kind: Kind) {
    let Some(mut server) = RefServer::start(kind, &[]) else {
        return;
    };
    let sid = format!("accounting-{kind:?}");
    let mut rec = Recorder::connect(
        envelope(&server.url(), &sid)
            .outbox_limits(100_000, 64 << 20)
            .ack_timeout(Duration::from_secs(5), 5)
            // Written is reported per batch: small batches report the stalled messages that
            // the kernel took, although a stalled server leaves no room for 256 KiB (the
            // client keeps the kernel's unsent share small, TCP_NOTSENT_LOWAT).
            .write_batch_bytes(8 << 10),
    );
    rec.wait_state(State::Ready);
    let mut rng = fastrand::Rng::with_seed(7);
    let drops = 8;
    let mut sent = 0u64;
    for _ in 0..drops {
        for _ in 0..rng.usize(50..400) {
            rec.client.send_text(format!("m{sent}")).expect("queued");
            sent += 1;
        }
        // Some of those may be acked already, some in flight. Make sure some are written but
        // certainly unacked when the link drops: the server stops reading first, and more is
        // written than a server buffers in user space after it stopped reading (Node's paused
        // socket still reads up to its 16 KiB high-water mark and handles it), so some of it
        // is still in the kernel, unread, when the connection is destroyed.
        // What the link still carries (resends after the last drop, the messages above) is
        // acked first, so that what is written while the server stalls fits in the kernel.
        let before = MessageId(sent);
        rec.wait_for("the backlog acked", SOON, |e| {
            *e == Event::Acked { id: before }
        });
        server.command("stall on");
        let mut stalled = Vec::new();
        for _ in 0..rng.usize(2_000..3_000) {
            stalled.push(rec.client.send_text(format!("m{sent}")).expect("queued"));
            sent += 1;
        }
        // Written while the server does not read: unacked for sure when the link drops. The
        // first 500 (about 25 KB, more than a server buffers in user space after it stopped
        // reading) are waited for, not all: the rest need not fit in what the kernels take.
        let enough = stalled[499];
        rec.wait_for(
            "the stalled messages written",
            SOON,
            |e| matches!(e, Event::Written { up_to } if *up_to >= enough),
        );
        server.command("drop");
        server.command("stall off");
        rec.wait_for("the drop", SOON, |e| {
            matches!(e, Event::Disconnected { .. })
        });
        rec.wait_state(State::Ready);
    }
    for _ in 0..300 {
        rec.client.send_text(format!("m{sent}")).expect("queued");
        sent += 1;
    }

    let mut t = Tally::default();
    let mut done = false;
    for e in rec.log.clone() {
        done = t.add(&e, sent);
    }
    if !done {
        rec.wait_for(
            "every message resolved and echoed",
            Duration::from_secs(60),
            |e| t.add(e, sent),
        );
    }
    let Tally {
        acked,
        failed,
        echoes,
    } = t;

    assert!(
        acked.values().chain(failed.values()).all(|n| *n == 1),
        "each id reported once"
    );
    assert!(
        acked.keys().all(|id| !failed.contains_key(id)),
        "no id both acked and failed"
    );
    assert!(
        failed.is_empty(),
        "{kind:?}: failures with generous ack timeouts: {failed:?}"
    );
    let delivered = server.delivered(&sid);
    let expected: Vec<String> = (0..sent).map(|i| format!("m{i}")).collect();
    assert_eq!(
        delivered.len(),
        expected.len(),
        "{kind:?}: server application saw each message once"
    );
    assert!(
        delivered == expected,
        "{kind:?}: server application saw them in order"
    );
    assert!(
        echoes.values().all(|n| *n == 1),
        "{kind:?}: each echo delivered to the client once"
    );
    assert_eq!(echoes.len() as u64, sent);

    let stats = rec.client.stats();
    assert_eq!(stats.messages_acked, sent);
    assert_eq!(stats.send_failures, 0);
    assert_eq!(stats.awaiting_ack, 0);
    assert!((1..=drops as u64).contains(&stats.reconnects), "{stats:?}");
    assert!(
        stats.messages_resent > 0,
        "some messages were in flight at a drop: {stats:?}"
    );
    let server_stats = server.stats();
    assert_eq!(
        server_stats["sessions"][&sid]["delivered"].as_u64(),
        Some(sent),
        "{server_stats}"
    );
}

per_server!(accounting_under_forced_disconnects:
    accounting_rust => Kind::Rust,
    accounting_python => Kind::Python,
    accounting_node => Kind::Node,
);

/// A server restart that keeps session state: the client resumes, nothing is duplicated.
fn resume_after_server_restart(kind: Kind) {
    let Some(mut server) = RefServer::start(kind, &[]) else {
        return;
    };
    let sid = format!("restart-{kind:?}");
    let mut rec = Recorder::connect(envelope(&server.url(), &sid));
    rec.wait_state(State::Ready);
    let first = rec.client.send_text("before").expect("queued");
    assert_eq!(rec.client.wait_acked(first, SOON), Ok(()));
    server.command("restart");
    rec.next_disconnect();
    let second = rec.client.send_text("after").expect("queued");
    assert_eq!(rec.client.wait_acked(second, SOON), Ok(()));
    assert_eq!(server.delivered(&sid), ["before", "after"]);
}

per_server!(resume_after_server_restart:
    restart_rust => Kind::Rust,
    restart_python => Kind::Python,
    restart_node => Kind::Node,
);

/// Signatures: the same key works; a different key is refused on both sides, reported, never
/// delivered.
fn signatures(kind: Kind) {
    let Some(mut server) = RefServer::start(kind, &["--key", "shared-secret"]) else {
        return;
    };
    let sid = format!("sig-{kind:?}");
    let mut good =
        Recorder::connect(envelope(&server.url(), &sid).signing_key(b"shared-secret".to_vec()));
    good.wait_state(State::Ready);
    let id = good.client.send_text("signed").expect("queued");
    assert_eq!(good.client.wait_acked(id, SOON), Ok(()));
    good.wait_for(
        "signed echo",
        SOON,
        |e| matches!(e, Event::Message(Message::Text(t)) if t.as_str() == "signed"),
    );

    // Client with the wrong key: the server nacks; the server's (correctly signed) messages
    // fail verification at the client.
    let bad_sid = format!("badsig-{kind:?}");
    let mut bad =
        Recorder::connect(envelope(&server.url(), &bad_sid).signing_key(b"wrong".to_vec()));
    bad.wait_state(State::Ready);
    let id = bad.client.send_text("forged").expect("queued");
    let failure = bad.client.wait_acked(id, SOON);
    assert!(
        matches!(&failure, Err(DeliveryError::Failed(SendFailure::Rejected(r))) if r.contains("signature")),
        "{kind:?}: {failure:?}"
    );
    assert!(
        bad.log
            .iter()
            .any(|e| matches!(e, Event::SendFailed { id: f, .. } if *f == id))
            || {
                bad.wait_for("SendFailed", SOON, |e| {
                    matches!(e, Event::SendFailed { .. })
                });
                true
            }
    );
    server.command(&format!("send {bad_sid} from-server"));
    let rejected = bad.wait_for("InboundRejected", SOON, |e| {
        matches!(e, Event::InboundRejected { .. })
    });
    assert!(
        matches!(&rejected, Event::InboundRejected { reason } if reason.contains("signature")),
        "{rejected:?}"
    );
    assert!(
        !bad.log.iter().any(|e| matches!(e, Event::Message(_))),
        "nothing unverified is delivered"
    );
    assert_eq!(server.delivered(&bad_sid), Vec::<String>::new());
    assert!(server.stats()["bad_signatures"].as_u64() >= Some(1));
}

per_server!(signatures:
    signatures_rust => Kind::Rust,
    signatures_python => Kind::Python,
    signatures_node => Kind::Node,
);

/// Compression both ways round-trips (large and small payloads, text and binary).
fn compression(kind: Kind) {
    let Some(mut server) = RefServer::start(kind, &["--compression-threshold", "64"]) else {
        return;
    };
    let sid = format!("zip-{kind:?}");
    let mut rec = Recorder::connect(envelope(&server.url(), &sid).compression_threshold(Some(64)));
    rec.wait_state(State::Ready);
    let big = "compressible ".repeat(500);
    for text in [big.as_str(), "tiny"] {
        let id = rec.client.send_text(text).expect("queued");
        assert_eq!(rec.client.wait_acked(id, SOON), Ok(()));
        rec.wait_for(
            "echo",
            SOON,
            |e| matches!(e, Event::Message(Message::Text(t)) if t.as_str() == text),
        );
    }
    let blob = vec![9u8; 10_000];
    let id = rec.client.send_binary(blob.clone()).expect("queued");
    assert_eq!(rec.client.wait_acked(id, SOON), Ok(()));
    rec.wait_for(
        "binary echo",
        SOON,
        |e| matches!(e, Event::Message(Message::Binary(b)) if b.as_ref() == blob.as_slice()),
    );
    assert_eq!(server.delivered(&sid)[..2], [big, "tiny".to_string()]);
}

per_server!(compression:
    compression_rust => Kind::Rust,
    compression_python => Kind::Python,
    compression_node => Kind::Node,
);

/// Handshake: a final reject stops without a reconnect loop; a transient one is retried.
fn handshake_rejects(kind: Kind) {
    let Some(mut server) = RefServer::start(kind, &["--token", "right"]) else {
        return;
    };
    // Through a proxy that holds the server's answers until the message is queued: otherwise
    // the final reject may come first, and then the send is refused instead.
    let proxy = Proxy::start(([127, 0, 0, 1], server.port).into());
    proxy.set_fault(Fault::Stall {
        direction: Direction::ServerToClient,
    });
    let mut rec = Recorder::connect(envelope(&proxy.url("/"), "tok-bad").auth_token("wrong"));
    let id = rec.client.send_text("never").expect("queued");
    proxy.set_fault(Fault::Pass);
    let closed = rec.wait_for("Closed", SOON, |e| matches!(e, Event::Closed { .. }));
    assert!(
        matches!(
            &closed,
            Event::Closed {
                reason: Disconnect::Rejected { is_final: true, .. },
                undelivered: 1
            }
        ),
        "{kind:?}: {closed:?}"
    );
    assert!(!rec
        .log
        .iter()
        .any(|e| matches!(e, Event::Reconnecting { .. })));
    assert!(matches!(
        rec.client.delivery_status(id),
        DeliveryStatus::Failed(SendFailure::ConnectionFailed(_))
    ));

    server.command("reject-next transient busy");
    let mut rec = Recorder::connect(envelope(&server.url(), "tok-good").auth_token("right"));
    let disc = rec.next_disconnect();
    assert!(
        matches!(
            &disc,
            Event::Disconnected {
                reason: Disconnect::Rejected {
                    is_final: false,
                    ..
                },
                will_reconnect: true
            }
        ),
        "{kind:?}: {disc:?}"
    );
    rec.wait_state(State::Ready);
}

per_server!(handshake_rejects:
    reject_rust => Kind::Rust,
    reject_python => Kind::Python,
    reject_node => Kind::Node,
);

#[test]
fn ack_timeout_resends_then_fails_after_the_retries() {
    let Some(mut server) = RefServer::start(Kind::Rust, &[]) else {
        return;
    };
    let mut rec = Recorder::connect(
        envelope(&server.url(), "ack-timeout").ack_timeout(Duration::from_millis(200), 1),
    );
    rec.wait_state(State::Ready);
    server.command("stall on"); // no acks, no close: only the ack timeout can tell
    let id = rec.client.send_text("into the void").expect("queued");
    let failed = rec.wait_for("SendFailed", SOON, |e| {
        matches!(e, Event::SendFailed { .. })
    });
    assert_eq!(
        failed,
        Event::SendFailed {
            id,
            reason: SendFailure::AckTimeout { attempts: 2 }
        }
    );
    assert_eq!(
        rec.client.stats().messages_resent,
        1,
        "written twice: once, then once more after the first timeout"
    );
    assert_eq!(
        rec.client.wait_acked(id, Duration::ZERO),
        Err(DeliveryError::Failed(SendFailure::AckTimeout {
            attempts: 2
        }))
    );
}

#[test]
fn ready_means_welcome_and_the_ack_future_resolves() {
    let Some(server) = RefServer::start(Kind::Rust, &[]) else {
        return;
    };
    let mut rec = Recorder::connect(envelope(&server.url(), "future"));
    let open = rec.wait_for("Open", SOON, |e| {
        matches!(
            e,
            Event::State {
                to: State::Open,
                ..
            }
        )
    });
    assert!(matches!(
        open,
        Event::State {
            from: State::Connecting,
            ..
        }
    ));
    rec.wait_state(State::Ready);
    let id = rec.client.send_binary(vec![1u8, 2, 3]).expect("queued");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let result = runtime.block_on(async { tokio::time::timeout(SOON, rec.client.acked(id)).await });
    assert_eq!(result.ok(), Some(Ok(())));
    assert_eq!(rec.client.delivery_status(id), DeliveryStatus::Acked);
    assert_eq!(
        rec.client.delivery_status(MessageId(999)),
        DeliveryStatus::Unknown
    );
}

#[test]
fn raw_mode_says_acks_are_not_supported() {
    let peer = Peer::start();
    let rec = Recorder::connect(fast(&peer.url()));
    let id = rec.client.send_text("x").expect("queued");
    assert_eq!(
        rec.client.wait_acked(id, SOON),
        Err(DeliveryError::NotSupported)
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    assert_eq!(
        runtime.block_on(rec.client.acked(id)),
        Err(DeliveryError::NotSupported)
    );
}

#[test]
fn a_server_that_does_not_speak_the_protocol_is_a_final_handshake_failure() {
    let peer = Peer::start(); // a raw echo server: it echoes our hello back
    let mut rec = Recorder::connect(envelope(&peer.url(), "not-a-tether-server"));
    let closed = rec.wait_for("Closed", SOON, |e| matches!(e, Event::Closed { .. }));
    assert!(
        matches!(&closed, Event::Closed { reason: Disconnect::HandshakeFailed(why), .. } if why.contains("hello")),
        "{closed:?}"
    );
}

#[test]
fn a_silent_server_is_a_handshake_timeout_and_retried() {
    let peer = Peer::start();
    peer.set_echo(false); // accepts the WebSocket, never answers hello
    let mut rec = Recorder::connect(
        envelope(&peer.url(), "silent").handshake_timeout(Duration::from_millis(200)),
    );
    let disc = rec.next_disconnect();
    assert_eq!(
        disc,
        Event::Disconnected {
            reason: Disconnect::HandshakeTimeout(Duration::from_millis(200)),
            will_reconnect: true
        }
    );
    // The state moves on by itself (the backoff can be ~0 ms): await the event, not the state.
    rec.wait_for("Reconnecting", SOON, |e| {
        matches!(e, Event::Reconnecting { attempt: 1, .. })
    });
}

#[test]
fn envelope_only_options_are_refused_in_raw_mode() {
    for builder in [
        fast("ws://127.0.0.1:1/").auth_token("t"),
        fast("ws://127.0.0.1:1/").signing_key(b"k".to_vec()),
        fast("ws://127.0.0.1:1/").compression_threshold(Some(10)),
    ] {
        let err = builder
            .build()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("only with protocol=\"envelope\""), "{err}");
    }
}

/// App-level ping/pong through the envelope measures the application round trip.
fn app_rtt(kind: Kind) {
    let Some(server) = RefServer::start(kind, &[]) else {
        return;
    };
    let mut rec = Recorder::connect(
        envelope(&server.url(), &format!("rtt-{kind:?}"))
            .heartbeat(Some(Duration::from_millis(50)), Duration::from_secs(2)),
    );
    rec.wait_state(State::Ready);
    assert!(
        common::wait_until(SOON, || rec.client.stats().last_app_rtt.is_some()),
        "{kind:?}: no app-level pong"
    );
    assert!(rec.client.stats().last_app_rtt < Some(Duration::from_secs(2)));
}

per_server!(app_rtt:
    app_rtt_rust => Kind::Rust,
    app_rtt_python => Kind::Python,
    app_rtt_node => Kind::Node,
);

/// Issue 12 item 1: a message larger than the *server's* limit (the server closes with 1009)
/// fails after a bounded number of tries with `RefusedTooLarge`, and the message queued behind
/// it is delivered and acked; the session does not reconnect forever.
fn a_message_the_server_refuses_as_too_large_fails_and_the_queue_moves_on(kind: Kind) {
    let Some(mut server) = RefServer::start(kind, &["--max-size", "65536"]) else {
        return;
    };
    let sid = format!("poison-{kind:?}");
    let mut rec =
        Recorder::connect(envelope(&server.url(), &sid).max_outbound_message_size(1 << 20));
    rec.wait_state(State::Ready);
    let before = rec.client.send_text("before").expect("queued");
    rec.wait_for("before acked", SOON, |e| *e == Event::Acked { id: before });
    let big = rec.client.send_text("x".repeat(200_000)).expect("queued");
    let small = rec.client.send_text("after").expect("queued");
    let mut big_failed = None;
    let mut small_acked = false;
    rec.wait_for("both resolved", SOON * 2, |e| {
        match e {
            Event::SendFailed { id, reason } if *id == big => big_failed = Some(reason.clone()),
            Event::Acked { id } if *id == small => small_acked = true,
            Event::Acked { id } if *id == big => panic!("the server acked what it refused"),
            Event::SendFailed { id, reason } if *id == small => {
                panic!("the message behind the large one failed: {reason}")
            }
            _ => {}
        }
        big_failed.is_some() && small_acked
    });
    match big_failed {
        Some(SendFailure::RefusedTooLarge { attempts }) => {
            assert_eq!(attempts, tether_core::TOO_LARGE_STRIKES, "{kind:?}")
        }
        other => panic!("{kind:?}: big failed with {other:?}"),
    }
    assert!(
        rec.client.stats().reconnects <= u64::from(tether_core::TOO_LARGE_STRIKES),
        "{kind:?}: one reconnect per refusal at most: {}",
        rec.client.stats().reconnects
    );
    assert_eq!(
        rec.client.wait_acked(big, Duration::ZERO),
        Err(DeliveryError::Failed(SendFailure::RefusedTooLarge {
            attempts: tether_core::TOO_LARGE_STRIKES
        }))
    );
    let refused = rec
        .log
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Disconnected {
                    reason: Disconnect::ServerClosed { code: 1009, .. },
                    ..
                }
            )
        })
        .count();
    assert_eq!(
        refused,
        tether_core::TOO_LARGE_STRIKES as usize,
        "{kind:?}: the server refused it this many times"
    );
    // The link is healthy again and the server application has the two small ones, in order.
    assert_eq!(rec.client.state(), State::Ready);
    assert_eq!(server.delivered(&sid), ["before", "after"], "{kind:?}");
}

per_server!(a_message_the_server_refuses_as_too_large_fails_and_the_queue_moves_on:
    poison_rust => Kind::Rust,
    poison_python => Kind::Python,
    poison_node => Kind::Node,
);
