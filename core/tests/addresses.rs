//! Address fallback: a host with several addresses, one of them a black hole (Happy Eyeballs,
//! RFC 8305), pinned with the `resolve` option so no DNS or /etc/hosts is involved.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{fast, Recorder, SOON};
use tether_core::{ConnectError, Disconnect, Event, State};
use tether_test_peers::Peer;

/// A loopback address where TCP connects hang: a listener with a full accept backlog that
/// never accepts. Linux then drops further SYNs (the client retransmits them until its own
/// timeout), which is how an unreachable or firewalled address behaves.
struct BlackHole {
    addr: SocketAddr,
    // Kept open: they are what fills the backlog.
    _fill: Vec<TcpStream>,
    _listener: tokio::net::TcpListener,
    _runtime: tokio::runtime::Runtime,
}

impl BlackHole {
    fn start() -> BlackHole {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("runtime");
        let listener = {
            let _enter = runtime.enter();
            let socket = tokio::net::TcpSocket::new_v4().expect("socket");
            socket
                .bind("127.0.0.1:0".parse().expect("addr"))
                .expect("bind");
            socket.listen(0).expect("listen")
        };
        let addr = listener.local_addr().expect("local addr");
        // Connect until one attempt hangs: that proves the black hole rather than assuming
        // how the kernel sizes the backlog.
        let mut fill = Vec::new();
        for _ in 0..16 {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
                Ok(stream) => fill.push(stream),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    return BlackHole {
                        addr,
                        _fill: fill,
                        _listener: listener,
                        _runtime: runtime,
                    }
                }
                Err(e) => panic!("filling the black hole's backlog: {e}"),
            }
        }
        panic!("the backlog of {addr} never filled: connects to it do not hang on this system");
    }
}

/// Events up to and including the first `Ready`; panics if it does not come within `timeout`.
fn wait_ready(rec: &mut Recorder, timeout: Duration) -> Vec<Event> {
    let from = rec.log.len();
    rec.wait_for("Ready", timeout, |e| {
        matches!(
            e,
            Event::State {
                to: State::Ready,
                ..
            }
        )
    });
    rec.log[from..].to_vec()
}

#[test]
fn a_black_holed_first_address_falls_back_to_the_live_one_and_is_not_tried_first_again() {
    let hole = BlackHole::start();
    let peer = Peer::start();
    let live: SocketAddr = format!("127.0.0.1:{}", peer.port()).parse().expect("addr");
    let connect_timeout = Duration::from_secs(8);
    // A long attempt delay makes "which address went first" visible in time: a connect that
    // starts with the black hole cannot be Ready before the delay is over.
    let delay = Duration::from_millis(1500);
    let started = Instant::now();
    let mut rec = Recorder::connect(
        fast(&format!("ws://test.invalid:{}/", peer.port()))
            .resolve("test.invalid", [hole.addr.to_string(), live.to_string()])
            .connect_timeout(connect_timeout)
            .happy_eyeballs_delay(delay),
    );
    // Bounded by the connect timeout: sequential tries would spend all of it in the black hole.
    let events = wait_ready(&mut rec, connect_timeout - Duration::from_secs(1));
    let took = started.elapsed();
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::Disconnected { .. })),
        "the first connect succeeded: {events:?}"
    );
    assert!(
        took >= delay,
        "the black hole (first in the list) was tried first: Ready after {took:?}"
    );
    assert_eq!(peer.connections_accepted(), 1);

    // Second connect: the address that worked goes first, so no attempt delay is spent.
    peer.drop_all();
    let lost = rec.next_disconnect();
    assert!(
        matches!(
            lost,
            Event::Disconnected {
                will_reconnect: true,
                ..
            }
        ),
        "{lost:?}"
    );
    let again = Instant::now();
    let events = wait_ready(&mut rec, SOON);
    let took = again.elapsed();
    assert!(
        took < delay,
        "the reconnect started with the black hole again: Ready after {took:?}; {events:?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::Disconnected { .. })),
        "the reconnect succeeded at once: {events:?}"
    );
    assert_eq!(peer.connections_accepted(), 2);
    rec.client
        .send_text("via the live address")
        .expect("queued");
    assert!(peer.wait_received(1, SOON));
}

#[test]
fn a_refusing_address_hands_over_to_the_next_without_waiting_for_the_delay() {
    let peer = Peer::start();
    // A port nothing listens on: connects are refused at once.
    let refused = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let live = format!("127.0.0.1:{}", peer.port());
    let delay = Duration::from_millis(1500);
    let started = Instant::now();
    let mut rec = Recorder::connect(
        fast(&format!("ws://test.invalid:{}/", peer.port()))
            .resolve("test.invalid", [refused.to_string(), live])
            .connect_timeout(Duration::from_secs(8))
            .happy_eyeballs_delay(delay),
    );
    let events = wait_ready(&mut rec, SOON);
    let took = started.elapsed();
    assert!(
        took < delay,
        "a refusal should start the next address at once: Ready after {took:?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::Disconnected { .. })),
        "{events:?}"
    );
}

#[test]
fn when_every_address_is_a_black_hole_the_connect_timeout_bounds_the_attempt() {
    let (a, b) = (BlackHole::start(), BlackHole::start());
    let connect_timeout = Duration::from_millis(800);
    let started = Instant::now();
    let mut rec = Recorder::connect(
        fast("ws://test.invalid:1/")
            .resolve("test.invalid", [a.addr.to_string(), b.addr.to_string()])
            .connect_timeout(connect_timeout)
            .happy_eyeballs_delay(Duration::from_millis(200))
            .reconnect_enabled(false),
    );
    let (reason, will_reconnect) = rec.wait_disconnected();
    let took = started.elapsed();
    assert_eq!(
        reason,
        Disconnect::ConnectFailed(ConnectError::Timeout(connect_timeout))
    );
    assert!(!will_reconnect);
    assert!(
        took >= connect_timeout && took < connect_timeout + Duration::from_secs(3),
        "{took:?}"
    );
}
