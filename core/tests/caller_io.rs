//! Caller-driven I/O (`io_driver` `caller`): the thread that waits on the client runs its I/O;
//! a keeper thread takes over when nobody has waited for `keeper_after`.

mod common;

use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use common::{fast, wait_until, SOON};
use tether_core::{
    Client, ConfigBuilder, DeliveryStatus, Event, EventDelivery, IoDriver, Message, MessageId,
    OverflowPolicy, StartError, State, Want,
};
use tether_test_peers::Peer;

fn caller(url: &str, keeper_after: Option<Duration>) -> ConfigBuilder {
    fast(url)
        .io_driver(IoDriver::Caller)
        .keeper_after(keeper_after)
}

fn start(config: ConfigBuilder) -> Client {
    Client::connect(config.build().expect("config"), EventDelivery::Poll).expect("start")
}

/// Wait (driving) for the first event that matches; panics after `SOON`.
fn until(client: &Client, what: &str, mut pred: impl FnMut(&Event) -> bool) -> Vec<Event> {
    let deadline = Instant::now() + SOON;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "timed out waiting for {what}; saw {seen:?}"
        );
        if let Some(event) = client.next_event(left) {
            let hit = pred(&event);
            seen.push(event);
            if hit {
                return seen;
            }
        }
    }
}

fn ready(client: &Client) -> Vec<Event> {
    until(client, "Ready", |e| {
        matches!(
            e,
            Event::State {
                to: State::Ready,
                ..
            }
        )
    })
}

fn texts(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message(Message::Text(t)) => Some(t.as_str().to_owned()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_waiting_thread_runs_the_io_and_emits_the_events() {
    let peer = Peer::start();
    let client = start(caller(&peer.url(), None));
    // The change hook runs where events are produced: record the threads.
    let threads: Arc<Mutex<Vec<ThreadId>>> = Arc::default();
    let seen = threads.clone();
    client.set_change_hook(Some(Arc::new(move || {
        seen.lock().unwrap().push(std::thread::current().id());
    })));
    ready(&client);
    for i in 0..200 {
        client.send_text(format!("m{i}")).expect("send");
    }
    let mut echoes = Vec::new();
    let deadline = Instant::now() + SOON;
    while echoes.len() < 200 {
        assert!(Instant::now() < deadline, "echoes: {}", echoes.len());
        let mut batch = Vec::new();
        client.next_events(&mut batch, 64, Duration::from_millis(200));
        echoes.extend(texts(&batch));
    }
    let expected: Vec<String> = (0..200).map(|i| format!("m{i}")).collect();
    assert_eq!(echoes, expected);
    let me = std::thread::current().id();
    let threads = threads.lock().unwrap().clone();
    assert!(!threads.is_empty());
    assert!(
        threads.iter().all(|t| *t == me),
        "every change was made on the waiting thread: {threads:?} vs {me:?}"
    );
    assert!(client.shutdown(SOON));
    assert_eq!(client.state(), State::Closed);
}

#[test]
fn the_keeper_keeps_the_heartbeat_while_the_application_does_not_wait() {
    let peer = Peer::start();
    let config = caller(&peer.url(), Some(Duration::from_millis(20)))
        .heartbeat(Some(Duration::from_millis(50)), Duration::from_millis(300));
    let client = start(config);
    ready(&client);
    // The application does not touch the client: only the keeper can send these pings and
    // read their pongs (a missed pong would end the link after 350 ms).
    let pings_before = peer.pings_received();
    assert!(
        wait_until(SOON, || peer.pings_received() >= pings_before + 20),
        "pings sent while nobody waited: {}",
        peer.pings_received() - pings_before
    );
    assert_eq!(peer.connections_accepted(), 1, "the link was never lost");
    // The application waits again: the runtime comes back to its thread.
    client.send_text("after the pause").expect("send");
    let events = until(&client, "the echo", |e| matches!(e, Event::Message(_)));
    assert_eq!(texts(&events), ["after the pause"]);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::Disconnected { .. })),
        "{events:?}"
    );
    assert!(client.shutdown(SOON));
}

