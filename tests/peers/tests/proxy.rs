//! Behaviour of `Proxy`: a `Peer` upstream, a tokio-tungstenite (or plain
//! TCP) client in a small runtime. Every wait is bounded.

mod common;

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{connect, expect_silence, next, next_data, runtime, try_connect, LineChild, Ws, T};
use futures_util::SinkExt;
use tether_test_peers::{Direction, Fault, Peer, Proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// A window in which something must *not* happen (negative checks only).
const QUIET: Duration = Duration::from_millis(300);

/// An echo peer and a proxy in front of it.
fn peer_and_proxy() -> (Peer, Proxy) {
    let peer = Peer::start();
    let proxy = Proxy::start(upstream_of(&peer));
    (peer, proxy)
}

fn upstream_of(peer: &Peer) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], peer.port()))
}

/// Polls `condition` until it holds or `timeout` elapses.
fn eventually(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Sends `text` and expects it echoed.
async fn echo(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).await.expect("send");
    assert_eq!(next_data(ws).await, Message::text(text));
}

/// The client saw the TCP connection end with FIN (EOF, no close frame).
fn assert_eof(item: Option<Result<Message, WsError>>) {
    assert!(
        matches!(
            item,
            Some(Err(WsError::Protocol(
                ProtocolError::ResetWithoutClosingHandshake
            )))
        ),
        "expected EOF without closing handshake, got {item:?}"
    );
}

/// The client saw the TCP connection reset (RST).
fn assert_reset(item: Option<Result<Message, WsError>>) {
    match item {
        Some(Err(WsError::Io(e))) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("expected a connection reset, got {other:?}"),
    }
}

/// EOF or reset: how a client sees a connection that ends without a close
/// frame while it may still have bytes in flight.
fn assert_abrupt_end(item: Option<Result<Message, WsError>>) {
    assert!(
        matches!(
            item,
            Some(Err(WsError::Protocol(
                ProtocolError::ResetWithoutClosingHandshake
            ) | WsError::Io(_)))
        ),
        "expected the connection to end abruptly, got {item:?}"
    );
}

#[test]
fn pass_forwards_echo_and_counts_bytes() {
    let (peer, proxy) = peer_and_proxy();
    assert_eq!(proxy.url("/"), format!("ws://127.0.0.1:{}/", proxy.port()));
    assert_eq!(
        proxy.url("/chat?x=1"),
        format!("ws://127.0.0.1:{}/chat?x=1", proxy.port())
    );
    assert_eq!(proxy.upstream(), upstream_of(&peer));
    assert_eq!(proxy.fault(), Fault::Pass);
    assert_eq!(proxy.bytes_forwarded(), (0, 0));
    runtime().block_on(async {
        let mut ws = connect(&proxy.url("/")).await;
        assert!(proxy.wait_connections(1, T));
        assert_eq!(proxy.connections_accepted(), 1);
        assert_eq!(proxy.open_connections(), 1);
        assert!(peer.wait_connections(1, T));
        echo(&mut ws, "hello").await;
        let big: Vec<u8> = (0..200_000).map(|i| (i % 251) as u8).collect();
        ws.send(Message::binary(big.clone())).await.expect("send");
        assert_eq!(next_data(&mut ws).await, Message::binary(big));
        let (up, down) = proxy.bytes_forwarded();
        // The upgrade request/response plus both messages (with framing).
        assert!(up > 200_005 + 100, "client->server bytes: {up}");
        assert!(down > 200_005 + 100, "server->client bytes: {down}");

        // A client close propagates both ways and ends the relayed
        // connection.
        ws.close(None).await.expect("close");
        while let Some(Ok(_)) = next(&mut ws).await {}
    });
    assert!(proxy.wait_open_connections(0, T));
    assert!(peer.wait_open_connections(0, T));
    assert_eq!(proxy.faults_injected(), vec![]);
}

