//! Bounds: outbound size, outbox overflow policies, inbound size and UTF-8, backpressure.

mod common;

use std::time::{Duration, Instant};

use common::{fast, wait_until, Recorder, SOON};
use tether_core::{Disconnect, Event, MessageId, OverflowPolicy, SendError, SendFailure, State};
use tether_test_peers::Peer;

/// A URL nothing listens on: the client stays disconnected and queues.
fn dead_url() -> String {
    let peer = Peer::start();
    let url = peer.url();
    peer.stop();
    url
}

#[test]
fn too_large_is_refused_at_send_time_and_nothing_goes_on_the_wire() {
    let peer = Peer::start();
    let mut rec = Recorder::connect(fast(&peer.url()).max_outbound_message_size(1000));
    rec.wait_state(State::Ready);
    assert_eq!(
        rec.client.send_binary(vec![0u8; 1001]),
        Err(SendError::TooLarge {
            size: 1001,
            limit: 1000
        })
    );
    assert_eq!(
        rec.client.send_text("x".repeat(1001)),
        Err(SendError::TooLarge {
            size: 1001,
            limit: 1000
        })
    );
    assert_eq!(
        rec.client.send_binary(vec![0u8; 1000]),
        Ok(MessageId(1)),
        "refused sends use no id"
    );
    assert!(peer.wait_received(1, SOON));
    assert_eq!(
        peer.received()[0].msg,
        tether_test_peers::ReceivedMsg::Binary(vec![0u8; 1000])
    );
}

#[test]
fn reject_policy_reports_queue_full_by_count_and_by_bytes() {
    let rec = Recorder::connect(fast(&dead_url()).outbox_limits(3, 1 << 20));
    for _ in 0..3 {
        rec.client.send_text("a").expect("room");
    }
    assert_eq!(
        rec.client.send_text("b"),
        Err(SendError::QueueFull {
            messages: 3,
            bytes: 3
        })
    );
    let rec = Recorder::connect(
        fast(&dead_url())
            .outbox_limits(100, 10)
            .max_outbound_message_size(10),
    );
    rec.client.send_text("123456").expect("room");
    assert_eq!(
        rec.client.send_text("12345"),
        Err(SendError::QueueFull {
            messages: 1,
            bytes: 6
        })
    );
    let stats = rec.client.stats();
    assert_eq!((stats.outbox_messages, stats.outbox_bytes), (1, 6));
}

#[test]
fn drop_oldest_policy_tells_which_message_was_dropped() {
    let mut rec = Recorder::connect(
        fast(&dead_url())
            .outbox_limits(2, 1 << 20)
            .overflow_policy(OverflowPolicy::DropOldest),
    );
    let a = rec.client.send_text("a").expect("room");
    rec.client.send_text("b").expect("room");
    rec.client.send_text("c").expect("drop-oldest makes room");
    let failed = rec.wait_for("SendFailed", SOON, |e| {
        matches!(e, Event::SendFailed { .. })
    });
    assert_eq!(
        failed,
        Event::SendFailed {
            id: a,
            reason: SendFailure::DroppedOldest
        }
    );
    assert_eq!(rec.client.stats().send_failures, 1);
}

/// On a live link whose peer stopped reading, the session sits blocked on its write; a message
/// dropped by a send on the application's thread is still reported at once (events from the
/// application's threads never wait in the batch of events the session gathers).
#[test]
fn drop_oldest_on_a_blocked_live_link_is_reported_at_once() {
    let peer = Peer::start();
    let mut rec = Recorder::connect(
        fast(&peer.url())
            .heartbeat(None, Duration::from_secs(5))
            .outbox_limits(4, 64 << 20)
            // One message per write, so only the one being written is protected from dropping.
            .write_batch_bytes(1)
            .overflow_policy(OverflowPolicy::DropOldest),
    );
    rec.wait_state(State::Ready);
    peer.set_stalled(true);
    // Send one message at a time until one is not written: the socket buffers are full and
    // the session is blocked on that write (a second without progress, once).
    let chunk = vec![7u8; 256 << 10];
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "the link never blocked");
        let id = rec.client.send_binary(chunk.clone()).expect("room");
        let written = rec.collect_until(
            Duration::from_secs(1),
            |e| matches!(e, Event::Written { up_to } if *up_to >= id),
        );
        if !written {
            break;
        }
    }
    // The blocked message plus three more fill the outbox; the next send drops the oldest
    // unwritten one.
    let mut queued = Vec::new();
    for _ in 0..3 {
        queued.push(rec.client.send_binary(chunk.clone()).expect("room"));
    }
    rec.client
        .send_binary(chunk.clone())
        .expect("drop-oldest makes room");
    let failed = rec.wait_for("SendFailed", SOON, |e| {
        matches!(e, Event::SendFailed { .. })
    });
    assert_eq!(
        failed,
        Event::SendFailed {
            id: queued[0],
            reason: SendFailure::DroppedOldest
        }
    );
    peer.set_stalled(false);
}

