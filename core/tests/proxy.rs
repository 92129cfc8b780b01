//! Proxies, against real ones started by the tests: tinyproxy (HTTP CONNECT with basic auth)
//! and microsocks (SOCKS5, with and without RFC 1929 auth), for ws:// and wss:// (TLS runs
//! inside the tunnel). Refusals name the proxy and its answer and are classified like the
//! server's own answers.

mod common;
#[path = "proxy_support/mod.rs"]
mod proxy_support;

use std::time::{Duration, Instant};

use common::{fast, Recorder, SOON};
use proxy_support::Daemon;
use tether_core::{ConnectError, Disconnect, Event, OptionValue, ProxyRefusal, State, TlsRoots};
use tether_test_peers::{self_signed_identity, Peer, PeerOptions};

fn tls_peer() -> (Peer, String) {
    let (identity, ca_pem) = self_signed_identity();
    let peer = Peer::start_with(PeerOptions {
        tls: Some(identity),
        ..PeerOptions::default()
    });
    (peer, ca_pem)
}

/// Connect through `proxy`, echo one message, and check what the client says it went through.
fn echo_through(mut rec: Recorder, proxy: &Daemon, text: &str) -> Recorder {
    rec.wait_state(State::Ready);
    let info = rec.client.connection_info().expect("connection info");
    assert_eq!(info.proxy.as_deref(), Some(proxy.addr().as_str()));
    assert_eq!(
        info.peer.map(|p| p.port()),
        Some(proxy.port),
        "TCP goes to the proxy"
    );
    rec.client.send_text(text).expect("queued");
    assert_eq!(rec.recv_texts(1, SOON), [text]);
    rec
}

fn closed_reason(rec: &mut Recorder) -> Disconnect {
    match rec.wait_for("Closed", SOON, |e| matches!(e, Event::Closed { .. })) {
        Event::Closed { reason, .. } => reason,
        _ => unreachable!(),
    }
}

#[test]
fn ws_through_an_http_connect_proxy() {
    let proxy = Daemon::tinyproxy(None);
    let peer = Peer::start();
    let config = fast(&peer.url()).proxy(format!("http://{}", proxy.addr()));
    let rec = echo_through(Recorder::connect(config), &proxy, "through tinyproxy");
    assert_eq!(
        rec.client.config().get("proxy"),
        Some(OptionValue::Text(format!("http://{}", proxy.addr())))
    );
    assert_eq!(peer.connections_accepted(), 1);
}

#[test]
fn wss_through_an_http_proxy_with_basic_auth() {
    let proxy = Daemon::tinyproxy(Some(("alice", "s3cret")));
    let (peer, ca) = tls_peer();
    assert!(peer.url().starts_with("wss://localhost:"));
    let config = fast(&peer.url())
        .tls_roots(TlsRoots::CustomCa(ca.into_bytes()))
        .proxy(format!("http://alice:s3cret@{}", proxy.addr()));
    let rec = echo_through(Recorder::connect(config), &proxy, "tls inside the tunnel");
    // The password is never read back.
    assert_eq!(
        rec.client.config().get("proxy"),
        Some(OptionValue::Text(format!(
            "http://alice:<redacted>@{}",
            proxy.addr()
        )))
    );
}

#[test]
fn a_wrong_proxy_password_is_a_final_refusal_naming_the_proxy() {
    let proxy = Daemon::tinyproxy(Some(("alice", "s3cret")));
    let peer = Peer::start();
    let config = fast(&peer.url()).proxy(format!("http://alice:wrong@{}", proxy.addr()));
    let mut rec = Recorder::connect(config);
    let (reason, will_reconnect) = rec.wait_disconnected();
    assert!(!will_reconnect, "refused credentials are final: {reason}");
    // RFC 9110 says 407; tinyproxy 1.11 answers a CONNECT with bad credentials with 401.
    let status = match &reason {
        Disconnect::ConnectFailed(ConnectError::Proxy {
            refusal: ProxyRefusal::HttpStatus(s @ (401 | 407)),
            ..
        }) => *s,
        other => panic!("{other:?}"),
    };
    let text = reason.to_string();
    assert!(
        text.contains(&format!("proxy {} answered {status} ", proxy.addr())),
        "{text}"
    );
    closed_reason(&mut rec);
    assert_eq!(peer.connections_accepted(), 0);
}

