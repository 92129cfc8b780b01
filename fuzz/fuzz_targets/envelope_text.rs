//! `Codec::decode` on WebSocket text frames (JSON envelopes). Text frames reach the decoder
//! only as valid UTF-8 (tungstenite checks it first), so other inputs are skipped.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tungstenite::Message as Frame;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        tether_fuzz::check(&Frame::Text(text.to_owned().into()));
    }
});
