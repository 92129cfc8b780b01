//! `Client::connect_on`: the client's I/O on the application's own tokio runtime, awaited with
//! `recv_event` / `closed` — and what happens when that runtime goes away under the client.

mod common;

use std::time::Duration;

use common::{fast, SOON};
use tether_core::{
    Client, Disconnect, Event, EventDelivery, Message, OverflowPolicy, SendFailure, StartError,
    State,
};
use tether_test_peers::Peer;

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Await events until one matches (bounded by `SOON`).
async fn until(client: &Client, what: &str, mut pred: impl FnMut(&Event) -> bool) -> Event {
    let wait = async {
        loop {
            let event = client.recv_event().await.expect("poll mode");
            if pred(&event) {
                return event;
            }
        }
    };
    match tokio::time::timeout(SOON, wait).await {
        Ok(event) => event,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

#[test]
fn a_client_on_a_current_thread_runtime_echoes_closes_and_says_so() {
    let peer = Peer::start();
    let rt = current_thread();
    rt.block_on(async {
        let config = fast(&peer.url()).build().expect("config");
        let client = Client::connect_on(config, EventDelivery::Poll, rt.handle()).expect("start");
        until(&client, "Ready", |e| {
            matches!(
                e,
                Event::State {
                    to: State::Ready,
                    ..
                }
            )
        })
        .await;
        // Everything below runs on this one thread: the runtime drives the socket while this
        // task awaits.
        for i in 0..100 {
            client.send_text(format!("m{i}")).expect("send");
        }
        let mut echoes = Vec::new();
        while echoes.len() < 100 {
            let mut batch = Vec::new();
            client.recv_events(&mut batch, 64).await;
            echoes.extend(batch.into_iter().filter_map(|e| match e {
                Event::Message(Message::Text(t)) => Some(t.as_str().to_owned()),
                _ => None,
            }));
        }
        let expected: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
        assert_eq!(echoes, expected);

        client.close(1000, "done").expect("close");
        tokio::time::timeout(SOON, client.closed())
            .await
            .expect("closed in time");
        let closed = until(&client, "Closed", |e| matches!(e, Event::Closed { .. })).await;
        assert!(matches!(
            closed,
            Event::Closed {
                reason: Disconnect::UserClose { code: 1000, .. },
                undelivered: 0
            }
        ));
        assert_eq!(client.state(), State::Closed);
    });
}

#[test]
fn a_client_on_a_multi_thread_runtime_works_from_blocking_code_too() {
    let peer = Peer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let config = fast(&peer.url()).build().expect("config");
    let client = Client::connect_on(config, EventDelivery::Poll, rt.handle()).expect("start");
    // Another thread drives this runtime, so the blocking calls are fine here.
    client.send_text("hello").expect("queued until ready");
    let deadline = std::time::Instant::now() + SOON;
    loop {
        assert!(std::time::Instant::now() < deadline, "no echo");
        if let Some(Event::Message(m)) = client.next_event(Duration::from_millis(100)) {
            assert_eq!(m.as_bytes(), b"hello");
            break;
        }
    }
    assert!(client.shutdown(SOON));
}

#[test]
fn when_the_runtime_shuts_down_queued_messages_fail_and_the_client_closes() {
    let peer = Peer::start();
    let rt = current_thread();
    let config = fast(&peer.url()).build().expect("config");
    let client = Client::connect_on(config, EventDelivery::Poll, rt.handle()).expect("start");
    rt.block_on(until(&client, "Ready", |e| {
        matches!(
            e,
            Event::State {
                to: State::Ready,
                ..
            }
        )
    }));
    // Nobody drives the runtime now: these stay queued.
    let ids: Vec<_> = (0..3)
        .map(|i| client.send_text(format!("q{i}")).expect("send"))
        .collect();
    drop(rt);

    assert!(
        client.wait_closed(SOON),
        "the client did not end with its runtime"
    );
    assert_eq!(client.state(), State::Closed);
    let mut failed = Vec::new();
    let mut closed = None;
    while let Some(event) = client.poll_event() {
        match event {
            Event::SendFailed { id, reason } => {
                assert!(
                    matches!(reason, SendFailure::ConnectionFailed(_)),
                    "{reason:?}"
                );
                failed.push(id);
            }
            Event::Closed {
                reason,
                undelivered,
            } => closed = Some((reason, undelivered)),
            _ => {}
        }
    }
    assert_eq!(failed, ids);
    match closed {
        Some((Disconnect::ConnectionLost(why), 3)) => {
            assert!(why.contains("runtime"), "{why}")
        }
        other => panic!("expected Closed after the runtime shut down, got {other:?}"),
    }
    assert_eq!(
        client.send_text("late"),
        Err(tether_core::SendError::Closed)
    );
}

#[test]
fn a_blocking_overflow_policy_is_refused_on_a_current_thread_runtime() {
    let rt = current_thread();
    let config = fast("ws://127.0.0.1:9/")
        .overflow_policy(OverflowPolicy::Wait(Duration::from_millis(10)))
        .build()
        .expect("config");
    match Client::connect_on(config, EventDelivery::Poll, rt.handle()) {
        Err(StartError::Blocking(why)) => assert!(why.contains("current-thread"), "{why}"),
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("a blocking policy was accepted on a current-thread runtime"),
    }
}