#[test]
fn wait_policy_blocks_up_to_its_timeout_then_reports_queue_full() {
    let rec = Recorder::connect(
        fast(&dead_url())
            .outbox_limits(1, 1 << 20)
            .overflow_policy(OverflowPolicy::Wait(Duration::from_millis(200))),
    );
    rec.client.send_text("a").expect("room");
    let started = Instant::now();
    assert!(matches!(
        rec.client.send_text("b"),
        Err(SendError::QueueFull { .. })
    ));
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[test]
fn wait_policy_proceeds_when_the_link_drains_the_outbox() {
    let peer = Peer::start();
    peer.set_echo(false);
    let rec = Recorder::connect(
        fast(&peer.url())
            .outbox_limits(2, 1 << 20)
            .overflow_policy(OverflowPolicy::Wait(SOON)),
    );
    // 200 sends through an outbox of 2: each waits for room; none is refused.
    for i in 0..200 {
        rec.client
            .send_text(format!("{i}"))
            .expect("waited for room");
    }
    assert!(peer.wait_received(200, SOON));
    assert!(rec.client.stats().outbox_high_water_messages <= 2);
}

#[test]
fn queueing_off_refuses_sends_until_ready() {
    let rec = Recorder::connect(fast(&dead_url()).queue_while_disconnected(false));
    assert_eq!(rec.client.send_text("x"), Err(SendError::NotReady));
}

#[test]
fn oversized_inbound_message_closes_with_1009_and_says_why() {
    let peer = Peer::start();
    let mut rec = Recorder::connect(fast(&peer.url()).max_inbound_size(64 << 10, 64 << 10));
    rec.wait_state(State::Ready);
    peer.send_oversized_all(1 << 20);
    let disc = rec.next_disconnect();
    let Event::Disconnected {
        reason,
        will_reconnect,
    } = disc
    else {
        unreachable!()
    };
    assert!(
        matches!(reason, Disconnect::InboundTooLarge { limit, .. } if limit == 64 << 10),
        "{reason:?}"
    );
    assert_eq!(reason.close_code(), 1009);
    assert!(will_reconnect);
    let (code, why) = peer
        .wait_close_received(SOON)
        .expect("client sent a close frame");
    assert_eq!(code, 1009);
    assert!(why.contains("exceeds the limit"), "{why}");
    assert!(
        !rec.log.iter().any(|e| matches!(e, Event::Message(_))),
        "the oversized message is not delivered"
    );
    rec.wait_state(State::Ready);
}

#[test]
fn invalid_utf8_in_a_text_frame_is_a_protocol_error_and_a_reconnect() {
    let peer = Peer::start();
    let mut rec = Recorder::connect(fast(&peer.url()));
    rec.wait_state(State::Ready);
    peer.send_invalid_utf8_all();
    let disc = rec.next_disconnect();
    assert!(
        matches!(
            &disc,
            Event::Disconnected {
                reason: Disconnect::ProtocolError { code: 1007, .. },
                will_reconnect: true
            }
        ),
        "{disc:?}"
    );
    rec.wait_state(State::Ready);
    rec.client.send_text("still works").expect("queued");
    assert_eq!(rec.recv_texts(1, SOON), ["still works"]);
}

#[test]
fn a_slow_application_pauses_reading_instead_of_buffering_without_bound() {
    let peer = Peer::start();
    let capacity = 8;
    let mut rec = Recorder::connect(fast(&peer.url()).event_queue_capacity(capacity));
    rec.wait_state(State::Ready);
    let total = 2000;
    let payload = "x".repeat(1024);
    for _ in 0..total {
        peer.send_text_all(&payload);
    }
    // Wait until the client has filled its queue, then observe that it reads no further.
    assert!(
        wait_until(SOON, || rec.client.pending_events() >= capacity),
        "queue fills"
    );
    std::thread::sleep(Duration::from_millis(300));
    let read = rec.client.stats().messages_received;
    assert!(
        read <= capacity as u64 + 1,
        "read {read} with a queue of {capacity}: reading must pause"
    );
    // Consuming resumes reading, and nothing was lost.
    let got = rec.recv_texts(total, SOON);
    assert_eq!(got.len(), total);
    assert_eq!(rec.client.stats().messages_received, total as u64);
}

/// Issue 12 item 1, raw mode: a message over the *server's* limit (it closes with 1009 while
/// the message is still being written, so the message stays queued) fails after
/// `TOO_LARGE_STRIKES` links with `RefusedTooLarge`, and the message behind it is delivered.
#[test]
fn raw_mode_a_message_the_server_refuses_as_too_large_fails_and_the_queue_moves_on() {
    use tether_test_peers::{PeerOptions, ReceivedMsg};

    let peer = Peer::start_with(PeerOptions {
        echo: false,
        max_message_size: Some(64 << 10),
        ..PeerOptions::default()
    });
    let mut rec = Recorder::connect(fast(&peer.url()).max_outbound_message_size(16 << 20));
    rec.wait_state(State::Ready);
    // Larger than the socket buffers take at once: the write is still running when the
    // server's close arrives.
    let big = rec
        .client
        .send_binary(vec![9u8; 8 << 20])
        .expect("within our own limit");
    let small = rec.client.send_text("after").expect("queued");
    let failed = rec.wait_for("the large one fails", SOON * 2, |e| {
        matches!(e, Event::SendFailed { .. })
    });
    assert_eq!(
        failed,
        Event::SendFailed {
            id: big,
            reason: SendFailure::RefusedTooLarge {
                attempts: tether_core::TOO_LARGE_STRIKES
            }
        }
    );
    rec.wait_for(
        "the small one written",
        SOON,
        |e| matches!(e, Event::Written { up_to } if *up_to >= small),
    );
    assert!(peer.wait_received(1, SOON), "the small one arrived");
    let got: Vec<ReceivedMsg> = peer.received().into_iter().map(|r| r.msg).collect();
    assert_eq!(got, [ReceivedMsg::Text("after".into())]);
    let refusals = rec
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
        refusals,
        tether_core::TOO_LARGE_STRIKES as usize,
        "{:?}",
        rec.log
    );
    assert_eq!(
        rec.client.stats().reconnects,
        u64::from(tether_core::TOO_LARGE_STRIKES),
        "one link per refusal, then it stays up"
    );
}

