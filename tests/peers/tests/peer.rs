//! Behaviour of `Peer`, checked with a tokio-tungstenite client.

mod common;

use std::time::{Duration, Instant};

use common::{
    connect, connect_with_limit, connector_trusting, expect_silence, next, next_data, runtime,
    try_connect, try_connect_tls, T,
};
use futures_util::SinkExt;
use tether_test_peers::{self_signed_identity, Peer, PeerOptions, Received, ReceivedMsg};
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// True for the ways a client sees a TCP connection end without a close
/// frame: EOF without closing handshake, or a reset.
fn is_abrupt_end(item: &Option<Result<Message, WsError>>) -> bool {
    matches!(
        item,
        Some(Err(WsError::Protocol(
            ProtocolError::ResetWithoutClosingHandshake
        ) | WsError::Io(_)))
    )
}

#[test]
fn echoes_text_and_binary_and_records_them() {
    let peer = Peer::start();
    assert!(peer.url().starts_with("ws://127.0.0.1:"));
    assert_eq!(peer.url(), format!("ws://127.0.0.1:{}/", peer.port()));
    runtime().block_on(async {
        let mut ws = connect(&peer.url()).await;
        assert!(peer.wait_connections(1, T));
        assert_eq!(peer.connections_accepted(), 1);
        assert_eq!(peer.open_connections(), 1);

        ws.send(Message::text("hello")).await.expect("send text");
        assert_eq!(next_data(&mut ws).await, Message::text("hello"));
        ws.send(Message::binary(vec![1_u8, 2, 3]))
            .await
            .expect("send binary");
        assert_eq!(next_data(&mut ws).await, Message::binary(vec![1_u8, 2, 3]));

        ws.send(Message::Ping(b"p".to_vec().into()))
            .await
            .expect("send ping");
        match next(&mut ws).await {
            Some(Ok(Message::Pong(data))) => assert_eq!(&data[..], b"p"),
            other => panic!("expected a pong, got {other:?}"),
        }
        assert_eq!(peer.pings_received(), 1);
    });
    assert!(peer.wait_received(2, T));
    assert_eq!(
        peer.received(),
        vec![
            Received {
                conn: 1,
                msg: ReceivedMsg::Text("hello".into())
            },
            Received {
                conn: 1,
                msg: ReceivedMsg::Binary(vec![1, 2, 3])
            },
        ]
    );
}

#[test]
fn records_connection_indexes_in_accept_order() {
    let peer = Peer::start();
    runtime().block_on(async {
        let mut first = connect(&peer.url()).await;
        assert!(peer.wait_connections(1, T));
        let mut second = connect(&peer.url()).await;
        assert!(peer.wait_connections(2, T));
        first.send(Message::text("a")).await.expect("send a");
        assert!(peer.wait_received(1, T));
        second.send(Message::text("b")).await.expect("send b");
        assert!(peer.wait_received(2, T));
        let conns: Vec<(usize, Option<String>)> = peer
            .received()
            .into_iter()
            .map(|r| (r.conn, r.msg.as_text().map(str::to_owned)))
            .collect();
        assert_eq!(conns, vec![(1, Some("a".into())), (2, Some("b".into()))]);
        assert_eq!(peer.open_connections(), 2);
    });
    // Both clients are dropped (TCP closed) at the end of the block.
    assert!(peer.wait_open_connections(0, T));
}

#[test]
fn close_all_delivers_the_close_code_and_completes_the_handshake() {
    let peer = Peer::start();
    runtime().block_on(async {
        let mut ws = connect(&peer.url()).await;
        assert!(peer.wait_connections(1, T));
        peer.close_all(4001, "going away");
        match next(&mut ws).await {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(u16::from(frame.code), 4001);
                assert_eq!(frame.reason.as_str(), "going away");
            }
            other => panic!("expected a close frame, got {other:?}"),
        }
        // The client's automatic reply completes the handshake; the server
        // then closes the TCP connection, which ends the stream cleanly.
        assert!(next(&mut ws).await.is_none());
    });
    assert_eq!(
        peer.wait_close_received(T),
        Some((4001, "going away".to_owned()))
    );
    assert!(peer.wait_open_connections(0, T));
}