#[test]
fn a_proxy_that_cannot_reach_the_server_is_retried() {
    let proxy = Daemon::tinyproxy(None);
    // A port with nothing listening: the proxy answers with an error status.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = dead.local_addr().expect("addr").port();
    drop(dead);
    let config = fast(&format!("ws://127.0.0.1:{port}/")).proxy(format!("http://{}", proxy.addr()));
    let mut rec = Recorder::connect(config);
    let (reason, will_reconnect) = rec.wait_disconnected();
    match &reason {
        Disconnect::ConnectFailed(ConnectError::Proxy {
            proxy: name,
            refusal: ProxyRefusal::HttpStatus(status),
            detail,
        }) => {
            assert_eq!(name, &proxy.addr());
            assert!((500..600).contains(status), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        will_reconnect,
        "an upstream the proxy cannot reach now is retried"
    );
}

#[test]
fn socks5h_with_username_and_password_carries_wss() {
    let proxy = Daemon::microsocks(Some(("bob", "pa55")));
    let (peer, ca) = tls_peer();
    // socks5h: the proxy resolves `localhost`.
    let config = fast(&peer.url())
        .tls_roots(TlsRoots::CustomCa(ca.into_bytes()))
        .proxy(format!("socks5h://bob:pa55@{}", proxy.addr()));
    echo_through(Recorder::connect(config), &proxy, "socks5h and tls");
}

#[test]
fn socks5_without_auth_and_with_local_resolution() {
    let proxy = Daemon::microsocks(None);
    let peer = Peer::start();
    // socks5: this client resolves the name (here pinned with `resolve`) and sends the IP.
    let url = format!("ws://tether-test.invalid:{}/", peer.port());
    let config = fast(&url)
        .resolve("tether-test.invalid", ["127.0.0.1"])
        .proxy(format!("socks5://{}", proxy.addr()));
    echo_through(Recorder::connect(config), &proxy, "socks5 local dns");
}

#[test]
fn refused_socks_credentials_are_final_and_name_the_proxy() {
    let proxy = Daemon::microsocks(Some(("bob", "pa55")));
    let peer = Peer::start();
    for (url, want) in [
        (
            format!("socks5h://bob:nope@{}", proxy.addr()),
            ProxyRefusal::SocksAuthFailed,
        ),
        (
            format!("socks5h://{}", proxy.addr()),
            ProxyRefusal::SocksNoAcceptableMethod,
        ),
    ] {
        let mut rec = Recorder::connect(fast(&peer.url()).proxy(url));
        let (reason, will_reconnect) = rec.wait_disconnected();
        assert!(!will_reconnect, "{reason}");
        assert!(
            matches!(&reason, Disconnect::ConnectFailed(ConnectError::Proxy { refusal, .. }) if *refusal == want),
            "{reason:?}"
        );
        assert!(
            reason
                .to_string()
                .contains(&format!("proxy {}", proxy.addr())),
            "{reason}"
        );
    }
    assert_eq!(peer.connections_accepted(), 0);
}

#[test]
fn a_socks_refusal_to_connect_upstream_is_retried() {
    let proxy = Daemon::microsocks(None);
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = dead.local_addr().expect("addr").port();
    drop(dead);
    let config =
        fast(&format!("ws://127.0.0.1:{port}/")).proxy(format!("socks5://{}", proxy.addr()));
    let mut rec = Recorder::connect(config);
    let (reason, will_reconnect) = rec.wait_disconnected();
    assert!(
        matches!(
            &reason,
            Disconnect::ConnectFailed(ConnectError::Proxy {
                refusal: ProxyRefusal::SocksReply(_),
                ..
            })
        ),
        "{reason:?}"
    );
    assert!(will_reconnect, "{reason}");
}

#[test]
fn a_proxy_that_is_down_is_a_retryable_network_error_naming_it() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = dead.local_addr().expect("addr");
    drop(dead);
    let peer = Peer::start();
    let mut rec = Recorder::connect(fast(&peer.url()).proxy(format!("http://{addr}")));
    let (reason, will_reconnect) = rec.wait_disconnected();
    assert!(will_reconnect, "{reason}");
    assert!(
        matches!(&reason, Disconnect::ConnectFailed(ConnectError::Io(e)) if e.starts_with(&format!("proxy {addr}"))),
        "{reason:?}"
    );
}

#[test]
fn a_silent_proxy_is_bounded_by_connect_timeout() {
    // Accepts and never answers (kept open by the test).
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = silent.local_addr().expect("addr");
    let peer = Peer::start();
    for scheme in ["http", "socks5h"] {
        let config = fast(&peer.url())
            .connect_timeout(Duration::from_millis(400))
            .proxy(format!("{scheme}://{addr}"));
        let started = Instant::now();
        let mut rec = Recorder::connect(config);
        let (reason, will_reconnect) = rec.wait_disconnected();
        assert!(
            matches!(
                reason,
                Disconnect::ConnectFailed(ConnectError::Timeout(t)) if t == Duration::from_millis(400)
            ),
            "{scheme}: {reason:?}"
        );
        assert!(will_reconnect);
        assert!(started.elapsed() < Duration::from_secs(5), "{scheme}");
    }
}

#[test]
fn resolve_pins_the_proxy_host_and_bad_proxy_urls_are_config_errors() {
    let proxy = Daemon::tinyproxy(None);
    let peer = Peer::start();
    let config = fast(&peer.url())
        .proxy(format!("http://proxy.tether-test.invalid:{}", proxy.port))
        .resolve("proxy.tether-test.invalid", ["127.0.0.1"]);
    let mut rec = Recorder::connect(config);
    rec.wait_state(State::Ready);
    assert_eq!(
        rec.client.connection_info().and_then(|i| i.proxy),
        Some(format!("proxy.tether-test.invalid:{}", proxy.port))
    );
    for bad in ["https://p:1", "socks4://p:1", "ftp://p"] {
        let e = fast(&peer.url()).proxy(bad).build().expect_err(bad);
        assert_eq!(e.option(), Some("proxy"), "{bad}: {e}");
    }
    let e = fast(&peer.url())
        .proxy("http://p:1")
        .resolve("other.invalid", ["127.0.0.1"])
        .build()
        .expect_err("resolve for neither host");
    assert!(e.to_string().contains("nor the proxy's"), "{e}");
}

/// A one-shot SOCKS5 listener (no auth) that records the CONNECT request's address and
/// refuses it with reply 5, to see what the client put in the request.
fn recording_socks() -> (std::net::SocketAddr, std::thread::JoinHandle<Vec<u8>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let thread = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_read_timeout(Some(SOON)).expect("timeout");
        let mut greeting = [0u8; 3];
        s.read_exact(&mut greeting).expect("greeting");
        s.write_all(&[5, 0]).expect("method");
        let mut head = [0u8; 4];
        s.read_exact(&mut head).expect("request");
        let len = match head[3] {
            1 => 4,
            4 => 16,
            _ => {
                let mut n = [0u8; 1];
                s.read_exact(&mut n).expect("name length");
                usize::from(n[0])
            }
        };
        let mut rest = vec![0u8; len + 2];
        s.read_exact(&mut rest).expect("address");
        s.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]).expect("reply");
        let mut request = head.to_vec();
        request.extend_from_slice(&rest);
        request
    });
    (addr, thread)
}

