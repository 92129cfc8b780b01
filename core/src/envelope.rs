//! The Tether envelope, wire protocol version 1 (specified in `docs/PROTOCOL.md`): JSON for
//! control frames and text messages, a 16-byte binary header for binary messages, optional
//! HMAC-SHA256 signatures and raw-DEFLATE compression.
//!
//! Pure encode/decode functions with no I/O, so the test vectors in the protocol document can be
//! checked byte for byte.

use std::borrow::Cow;
use std::fmt::Write as _;

use bytes::Bytes;
use data_encoding::{BASE64, HEXLOWER};
use ring::hmac;
use serde::Deserialize;
use tokio_tungstenite::tungstenite::{Message as WsMessage, Utf8Bytes};

use crate::event::{Message, Text};

/// The protocol version this implementation speaks.
pub const PROTOCOL_VERSION: u8 = 1;
/// Kind byte of a text message in the signing input.
const KIND_TEXT: u8 = 1;
/// Kind byte of a binary message (in the binary header and the signing input).
const KIND_BINARY: u8 = 2;
const FLAG_COMPRESSED: u8 = 0x01;
const FLAG_SIGNED: u8 = 0x02;
/// Binary header: version, kind, flags, reserved, id (u64 BE), payload length (u32 BE).
pub const BINARY_HEADER_LEN: usize = 16;
const SIGNATURE_LEN: usize = 32;
/// Compression level for raw DEFLATE: a fast level, since messages are small and latency matters.
const DEFLATE_LEVEL: u8 = 3;

/// One decoded inbound envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// Client → server: open a session (seen only by servers; a client treats it as an error).
    Hello {
        /// Session id.
        sid: String,
        /// Highest server message id the client has received.
        last: u64,
        /// Optional auth token.
        token: Option<String>,
    },
    /// Server → client: the session is ready; `last` is the highest client message id the
    /// server has received.
    Welcome {
        /// Highest client id received by the server.
        last: u64,
    },
    /// Server → client: the session is refused.
    Reject {
        /// Why.
        reason: String,
        /// True when retrying cannot help (bad token, banned client).
        is_final: bool,
    },
    /// An application message.
    Msg {
        /// Sender's sequence id.
        id: u64,
        /// The payload, decompressed and verified.
        payload: Message,
    },
    /// Acknowledgement of one message.
    Ack {
        /// The acknowledged id.
        id: u64,
    },
    /// Acknowledgement of every message up to and including `upto`.
    AckUpTo {
        /// Highest acknowledged id.
        upto: u64,
    },
    /// The peer refuses message `id` for good.
    Nack {
        /// Refused id.
        id: u64,
        /// Why.
        reason: String,
    },
    /// App-level ping.
    Ping {
        /// Sender's timestamp (milliseconds), echoed in the pong.
        ts: u64,
    },
    /// App-level pong.
    Pong {
        /// The timestamp of the ping being answered.
        ts: u64,
    },
}

/// Why an inbound frame could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not a valid envelope (bad JSON, missing field, unknown type, length mismatch, ...).
    #[error("malformed envelope: {0}")]
    Malformed(String),
    /// The envelope's version is not one this implementation speaks.
    #[error("unsupported protocol version {0}")]
    UnknownVersion(u64),
    /// A message whose signature is missing or wrong (message `id`, to be nacked).
    #[error("message {id}: {why}")]
    BadSignature {
        /// The message id.
        id: u64,
        /// "missing signature" or "bad signature".
        why: &'static str,
    },
    /// A message whose decompressed payload is over the limit or whose compressed data is
    /// corrupt (message `id`, to be nacked).
    #[error("message {id}: {why}")]
    BadPayload {
        /// The message id.
        id: u64,
        /// What was wrong.
        why: String,
    },
}

impl DecodeError {
    /// The message id to nack, when the frame was recognisably a message.
    pub fn message_id(&self) -> Option<u64> {
        match self {
            DecodeError::BadSignature { id, .. } | DecodeError::BadPayload { id, .. } => Some(*id),
            _ => None,
        }
    }
}

