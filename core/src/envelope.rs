//! The Tether envelope, wire protocol version 2 (specified in `docs/PROTOCOL.md`; frames still
//! carry `"v":1`, revision 2 adds stream epochs to `hello`/`welcome`): JSON for
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
use crate::outbox::Payload;

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
    Hello(Hello),
    /// Server → client: the session is ready.
    Welcome(Welcome),
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

/// The session revision whose rules a `hello` or `welcome` asks for when it has no `rev`.
pub const REVISION_1: u64 = 1;
/// The session revision this implementation speaks: stream epochs (`docs/PROTOCOL.md`,
/// "Epochs: when a side loses its state").
pub const REVISION: u64 = 2;

/// A decoded `hello`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Session id.
    pub sid: String,
    /// Highest server message id the client has received (within `sep`).
    pub last: u64,
    /// Optional auth token.
    pub token: Option<String>,
    /// Session revision the client speaks: [`REVISION_1`] when absent.
    pub rev: u64,
    /// Revision 2: the epoch of the client's outbound stream (always set when `rev >= 2`).
    pub ep: Option<String>,
    /// Revision 2: the server epoch `last` counts in; `None` when the client accepted no
    /// welcome yet.
    pub sep: Option<String>,
}

/// A decoded `welcome`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// Highest client message id the server has received in this session.
    pub last: u64,
    /// Session revision of the server's answer: [`REVISION_1`] when absent.
    pub rev: u64,
    /// Revision 2: the epoch of the server's outbound stream for this session (always set when
    /// `rev >= 2`, `None` otherwise).
    pub ep: Option<String>,
    /// Revision 2: the server held this session for a different client epoch (the client lost
    /// its state). Always `false` when `rev < 2`.
    pub known: bool,
}

impl Welcome {
    /// A revision-1 welcome (no epochs).
    pub fn v1(last: u64) -> Welcome {
        Welcome {
            last,
            rev: REVISION_1,
            ep: None,
            known: false,
        }
    }
}

