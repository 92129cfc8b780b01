//! wss:// with rustls: a custom CA is trusted, an unknown one is a final TLS error, and the
//! explicit insecure option connects anyway.

mod common;

use common::{fast, Recorder, SOON};
use tether_core::{ConnectError, Disconnect, Event, State, TlsRoots};
use tether_test_peers::{self_signed_identity, Peer, PeerOptions};

fn tls_peer() -> (Peer, String) {
    let (identity, ca_pem) = self_signed_identity();
    let peer = Peer::start_with(PeerOptions {
        tls: Some(identity),
        ..PeerOptions::default()
    });
    (peer, ca_pem)
}

#[test]
fn custom_ca_connects_and_echoes() {
    let (peer, ca) = tls_peer();
    assert!(peer.url().starts_with("wss://"));
    let dir = std::env::temp_dir().join(format!("tether-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca).expect("write CA");
    let mut rec = Recorder::connect(fast(&peer.url()).tls_ca_file(&ca_file));
    rec.wait_state(State::Ready);
    rec.client.send_text("over tls").expect("queued");
    assert_eq!(rec.recv_texts(1, SOON), ["over tls"]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_untrusted_certificate_is_a_final_tls_error() {
    let (peer, _ca) = tls_peer();
    let mut rec = Recorder::connect(fast(&peer.url()).tls_roots(TlsRoots::WebPki));
    let closed = rec.wait_for("Closed", SOON, |e| matches!(e, Event::Closed { .. }));
    assert!(
        matches!(
            &closed,
            Event::Closed {
                reason: Disconnect::ConnectFailed(ConnectError::Tls(_)),
                ..
            }
        ),
        "{closed:?}"
    );
    assert!(
        !rec.log
            .iter()
            .any(|e| matches!(e, Event::Reconnecting { .. })),
        "no retry loop on a bad certificate"
    );
}

#[test]
fn insecure_mode_accepts_any_certificate() {
    let (peer, _ca) = tls_peer();
    let mut rec = Recorder::connect(fast(&peer.url()).danger_accept_invalid_certs(true));
    rec.wait_state(State::Ready);
}