/// Encoder/decoder state for one client: the signing key, the compression threshold and the
/// inbound size limit.
pub struct Codec {
    key: Option<hmac::Key>,
    compression_threshold: Option<usize>,
    max_inbound: usize,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec")
            .field("signed", &self.key.is_some())
            .field("compression_threshold", &self.compression_threshold)
            .field("max_inbound", &self.max_inbound)
            .finish()
    }
}

#[derive(Deserialize)]
struct RawJson<'a> {
    v: u64,
    #[serde(borrow)]
    t: Cow<'a, str>,
    id: Option<u64>,
    upto: Option<u64>,
    d: Option<String>,
    z: Option<u8>,
    #[serde(borrow)]
    sig: Option<Cow<'a, str>>,
    last: Option<u64>,
    reason: Option<String>,
    #[serde(rename = "final")]
    is_final: Option<bool>,
    ts: Option<u64>,
    sid: Option<String>,
    token: Option<String>,
}

fn missing(t: &str, field: &str) -> DecodeError {
    DecodeError::Malformed(format!("`{t}` without `{field}`"))
}

impl Codec {
    /// A codec; `key` enables signing and verification, `compression_threshold` compresses
    /// payloads of at least that many bytes (when that makes them smaller), `max_inbound`
    /// bounds decompressed payloads.
    pub fn new(
        key: Option<&[u8]>,
        compression_threshold: Option<usize>,
        max_inbound: usize,
    ) -> Codec {
        Codec {
            key: key.map(|k| hmac::Key::new(hmac::HMAC_SHA256, k)),
            compression_threshold,
            max_inbound,
        }
    }

    /// HMAC-SHA256 over version, kind, id, the compression flag and the payload as carried.
    fn tag(key: &hmac::Key, kind: u8, id: u64, flags: u8, payload: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(key);
        ctx.update(&[PROTOCOL_VERSION, kind]);
        ctx.update(&id.to_be_bytes());
        ctx.update(&[flags & FLAG_COMPRESSED]);
        ctx.update(payload);
        ctx.sign()
    }

    fn sign(&self, kind: u8, id: u64, flags: u8, payload: &[u8]) -> Option<hmac::Tag> {
        self.key
            .as_ref()
            .map(|key| Self::tag(key, kind, id, flags, payload))
    }

    fn verify(
        &self,
        kind: u8,
        id: u64,
        flags: u8,
        payload: &[u8],
        sig: Option<&[u8]>,
    ) -> Result<(), DecodeError> {
        let Some(key) = self.key.as_ref() else {
            return Ok(());
        };
        let Some(sig) = sig else {
            return Err(DecodeError::BadSignature {
                id,
                why: "missing signature",
            });
        };
        let expected = Self::tag(key, kind, id, flags, payload);
        // Constant-time comparison: no early exit on the first differing byte.
        let expected = expected.as_ref();
        let equal = expected.len() == sig.len()
            && expected
                .iter()
                .zip(sig)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if equal {
            Ok(())
        } else {
            Err(DecodeError::BadSignature {
                id,
                why: "bad signature",
            })
        }
    }

    /// Compress when configured, large enough, and actually smaller.
    fn maybe_compress(&self, payload: &[u8]) -> Option<Vec<u8>> {
        let threshold = self.compression_threshold?;
        if payload.len() < threshold {
            return None;
        }
        let packed = miniz_oxide::deflate::compress_to_vec(payload, DEFLATE_LEVEL);
        (packed.len() < payload.len()).then_some(packed)
    }