#[test]
fn cut_gives_the_client_eof_and_closes_upstream() {
    let (peer, proxy) = peer_and_proxy();
    runtime().block_on(async {
        let mut ws = connect(&proxy.url("/")).await;
        echo(&mut ws, "before").await;
        proxy.cut_all();
        assert_eq!(proxy.open_connections(), 0, "cut_all returns once closed");
        assert_eof(next(&mut ws).await);
        assert!(peer.wait_open_connections(0, T));

        // `set_fault(Cut)` is the same one-shot and leaves the standing
        // fault (here a latency) in place; new connections still work.
        proxy.set_fault(Fault::Latency(Duration::from_millis(1)));
        let mut ws = connect(&proxy.url("/")).await;
        echo(&mut ws, "again").await;
        proxy.set_fault(Fault::Cut);
        assert_eof(next(&mut ws).await);
        assert_eq!(proxy.fault(), Fault::Latency(Duration::from_millis(1)));
        let mut ws = connect(&proxy.url("/")).await;
        echo(&mut ws, "after").await;
    });
    let log: Vec<Fault> = proxy
        .faults_injected()
        .into_iter()
        .map(|(_, f)| f)
        .collect();
    assert_eq!(
        log,
        vec![
            Fault::Cut,
            Fault::Latency(Duration::from_millis(1)),
            Fault::Cut
        ]
    );
}

#[test]
fn cut_with_plain_tcp_gives_eof_on_both_sides() {
    // A raw TCP "server" behind the proxy, to see exactly what it gets.
    runtime().block_on(async {
        let upstream = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let proxy = Proxy::start(upstream.local_addr().expect("addr"));
        let mut client = TcpStream::connect(("127.0.0.1", proxy.port()))
            .await
            .expect("connect");
        let (mut server, _) = tokio::time::timeout(T, upstream.accept())
            .await
            .expect("accept in time")
            .expect("accept");
        client.write_all(b"ping").await.expect("write");
        let mut buf = [0_u8; 16];
        let n = tokio::time::timeout(T, server.read(&mut buf))
            .await
            .expect("read in time")
            .expect("read");
        assert_eq!(&buf[..n], b"ping");
        server.write_all(b"pong").await.expect("write");
        let n = tokio::time::timeout(T, client.read(&mut buf))
            .await
            .expect("read in time")
            .expect("read");
        assert_eq!(&buf[..n], b"pong");

        proxy.cut_all();
        let n = tokio::time::timeout(T, client.read(&mut buf))
            .await
            .expect("client read in time")
            .expect("client sees FIN, not an error");
        assert_eq!(n, 0);
        let n = tokio::time::timeout(T, server.read(&mut buf))
            .await
            .expect("server read in time")
            .expect("server sees FIN, not an error");
        assert_eq!(n, 0);
        assert_eq!(proxy.bytes_forwarded(), (4, 4));
    });
}

#[test]
fn reset_gives_the_client_a_connection_reset() {
    let (peer, proxy) = peer_and_proxy();
    runtime().block_on(async {
        let mut ws = connect(&proxy.url("/")).await;
        echo(&mut ws, "before").await;
        proxy.reset_all();
        assert_eq!(proxy.open_connections(), 0, "reset_all returns once closed");
        assert_reset(next(&mut ws).await);
        assert!(peer.wait_open_connections(0, T));
        assert_eq!(proxy.fault(), Fault::Pass);
        let mut ws = connect(&proxy.url("/")).await;
        echo(&mut ws, "after").await;
    });
}

#[test]
fn stall_both_holds_bytes_without_closing_and_pass_releases_them() {
    let (peer, proxy) = peer_and_proxy();
    runtime().block_on(async {
        let mut ws = connect(&proxy.url("/")).await;
        echo(&mut ws, "before").await;
        assert!(peer.wait_received(1, T));

        proxy.set_fault(Fault::Stall {
            direction: Direction::Both,
        });
        ws.send(Message::text("held")).await.expect("send");
        expect_silence(&mut ws, QUIET).await;
        assert_eq!(peer.received().len(), 1, "the peer got nothing new");
        // Server-initiated messages are held as well.
        peer.send_text_all("pushed");
        expect_silence(&mut ws, QUIET).await;
        assert_eq!(proxy.open_connections(), 1);
        assert_eq!(peer.open_connections(), 1);

        proxy.set_fault(Fault::Pass);
        assert_eq!(next_data(&mut ws).await, Message::text("pushed"));
        assert_eq!(next_data(&mut ws).await, Message::text("held"));
        echo(&mut ws, "after").await;
    });
    assert_eq!(proxy.connections_accepted(), 1);
}

