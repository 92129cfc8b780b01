//! Durable sessions (issue 11, protocol revision 2): when either side loses its session state,
//! no message is dropped on a stale de-duplication state, and the application is told once,
//! with [`Event::SessionReset`], what the loss may have cost.
//!
//! The server loses its state the way a crash or a deploy does: its process is killed with
//! SIGKILL and a fresh one starts on the same port. The client loses its state the way a
//! restarted process that reuses its `session_id` does: a second `Client` with the same id.

mod common;

use std::time::Duration;

use common::ref_server::{Kind, RefServer};
use common::{fast, Recorder, SOON};
use tether_core::{
    ConfigBuilder, Event, IdRange, Message, MessageId, Protocol, SessionReset, State,
};

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

/// Messages the server sends after it lost its state, in the scenarios that count them.
const AFTER: usize = 1000;

fn text_of(e: &Event) -> Option<String> {
    match e {
        Event::Message(Message::Text(t)) => Some(t.to_string()),
        _ => None,
    }
}

fn resets(log: &[Event]) -> Vec<SessionReset> {
    log.iter()
        .filter_map(|e| match e {
            Event::SessionReset(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

/// Send `texts`, then wait until each is acked and its echo has arrived.
fn send_acked_and_echoed(c: &mut Recorder, texts: &[String]) {
    let ids: Vec<MessageId> = texts
        .iter()
        .map(|t| c.client.send_text(t.as_str()).expect("accepted"))
        .collect();
    let (mut acked, mut echoed) = (0, 0);
    c.wait_for("acks and echoes", SOON, |e| {
        match e {
            Event::Acked { id } if ids.contains(id) => acked += 1,
            e if text_of(e).is_some_and(|t| texts.contains(&t)) => echoed += 1,
            _ => {}
        }
        acked == texts.len() && echoed == texts.len()
    });
}

/// The one `SessionReset` in the log, which must come right before a `Ready`: the application
/// hears of the reset before anything flows on the new link.
fn the_reset(log: &[Event]) -> SessionReset {
    let at: Vec<usize> = (0..log.len())
        .filter(|&i| matches!(log[i], Event::SessionReset(_)))
        .collect();
    assert_eq!(at.len(), 1, "expected one SessionReset: {:?}", resets(log));
    assert_eq!(
        log.get(at[0] + 1),
        Some(&Event::State {
            from: State::Open,
            to: State::Ready
        })
    );
    resets(log).remove(0)
}

/// After the server lost its state, make it send `AFTER` messages and check that every one
/// reaches the application, in order (the old client dropped the first ones as duplicates of
/// the lost stream's ids).
fn all_new_server_messages_arrive(server: &mut RefServer, c: &mut Recorder, sid: &str) {
    for i in 0..AFTER {
        server.command(&format!("send {sid} after-{i}"));
    }
    let mut got = Vec::with_capacity(AFTER);
    c.wait_for(
        &format!("{AFTER} messages after the restart"),
        SOON * 3,
        |e| {
            if let Some(t) = text_of(e).filter(|t| t.starts_with("after-")) {
                got.push(t);
            }
            got.len() == AFTER
        },
    );
    let expected: Vec<String> = (0..AFTER).map(|i| format!("after-{i}")).collect();
    assert_eq!(got, expected);
    assert_eq!(c.client.stats().duplicates_dropped, 0);
}

/// (a) The server process is killed and a fresh one starts on the same port: every message the
/// new process sends reaches the application, SessionReset comes once (server lost its state,
/// the five acked ids at risk), and the messages queued meanwhile reach the new server's
/// application exactly once.
fn server_killed_and_restarted(kind: Kind) {
    let Some(mut server) = RefServer::start(kind, &[]) else {
        return;
    };
    let sid = format!("durable-server-{kind:?}");
    let mut c = Recorder::connect(envelope(&server.url(), &sid));
    c.wait_state(State::Ready);
    let before: Vec<String> = (0..5).map(|i| format!("before-{i}")).collect();
    send_acked_and_echoed(&mut c, &before);

    server.kill_and_restart();
    let during: Vec<String> = (0..3).map(|i| format!("during-{i}")).collect();
    for t in &during {
        c.client.send_text(t.as_str()).expect("queued");
    }
    c.next_disconnect();
    c.wait_state(State::Ready);
    all_new_server_messages_arrive(&mut server, &mut c, &sid);
    let reset = the_reset(&c.log);
    assert!(reset.server_lost_state, "{reset:?}");
    assert!(
        !reset.client_state_lost && !reset.inbound_may_repeat,
        "{reset:?}"
    );
    assert_eq!(
        reset.acked_at_risk,
        Some(IdRange {
            first: MessageId(1),
            last: MessageId(5)
        })
    );
    if kind == Kind::Rust {
        assert_eq!(reset.server_revision, 2);
        assert_eq!(c.client.server_epoch().map(|e| e.len()), Some(16));
    }
    let is_echo = |e: &Event| text_of(e).is_some_and(|t| t.starts_with("during-"));
    let mut echoes = c.log.iter().filter(|e| is_echo(e)).count();
    if echoes < during.len() {
        c.wait_for("the echoes of the queued messages", SOON, |e| {
            echoes += usize::from(is_echo(e));
            echoes == during.len()
        });
    }
    assert_eq!(server.delivered(&sid), during);
    assert_eq!(resets(&c.log).len(), 1, "{:?}", resets(&c.log));
    assert_eq!(reset.resends_may_duplicate, None);
    assert!(c.client.shutdown(SOON));
}

per_server!(server_killed_and_restarted:
    server_killed_and_restarted_rust => Kind::Rust,
    server_killed_and_restarted_python => Kind::Python,
    server_killed_and_restarted_node => Kind::Node,
);

/// (b) A second client with the same session id (a restarted process): the server application
/// gets its messages (the old server took them for duplicates, acked them and dropped them),
/// and the second client is told its predecessor's state is lost.
fn second_client_with_the_same_session_id(kind: Kind) {
    let Some(mut server) = RefServer::start(kind, &[]) else {
        return;
    };
    let sid = format!("durable-client-{kind:?}");
    let mut first = Recorder::connect(envelope(&server.url(), &sid));
    first.wait_state(State::Ready);
    let a: Vec<String> = (0..5).map(|i| format!("a-{i}")).collect();
    send_acked_and_echoed(&mut first, &a);
    let first_epoch = first.client.epoch().to_owned();
    assert!(first.client.shutdown(SOON));
    assert!(resets(&first.log).is_empty(), "{:?}", resets(&first.log));

    let mut second = Recorder::connect(envelope(&server.url(), &sid));
    assert_ne!(second.client.epoch(), first_epoch);
    second.wait_state(State::Ready);
    let b: Vec<String> = (0..5).map(|i| format!("b-{i}")).collect();
    send_acked_and_echoed(&mut second, &b);
    let mut expected = a.clone();
    expected.extend(b);
    assert_eq!(server.delivered(&sid), expected);
    let stats = server.stats();
    assert_eq!(stats["sessions"][&sid]["duplicates"], 0, "{stats}");
    let reset = the_reset(&second.log);
    assert!(
        reset.client_state_lost && reset.inbound_may_repeat,
        "{reset:?}"
    );
    assert!(!reset.server_lost_state, "{reset:?}");
    assert_eq!(reset.acked_at_risk, None);
    assert_eq!(reset.resends_may_duplicate, None);
    assert!(second.client.shutdown(SOON));
}

per_server!(second_client_with_the_same_session_id:
    second_client_with_the_same_session_id_rust => Kind::Rust,
);

/// (c) A revision-1 server (no epochs) that lost its state is still found out, by the one check
/// revision 1 allows: its welcome's `last` is below what it had acknowledged. Its renumbered
/// messages are then delivered, not dropped.
#[test]
fn revision_1_server_that_forgot_its_acks() {
    let Some(mut server) = RefServer::start(Kind::Rust, &["--rev", "1"]) else {
        return;
    };
    let sid = "durable-rev1";
    let mut c = Recorder::connect(envelope(&server.url(), sid));
    c.wait_state(State::Ready);
    assert_eq!(c.client.server_epoch(), None);
    let before: Vec<String> = (0..5).map(|i| format!("before-{i}")).collect();
    send_acked_and_echoed(&mut c, &before);

    server.kill_and_restart();
    c.next_disconnect();
    c.wait_state(State::Ready);
    all_new_server_messages_arrive(&mut server, &mut c, sid);
    let reset = the_reset(&c.log);
    assert!(
        reset.server_lost_state && !reset.client_state_lost,
        "{reset:?}"
    );
    assert_eq!(reset.server_revision, 1);
    assert_eq!(
        reset.acked_at_risk,
        Some(IdRange {
            first: MessageId(1),
            last: MessageId(5)
        })
    );
    assert!(c.client.shutdown(SOON));
}

/// The other side of the boundary: a server that keeps its state (links dropped, process alive)
/// is a plain resume, with no SessionReset and nothing delivered twice.
fn no_reset_while_the_server_keeps_its_state(kind: Kind) {
    let Some(mut server) = RefServer::start(kind, &[]) else {
        return;
    };
    let sid = format!("durable-kept-{kind:?}");
    let mut c = Recorder::connect(envelope(&server.url(), &sid));
    c.wait_state(State::Ready);
    let mut all = Vec::new();
    for round in 0..3 {
        let texts: Vec<String> = (0..5).map(|i| format!("r{round}-{i}")).collect();
        send_acked_and_echoed(&mut c, &texts);
        all.extend(texts);
        server.command("drop");
        c.next_disconnect();
        c.wait_state(State::Ready);
    }
    assert_eq!(server.delivered(&sid), all);
    assert!(resets(&c.log).is_empty(), "{:?}", resets(&c.log));
    assert!(c.client.shutdown(SOON));
}

per_server!(no_reset_while_the_server_keeps_its_state:
    no_reset_while_the_server_keeps_its_state_rust => Kind::Rust,
    no_reset_while_the_server_keeps_its_state_python => Kind::Python,
    no_reset_while_the_server_keeps_its_state_node => Kind::Node,
);