#[test]
fn socks5h_sends_the_name_and_socks5_sends_an_address() {
    for (scheme, remote_dns) in [("socks5h", true), ("socks5", false)] {
        let (addr, recorder) = recording_socks();
        let config = fast("ws://localhost:4242/")
            .reconnect_enabled(false)
            .proxy(format!("{scheme}://{addr}"));
        let mut rec = Recorder::connect(config);
        let reason = closed_reason(&mut rec);
        assert!(
            reason
                .to_string()
                .contains("answered 5: connection refused (for "),
            "{reason}"
        );
        let request = recorder.join().expect("recorder");
        let port = &request[request.len() - 2..];
        assert_eq!(port, 4242u16.to_be_bytes(), "{scheme}");
        if remote_dns {
            assert_eq!(request[3], 3, "domain name address type");
            assert_eq!(&request[4..request.len() - 2], b"localhost");
        } else {
            assert!(matches!(request[3], 1 | 4), "an IP address: {request:?}");
        }
    }
}

#[test]
fn happy_eyeballs_runs_over_the_proxys_addresses() {
    let hole = proxy_support::BlackHole::start();
    let proxy = Daemon::tinyproxy(None);
    let peer = Peer::start();
    let name = "proxy.tether-test.invalid";
    let config = fast(&peer.url())
        .connect_timeout(Duration::from_secs(8))
        .happy_eyeballs_delay(Duration::from_millis(100))
        .proxy(format!("http://{name}:{}", proxy.port))
        .resolve(name, [hole.addr.to_string(), proxy.addr()]);
    let started = Instant::now();
    let mut rec = Recorder::connect(config);
    rec.wait_state(State::Ready);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the black-holed proxy address cost {:?}",
        started.elapsed()
    );
    let info = rec.client.connection_info().expect("info");
    assert_eq!(info.peer.map(|p| p.port()), Some(proxy.port));
    assert!(
        !rec.log
            .iter()
            .any(|e| matches!(e, Event::Disconnected { .. })),
        "one attempt"
    );
}