#[test]
fn stall_one_direction_holds_only_that_direction() {
    let (peer, proxy) = peer_and_proxy();
    runtime().block_on(async {
        let mut ws = connect(&proxy.url("/")).await;
        echo(&mut ws, "warm-up").await;

        // Server->client stalled: the peer receives, the echo is held.
        proxy.set_fault(Fault::Stall {
            direction: Direction::ServerToClient,
        });
        ws.send(Message::text("up")).await.expect("send");
        assert!(peer.wait_received(2, T));
        expect_silence(&mut ws, QUIET).await;
        proxy.set_fault(Fault::Pass);
        assert_eq!(next_data(&mut ws).await, Message::text("up"));

        // Client->server stalled: the peer's pushes arrive, the client's
        // message does not reach the peer.
        proxy.set_fault(Fault::Stall {
            direction: Direction::ClientToServer,
        });
        ws.send(Message::text("held")).await.expect("send");
        peer.send_text_all("down");
        assert_eq!(next_data(&mut ws).await, Message::text("down"));
        expect_silence(&mut ws, QUIET).await;
        assert_eq!(peer.received().len(), 2);
        proxy.set_fault(Fault::Pass);
        assert!(peer.wait_received(3, T));
        assert_eq!(next_data(&mut ws).await, Message::text("held"));
    });
}

#[test]
fn stall_stops_reading_so_memory_stays_bounded() {
    let (_peer, proxy) = peer_and_proxy();
    proxy.set_fault(Fault::Stall {
        direction: Direction::ClientToServer,
    });
    runtime().block_on(async {
        let mut client = TcpStream::connect(("127.0.0.1", proxy.port()))
            .await
            .expect("connect");
        let block = vec![0x55_u8; 64 * 1024];
        let mut written = 0_usize;
        // Write until the stream blocks: the proxy stopped reading, so only
        // the kernel's socket buffers (and a few proxy chunks) fill up.
        loop {
            match tokio::time::timeout(QUIET, client.write(&block)).await {
                Ok(Ok(n)) => written += n,
                Ok(Err(e)) => panic!("write failed: {e}"),
                Err(_) => break,
            }
            assert!(written < 256 << 20, "the proxy keeps reading while stalled");
        }
        assert!(written < 64 << 20, "{written} bytes absorbed while stalled");
        assert_eq!(proxy.bytes_forwarded().0, 0);
        assert_eq!(proxy.open_connections(), 1);
    });
}

#[test]
fn latency_delays_each_echo_and_keeps_order() {
    let (_peer, proxy) = peer_and_proxy();
    let delay = Duration::from_millis(150);
    runtime().block_on(async {
        let mut ws = connect(&proxy.url("/")).await;
        echo(&mut ws, "warm-up").await;
        proxy.set_fault(Fault::Latency(delay));
        let started = Instant::now();
        echo(&mut ws, "slow").await;
        let rtt = started.elapsed();
        // Delayed once on the way up, once on the way down.
        assert!(rtt >= 2 * delay, "round trip {rtt:?} < 2 × {delay:?}");

        // Chunks are pipelined, in order.
        let started = Instant::now();
        for i in 0..20 {
            ws.send(Message::text(format!("m{i}"))).await.expect("send");
        }
        for i in 0..20 {
            assert_eq!(next_data(&mut ws).await, Message::text(format!("m{i}")));
        }
        let elapsed = started.elapsed();
        assert!(elapsed >= 2 * delay, "{elapsed:?}");
        assert!(elapsed < 20 * delay, "not pipelined: {elapsed:?}");

        proxy.set_fault(Fault::Pass);
        let started = Instant::now();
        echo(&mut ws, "fast").await;
        assert!(started.elapsed() < T);
    });
}