    fn inflate(&self, id: u64, packed: &[u8]) -> Result<Vec<u8>, DecodeError> {
        miniz_oxide::inflate::decompress_to_vec_with_limit(packed, self.max_inbound).map_err(|e| {
            DecodeError::BadPayload {
                id,
                why: match e.status {
                    miniz_oxide::inflate::TINFLStatus::HasMoreOutput => {
                        format!(
                            "decompressed payload exceeds the limit of {} bytes",
                            self.max_inbound
                        )
                    }
                    _ => "corrupt compressed payload".to_string(),
                },
            }
        })
    }

    /// Encode an application text message.
    pub fn text_msg(&self, id: u64, text: &str) -> WsMessage {
        let mut out = String::with_capacity(text.len() + 40);
        let _ = write!(out, r#"{{"v":1,"t":"msg","id":{id}"#);
        let sig = match self.maybe_compress(text.as_bytes()) {
            Some(packed) => {
                out.push_str(r#","z":1,"d":""#);
                out.push_str(&BASE64.encode(&packed));
                out.push('"');
                self.sign(KIND_TEXT, id, FLAG_COMPRESSED, &packed)
            }
            None => {
                out.push_str(r#","d":"#);
                push_json_string(&mut out, text);
                self.sign(KIND_TEXT, id, 0, text.as_bytes())
            }
        };
        if let Some(tag) = sig {
            out.push_str(r#","sig":""#);
            out.push_str(&HEXLOWER.encode(tag.as_ref()));
            out.push('"');
        }
        out.push('}');
        WsMessage::Text(Utf8Bytes::from(out))
    }

    /// Encode an application binary message.
    pub fn binary_msg(&self, id: u64, data: &[u8]) -> WsMessage {
        let packed = self.maybe_compress(data);
        let (flags, body): (u8, &[u8]) = match &packed {
            Some(p) => (FLAG_COMPRESSED, p),
            None => (0, data),
        };
        let tag = self.sign(KIND_BINARY, id, flags, body);
        let flags = flags | if tag.is_some() { FLAG_SIGNED } else { 0 };
        let mut out = Vec::with_capacity(BINARY_HEADER_LEN + SIGNATURE_LEN + body.len());
        out.extend_from_slice(&[PROTOCOL_VERSION, KIND_BINARY, flags, 0]);
        out.extend_from_slice(&id.to_be_bytes());
        // Payloads are bounded far below 4 GiB by the outbound limit.
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        if let Some(tag) = tag {
            out.extend_from_slice(tag.as_ref());
        }
        out.extend_from_slice(body);
        WsMessage::Binary(Bytes::from(out))
    }

    /// Decode one inbound frame (text or binary). Ping, pong and close frames are not envelopes.
    pub fn decode(&self, frame: &WsMessage) -> Result<Inbound, DecodeError> {
        match frame {
            WsMessage::Text(t) => self.decode_json(t.as_str()),
            WsMessage::Binary(b) => self.decode_binary(b),
            other => Err(DecodeError::Malformed(format!(
                "not a data frame: {other:?}"
            ))),
        }
    }

    fn decode_json(&self, text: &str) -> Result<Inbound, DecodeError> {
        let raw: RawJson<'_> = serde_json::from_str(text)
            .map_err(|e| DecodeError::Malformed(format!("invalid JSON: {e}")))?;
        if raw.v != u64::from(PROTOCOL_VERSION) {
            return Err(DecodeError::UnknownVersion(raw.v));
        }
        let t = raw.t.as_ref();
        Ok(match t {
            "msg" => {
                let id = raw.id.ok_or_else(|| missing(t, "id"))?;
                // From here on the message has an id: its problems are nacked.
                let d = raw.d.ok_or_else(|| DecodeError::BadPayload {
                    id,
                    why: "`msg` without `d`".into(),
                })?;
                let sig = match &raw.sig {
                    Some(hex) => Some(HEXLOWER.decode(hex.as_bytes()).map_err(|_| {
                        DecodeError::BadSignature {
                            id,
                            why: "bad signature",
                        }
                    })?),
                    None => None,
                };
                let text = match raw.z {
                    None | Some(0) => {
                        self.verify(KIND_TEXT, id, 0, d.as_bytes(), sig.as_deref())?;
                        d
                    }
                    Some(1) => {
                        let packed =
                            BASE64
                                .decode(d.as_bytes())
                                .map_err(|_| DecodeError::BadPayload {
                                    id,
                                    why: "compressed payload is not base64".into(),
                                })?;
                        self.verify(KIND_TEXT, id, FLAG_COMPRESSED, &packed, sig.as_deref())?;
                        String::from_utf8(self.inflate(id, &packed)?).map_err(|_| {
                            DecodeError::BadPayload {
                                id,
                                why: "decompressed text is not UTF-8".into(),
                            }
                        })?
                    }
                    Some(other) => {
                        return Err(DecodeError::BadPayload {
                            id,
                            why: format!("unknown compression {other}"),
                        })
                    }
                };
                if text.len() > self.max_inbound {
                    return Err(DecodeError::BadPayload {
                        id,
                        why: format!("payload exceeds the limit of {} bytes", self.max_inbound),
                    });
                }
                Inbound::Msg {
                    id,
                    payload: Message::Text(Text::from(text)),
                }
            }
            "ack" => match (raw.id, raw.upto) {
                (_, Some(upto)) => Inbound::AckUpTo { upto },
                (Some(id), None) => Inbound::Ack { id },
                (None, None) => return Err(missing(t, "id")),
            },
            "nack" => Inbound::Nack {
                id: raw.id.ok_or_else(|| missing(t, "id"))?,
                reason: raw.reason.unwrap_or_default(),
            },
            "welcome" => Inbound::Welcome {
                last: raw.last.unwrap_or(0),
            },
            "reject" => Inbound::Reject {
                reason: raw.reason.unwrap_or_default(),
                is_final: raw.is_final.unwrap_or(true),
            },
            "ping" => Inbound::Ping {
                ts: raw.ts.ok_or_else(|| missing(t, "ts"))?,
            },
            "pong" => Inbound::Pong {
                ts: raw.ts.ok_or_else(|| missing(t, "ts"))?,
            },
            "hello" => Inbound::Hello {
                sid: raw.sid.ok_or_else(|| missing(t, "sid"))?,
                last: raw.last.unwrap_or(0),
                token: raw.token,
            },
            other => return Err(DecodeError::Malformed(format!("unknown type {other:?}"))),
        })
    }

    fn decode_binary(&self, frame: &Bytes) -> Result<Inbound, DecodeError> {
        if frame.len() < BINARY_HEADER_LEN {
            return Err(DecodeError::Malformed(format!(
                "binary frame of {} bytes is shorter than the 16-byte header",
                frame.len()
            )));
        }
        if frame[0] != PROTOCOL_VERSION {
            return Err(DecodeError::UnknownVersion(u64::from(frame[0])));
        }
        if frame[1] != KIND_BINARY {
            return Err(DecodeError::Malformed(format!(
                "unknown binary kind {}",
                frame[1]
            )));
        }
        let flags = frame[2];
        let mut id_bytes = [0u8; 8];
        id_bytes.copy_from_slice(&frame[4..12]);
        let id = u64::from_be_bytes(id_bytes);
        // From here on the message has an id: its problems are nacked.
        if flags & !(FLAG_COMPRESSED | FLAG_SIGNED) != 0 || frame[3] != 0 {
            return Err(DecodeError::BadPayload {
                id,
                why: "unknown flags or non-zero reserved byte".into(),
            });
        }
        let mut len_bytes = [0u8; 4];
        len_bytes.copy_from_slice(&frame[12..16]);
        let len = u32::from_be_bytes(len_bytes) as usize;
        let sig_len = if flags & FLAG_SIGNED != 0 {
            SIGNATURE_LEN
        } else {
            0
        };
        let expected = BINARY_HEADER_LEN + sig_len + len;
        if frame.len() != expected {
            return Err(DecodeError::BadPayload {
                id,
                why: format!(
                    "binary header says {expected} bytes in all, the frame has {}",
                    frame.len()
                ),
            });
        }
        let sig =
            (sig_len > 0).then(|| &frame[BINARY_HEADER_LEN..BINARY_HEADER_LEN + SIGNATURE_LEN]);
        let body = frame.slice(BINARY_HEADER_LEN + sig_len..);
        self.verify(KIND_BINARY, id, flags, &body, sig)?;
        let payload = if flags & FLAG_COMPRESSED != 0 {
            Bytes::from(self.inflate(id, &body)?)
        } else {
            body
        };
        if payload.len() > self.max_inbound {
            return Err(DecodeError::BadPayload {
                id,
                why: format!("payload exceeds the limit of {} bytes", self.max_inbound),
            });
        }
        Ok(Inbound::Msg {
            id,
            payload: Message::Binary(payload),
        })
    }
}

/// Control frames (never signed or compressed).
pub mod control {
    use super::*;

    /// `hello`: open or resume session `sid`.
    pub fn hello(sid: &str, last: u64, token: Option<&str>) -> WsMessage {
        let mut out = String::from(r#"{"v":1,"t":"hello","sid":"#);
        push_json_string(&mut out, sid);
        let _ = write!(out, r#","last":{last}"#);
        if let Some(token) = token {
            out.push_str(r#","token":"#);
            push_json_string(&mut out, token);
        }
        out.push('}');
        WsMessage::Text(out.into())
    }

    /// `welcome` (servers only; here for tests and reference).
    pub fn welcome(last: u64) -> WsMessage {
        numbered("welcome", "last", last)
    }

    /// Cumulative `ack`.
    pub fn ack_upto(upto: u64) -> WsMessage {
        numbered("ack", "upto", upto)
    }

    /// `nack` of one message.
    pub fn nack(id: u64, reason: &str) -> WsMessage {
        let mut out = format!(r#"{{"v":1,"t":"nack","id":{id},"reason":"#);
        push_json_string(&mut out, reason);
        out.push('}');
        WsMessage::Text(out.into())
    }

    /// App-level `ping`.
    pub fn ping(ts: u64) -> WsMessage {
        numbered("ping", "ts", ts)
    }

    /// App-level `pong`.
    pub fn pong(ts: u64) -> WsMessage {
        numbered("pong", "ts", ts)
    }

    /// `{"v":1,"t":T,"FIELD":N}`: every control frame that carries one number has this shape.
    fn numbered(t: &str, field: &str, n: u64) -> WsMessage {
        WsMessage::Text(format!(r#"{{"v":1,"t":"{t}","{field}":{n}}}"#).into())
    }
}

/// Append `s` as a JSON string literal.
fn push_json_string(out: &mut String, s: &str) {
    // Fast path: JSON escapes only `"`, `\` and control characters; most text has none.
    if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.reserve(s.len() + 2);
        out.push('"');
        out.push_str(s);
        out.push('"');
        return;
    }
    // serde_json's escaping is the reference; serializing a &str cannot fail.
    if let Ok(quoted) = serde_json::to_string(s) {
        out.push_str(&quoted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_of(m: &WsMessage) -> String {
        match m {
            WsMessage::Text(t) => t.to_string(),
            other => panic!("not text: {other:?}"),
        }
    }

    #[test]
    fn text_round_trip_plain_signed_and_compressed() {
        for (key, threshold) in [
            (None, None),
            (Some(&b"k"[..]), None),
            (None, Some(10)),
            (Some(&b"k"[..]), Some(10)),
        ] {
            let codec = Codec::new(key, threshold, 1 << 20);
            let text = "héllo \"world\" ".repeat(20);
            let frame = codec.text_msg(7, &text);
            assert_eq!(
                codec.decode(&frame),
                Ok(Inbound::Msg {
                    id: 7,
                    payload: Message::Text(Text::from(text.clone()))
                }),
                "{key:?} {threshold:?}"
            );
            assert_eq!(text_of(&frame).contains(r#""z":1"#), threshold.is_some());
            assert_eq!(text_of(&frame).contains(r#""sig""#), key.is_some());
        }
    }

    #[test]
    fn binary_round_trip_plain_signed_and_compressed() {
        for (key, threshold) in [
            (None, None),
            (Some(&b"k"[..]), None),
            (None, Some(10)),
            (Some(&b"k"[..]), Some(10)),
        ] {
            let codec = Codec::new(key, threshold, 1 << 20);
            let data = vec![42u8; 1000];
            let frame = codec.binary_msg(u64::MAX, &data);
            assert_eq!(
                codec.decode(&frame),
                Ok(Inbound::Msg {
                    id: u64::MAX,
                    payload: Message::Binary(Bytes::from(data))
                })
            );
        }
    }

    #[test]
    fn compression_only_above_the_threshold_and_only_when_smaller() {
        let codec = Codec::new(None, Some(100), 1 << 20);
        assert!(!text_of(&codec.text_msg(1, &"a".repeat(99))).contains(r#""z""#));
        assert!(text_of(&codec.text_msg(1, &"a".repeat(100))).contains(r#""z":1"#));
        // Incompressible data stays as it is even above the threshold.
        let noise: String = (0..200)
            .map(|i| char::from(b'!' + ((i * 7919 % 89) as u8)))
            .collect();
        let frame = codec.text_msg(1, &noise);
        assert_eq!(
            codec.decode(&frame),
            Ok(Inbound::Msg {
                id: 1,
                payload: Message::Text(Text::from(noise))
            })
        );
    }

    #[test]
    fn wrong_key_missing_signature_and_tampering_are_rejected() {
        let good = Codec::new(Some(b"right"), None, 1 << 20);
        let wrong = Codec::new(Some(b"wrong"), None, 1 << 20);
        let unsigned = Codec::new(None, None, 1 << 20);
        let frame = good.text_msg(3, "pay me");
        assert_eq!(
            wrong.decode(&frame),
            Err(DecodeError::BadSignature {
                id: 3,
                why: "bad signature"
            })
        );
        assert_eq!(
            good.decode(&unsigned.text_msg(3, "pay me")),
            Err(DecodeError::BadSignature {
                id: 3,
                why: "missing signature"
            })
        );
        let tampered = WsMessage::Text(text_of(&frame).replace("pay me", "pay us").into());
        assert_eq!(
            good.decode(&tampered),
            Err(DecodeError::BadSignature {
                id: 3,
                why: "bad signature"
            })
        );
        let renumbered = WsMessage::Text(text_of(&frame).replace(r#""id":3"#, r#""id":4"#).into());
        assert_eq!(
            good.decode(&renumbered),
            Err(DecodeError::BadSignature {
                id: 4,
                why: "bad signature"
            })
        );
        // Binary: flip one payload byte.
        let WsMessage::Binary(b) = good.binary_msg(5, b"abc") else {
            unreachable!()
        };
        let mut bad = b.to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(
            good.decode(&WsMessage::Binary(bad.into())),
            Err(DecodeError::BadSignature {
                id: 5,
                why: "bad signature"
            })
        );
    }

    #[test]
    fn malformed_frames_are_errors_not_panics() {
        let codec = Codec::new(None, None, 100);
        let cases: Vec<WsMessage> = vec![
            WsMessage::Text("not json".into()),
            WsMessage::Text(r#"{"v":1}"#.into()),
            WsMessage::Text(r#"{"v":1,"t":"msg","d":"x"}"#.into()),
            WsMessage::Text(r#"{"v":1,"t":"bogus"}"#.into()),
            WsMessage::Text(r#"{"v":"1","t":"msg"}"#.into()),
            WsMessage::Binary(Bytes::from_static(&[1, 2, 0])),
            WsMessage::Binary(Bytes::from_static(&[
                1, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0,
            ])),
        ];
        for frame in cases {
            assert!(
                matches!(codec.decode(&frame), Err(DecodeError::Malformed(_))),
                "{frame:?} -> {:?}",
                codec.decode(&frame)
            );
        }
        assert_eq!(
            codec.decode(&WsMessage::Text(r#"{"v":2,"t":"msg"}"#.into())),
            Err(DecodeError::UnknownVersion(2))
        );
        assert_eq!(
            codec.decode(&WsMessage::Binary(Bytes::from_static(&[9; 16]))),
            Err(DecodeError::UnknownVersion(9))
        );
        // Once a message id is readable, problems carry it, so the receiver can nack it.
        let with_id: [(WsMessage, &str); 3] = [
            (
                WsMessage::Text(r#"{"v":1,"t":"msg","id":11}"#.into()),
                "without `d`",
            ),
            (
                WsMessage::Binary(Bytes::from_static(&[
                    1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 13, 0, 0, 0, 9, 1, 2,
                ])),
                "header says",
            ),
            (
                WsMessage::Binary(Bytes::from_static(&[
                    1, 2, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 14, 0, 0, 0, 0,
                ])),
                "unknown flags",
            ),
        ];
        for (frame, why) in with_id {
            let err = codec.decode(&frame).err();
            assert!(
                err.as_ref().and_then(DecodeError::message_id).is_some(),
                "{frame:?}: {err:?}"
            );
            assert!(err.is_some_and(|e| e.to_string().contains(why)));
        }
    }

    #[test]
    fn decompression_is_bounded() {
        let sender = Codec::new(None, Some(1), 1 << 20);
        let receiver = Codec::new(None, None, 1000);
        let bomb = sender.text_msg(9, &"a".repeat(100_000));
        assert!(matches!(
            receiver.decode(&bomb),
            Err(DecodeError::BadPayload { id: 9, .. })
        ));
        let bomb = sender.binary_msg(9, &vec![0u8; 100_000]);
        assert!(matches!(
            receiver.decode(&bomb),
            Err(DecodeError::BadPayload { id: 9, .. })
        ));
    }

    #[test]
    fn json_strings_match_serde_json_with_and_without_escapes() {
        for text in [
            "plain",
            "",
            "quote \" inside",
            "back\\slash",
            "tab\tnew\nline\u{1}",
            "héllo ☃",
            "del \u{7f}",
        ] {
            let mut out = String::new();
            push_json_string(&mut out, text);
            assert_eq!(Some(out), serde_json::to_string(text).ok(), "{text:?}");
        }
    }

    #[test]
    fn control_frames_round_trip() {
        let codec = Codec::new(None, None, 100);
        assert_eq!(
            codec.decode(&control::welcome(12)),
            Ok(Inbound::Welcome { last: 12 })
        );
        assert_eq!(
            codec.decode(&control::ack_upto(5)),
            Ok(Inbound::AckUpTo { upto: 5 })
        );
        assert_eq!(
            codec.decode(&control::nack(5, "no")),
            Ok(Inbound::Nack {
                id: 5,
                reason: "no".into()
            })
        );
        assert_eq!(
            codec.decode(&control::ping(77)),
            Ok(Inbound::Ping { ts: 77 })
        );
        assert_eq!(
            codec.decode(&control::pong(77)),
            Ok(Inbound::Pong { ts: 77 })
        );
        assert_eq!(
            codec.decode(&control::hello("s\"1", 4, Some("tok"))),
            Ok(Inbound::Hello {
                sid: "s\"1".into(),
                last: 4,
                token: Some("tok".into())
            })
        );
        assert_eq!(
            codec.decode(&WsMessage::Text(
                r#"{"v":1,"t":"reject","reason":"bad token","final":true}"#.into()
            )),
            Ok(Inbound::Reject {
                reason: "bad token".into(),
                is_final: true
            })
        );
    }
}
