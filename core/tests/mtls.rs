//! Mutual TLS: a peer that requires a client certificate accepts the right one (PEM text or
//! files) and refuses a client without one, or with one from another CA, with a final TLS
//! error; a key that does not belong to the certificate, or an unreadable file, is a config
//! error naming the option.

mod common;

use common::{fast, Recorder, SOON};
use tether_core::{ConfigError, ConnectError, Disconnect, Event, OptionValue, State, TlsRoots};
use tether_test_peers::{client_identity, self_signed_identity, Peer, PeerOptions, TlsIdentity};

/// A wss peer that requires a client certificate from its own client CA; returns it, the
/// server CA to trust and a client identity it accepts.
fn mtls_peer() -> (Peer, String, TlsIdentity) {
    let (server, server_ca) = self_signed_identity();
    let (client, client_ca) = client_identity();
    let peer = Peer::start_with(PeerOptions {
        tls: Some(server),
        client_ca: Some(client_ca),
        ..PeerOptions::default()
    });
    (peer, server_ca, client)
}

fn final_tls_error(rec: &mut Recorder) -> String {
    let closed = rec.wait_for("Closed", SOON, |e| matches!(e, Event::Closed { .. }));
    let Event::Closed {
        reason: Disconnect::ConnectFailed(ConnectError::Tls(why)),
        ..
    } = closed
    else {
        panic!("expected a TLS error: {closed:?}");
    };
    assert!(
        !rec.log
            .iter()
            .any(|e| matches!(e, Event::Reconnecting { .. })),
        "a refused client certificate is final"
    );
    why
}

#[test]
fn the_right_client_certificate_is_accepted() {
    let (peer, ca, client) = mtls_peer();
    let config = fast(&peer.url())
        .tls_roots(TlsRoots::CustomCa(ca.into_bytes()))
        .client_cert_pem(client.cert_chain_pem, client.key_pem);
    let mut rec = Recorder::connect(config);
    rec.wait_state(State::Ready);
    rec.client.send_text("mutual").expect("queued");
    assert_eq!(rec.recv_texts(1, SOON), ["mutual"]);
    assert_eq!(
        rec.client.config().get("client_key_pem"),
        Some(OptionValue::Redacted)
    );
}

#[test]
fn client_certificate_files_through_the_option_table() {
    let (peer, ca, client) = mtls_peer();
    let dir = std::env::temp_dir().join(format!("tether-mtls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let (cert, key) = (dir.join("client.pem"), dir.join("client.key"));
    std::fs::write(&cert, &client.cert_chain_pem).expect("write cert");
    std::fs::write(&key, &client.key_pem).expect("write key");
    let mut b = fast(&peer.url()).tls_roots(TlsRoots::CustomCa(ca.into_bytes()));
    for (name, path) in [("client_cert_file", &cert), ("client_key_file", &key)] {
        b.set(name, OptionValue::Text(path.display().to_string()))
            .expect("set");
    }
    let mut rec = Recorder::connect(b);
    rec.wait_state(State::Ready);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn no_client_certificate_is_a_final_tls_error() {
    let (peer, ca, _client) = mtls_peer();
    let config = fast(&peer.url()).tls_roots(TlsRoots::CustomCa(ca.into_bytes()));
    let mut rec = Recorder::connect(config);
    let why = final_tls_error(&mut rec);
    assert!(why.to_lowercase().contains("certificate"), "{why}");
    assert_eq!(peer.connections_accepted(), 0);
}

#[test]
fn a_certificate_from_another_ca_is_a_final_tls_error() {
    let (peer, ca, _client) = mtls_peer();
    let (stranger, _other_ca) = client_identity();
    let config = fast(&peer.url())
        .tls_roots(TlsRoots::CustomCa(ca.into_bytes()))
        .client_cert_pem(stranger.cert_chain_pem, stranger.key_pem);
    let mut rec = Recorder::connect(config);
    final_tls_error(&mut rec);
    assert_eq!(peer.connections_accepted(), 0);
}

#[test]
fn bad_client_certificate_material_is_a_config_error_naming_the_option() {
    let (a, _) = client_identity();
    let (b, _) = client_identity();
    let url = "wss://localhost:1/";
    let err = fast(url)
        .client_cert_pem(a.cert_chain_pem.clone(), b.key_pem.clone())
        .build()
        .expect_err("mismatched key");
    assert_eq!(err.option(), Some("client_key_pem"), "{err}");
    assert!(err.to_string().contains("does not belong"), "{err}");

    let err = fast(url)
        .client_cert_pem(a.cert_chain_pem.clone(), "not a key")
        .build()
        .expect_err("no key");
    assert_eq!(err.option(), Some("client_key_pem"), "{err}");

    let err = fast(url)
        .client_cert_pem("not a certificate", a.key_pem.clone())
        .build()
        .expect_err("no certificate");
    assert_eq!(err.option(), Some("client_cert_pem"), "{err}");

    let err = fast(url)
        .client_cert_files("/nonexistent/tether/client.pem", "/nonexistent/k.pem")
        .build()
        .expect_err("unreadable");
    assert!(
        matches!(&err, ConfigError::InvalidValue { option: "client_cert_file", problem } if problem.contains("/nonexistent/tether/client.pem")),
        "{err}"
    );

    let mut half = fast(url);
    half.set("client_cert_pem", OptionValue::Text(a.cert_chain_pem))
        .expect("set");
    let err = half.build().expect_err("a certificate without its key");
    assert!(err.to_string().contains("needs its private key"), "{err}");
}