#[test]
fn throttle_limits_throughput() {
    let (_peer, proxy) = peer_and_proxy();
    let rate: u64 = 128 * 1024;
    let payload = vec![7_u8; 64 * 1024];
    runtime().block_on(async {
        let mut ws = connect(&proxy.url("/")).await;
        echo(&mut ws, "warm-up").await;

        proxy.set_fault(Fault::Throttle {
            bytes_per_sec: rate,
        });
        let started = Instant::now();
        ws.send(Message::binary(payload.clone()))
            .await
            .expect("send");
        let echoed = tokio::time::timeout(Duration::from_secs(20), next_data(&mut ws)).await;
        let elapsed = started.elapsed();
        assert_eq!(
            echoed.expect("echo in time"),
            Message::binary(payload.clone())
        );
        // 64 KiB up at 128 KiB/s, then 64 KiB down at 128 KiB/s: ~1 s.
        assert!(
            elapsed >= Duration::from_millis(850),
            "too fast: {elapsed:?}"
        );
        assert!(elapsed < Duration::from_secs(10), "too slow: {elapsed:?}");

        proxy.set_fault(Fault::Pass);
        let started = Instant::now();
        ws.send(Message::binary(payload.clone()))
            .await
            .expect("send");
        assert_eq!(next_data(&mut ws).await, Message::binary(payload));
        assert!(started.elapsed() < Duration::from_millis(850));
    });
}

#[test]
fn slow_drip_forwards_a_few_bytes_per_period() {
    let (_peer, proxy) = peer_and_proxy();
    runtime().block_on(async {
        let mut ws = connect(&proxy.url("/")).await;
        echo(&mut ws, "warm-up").await;
        proxy.set_fault(Fault::SlowDrip {
            bytes: 200,
            every: Duration::from_millis(50),
        });
        let payload = vec![1_u8; 1000];
        let before = proxy.bytes_forwarded();
        let started = Instant::now();
        ws.send(Message::binary(payload.clone()))
            .await
            .expect("send");
        assert_eq!(next_data(&mut ws).await, Message::binary(payload));
        let elapsed = started.elapsed();
        // ~1008 bytes up and ~1004 down, 200 per 50 ms: 5 waits each way.
        assert!(
            elapsed >= Duration::from_millis(450),
            "too fast: {elapsed:?}"
        );
        let after = proxy.bytes_forwarded();
        assert_eq!(
            after.0 - before.0,
            1000 + 8,
            "masked frame: 2+2+4 header bytes"
        );
        assert_eq!(
            after.1 - before.1,
            1000 + 4,
            "unmasked frame: 2+2 header bytes"
        );
    });
}

#[test]
fn cut_after_cuts_in_the_middle_of_a_frame() {
    let (peer, proxy) = peer_and_proxy();
    runtime().block_on(async {
        let mut ws = connect(&proxy.url("/")).await;
        echo(&mut ws, "warm-up").await;
        let (up_before, _) = proxy.bytes_forwarded();

        proxy.set_fault(Fault::CutAfter { bytes: 1000 });
        ws.send(Message::binary(vec![9_u8; 64 * 1024]))
            .await
            .expect("send");
        assert_abrupt_end(next(&mut ws).await);
        assert!(proxy.wait_open_connections(0, T));
        let (up_after, _) = proxy.bytes_forwarded();
        assert_eq!(
            up_after - up_before,
            1000,
            "exactly 1000 more bytes went up"
        );
        assert!(peer.wait_open_connections(0, T));
        assert_eq!(
            peer.received().len(),
            1,
            "the truncated message never arrived"
        );

        proxy.set_fault(Fault::Pass);
        let mut ws = connect(&proxy.url("/")).await;
        echo(&mut ws, "after").await;
    });
}