#[test]
fn a_game_loop_polling_without_waiting_does_the_io_itself() {
    let peer = Peer::start();
    let client = start(caller(&peer.url(), None));
    let mut got = Vec::new();
    let mut sent = false;
    let deadline = Instant::now() + SOON;
    // One poll per "frame", never waiting: each poll runs a non-blocking pass.
    while !texts(&got).iter().any(|t| t == "frame") {
        assert!(Instant::now() < deadline, "no echo; events: {got:?}");
        client.poll_events(&mut got, 64);
        if !sent && client.state() == State::Ready {
            client.send_text("frame").expect("send");
            sent = true;
        }
        std::thread::sleep(Duration::from_millis(1)); // the rest of the frame
    }
    assert!(client.shutdown(SOON));
}

#[test]
fn waits_for_a_status_or_the_close_drive_the_io_too() {
    let peer = Peer::start();
    let client = start(caller(&peer.url(), None));
    let id = client.send_text("queued before ready").expect("send");
    assert_eq!(
        client.wait_status(id, Want::Written, SOON),
        DeliveryStatus::Written
    );
    let seen = client.changes();
    assert!(peer.wait_received(1, SOON));
    // The echo is read only while someone drives: wait_change does.
    assert!(client.wait_change(seen, SOON) > seen);
    assert_eq!(
        client.wait_status(MessageId(99), Want::Written, Duration::ZERO),
        DeliveryStatus::Unknown
    );
    client.close(1000, "bye").expect("close");
    assert!(client.wait_closed(SOON));
    assert_eq!(
        peer.wait_close_received(SOON),
        Some((1000, "bye".to_owned()))
    );
}

#[test]
fn a_dropped_client_still_closes_gracefully_without_a_keeper() {
    let peer = Peer::start();
    let client = start(caller(&peer.url(), None));
    ready(&client);
    client.send_text("last words").expect("send");
    drop(client);
    // Nobody waits on the client any more: a thread started at the drop finishes the close.
    assert_eq!(peer.wait_close_received(SOON), Some((1000, String::new())));
    assert!(
        peer.wait_received(1, SOON),
        "the queued message went out first"
    );
}

#[test]
fn settings_that_need_another_thread_are_refused() {
    let peer = Peer::start();
    let callback = Client::connect(
        caller(&peer.url(), None).build().expect("config"),
        EventDelivery::callback(|_| {}),
    );
    assert!(
        matches!(&callback, Err(StartError::Blocking(m)) if m.contains("poll delivery")),
        "{:?}",
        callback.err()
    );
    let blocking_send = Client::connect(
        caller(&peer.url(), None)
            .overflow_policy(OverflowPolicy::Wait(Duration::from_secs(1)))
            .build()
            .expect("config"),
        EventDelivery::Poll,
    );
    assert!(
        matches!(&blocking_send, Err(StartError::Blocking(m)) if m.contains("keeper_after")),
        "{:?}",
        blocking_send.err()
    );
    // With a keeper a blocked send has a thread to write the outbox out.
    let kept = start(
        caller(&peer.url(), Some(Duration::from_millis(5)))
            .overflow_policy(OverflowPolicy::Wait(Duration::from_secs(1))),
    );
    assert!(kept.shutdown(SOON));
}

#[test]
fn a_zero_timeout_wait_is_a_check_and_does_not_drive() {
    // Nobody listens here: the client is connecting or backing off, and only a driver moves
    // it on. A close in that state ends at the session's next run.
    let peer = Peer::start();
    let url = peer.url();
    drop(peer);
    let client = start(caller(&url, None));
    let id = client.send_text("queued").expect("queued while connecting");
    client.close(1000, "").expect("close");
    // Checks: they answer from the state as it is, and leave it as it is.
    assert!(!client.wait_closed(Duration::ZERO));
    assert_eq!(
        client.wait_status(id, Want::Written, Duration::ZERO),
        DeliveryStatus::Queued
    );
    assert_ne!(client.state(), State::Closed);
    // A wait drives: the close ends and the message is failed, not lost.
    assert!(client.wait_closed(SOON));
    assert!(matches!(
        client.wait_status(id, Want::Written, Duration::ZERO),
        DeliveryStatus::Failed(_)
    ));
}