#[test]
fn records_the_close_frame_sent_by_the_client() {
    let peer = Peer::start();
    assert_eq!(peer.last_close_received(), None);
    runtime().block_on(async {
        let mut ws = connect(&peer.url()).await;
        ws.close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "done".into(),
        }))
        .await
        .expect("client close");
        // The server replies with a close frame, then the stream ends.
        loop {
            match next(&mut ws).await {
                Some(Ok(Message::Close(_))) => continue,
                None => break,
                other => panic!("expected the close reply, got {other:?}"),
            }
        }
    });
    assert_eq!(peer.wait_close_received(T), Some((1000, "done".to_owned())));
    assert!(peer.wait_open_connections(0, T));
}

#[test]
fn drop_all_closes_tcp_without_a_close_frame() {
    let peer = Peer::start();
    runtime().block_on(async {
        let mut ws = connect(&peer.url()).await;
        ws.send(Message::text("x")).await.expect("send");
        assert_eq!(next_data(&mut ws).await, Message::text("x"));
        peer.drop_all();
        assert_eq!(peer.open_connections(), 0);
        let item = next(&mut ws).await;
        assert!(is_abrupt_end(&item), "expected an abrupt end, got {item:?}");
    });
    assert_eq!(peer.last_close_received(), None);
}

#[test]
fn stall_stops_echoes_and_pongs_until_resumed() {
    let peer = Peer::start();
    runtime().block_on(async {
        let mut ws = connect(&peer.url()).await;
        ws.send(Message::text("before")).await.expect("send");
        assert_eq!(next_data(&mut ws).await, Message::text("before"));

        peer.set_stalled(true);
        ws.send(Message::text("during")).await.expect("send");
        ws.send(Message::Ping(b"hb".to_vec().into()))
            .await
            .expect("send ping");
        expect_silence(&mut ws, Duration::from_millis(300)).await;
        assert_eq!(peer.pings_received(), 0);
        assert_eq!(peer.received().len(), 1);
        assert_eq!(peer.open_connections(), 1, "TCP stays open while stalled");

        peer.set_stalled(false);
        // Both the echo and the pong arrive now, in either order.
        let mut got_echo = false;
        let mut got_pong = false;
        while !(got_echo && got_pong) {
            match next(&mut ws).await {
                Some(Ok(Message::Text(text))) if text.as_str() == "during" => got_echo = true,
                Some(Ok(Message::Pong(data))) if &data[..] == b"hb" => got_pong = true,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(peer.pings_received(), 1);
    });
}

#[test]
fn stall_also_holds_new_handshakes() {
    let peer = Peer::start();
    peer.set_stalled(true);
    runtime().block_on(async {
        let url = peer.url();
        let pending = tokio::spawn(async move { try_connect(&url).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !pending.is_finished(),
            "handshake must not complete while stalled"
        );
        assert_eq!(peer.connections_accepted(), 0);
        peer.set_stalled(false);
        let ws = tokio::time::timeout(T, pending)
            .await
            .expect("handshake completes once resumed")
            .expect("join");
        assert!(ws.is_ok(), "connect failed: {:?}", ws.err());
    });
    assert_eq!(peer.connections_accepted(), 1);
}

#[test]
fn echo_can_be_turned_off_and_server_can_send() {
    let peer = Peer::start_with(PeerOptions {
        echo: false,
        ..PeerOptions::default()
    });
    runtime().block_on(async {
        let mut ws = connect(&peer.url()).await;
        ws.send(Message::text("not echoed")).await.expect("send");
        assert!(peer.wait_received(1, T));
        // Had the message been echoed, the echo would have been queued
        // before this one.
        peer.send_text_all("from server");
        assert_eq!(next_data(&mut ws).await, Message::text("from server"));
        peer.send_binary_all(&[9, 8, 7]);
        assert_eq!(next_data(&mut ws).await, Message::binary(vec![9_u8, 8, 7]));

        peer.set_echo(true);
        ws.send(Message::text("echoed")).await.expect("send");
        assert_eq!(next_data(&mut ws).await, Message::text("echoed"));
    });
}

#[test]
fn stop_and_restart_on_the_same_port() {
    let peer = Peer::start();
    let port = peer.port();
    runtime().block_on(async {
        let mut ws = connect(&peer.url()).await;
        peer.stop();
        let item = next(&mut ws).await;
        assert!(is_abrupt_end(&item), "expected an abrupt end, got {item:?}");
        match try_connect(&peer.url()).await {
            Err(WsError::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused),
            other => panic!("expected connection refused, got {:?}", other.map(|_| ())),
        }

        peer.restart();
        assert_eq!(peer.port(), port);
        let mut ws = connect(&peer.url()).await;
        ws.send(Message::text("again")).await.expect("send");
        assert_eq!(next_data(&mut ws).await, Message::text("again"));
        // Restarting while listening is a no-op.
        peer.restart();
    });
    assert_eq!(peer.connections_accepted(), 2);
}

#[test]
fn reject_upgrade_answers_with_the_http_status() {
    let peer = Peer::start_with(PeerOptions {
        reject_upgrade: Some(401),
        ..PeerOptions::default()
    });
    runtime().block_on(async {
        match try_connect(&peer.url()).await {
            Err(WsError::Http(response)) => assert_eq!(response.status().as_u16(), 401),
            other => panic!("expected HTTP 401, got {:?}", other.map(|_| ())),
        }
        peer.set_reject_upgrade(Some(503));
        match try_connect(&peer.url()).await {
            Err(WsError::Http(response)) => assert_eq!(response.status().as_u16(), 503),
            other => panic!("expected HTTP 503, got {:?}", other.map(|_| ())),
        }
        assert_eq!(peer.connections_accepted(), 0);
        peer.set_reject_upgrade(None);
        connect(&peer.url()).await;
    });
    assert_eq!(peer.connections_accepted(), 1);
}

#[test]
fn tls_works_with_the_generated_ca() {
    let (identity, ca_pem) = self_signed_identity();
    let peer = Peer::start_with(PeerOptions {
        tls: Some(identity),
        ..PeerOptions::default()
    });
    assert_eq!(peer.url(), format!("wss://localhost:{}/", peer.port()));
    runtime().block_on(async {
        let mut ws = try_connect_tls(&peer.url(), connector_trusting(Some(&ca_pem)))
            .await
            .expect("TLS connect with the test CA");
        ws.send(Message::text("secure")).await.expect("send");
        assert_eq!(next_data(&mut ws).await, Message::text("secure"));

        // The certificate also covers the IP address.
        let by_ip = format!("wss://127.0.0.1:{}/", peer.port());
        try_connect_tls(&by_ip, connector_trusting(Some(&ca_pem)))
            .await
            .expect("TLS connect by IP with the test CA");

        // Without the CA the certificate is not trusted.
        match try_connect_tls(&peer.url(), connector_trusting(None)).await {
            Err(WsError::Tls(_) | WsError::Io(_)) => {}
            other => panic!("expected a TLS failure, got {:?}", other.map(|_| ())),
        }
    });
    assert_eq!(peer.connections_accepted(), 2);
}

#[test]
fn invalid_utf8_is_an_error_for_a_tungstenite_client() {
    let peer = Peer::start();
    runtime().block_on(async {
        let mut ws = connect(&peer.url()).await;
        assert!(peer.wait_connections(1, T));
        peer.send_invalid_utf8_all();
        match next(&mut ws).await {
            Some(Err(WsError::Utf8(_))) => {}
            other => panic!("expected a UTF-8 error, got {other:?}"),
        }
    });
}

#[test]
fn oversized_message_exceeds_the_client_limit() {
    let peer = Peer::start();
    runtime().block_on(async {
        let mut ws = connect_with_limit(&peer.url(), 1024).await;
        assert!(peer.wait_connections(1, T));
        peer.send_oversized_all(1024);
        match next_data(&mut ws).await {
            Message::Binary(data) => {
                assert_eq!(data.len(), 1024);
                assert_eq!(data[..3], [0, 1, 2]);
            }
            other => panic!("expected binary, got {other:?}"),
        }
        peer.send_oversized_all(4096);
        match next(&mut ws).await {
            Some(Err(WsError::Capacity(_))) => {}
            other => panic!("expected a capacity error, got {other:?}"),
        }
    });
}

#[test]
fn server_limit_closes_with_1009() {
    let peer = Peer::start_with(PeerOptions {
        max_message_size: Some(1024),
        ..PeerOptions::default()
    });
    runtime().block_on(async {
        let mut ws = connect(&peer.url()).await;
        ws.send(Message::binary(vec![0_u8; 2048]))
            .await
            .expect("send");
        match next(&mut ws).await {
            Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Size),
            other => panic!("expected close 1009, got {other:?}"),
        }
    });
    assert!(peer.received().is_empty());
    assert!(peer.wait_open_connections(0, T));
}

/// A message far larger than the socket buffers and the limit: after its 1009 close the peer
/// reads on (discarding) until the client's end of file, so the client's write completes and the
/// link ends cleanly instead of in a reset (RFC 6455 7.1.1).
#[test]
fn server_limit_drains_what_the_client_still_writes_after_its_1009() {
    let peer = Peer::start_with(PeerOptions {
        max_message_size: Some(1024),
        ..PeerOptions::default()
    });
    runtime().block_on(async {
        let mut ws = connect(&peer.url()).await;
        tokio::time::timeout(T, ws.send(Message::binary(vec![0_u8; 32 << 20])))
            .await
            .expect("the peer stopped reading")
            .expect("the write failed");
        match next(&mut ws).await {
            Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Size),
            other => panic!("expected close 1009, got {other:?}"),
        }
        match next(&mut ws).await {
            None | Some(Err(WsError::ConnectionClosed)) => {}
            other => panic!("expected a clean end, got {other:?}"),
        }
    });
    assert!(peer.wait_open_connections(0, T));
}

#[test]
fn keeps_reading_while_a_flooding_client_does_not_read() {
    const COUNT: usize = 300;
    const SIZE: usize = 64 * 1024;
    let peer = Peer::start();
    runtime().block_on(async {
        let mut ws = connect(&peer.url()).await;
        let payload = vec![7_u8; SIZE];
        let send_all = async {
            for _ in 0..COUNT {
                ws.send(Message::binary(payload.clone())).await?;
            }
            Ok::<_, WsError>(())
        };
        tokio::time::timeout(Duration::from_secs(30), send_all)
            .await
            .expect("flood must not block: the peer keeps reading")
            .expect("send");
        assert!(peer.wait_received(COUNT, T));
        for _ in 0..COUNT {
            assert_eq!(next_data(&mut ws).await.len(), SIZE);
        }
    });
}

#[test]
fn drop_is_bounded_and_frees_the_port() {
    let peer = Peer::start();
    let url = peer.url();
    runtime().block_on(async {
        let _open = connect(&url).await;
        peer.set_stalled(true);
        // A second client stuck in the (stalled) opening handshake.
        let _pending = tokio::spawn({
            let url = url.clone();
            async move { try_connect(&url).await.map(|_| ()) }
        });
        tokio::task::yield_now().await;
        let started = Instant::now();
        drop(peer);
        assert!(started.elapsed() < Duration::from_secs(5));
        match try_connect(&url).await {
            Err(WsError::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused),
            other => panic!("expected connection refused, got {:?}", other.map(|_| ())),
        }
    });
}

#[test]
fn invalid_tls_identity_is_an_error() {
    let result = Peer::try_start_with(PeerOptions {
        tls: Some(tether_test_peers::TlsIdentity {
            cert_chain_pem: "not a certificate".into(),
            key_pem: "not a key".into(),
        }),
        ..PeerOptions::default()
    });
    assert!(result.is_err());
}

#[test]
fn peer_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Peer>();
    let peer = Peer::start();
    std::thread::scope(|s| {
        s.spawn(|| assert!(!peer.wait_connections(1, Duration::from_millis(10))));
    });
}
