//! Shared checks for the envelope fuzz targets.
//!
//! Every input is decoded by four codecs — without and with the signing key, each with a large
//! and a small inbound limit — and the results must agree with each other:
//!
//! * decoding never panics (libFuzzer reports a panic as a crash);
//! * an accepted message respects the codec's inbound limit;
//! * what a keyed codec accepts, the unkeyed codec with the same limit accepts identically
//!   (the key only ever refuses, it never changes a result);
//! * what a small-limit codec accepts, the large-limit codec accepts identically;
//! * control frames (`welcome`, `ack`, ...) decode the same whatever the key and limit;
//! * an accepted message re-encodes (with compression on) and decodes to the same message.

use std::sync::OnceLock;

use tether_core::envelope::{Codec, Inbound};
use tether_core::Message;
use tungstenite::Message as Frame;

/// The key of the protocol document's test vectors.
pub const KEY: &[u8] = b"tether-test-key";
/// A large inbound limit.
pub const LARGE: usize = 1 << 20;
/// A small inbound limit, so size checks and bounded inflation are reached often.
pub const SMALL: usize = 64;
/// Compression threshold of the codecs (used when re-encoding).
const THRESHOLD: usize = 16;

struct Codecs {
    /// (codec, inbound limit, keyed)
    all: [(Codec, usize, bool); 4],
}

fn codecs() -> &'static Codecs {
    static CODECS: OnceLock<Codecs> = OnceLock::new();
    CODECS.get_or_init(|| Codecs {
        all: [
            (Codec::new(None, Some(THRESHOLD), LARGE), LARGE, false),
            (Codec::new(Some(KEY), Some(THRESHOLD), LARGE), LARGE, true),
            (Codec::new(None, Some(THRESHOLD), SMALL), SMALL, false),
            (Codec::new(Some(KEY), Some(THRESHOLD), SMALL), SMALL, true),
        ],
    })
}

fn is_msg(result: &Result<Inbound, tether_core::envelope::DecodeError>) -> bool {
    matches!(result, Ok(Inbound::Msg { .. }))
}

/// Decode `frame` with every codec and check the properties listed in the module docs.
pub fn check(frame: &Frame) {
    let codecs = &codecs().all;
    let results: Vec<_> = codecs.iter().map(|(c, _, _)| c.decode(frame)).collect();

    for ((codec, limit, keyed), result) in codecs.iter().zip(&results) {
        if let Ok(Inbound::Msg { id, payload }) = result {
            assert!(
                payload.len() <= *limit,
                "accepted {} bytes over the limit {limit}",
                payload.len()
            );
            if *keyed {
                if let Frame::Binary(b) = frame {
                    assert!(
                        b[2] & 0x02 != 0,
                        "keyed codec accepted an unsigned binary frame"
                    );
                }
            }
            let again = match payload {
                Message::Text(t) => codec.text_msg(*id, t.as_str()),
                Message::Binary(b) => codec.binary_msg(*id, b),
            };
            assert_eq!(
                codec.decode(&again).as_ref(),
                result.as_ref(),
                "re-encoded message does not decode to itself"
            );
        }
    }
    // The key only refuses: keyed acceptance implies identical unkeyed acceptance.
    for (keyed, unkeyed) in [(1, 0), (3, 2)] {
        if is_msg(&results[keyed]) {
            assert_eq!(results[keyed], results[unkeyed], "key changed the result");
        }
    }
    // The limit only refuses: small-limit acceptance implies identical large-limit acceptance.
    for (small, large) in [(2, 0), (3, 1)] {
        if is_msg(&results[small]) {
            assert_eq!(results[small], results[large], "limit changed the result");
        }
    }
    // Control frames do not depend on the key or the limit.
    if let Ok(control) = &results[0] {
        if !matches!(control, Inbound::Msg { .. }) {
            for other in &results[1..] {
                assert_eq!(
                    other.as_ref(),
                    Ok(control),
                    "control frame decoded differently"
                );
            }
        }
    }
}