#[test]
fn refuse_new_affects_only_new_connections() {
    let (peer, proxy) = peer_and_proxy();
    runtime().block_on(async {
        let mut old = connect(&proxy.url("/")).await;
        echo(&mut old, "old").await;
        proxy.set_fault(Fault::RefuseNew);
        assert!(try_connect(&proxy.url("/")).await.is_err());
        assert!(proxy.wait_connections(2, T));
        echo(&mut old, "still here").await;
        assert_eq!(peer.connections_accepted(), 1, "never reached upstream");
        assert_eq!(proxy.open_connections(), 1);

        proxy.set_fault(Fault::Pass);
        let mut new = connect(&proxy.url("/")).await;
        echo(&mut new, "new").await;
        echo(&mut old, "old again").await;
    });
    assert_eq!(proxy.connections_accepted(), 3);
}

#[test]
fn blackhole_new_affects_only_new_connections() {
    let (peer, proxy) = peer_and_proxy();
    runtime().block_on(async {
        let mut old = connect(&proxy.url("/")).await;
        echo(&mut old, "old").await;
        proxy.set_fault(Fault::BlackholeNew);

        // A WebSocket client never gets an upgrade answer.
        let attempt =
            tokio::time::timeout(QUIET, tokio_tungstenite::connect_async(proxy.url("/"))).await;
        assert!(attempt.is_err(), "the handshake must hang");
        assert!(proxy.wait_connections(2, T));

        // A raw client: accepted, read, never answered, even after the
        // fault is lifted; a cut still reaches it.
        let mut raw = TcpStream::connect(("127.0.0.1", proxy.port()))
            .await
            .expect("connect");
        raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let mut buf = [0_u8; 64];
        assert!(tokio::time::timeout(QUIET, raw.read(&mut buf))
            .await
            .is_err());
        echo(&mut old, "still here").await;
        proxy.set_fault(Fault::Pass);
        assert!(tokio::time::timeout(QUIET, raw.read(&mut buf))
            .await
            .is_err());
        assert_eq!(peer.connections_accepted(), 1, "never reached upstream");

        let mut new = connect(&proxy.url("/")).await;
        echo(&mut new, "new").await;

        proxy.cut_all();
        let n = tokio::time::timeout(T, raw.read(&mut buf))
            .await
            .expect("read in time")
            .expect("FIN");
        assert_eq!(n, 0);
        assert_eof(next(&mut old).await);
        assert_eof(next(&mut new).await);
    });
    assert!(proxy.wait_open_connections(0, T));
}

#[test]
fn half_close_ends_server_to_client_only() {
    let (peer, proxy) = peer_and_proxy();
    runtime().block_on(async {
        let mut ws = connect(&proxy.url("/")).await;
        echo(&mut ws, "before").await;
        proxy.set_fault(Fault::HalfClose);
        assert_eq!(proxy.fault(), Fault::Pass, "one-shot");

        // Client->server still flows: the peer gets the message...
        ws.send(Message::text("after")).await.expect("send");
        assert!(peer.wait_received(2, T));
        // ...but the client reads EOF instead of the echo.
        assert_eof(next(&mut ws).await);
        assert_eq!(proxy.open_connections(), 1, "half-closed, not closed");
        assert_eq!(peer.open_connections(), 1);
        drop(ws);
    });
    // The client's FIN travels up; the peer closes; the proxy lets go.
    assert!(proxy.wait_open_connections(0, T));
    assert!(peer.wait_open_connections(0, T));
}

#[test]
fn failed_upstream_connect_closes_the_client() {
    let peer = Peer::start();
    let upstream = upstream_of(&peer);
    drop(peer);
    let proxy = Proxy::start(upstream);
    runtime().block_on(async {
        assert!(try_connect(&proxy.url("/")).await.is_err());
    });
    assert!(proxy.wait_open_connections(0, T));
    assert_eq!(proxy.connections_accepted(), 1);
}

/// The faults in a chaos log, without their times.
fn faults_of(log: &[(Instant, Fault)]) -> Vec<Fault> {
    log.iter().map(|(_, fault)| fault.clone()).collect()
}

