//! The test vectors of docs/PROTOCOL.md: the implementation produces and accepts them byte for
//! byte, and every vector checked here appears verbatim in the document.

use tether_core::envelope::{control, Codec, Hello, Inbound, Welcome};
use tether_core::{Bytes, Message, Text};
use tokio_tungstenite::tungstenite::Message as WsMessage;

const KEY: &[u8] = b"tether-test-key";

fn doc() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md"))
        .expect("docs/PROTOCOL.md")
}

fn text(m: &WsMessage) -> String {
    match m {
        WsMessage::Text(t) => t.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

fn hex(m: &WsMessage) -> String {
    match m {
        WsMessage::Binary(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
        other => panic!("expected binary, got {other:?}"),
    }
}

fn unhex(s: &str) -> Bytes {
    Bytes::from(
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect::<Vec<_>>(),
    )
}

#[test]
fn encoded_vectors_match_the_document() {
    let doc = doc();
    let plain = Codec::new(None, None, 1 << 20);
    let signed = Codec::new(Some(KEY), None, 1 << 20);
    let packed = Codec::new(None, Some(64), 1 << 20);
    let vectors = [
        text(&plain.text_msg(1, "hello")),
        text(&signed.text_msg(1, "hello")),
        text(&packed.text_msg(2, &"a".repeat(100))),
        hex(&plain.binary_msg(3, &[0, 1, 2, 3])),
        hex(&signed.binary_msg(3, &[0, 1, 2, 3])),
        text(&control::hello("4f1c2a", 0, Some("secret"))),
        text(&control::welcome(12)),
        text(&control::hello_v2(
            "4f1c2a",
            0,
            "9b1d6f3c2a7e4d10",
            None,
            Some("secret"),
        )),
        text(&control::hello_v2(
            "4f1c2a",
            7,
            "9b1d6f3c2a7e4d10",
            Some("c4a8e1f0b2d39576"),
            None,
        )),
        text(&control::welcome_v2(12, "c4a8e1f0b2d39576", false)),
        text(&control::welcome_v2(0, "c4a8e1f0b2d39576", true)),
        text(&control::ack_upto(5)),
        text(&control::nack(5, "bad signature")),
        text(&control::ping(1_700_000_000_000)),
        text(&control::pong(1_700_000_000_000)),
    ];
    for v in vectors {
        assert!(
            doc.contains(&format!("\n{v}\n")),
            "vector missing from docs/PROTOCOL.md:\n{v}"
        );
    }
}

#[test]
fn documented_vectors_decode() {
    let signed = Codec::new(Some(KEY), None, 1 << 20);
    let plain = Codec::new(None, None, 1 << 20);
    let hello = Message::Text(Text::from("hello"));
    let t = |s: &str| WsMessage::Text(s.into());
    assert_eq!(
        signed.decode(&t(r#"{"v":1,"t":"msg","id":1,"d":"hello","sig":"0bf4069de8e657a8c44f56535968191d90a1ac9c72d7c3cb84115f6be7b4c918"}"#)),
        Ok(Inbound::Msg { id: 1, payload: hello.clone() })
    );
    assert_eq!(
        plain.decode(&t(
            r#"{"v":1,"t":"msg","id":2,"z":1,"d":"tcCBAAAAAIAg1vwlpjh+AQ=="}"#
        )),
        Ok(Inbound::Msg {
            id: 2,
            payload: Message::Text(Text::from("a".repeat(100)))
        })
    );
    let binary = Message::Binary(Bytes::from_static(&[0, 1, 2, 3]));
    assert_eq!(
        plain.decode(&WsMessage::Binary(unhex(
            "0102000000000000000000030000000400010203"
        ))),
        Ok(Inbound::Msg {
            id: 3,
            payload: binary.clone()
        })
    );
    assert_eq!(
        signed.decode(&WsMessage::Binary(unhex(
            "010202000000000000000003000000040a0afc38fd9d3345a1a3501a89adf9a09ab739faf12cad3d60b986de9fa2cfd800010203"
        ))),
        Ok(Inbound::Msg { id: 3, payload: binary })
    );
    assert_eq!(
        plain.decode(&t(r#"{"v":1,"t":"ack","id":5}"#)),
        Ok(Inbound::Ack { id: 5 })
    );
    assert_eq!(
        plain.decode(&t(
            r#"{"v":1,"t":"reject","reason":"bad token","final":true}"#
        )),
        Ok(Inbound::Reject {
            reason: "bad token".into(),
            is_final: true
        })
    );
    // Revision 2 handshake frames.
    assert_eq!(
        plain.decode(&t(
            r#"{"v":1,"t":"welcome","last":0,"rev":2,"ep":"c4a8e1f0b2d39576","known":true}"#
        )),
        Ok(Inbound::Welcome(Welcome {
            last: 0,
            rev: 2,
            ep: Some("c4a8e1f0b2d39576".into()),
            known: true
        }))
    );
    assert_eq!(
        plain.decode(&t(r#"{"v":1,"t":"welcome","last":12}"#)),
        Ok(Inbound::Welcome(Welcome::v1(12)))
    );
    assert_eq!(
        plain.decode(&t(
            r#"{"v":1,"t":"hello","sid":"4f1c2a","last":7,"rev":2,"ep":"9b1d6f3c2a7e4d10","sep":"c4a8e1f0b2d39576"}"#
        )),
        Ok(Inbound::Hello(Hello {
            sid: "4f1c2a".into(),
            last: 7,
            token: None,
            rev: 2,
            ep: Some("9b1d6f3c2a7e4d10".into()),
            sep: Some("c4a8e1f0b2d39576".into()),
        }))
    );
    // A Python zlib stream (different bytes from ours) decodes too.
    let py_stream = "S0ykPQAA"; // zlib.compressobj(6, zlib.DEFLATED, -15) of 100 x "a"
    let frame = format!(r#"{{"v":1,"t":"msg","id":4,"z":1,"d":"{py_stream}"}}"#);
    assert!(matches!(
        plain.decode(&t(&frame)),
        Ok(Inbound::Msg { id: 4, .. })
    ));
}
