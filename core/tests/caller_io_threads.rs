//! Caller-driven I/O without a keeper runs on no thread of Tether's: the whole client lives on
//! the application's thread (its own test binary, so no other test's threads are counted).

mod common;

use std::time::{Duration, Instant};

use common::{fast, SOON};
use tether_core::{Client, Event, EventDelivery, IoDriver, Message};
use tether_test_peers::Peer;

/// The names of this process's threads.
fn thread_names() -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let comm = entry.expect("task").path().join("comm");
        if let Ok(name) = std::fs::read_to_string(comm) {
            names.push(name.trim().to_owned());
        }
    }
    names
}

#[test]
fn without_a_keeper_no_thread_but_the_callers_runs_the_client() {
    let peer = Peer::start();
    let ours = |names: &[String]| {
        names
            .iter()
            .filter(|n| n.starts_with("tether") && !n.starts_with("tether-test"))
            .cloned()
            .collect::<Vec<_>>()
    };
    let config = fast(&peer.url())
        .io_driver(IoDriver::Caller)
        .keeper_after(None)
        .build()
        .expect("config");
    let client = Client::connect(config, EventDelivery::Poll).expect("start");
    client.send_text("one thread").expect("send");
    let deadline = Instant::now() + SOON;
    loop {
        assert!(Instant::now() < deadline, "no echo");
        if let Some(Event::Message(Message::Text(t))) =
            client.next_event(Duration::from_millis(100))
        {
            assert_eq!(t.as_str(), "one thread");
            break;
        }
    }
    assert_eq!(ours(&thread_names()), Vec::<String>::new());
    assert!(client.shutdown(SOON));
    assert_eq!(ours(&thread_names()), Vec::<String>::new());
}