/// Runs chaos on a fresh proxy (no connections) until `n` faults were
/// injected; returns the log and the time `start_chaos` was called.
fn chaos_run(
    seed: u64,
    every: Duration,
    faults: &[Fault],
    n: usize,
) -> (Vec<(Instant, Fault)>, Instant) {
    let (_peer, proxy) = peer_and_proxy();
    let started = Instant::now();
    proxy.start_chaos(every, faults.to_vec(), seed);
    assert!(
        eventually(T, || proxy.faults_injected().len() >= n),
        "{n} faults injected in time"
    );
    proxy.stop_chaos();
    let stopped = Instant::now();
    assert_eq!(proxy.fault(), Fault::Pass, "stop_chaos restores Pass");
    let log = proxy.faults_injected();
    // At most one fault per period.
    let periods = (stopped - started).as_nanos() / every.as_nanos();
    assert!(
        log.len() as u128 <= periods + 1,
        "{} faults in {periods} periods",
        log.len()
    );
    // Nothing more after stop.
    std::thread::sleep(3 * every);
    assert_eq!(proxy.faults_injected().len(), log.len());
    (log, started)
}

#[test]
fn chaos_is_reproducible_from_its_seed_and_on_schedule() {
    let every = Duration::from_millis(20);
    let menu = vec![
        Fault::Pass,
        Fault::Cut,
        Fault::Stall {
            direction: Direction::Both,
        },
        Fault::Latency(Duration::from_millis(5)),
        Fault::Throttle {
            bytes_per_sec: 10_000,
        },
        Fault::RefuseNew,
    ];
    let n = 12;
    let (first, started) = chaos_run(42, every, &menu, n);
    let (second, _) = chaos_run(42, every, &menu, n);
    let (other, _) = chaos_run(43, every, &menu, n);
    assert_eq!(faults_of(&first[..n]), faults_of(&second[..n]));
    assert_ne!(faults_of(&first[..n]), faults_of(&other[..n]));
    // Fault k (1-based) is applied no earlier than k periods after start.
    for (k, (at, _)) in first.iter().enumerate() {
        let due = started + every * (k as u32 + 1);
        assert!(
            *at >= due,
            "fault {k} at {:?} before its tick",
            *at - started
        );
    }
    // Every fault of the menu is picked eventually (12 picks of 6 here).
    let picked = faults_of(&first);
    assert!(
        menu.iter().filter(|f| picked.contains(f)).count() >= 3,
        "{picked:?}"
    );
}

#[test]
fn chaos_applies_one_shot_faults_to_open_connections() {
    let (_peer, proxy) = peer_and_proxy();
    runtime().block_on(async {
        let mut ws = connect(&proxy.url("/")).await;
        echo(&mut ws, "before").await;
        proxy.start_chaos(Duration::from_millis(50), vec![Fault::Reset], 1);
        assert_reset(next(&mut ws).await);
    });
    proxy.stop_chaos();
    assert!(!proxy.faults_injected().is_empty());
    assert!(proxy
        .faults_injected()
        .iter()
        .all(|(_, f)| *f == Fault::Reset));
}

#[test]
fn chaos_timed_faults_revert_to_pass() {
    let (_peer, proxy) = peer_and_proxy();
    let stall = Fault::Stall {
        direction: Direction::Both,
    };
    proxy.start_chaos(Duration::from_millis(100), vec![stall.clone()], 5);
    assert!(eventually(T, || proxy.fault() == stall), "stall applied");
    assert!(
        eventually(T, || proxy.fault() == Fault::Pass),
        "then reverted"
    );
    assert!(
        eventually(T, || proxy.fault() == stall),
        "and applied again"
    );
    proxy.stop_chaos();
    assert_eq!(proxy.fault(), Fault::Pass);
    // A fault set by hand is not reverted by stop_chaos.
    proxy.set_fault(Fault::RefuseNew);
    proxy.start_chaos(Duration::from_secs(60), vec![Fault::Cut], 5);
    proxy.stop_chaos();
    assert_eq!(proxy.fault(), Fault::RefuseNew);
}

