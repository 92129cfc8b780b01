//! Dead-link detection: a peer that stops answering without closing TCP is found within
//! ping interval + pong timeout, not by waiting for TCP.

mod common;

use std::time::{Duration, Instant};

use common::{fast, wait_until, Recorder, SOON};
use tether_core::{Disconnect, Event, State};
use tether_test_peers::Peer;

const INTERVAL: Duration = Duration::from_millis(200);
const TIMEOUT: Duration = Duration::from_millis(300);

#[test]
fn a_stalled_peer_is_detected_within_interval_plus_timeout_and_reconnected() {
    let peer = Peer::start();
    let mut rec = Recorder::connect(fast(&peer.url()).heartbeat(Some(INTERVAL), TIMEOUT));
    rec.wait_state(State::Ready);
    // Healthy link: pings are answered, no disconnect, and the RTT is measured.
    assert!(
        wait_until(SOON, || peer.pings_received() >= 2
            && rec.client.stats().last_rtt.is_some()),
        "pings answered"
    );
    let healthy = rec.collect_for(INTERVAL * 3);
    assert!(
        !healthy
            .iter()
            .any(|e| matches!(e, Event::Disconnected { .. })),
        "{healthy:?}"
    );
    assert!(
        rec.client.stats().last_rtt.is_some(),
        "RTT measured from pongs"
    );

    peer.set_stalled(true);
    let stalled_at = Instant::now();
    let disc = rec.wait_for("heartbeat timeout", SOON, |e| {
        matches!(e, Event::Disconnected { .. })
    });
    let noticed = stalled_at.elapsed();
    assert_eq!(
        disc,
        Event::Disconnected {
            reason: Disconnect::HeartbeatTimeout(TIMEOUT),
            will_reconnect: true
        }
    );
    // A margin for scheduling on a loaded 2-core machine.
    assert!(
        noticed <= INTERVAL + TIMEOUT + Duration::from_millis(400),
        "noticed after {noticed:?}"
    );
    peer.set_stalled(false);
    rec.wait_state(State::Ready);
}

#[test]
fn messages_stuck_behind_a_stalled_link_are_resent_after_reconnect() {
    let peer = Peer::start();
    peer.set_echo(false);
    let mut rec = Recorder::connect(
        fast(&peer.url())
            .heartbeat(Some(INTERVAL), TIMEOUT)
            .outbox_limits(10_000, 256 << 20)
            .max_outbound_message_size(1 << 20),
    );
    rec.wait_state(State::Ready);
    peer.set_stalled(true);
    let payload = vec![1u8; 256 << 10];
    let n = 64; // 16 MiB: more than loopback socket buffers hold
    for _ in 0..n {
        rec.client.send_binary(payload.clone()).expect("queued");
    }
    rec.wait_for("heartbeat timeout", SOON, |e| {
        matches!(
            e,
            Event::Disconnected {
                reason: Disconnect::HeartbeatTimeout(_),
                ..
            }
        )
    });
    peer.set_stalled(false);
    rec.wait_state(State::Ready);
    // Everything arrives on the new link; what the stalled link swallowed may arrive twice in
    // raw mode (at-least-once), but nothing is lost.
    rec.wait_for(
        "all written",
        Duration::from_secs(20),
        |e| matches!(e, Event::Written { up_to } if up_to.0 == n),
    );
    let on_new_link = |peer: &Peer| peer.received().iter().filter(|r| r.conn == 2).count();
    assert!(
        wait_until(SOON, || on_new_link(&peer) >= 1),
        "unflushed messages were re-sent on the second link"
    );
    assert!(
        !rec.log
            .iter()
            .any(|e| matches!(e, Event::SendFailed { .. })),
        "nothing failed"
    );
}

#[test]
fn no_false_alarm_while_the_application_is_slow_to_consume() {
    // Reading pauses when the event queue is full; silence on the socket is then our own doing
    // and must not count as a dead link.
    let peer = Peer::start();
    let mut rec = Recorder::connect(
        fast(&peer.url())
            .heartbeat(Some(INTERVAL), TIMEOUT)
            .event_queue_capacity(4),
    );
    rec.wait_state(State::Ready);
    for i in 0..20 {
        peer.send_text_all(&format!("{i}"));
    }
    // Do not consume for several heartbeat periods.
    std::thread::sleep((INTERVAL + TIMEOUT) * 3);
    let got = rec.recv_texts(20, SOON);
    assert_eq!(got, (0..20).map(|i| i.to_string()).collect::<Vec<_>>());
    assert!(
        !rec.log
            .iter()
            .any(|e| matches!(e, Event::Disconnected { .. })),
        "{:?}",
        rec.log
    );
}
