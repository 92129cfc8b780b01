//! `Codec::decode` on WebSocket binary frames (16-byte header, optional signature, payload).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tether_core::Bytes;
use tungstenite::Message as Frame;

fuzz_target!(|data: &[u8]| {
    tether_fuzz::check(&Frame::Binary(Bytes::copy_from_slice(data)));
});