#[test]
fn chaos_with_delaying_faults_loses_and_reorders_nothing() {
    let (_peer, proxy) = peer_and_proxy();
    runtime().block_on(async {
        let mut ws = connect(&proxy.url("/")).await;
        proxy.start_chaos(
            Duration::from_millis(40),
            vec![
                Fault::Pass,
                Fault::Stall {
                    direction: Direction::Both,
                },
                Fault::Stall {
                    direction: Direction::ServerToClient,
                },
                Fault::Latency(Duration::from_millis(10)),
                Fault::Throttle {
                    bytes_per_sec: 20_000,
                },
                Fault::SlowDrip {
                    bytes: 50,
                    every: Duration::from_millis(2),
                },
                Fault::RefuseNew,
                Fault::BlackholeNew,
            ],
            3,
        );
        // Keep traffic flowing across several chaos ticks.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut round = 0;
        while round < 10 || proxy.faults_injected().len() < 8 {
            assert!(Instant::now() < deadline, "8 chaos ticks in time");
            round += 1;
            for i in 0..5 {
                let text = format!("{round}:{i}:{}", "x".repeat(100));
                ws.send(Message::text(text)).await.expect("send");
            }
            for i in 0..5 {
                let text = format!("{round}:{i}:{}", "x".repeat(100));
                assert_eq!(next_data(&mut ws).await, Message::text(text));
            }
        }
        proxy.stop_chaos();
        echo(&mut ws, "done").await;
    });
    assert!(proxy.faults_injected().len() >= 8);
}

#[test]
fn dropping_the_proxy_closes_connections_promptly() {
    let (peer, proxy) = peer_and_proxy();
    runtime().block_on(async {
        let mut ws = connect(&proxy.url("/")).await;
        echo(&mut ws, "before").await;
        proxy.set_fault(Fault::Stall {
            direction: Direction::Both,
        });
        proxy.start_chaos(
            Duration::from_millis(10),
            vec![Fault::Latency(Duration::from_secs(1))],
            1,
        );
        let started = Instant::now();
        drop(proxy);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "drop is bounded"
        );
        assert_abrupt_end(next(&mut ws).await);
    });
    assert!(peer.wait_open_connections(0, T));
}

#[test]
fn extreme_fault_values_hold_bytes_instead_of_panicking() {
    let (_peer, proxy) = peer_and_proxy();
    runtime().block_on(async {
        let mut ws = connect(&proxy.url("/")).await;
        echo(&mut ws, "warm-up").await;
        for fault in [
            Fault::Latency(Duration::MAX),
            Fault::SlowDrip {
                bytes: 1,
                every: Duration::MAX,
            },
            Fault::Throttle { bytes_per_sec: 0 },
        ] {
            proxy.set_fault(fault);
            ws.send(Message::text("held")).await.expect("send");
            expect_silence(&mut ws, QUIET).await;
            proxy.set_fault(Fault::Pass);
            assert_eq!(next_data(&mut ws).await, Message::text("held"));
        }
        // Pacing starts afresh with each fault (not "never" after the drip).
        proxy.set_fault(Fault::Throttle {
            bytes_per_sec: 1_000_000,
        });
        echo(&mut ws, "throttled").await;
        proxy.set_fault(Fault::Pass);
        proxy.start_chaos(Duration::MAX, vec![Fault::Cut], 1);
        proxy.stop_chaos();
        echo(&mut ws, "after").await;
    });
    assert_eq!(proxy.faults_injected().len(), 8);
}

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn faults_parse_and_display() {
    let cases = [
        ("pass", Fault::Pass),
        ("cut", Fault::Cut),
        ("reset", Fault::Reset),
        (
            "stall",
            Fault::Stall {
                direction: Direction::Both,
            },
        ),
        (
            "stall:c2s",
            Fault::Stall {
                direction: Direction::ClientToServer,
            },
        ),
        (
            "stall:s2c",
            Fault::Stall {
                direction: Direction::ServerToClient,
            },
        ),
        ("latency:250", Fault::Latency(Duration::from_millis(250))),
        (
            "throttle:1000",
            Fault::Throttle {
                bytes_per_sec: 1000,
            },
        ),
        ("cut-after:17", Fault::CutAfter { bytes: 17 }),
        (
            "slow-drip:3:40",
            Fault::SlowDrip {
                bytes: 3,
                every: Duration::from_millis(40),
            },
        ),
        ("refuse-new", Fault::RefuseNew),
        ("blackhole-new", Fault::BlackholeNew),
        ("half-close", Fault::HalfClose),
    ];
    assert_send_sync::<Proxy>();
    for (text, fault) in cases {
        assert_eq!(text.parse::<Fault>(), Ok(fault.clone()), "{text}");
        assert_eq!(fault.to_string(), text);
        assert_eq!(
            fault.is_one_shot(),
            matches!(fault, Fault::Cut | Fault::Reset | Fault::HalfClose)
        );
    }
    assert_eq!(
        "stall:both".parse::<Fault>(),
        Ok(Fault::Stall {
            direction: Direction::Both
        })
    );
    for bad in [
        "",
        "nope",
        "latency",
        "latency:x",
        "latency:1:2",
        "cut:1",
        "stall:up",
        "slow-drip:3",
        "throttle:-1",
    ] {
        assert!(bad.parse::<Fault>().is_err(), "{bad:?} must not parse");
    }
}