/// Issue 12 item 1, the size check: in envelope mode the outbound limit applies to the frame
/// as it goes on the wire. A text of 1,000 characters that JSON escapes (control characters
/// become `\u00XX`, six bytes) is a frame of over 6,000 bytes: refused at send time with that
/// size against a limit of 4,096, instead of being refused by the server after it was
/// accepted.
#[test]
fn envelope_mode_checks_the_frame_size_after_json_escaping_at_send_time() {
    let peer = Peer::start();
    let rec = Recorder::connect(
        fast(&peer.url())
            .protocol(tether_core::Protocol::Envelope)
            .max_outbound_message_size(4096),
    );
    let escaped = "\u{1}".repeat(1000);
    match rec.client.send_text(escaped) {
        Err(e @ SendError::TooLarge { size, limit }) => {
            assert_eq!(limit, 4096);
            assert!(size >= 6000 + 2, "counted after escaping: {size}");
            // The error says which size it is, since it is not the length the caller passed.
            assert_eq!(
                e.to_string(),
                format!(
                    "message of {size} bytes on the wire exceeds the outbound limit of 4096 bytes"
                )
            );
        }
        other => panic!("a 6 KB frame passed a 4 KB limit: {other:?}"),
    }
    // Quotes double: 2,100 of them are a frame of more than 4,200 bytes.
    assert!(matches!(
        rec.client.send_text("\"".repeat(2100)),
        Err(SendError::TooLarge { .. })
    ));
    // Plain text of the same length fits, as does a binary message below the limit minus the
    // binary header.
    rec.client.send_text("a".repeat(2100)).expect("fits");
    rec.client
        .send_binary(vec![0u8; 4096 - 16])
        .expect("fits with its 16-byte header");
    assert!(matches!(
        rec.client.send_binary(vec![0u8; 4096 - 15]),
        Err(SendError::TooLarge { size: 4097, .. })
    ));
}