/// Whether `ep` is a valid stream epoch: 1 to 64 characters from `[0-9A-Za-z_-]`.
pub fn valid_epoch(ep: &str) -> bool {
    (1..=64).contains(&ep.len())
        && ep
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A revision-2 epoch field: required when `rev >= 2`, and then of valid syntax.
fn epoch_field(
    t: &str,
    field: &str,
    rev: u64,
    value: Option<String>,
) -> Result<Option<String>, DecodeError> {
    if rev < REVISION {
        return Ok(None);
    }
    match value {
        Some(ep) if valid_epoch(&ep) => Ok(Some(ep)),
        Some(_) => Err(DecodeError::Malformed(format!(
            "`{t}` with an invalid `{field}` (1-64 characters from [0-9A-Za-z_-])"
        ))),
        None => Err(missing(t, field)),
    }
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
    rev: Option<u64>,
    ep: Option<String>,
    sep: Option<String>,
    known: Option<bool>,
}

/// The rest of a control frame with one number after `{"v":1,"t":"`, up to the number, and what
/// the number makes.
type Numbered = (&'static [u8], fn(u64) -> Inbound);

/// The fast path's control frames: `control::numbered`'s shape, `{"v":1,"t":T,"FIELD":N}`.
const NUMBERED: [Numbered; 5] = [
    (br#"ack","upto":"#, |upto| Inbound::AckUpTo { upto }),
    (br#"ack","id":"#, |id| Inbound::Ack { id }),
    (br#"pong","ts":"#, |ts| Inbound::Pong { ts }),
    (br#"ping","ts":"#, |ts| Inbound::Ping { ts }),
    (br#"welcome","last":"#, |last| {
        Inbound::Welcome(Welcome::v1(last))
    }),
];

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

    /// The largest frame [`Codec::text_msg`] / [`Codec::binary_msg`] can make of this payload,
    /// whatever its id: what goes on the wire, after JSON escaping, the envelope's fields and
    /// the signature. Exact but for the id's digits (counted as 20); compression is used only
    /// when it makes the frame smaller, so it never makes it larger than this.
    pub(crate) fn wire_len_bound(&self, payload: &Payload) -> usize {
        wire_len_bound(payload, self.key.is_some())
    }

    /// Encode an application text message.
    pub fn text_msg(&self, id: u64, text: &str) -> WsMessage {
        let mut out = String::with_capacity(text.len() + 40);
        let _ = write!(out, r#"{{"v":1,"t":"msg","id":{id}"#);
        // Base64 makes the packed bytes a third larger, and escaping makes the plain text
        // larger: take the compressed form only when its frame is the smaller one.
        let packed = self.maybe_compress(text.as_bytes()).filter(|packed| {
            COMPRESSED_FIELDS_LEN + BASE64.encode_len(packed.len())
                < PLAIN_FIELD_LEN + json_string_len(text)
        });
        let sig = match packed {
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
            WsMessage::Text(t) => match self.decode_json_fast(t) {
                Some(inbound) => Ok(inbound),
                None => self.decode_json(t.as_str()),
            },
            WsMessage::Binary(b) => self.decode_binary(b),
            other => Err(DecodeError::Malformed(format!(
                "not a data frame: {other:?}"
            ))),
        }
    }

    /// The fast path for text frames: the exact shapes that Tether's encoders and the reference
    /// servers write for the frames of a busy session (`msg` without escapes, signature or
    /// compression; `ack`, `ping`, `pong`, `welcome`), taking the payload as a slice of the
    /// frame without copying it. `None` for anything else, including everything that is an
    /// error: [`Codec::decode_json`] (serde) then decides. Where this returns `Some(x)`, the
    /// serde path returns `Ok(x)`.
    fn decode_json_fast(&self, frame: &Utf8Bytes) -> Option<Inbound> {
        let bytes: &Bytes = frame.as_ref();
        let rest = bytes.strip_prefix(br#"{"v":1,"t":""#)?;
        if let Some(rest) = rest.strip_prefix(br#"msg","id":"#) {
            // With a key every msg must carry a valid signature: the serde path checks it.
            if self.key.is_some() {
                return None;
            }
            let (id, rest) = json_u64(rest)?;
            let d = rest.strip_prefix(br#","d":""#)?.strip_suffix(br#""}"#)?;
            // Without `"` in it, `d` is all of the string, and the frame ends with it. Without
            // `\` it has no escapes, so it is the text as it is. Raw control characters are
            // invalid JSON, and an oversized payload is an error: serde reports both. (`fold`
            // rather than `any`: no early exit, so the compiler can vectorize it.)
            let special = d.iter().fold(false, |found, &b| {
                found | (b == b'"') | (b == b'\\') | (b < 0x20)
            });
            if special || d.len() > self.max_inbound {
                return None;
            }
            let start = bytes.len() - br#""}"#.len() - d.len();
            // A cut at ASCII quotes of valid UTF-8 is valid UTF-8, so this check cannot fail.
            // It is about a third of this path's cost, but the only way from `Bytes` to
            // `Utf8Bytes` without `unsafe`, which this crate forbids.
            let text = Utf8Bytes::try_from(bytes.slice(start..start + d.len())).ok()?;
            return Some(Inbound::Msg {
                id,
                payload: Message::Text(Text(text)),
            });
        }
        let (make, rest) = NUMBERED
            .iter()
            .find_map(|(head, make)| Some((make, rest.strip_prefix(*head)?)))?;
        let (n, rest) = json_u64(rest)?;
        (rest == b"}").then(|| make(n))
    }

    /// The serde path for text frames: any valid JSON, every error.
    fn decode_json(&self, text: &str) -> Result<Inbound, DecodeError> {
        let raw: RawJson<'_> = serde_json::from_str(text)
            .map_err(|e| DecodeError::Malformed(format!("invalid JSON: {e}")))?;
        if raw.v != u64::from(PROTOCOL_VERSION) {
            return Err(DecodeError::UnknownVersion(raw.v));
        }
        let t = raw.t.as_ref();
        Ok(match t {
            "msg" => self.decode_json_msg(raw)?,
            "ack" => match (raw.id, raw.upto) {
                (_, Some(upto)) => Inbound::AckUpTo { upto },
                (Some(id), None) => Inbound::Ack { id },
                (None, None) => return Err(missing(t, "id")),
            },
            "nack" => Inbound::Nack {
                id: raw.id.ok_or_else(|| missing(t, "id"))?,
                reason: raw.reason.unwrap_or_default(),
            },
            "welcome" => {
                let rev = raw.rev.unwrap_or(REVISION_1);
                let ep = epoch_field(t, "ep", rev, raw.ep)?;
                Inbound::Welcome(Welcome {
                    last: raw.last.unwrap_or(0),
                    rev,
                    known: ep.is_some() && raw.known.unwrap_or(false),
                    ep,
                })
            }
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
            "hello" => {
                let rev = raw.rev.unwrap_or(REVISION_1);
                let ep = epoch_field(t, "ep", rev, raw.ep)?;
                let sep = match raw.sep {
                    None => None,
                    sep => epoch_field(t, "sep", rev, sep)?,
                };
                Inbound::Hello(Hello {
                    sid: raw.sid.ok_or_else(|| missing(t, "sid"))?,
                    last: raw.last.unwrap_or(0),
                    token: raw.token,
                    rev,
                    ep,
                    sep,
                })
            }
            other => return Err(DecodeError::Malformed(format!("unknown type {other:?}"))),
        })
    }

    /// A JSON `msg`: its id, then the payload (signature, compression, size limit).
    fn decode_json_msg(&self, raw: RawJson<'_>) -> Result<Inbound, DecodeError> {
        let id = raw.id.ok_or_else(|| missing("msg", "id"))?;
        // From here on the message has an id: its problems are nacked.
        let d = raw.d.ok_or_else(|| DecodeError::BadPayload {
            id,
            why: "`msg` without `d`".into(),
        })?;
        let sig =
            match &raw.sig {
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
                let packed = BASE64
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
        Ok(Inbound::Msg {
            id,
            payload: Message::Text(Text::from(text)),
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

    /// A revision-1 `hello`: open or resume session `sid` (for tests and reference; Tether
    /// sends [`hello_v2`]).
    pub fn hello(sid: &str, last: u64, token: Option<&str>) -> WsMessage {
        hello_with(sid, last, None, token)
    }

    /// A revision-2 `hello`: open or resume session `sid`, with the client's stream epoch `ep`
    /// and the server epoch `sep` that `last` counts in (`None` before the first welcome). The
    /// epochs must be valid ([`valid_epoch`]): the caller makes them.
    pub fn hello_v2(
        sid: &str,
        last: u64,
        ep: &str,
        sep: Option<&str>,
        token: Option<&str>,
    ) -> WsMessage {
        hello_with(sid, last, Some((ep, sep)), token)
    }

    fn hello_with(
        sid: &str,
        last: u64,
        epochs: Option<(&str, Option<&str>)>,
        token: Option<&str>,
    ) -> WsMessage {
        let mut out = String::from(r#"{"v":1,"t":"hello","sid":"#);
        push_json_string(&mut out, sid);
        let _ = write!(out, r#","last":{last}"#);
        if let Some((ep, sep)) = epochs {
            // Epochs are [0-9A-Za-z_-] only: nothing to escape.
            let _ = write!(out, r#","rev":{REVISION},"ep":"{ep}""#);
            if let Some(sep) = sep {
                let _ = write!(out, r#","sep":"{sep}""#);
            }
        }
        if let Some(token) = token {
            out.push_str(r#","token":"#);
            push_json_string(&mut out, token);
        }
        out.push('}');
        WsMessage::Text(out.into())
    }

    /// A revision-1 `welcome` (servers only; here for tests and reference).
    pub fn welcome(last: u64) -> WsMessage {
        numbered("welcome", "last", last)
    }

    /// A revision-2 `welcome` with the server's stream epoch `ep` (valid, [`valid_epoch`]) and
    /// `known` (servers only; here for tests and reference).
    pub fn welcome_v2(last: u64, ep: &str, known: bool) -> WsMessage {
        let mut out =
            format!(r#"{{"v":1,"t":"welcome","last":{last},"rev":{REVISION},"ep":"{ep}""#);
        if known {
            out.push_str(r#","known":true"#);
        }
        out.push('}');
        WsMessage::Text(out.into())
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

/// The JSON integer at the start of `s` and what follows it, when it fits a `u64` and is
/// written as JSON requires (no sign, no leading zero). The caller checks what follows, so
/// that `1.5` or `1e3` are refused there. `None` means "let serde decide".
fn json_u64(s: &[u8]) -> Option<(u64, &[u8])> {
    let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || (digits > 1 && s[0] == b'0') {
        return None;
    }
    let mut n = 0u64;
    for &b in &s[..digits] {
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some((n, &s[digits..]))
}

/// [`Codec::wire_len_bound`] for a codec that signs (`signed`) or not.
pub(crate) fn wire_len_bound(payload: &Payload, signed: bool) -> usize {
    match payload {
        Payload::Text(t) => {
            TEXT_FRAME_OVERHEAD
                + json_string_len(t.as_str())
                + if signed { TEXT_SIG_LEN } else { 0 }
        }
        Payload::Binary(b) => BINARY_HEADER_LEN + if signed { SIGNATURE_LEN } else { 0 } + b.len(),
    }
}

/// `{"v":1,"t":"msg","id":` + 20 digits + `,"d":` + `}`: a text frame without its string.
const TEXT_FRAME_OVERHEAD: usize = 22 + 20 + PLAIN_FIELD_LEN + 1;
/// `,"d":` before a plain text's string.
const PLAIN_FIELD_LEN: usize = 5;
/// `,"z":1,"d":"` and the closing `"` around a compressed text's base64.
const COMPRESSED_FIELDS_LEN: usize = 13;
/// `,"sig":"` + 64 hex digits + `"`.
const TEXT_SIG_LEN: usize = 8 + 64 + 1;

/// The length of `s` as a JSON string literal (quotes included), as [`push_json_string`]
/// writes it: `"`, `\` and the short escapes take two bytes, other control characters six
/// (`\u00XX`), everything else itself.
fn json_string_len(s: &str) -> usize {
    2 + s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum::<usize>()
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
    fn the_wire_length_bound_is_the_frame_length_with_a_20_digit_id() {
        let texts = [
            "",
            "plain",
            "quote \" and backslash \\",
            "\n\r\t\u{8}\u{c} short escapes",
            "\u{0}\u{1}\u{1f} long escapes",
            "non-ASCII é ✓ stays as it is, \u{7f} too",
        ];
        let id = u64::MAX; // 20 digits
        for key in [None, Some(&b"k"[..])] {
            let codec = Codec::new(key, None, 1 << 20);
            for t in texts {
                let frame = codec.text_msg(id, t);
                let payload = Payload::Text(Utf8Bytes::from(t));
                assert_eq!(codec.wire_len_bound(&payload), frame.len(), "{t:?}");
                assert!(codec.wire_len_bound(&payload) >= codec.text_msg(1, t).len());
            }
            for n in [0usize, 1, 1000] {
                let frame = codec.binary_msg(id, &vec![7u8; n]);
                let payload = Payload::Binary(Bytes::from(vec![7u8; n]));
                assert_eq!(codec.wire_len_bound(&payload), frame.len());
            }
        }
        // Compression never makes a frame larger than the bound, even when base64 outgrows
        // the packed bytes' savings.
        let codec = Codec::new(None, Some(1), 1 << 20);
        let noise: String = (0..3000u32)
            .map(|i| char::from(b'!' + ((i.wrapping_mul(2_654_435_761) >> 7) % 90) as u8))
            .collect();
        for t in ["a".repeat(5000), noise, "\u{1}".repeat(500)] {
            let payload = Payload::Text(Utf8Bytes::from(t.clone()));
            assert!(codec.text_msg(id, &t).len() <= codec.wire_len_bound(&payload));
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
    fn fast_path_takes_the_frames_tether_peers_send() {
        let codec = Codec::new(None, None, 1 << 20);
        let msg = |id: u64, text: &str| Inbound::Msg {
            id,
            payload: Message::Text(Text::from(text)),
        };
        let fast: Vec<(WsMessage, Inbound)> = vec![
            // Tether's own encoders.
            (codec.text_msg(1, "hello"), msg(1, "hello")),
            (
                codec.text_msg(u64::MAX, "héllo ☃ 😀"),
                msg(u64::MAX, "héllo ☃ 😀"),
            ),
            (codec.text_msg(0, ""), msg(0, "")),
            (control::ack_upto(5), Inbound::AckUpTo { upto: 5 }),
            (control::ping(77), Inbound::Ping { ts: 77 }),
            (
                control::pong(1_700_000_000_000),
                Inbound::Pong {
                    ts: 1_700_000_000_000,
                },
            ),
            (control::welcome(12), Inbound::Welcome(Welcome::v1(12))),
            // The reference servers (Python `json.dumps(..., separators=(",", ":"),
            // ensure_ascii=False)`, Node `JSON.stringify`, Rust `format!`): same order, same
            // spacing, non-ASCII written as it is.
            (
                WsMessage::Text(r#"{"v":1,"t":"msg","id":3,"d":"grüße {x}"}"#.into()),
                msg(3, "grüße {x}"),
            ),
            (
                WsMessage::Text(r#"{"v":1,"t":"ack","id":5}"#.into()),
                Inbound::Ack { id: 5 },
            ),
        ];
        for (frame, expected) in fast {
            let WsMessage::Text(utf8) = &frame else {
                unreachable!()
            };
            let decoded = codec.decode_json_fast(utf8);
            assert_eq!(decoded.as_ref(), Some(&expected), "{frame:?}");
            assert_eq!(codec.decode_json(utf8.as_str()), Ok(expected), "{frame:?}");
            // The payload is a slice of the frame, not a copy.
            if let Some(Inbound::Msg {
                payload: Message::Text(text),
                ..
            }) = decoded
            {
                let frame_range = utf8.as_str().as_bytes().as_ptr_range();
                assert!(text.is_empty() || frame_range.contains(&text.as_str().as_ptr()));
            }
        }
    }

    #[test]
    fn fast_path_leaves_other_shapes_to_serde() {
        let codec = Codec::new(None, None, 1 << 20);
        let signed = Codec::new(Some(b"k"), None, 1 << 20);
        let packed = Codec::new(None, Some(1), 1 << 20);
        let small = Codec::new(None, None, 4);
        let slow: Vec<(&Codec, WsMessage)> = vec![
            (&signed, signed.text_msg(1, "hello")),
            (&signed, codec.text_msg(1, "hello")),
            (&packed, packed.text_msg(1, &"a".repeat(100))),
            (&codec, codec.text_msg(1, "quote \" and \\ and \n")),
            (&small, codec.text_msg(1, "hello")),
            (&codec, control::nack(5, "no")),
            (
                &codec,
                WsMessage::Text(r#"{"v":1,"t":"ack","upto":5} "#.into()),
            ),
            (
                &codec,
                WsMessage::Text(r#"{"v":1,"t":"ack","upto":05}"#.into()),
            ),
            (
                &codec,
                WsMessage::Text(r#"{"v":1, "t":"ack","upto":5}"#.into()),
            ),
            (
                &codec,
                WsMessage::Text(r#"{"v":1,"t":"ack","upto":18446744073709551616}"#.into()),
            ),
        ];
        for (codec, frame) in slow {
            let WsMessage::Text(utf8) = &frame else {
                unreachable!()
            };
            assert_eq!(codec.decode_json_fast(utf8), None, "{frame:?}");
        }
    }

    /// splitmix64: a small deterministic generator for the property test below.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn one_in(&mut self, n: usize) -> bool {
            self.below(n) == 0
        }
        fn pick<T: Copy>(&mut self, items: &[T]) -> T {
            items[self.below(items.len())]
        }
    }

    /// Characters for payloads and mutations: plain ASCII, multi-byte UTF-8, and everything JSON
    /// treats specially.
    const CHARS: [char; 24] = [
        'a', 'b', 'z', '0', '9', ' ', '~', '/', '{', '}', ',', ':', 'é', '☃', '😀', '\u{7f}',
        '\u{2028}', '"', '\\', '\n', '\t', '\u{0}', '\u{1}', '\u{1f}',
    ];

    /// A number as written in a frame, and whether it is valid JSON for a `u64`.
    fn number(rng: &mut Rng) -> (String, bool) {
        let valid = |n: u64| (n.to_string(), true);
        let invalid = |s: &str| (s.to_string(), false);
        match rng.below(16) {
            0 => valid(0),
            1..=4 => valid(rng.next() % 1000),
            5 | 6 => valid(rng.next() >> rng.below(64)),
            7 => valid(u64::MAX),
            8 => invalid(rng.pick(&["18446744073709551616", "99999999999999999999999"])),
            9 => invalid(rng.pick(&["01", "00", "007", "0123456789"])),
            10 => invalid(rng.pick(&["-1", "+1", "-0", "--1"])),
            11 => invalid(rng.pick(&["1.0", "1.5", "1e3", "1E3", "0e0", "1.", ".5"])),
            12 => invalid(rng.pick(&["", " 1", "1 ", "true", "null", "\"1\"", "[1]"])),
            _ => valid(rng.next()),
        }
    }

    /// A JSON string literal with its text, and whether it is written without escapes.
    fn string(rng: &mut Rng) -> (String, bool) {
        let max_len = rng.pick(&[0, 1, 5, 64, 200]);
        let len = rng.below(max_len + 1);
        let plain = rng.one_in(2);
        let text: String = (0..len)
            .map(|_| {
                if plain || !rng.one_in(8) {
                    rng.pick(&CHARS[..17])
                } else {
                    rng.pick(&CHARS[17..])
                }
            })
            .collect();
        let raw = !text.contains(['"', '\\']) && !text.contains(|c: char| c < ' ');
        if rng.one_in(4) {
            // Escaped by serde (`\"`, `\\`, `\n`, `\u0001`, ...).
            let quoted = serde_json::to_string(&text).unwrap_or_default();
            let escaped = quoted.len() != text.len() + 2;
            (quoted, !escaped)
        } else {
            // Written as it is, even when that is invalid JSON or ends the string early.
            (format!("\"{text}\""), raw)
        }
    }

    /// One frame for the property test, and whether it has a shape the fast path must take
    /// (given no key and a high inbound limit).
    fn frame(rng: &mut Rng) -> (String, bool) {
        let heads = [
            r#"{"v":1,"t":"#,
            r#"{"v":2,"t":"#,
            r#"{"v":01,"t":"#,
            r#"{ "v":1,"t":"#,
            r#"{"v":1, "t":"#,
            r#"{"v":1.0,"t":"#,
            r#"{"t":"#,
            r#"{"v":1,"v":1,"t":"#,
        ];
        let canonical_head = !rng.one_in(8);
        let head = if canonical_head {
            heads[0]
        } else {
            rng.pick(&heads[1..])
        };
        let (number, valid_number) = number(rng);
        let (body, fast) = if rng.one_in(2) {
            let (d, plain) = string(rng);
            let id_key = if rng.one_in(20) { "ids" } else { "id" };
            let (before, after) = match rng.below(12) {
                0 => (r#","z":0"#, ""),
                1 => ("", r#","z":1"#),
                2 => ("", r#","sig":"00""#),
                3 => ("", r#","d":"again""#),
                4 => ("", r#","x":null"#),
                _ => ("", ""),
            };
            let body = format!(r#""msg","{id_key}":{number}{before},"d":{d}{after}}}"#);
            let fast =
                id_key == "id" && valid_number && plain && before.is_empty() && after.is_empty();
            (body, fast)
        } else {
            let (t, field) = if rng.one_in(4) {
                let t = rng.pick(&["ack", "ping", "pong", "welcome", "nack", "msg", "bogus"]);
                (t, rng.pick(&["upto", "id", "ts", "last", "d"]))
            } else {
                rng.pick(&[
                    ("ack", "upto"),
                    ("ack", "id"),
                    ("ping", "ts"),
                    ("pong", "ts"),
                    ("welcome", "last"),
                ])
            };
            let fast = matches!(
                (t, field),
                ("ack", "upto" | "id") | ("ping" | "pong", "ts") | ("welcome", "last")
            );
            (
                format!(r#""{t}","{field}":{number}}}"#),
                fast && valid_number,
            )
        };
        mangle(rng, format!("{head}{body}"), fast && canonical_head)
    }

    /// Sometimes spoil a generated frame: trailing text, a cut, a changed character (each of
    /// which the fast path must leave to serde).
    fn mangle(rng: &mut Rng, mut frame: String, mut fast: bool) -> (String, bool) {
        if rng.one_in(8) {
            frame.push_str(rng.pick(&[" ", "\n", "}", "x", ",", "\u{0}", "é"]));
            fast = false;
        }
        if rng.one_in(8) {
            let cut = rng.below(frame.len() + 1);
            let cut = (0..=cut)
                .rev()
                .find(|&i| frame.is_char_boundary(i))
                .unwrap_or(0);
            frame.truncate(cut);
            fast = false;
        }
        if rng.one_in(8) {
            let mut chars: Vec<char> = frame.chars().collect();
            if !chars.is_empty() {
                let at = rng.below(chars.len());
                chars[at] = rng.pick(&CHARS);
            }
            frame = chars.into_iter().collect();
            fast = false;
        }
        (frame, fast)
    }

    #[test]
    fn fast_path_agrees_with_serde_on_generated_frames() {
        let codecs = [
            Codec::new(None, None, 1 << 20),
            Codec::new(None, None, 16),
            Codec::new(Some(b"k"), None, 1 << 20),
        ];
        let mut rng = Rng(0x7e7e_u64);
        let (mut taken, mut errors) = ([0; 3], [0; 3]);
        for _ in 0..20_000 {
            let (text, must_be_fast) = frame(&mut rng);
            let utf8 = Utf8Bytes::from(text.as_str());
            for (i, codec) in codecs.iter().enumerate() {
                let slow = codec.decode_json(&text);
                let fast = codec.decode_json_fast(&utf8);
                errors[i] += usize::from(slow.is_err());
                if let Some(fast) = fast {
                    taken[i] += 1;
                    assert_eq!(Ok(fast), slow, "codec {i}: {text:?}");
                } else {
                    assert!(i > 0 || !must_be_fast, "not taken: {text:?}");
                }
                assert_eq!(
                    codec.decode(&WsMessage::Text(utf8.clone())),
                    slow,
                    "codec {i}: {text:?}"
                );
            }
        }
        // The generator reaches both sides: many frames for the fast path, many errors.
        // (About a quarter of the frames take the fast path and two thirds are errors.)
        assert!(
            taken[0] > 3_000 && errors[0] > 5_000,
            "{taken:?} {errors:?}"
        );
    }

    #[test]
    fn control_frames_round_trip() {
        let codec = Codec::new(None, None, 100);
        assert_eq!(
            codec.decode(&control::welcome(12)),
            Ok(Inbound::Welcome(Welcome::v1(12)))
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
            Ok(Inbound::Hello(Hello {
                sid: "s\"1".into(),
                last: 4,
                token: Some("tok".into()),
                rev: 1,
                ep: None,
                sep: None,
            }))
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

    #[test]
    fn revision_2_handshake_frames() {
        let codec = Codec::new(None, None, 100);
        let t = |s: &str| codec.decode(&WsMessage::Text(s.to_owned().into()));
        let welcome = |last, ep: &str, known| {
            Ok(Inbound::Welcome(Welcome {
                last,
                rev: 2,
                ep: Some(ep.into()),
                known,
            }))
        };
        assert_eq!(
            codec.decode(&control::welcome_v2(12, "c4a8e1f0b2d39576", false)),
            welcome(12, "c4a8e1f0b2d39576", false)
        );
        assert_eq!(
            codec.decode(&control::welcome_v2(0, "a-Z_9", true)),
            welcome(0, "a-Z_9", true)
        );
        // Unknown fields are still ignored, and order does not matter.
        assert_eq!(
            t(r#"{"known":false,"ep":"e1","x":[1],"v":1,"t":"welcome","last":3,"rev":2}"#),
            welcome(3, "e1", false)
        );
        // A future revision keeps the revision-2 fields.
        assert_eq!(
            t(r#"{"v":1,"t":"welcome","last":3,"rev":3,"ep":"e1"}"#).map(|i| match i {
                Inbound::Welcome(w) => (w.rev, w.ep),
                other => (0, Some(format!("{other:?}"))),
            }),
            Ok((3, Some("e1".into())))
        );
        // A revision-1 welcome: the revision-2 fields mean nothing there.
        assert_eq!(
            t(r#"{"v":1,"t":"welcome","last":3,"ep":"e1","known":true}"#),
            Ok(Inbound::Welcome(Welcome::v1(3)))
        );
        // With rev 2 the epoch is required and must be valid.
        for bad in [
            r#"{"v":1,"t":"welcome","last":3,"rev":2}"#,
            r#"{"v":1,"t":"welcome","last":3,"rev":2,"ep":""}"#,
            r#"{"v":1,"t":"welcome","last":3,"rev":2,"ep":"has space"}"#,
            r#"{"v":1,"t":"welcome","last":3,"rev":2,"ep":"é"}"#,
            r#"{"v":1,"t":"hello","sid":"s","last":0,"rev":2}"#,
            r#"{"v":1,"t":"hello","sid":"s","last":0,"rev":2,"ep":"ok","sep":"no/slash"}"#,
        ] {
            assert!(matches!(t(bad), Err(DecodeError::Malformed(_))), "{bad}");
        }
        let long = "e".repeat(64);
        assert!(valid_epoch(&long) && !valid_epoch(&format!("{long}e")));
        assert_eq!(
            codec.decode(&control::hello_v2(
                "s",
                7,
                "9b1d6f3c2a7e4d10",
                Some("e2"),
                None
            )),
            Ok(Inbound::Hello(Hello {
                sid: "s".into(),
                last: 7,
                token: None,
                rev: 2,
                ep: Some("9b1d6f3c2a7e4d10".into()),
                sep: Some("e2".into()),
            }))
        );
        // The fast path leaves revision-2 welcomes to serde.
        let WsMessage::Text(frame) = control::welcome_v2(12, "e1", false) else {
            unreachable!()
        };
        assert_eq!(codec.decode_json_fast(&frame), None);
    }
}