/// Starts a `tether-proxy` process relaying to `upstream` (killed on drop if
/// still running).
fn spawn_proxy(upstream: SocketAddr) -> LineChild {
    LineChild::spawn(
        Command::new(env!("CARGO_BIN_EXE_tether-proxy"))
            .args(["--upstream", &upstream.to_string()]),
        "tether-proxy",
    )
}

#[test]
fn binary_speaks_the_line_protocol() {
    let peer = Peer::start();
    let mut proxy = spawn_proxy(upstream_of(&peer));
    let url = format!("ws://127.0.0.1:{}/", proxy.port);
    runtime().block_on(async {
        assert_eq!(proxy.cmd("count"), "OK 0 0");
        assert_eq!(proxy.cmd("bytes"), "OK 0 0");
        let mut ws = connect(&url).await;
        echo(&mut ws, "hi").await;
        assert_eq!(proxy.cmd("count"), "OK 1 1");
        assert_ne!(proxy.cmd("bytes"), "OK 0 0");

        assert_eq!(proxy.cmd("fault stall:s2c"), "OK");
        assert_eq!(proxy.cmd("current"), "OK stall:s2c");
        ws.send(Message::text("held")).await.expect("send");
        expect_silence(&mut ws, QUIET).await;
        assert_eq!(proxy.cmd("fault pass"), "OK");
        assert_eq!(next_data(&mut ws).await, Message::text("held"));

        assert_eq!(proxy.cmd("cut"), "OK");
        assert_eof(next(&mut ws).await);
        let mut ws = connect(&url).await;
        assert_eq!(proxy.cmd("reset"), "OK");
        assert_reset(next(&mut ws).await);

        assert_eq!(proxy.cmd("chaos 20 7 latency:1 throttle:100000"), "OK");
        assert_eq!(proxy.cmd("stop-chaos"), "OK");
        assert_eq!(proxy.cmd("current"), "OK pass");
        assert!(proxy.cmd("log").starts_with("OK stall:s2c pass cut reset"));

        assert!(proxy.cmd("fault nope").starts_with("ERR "));
        assert!(proxy.cmd("fault").starts_with("ERR "));
        assert!(proxy.cmd("chaos 0 1 cut").starts_with("ERR "));
        assert!(proxy.cmd("chaos 10 1").starts_with("ERR "));
        assert!(proxy.cmd("frobnicate").starts_with("ERR "));
    });
    assert_eq!(proxy.cmd("quit"), "OK");
    assert!(
        proxy.wait_exit(T).is_some(),
        "tether-proxy exits after quit"
    );

    let mut proxy = spawn_proxy(upstream_of(&peer));
    drop(proxy.stdin.take());
    assert!(
        proxy.wait_exit(T).is_some(),
        "tether-proxy exits when stdin closes"
    );
}
