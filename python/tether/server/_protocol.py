"""Frames of the Tether protocol (docs/PROTOCOL.md): parsing, encoding, signatures, compression.

Pure functions and small value types; no I/O. The server (``_server.py``) and the stores use
them; the stores keep outbound messages as the encoded frames built here, so a resend after a
reconnect, on any instance, is byte-identical to the first write (same id, same signature).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import struct
import zlib
from dataclasses import dataclass
from typing import Any, Dict, Optional, Union

#: A frame as written to the WebSocket: ``str`` for text frames, ``bytes`` for binary frames.
Frame = Union[str, bytes]

#: Binary message header: version, kind, flags, reserved, id, carried length (PROTOCOL.md).
HEADER = struct.Struct(">BBBBQI")
_EPOCH = re.compile(r"[0-9A-Za-z_-]{1,64}")


class Bad(Exception):
    """An unusable inbound frame: reported and, if it carried a msg id, nacked; the link stays."""

    def __init__(self, reason: str, msg_id: Optional[int]) -> None:
        super().__init__(reason, msg_id)
        self.reason = reason
        self.msg_id = msg_id


@dataclass(frozen=True)
class Hello:
    """A parsed ``hello``: the session id, the client's ``last``, and the revision-2 fields."""

    sid: str
    last: int
    token: Optional[str]
    rev: int  # 1 or 2
    ep: Optional[str]  # the client's stream epoch (revision 2 only)
    sep: Optional[str]  # the server epoch ``last`` counts in (revision 2, may be absent)


@dataclass(frozen=True)
class Msg:
    """An inbound ``msg`` as carried, not yet verified or inflated."""

    id: int
    kind: int  # 1 = text, 2 = binary
    z: int  # 1 = carried payload is raw DEFLATE
    carried: bytes
    sig: Optional[str]


@dataclass(frozen=True)
class Control:
    """Any other valid inbound frame: ``ack``, ``nack``, ``ping`` or ``pong``."""

    t: str
    fields: Dict[str, Any]


def frame(**fields: Any) -> str:
    """A JSON control frame with ``"v":1``, compact, as the protocol writes it."""
    return json.dumps({"v": 1, **fields}, separators=(",", ":"), ensure_ascii=False)


def is_int(x: object, least: int = 0) -> bool:
    """A JSON integer id in range (``type``, not isinstance: JSON ``true`` is no id)."""
    return type(x) is int and least <= x < 1 << 64


def valid_sid(sid: object) -> bool:
    """1-128 printable ASCII characters."""
    return isinstance(sid, str) and 1 <= len(sid) <= 128 and all(" " <= c <= "~" for c in sid)


def valid_epoch(ep: object) -> bool:
    """1-64 characters from ``[0-9A-Za-z_-]``."""
    return isinstance(ep, str) and _EPOCH.fullmatch(ep) is not None


def new_epoch() -> str:
    """A fresh stream epoch: 16 random lowercase hex digits, as Tether uses."""
    return secrets.token_hex(8)


def parse_hello(raw: Frame) -> Optional[Hello]:
    """The hello in ``raw``, or None if it is not a valid one."""
    if not isinstance(raw, str):
        return None
    try:
        f = json.loads(raw)
    except ValueError:
        return None
    if not (isinstance(f, dict) and f.get("v") == 1 and f.get("t") == "hello"
            and valid_sid(f.get("sid")) and is_int(f.get("last"))):
        return None
    token = f.get("token")
    if token is not None and not isinstance(token, str):
        return None
    rev = f.get("rev")
    if is_int(rev, 2):
        # A later revision is served by the revision-2 rules (its welcome says rev 2).
        ep, sep = f.get("ep"), f.get("sep")
        if not valid_epoch(ep) or (sep is not None and not valid_epoch(sep)):
            return None
        return Hello(f["sid"], f["last"], token, 2, ep, sep)
    return Hello(f["sid"], f["last"], token, 1, None, None)


def parse(raw: Frame) -> Union[Msg, Control]:
    """One inbound frame after the handshake; raises :class:`Bad` for an unusable one."""
    if isinstance(raw, bytes):
        return _parse_binary(raw)
    try:
        f = json.loads(raw)
    except ValueError:
        f = None
    t = f.get("t") if isinstance(f, dict) else None
    msg_id = f["id"] if isinstance(f, dict) and t == "msg" and is_int(f.get("id"), 1) else None
    if not isinstance(f, dict) or t is None or f.get("v") != 1:
        raise Bad("malformed", msg_id)
    if t == "msg" and msg_id is not None and isinstance(f.get("d"), str) and f.get("z", 0) in (0, 1):
        z = 1 if f.get("z") else 0
        try:
            carried = base64.b64decode(f["d"], validate=True) if z else f["d"].encode()
        except ValueError:
            raise Bad("corrupt", msg_id) from None
        sig = f.get("sig")
        return Msg(msg_id, 1, z, carried, sig if isinstance(sig, str) else None)
    if t == "ack" and (is_int(f.get("id")) or is_int(f.get("upto"))):
        return Control(t, f)
    if t == "nack" and is_int(f.get("id")):
        return Control(t, f)
    if t == "ping" and is_int(f.get("ts")):
        return Control(t, f)
    if t == "pong":
        return Control(t, f)
    raise Bad("malformed", msg_id)


def _parse_binary(raw: bytes) -> Msg:
    if len(raw) < HEADER.size:
        raise Bad("malformed", None)
    version, kind, flags, reserved, id, length = HEADER.unpack_from(raw)
    start = HEADER.size + (32 if flags & 2 else 0)
    if version != 1 or kind != 2 or flags & ~3 or reserved or id < 1 or len(raw) != start + length:
        raise Bad("malformed", id if id >= 1 else None)  # e.g. a header that lies about L
    sig = raw[HEADER.size:start].hex() if flags & 2 else None
    return Msg(id, 2, flags & 1, raw[start:], sig)


def sign(key: bytes, kind: int, id: int, z: int, carried: bytes) -> str:
    """HMAC-SHA256 over version | kind | id (8 bytes BE) | compressed flag | payload as carried."""
    data = bytes([1, kind]) + id.to_bytes(8, "big") + bytes([z]) + carried
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def verify(key: Optional[bytes], m: Msg) -> bool:
    """True without a key; with one, the message's signature must match."""
    if key is None:
        return True
    return m.sig is not None and hmac.compare_digest(
        m.sig.encode(), sign(key, m.kind, m.id, m.z, m.carried).encode())


def payload(m: Msg, max_size: int) -> Union[str, bytes]:
    """The application payload of a verified msg: inflated (bounded) and, for text, decoded."""
    data = _inflate(m.carried, m.id, max_size) if m.z else m.carried
    if len(data) > max_size:
        raise Bad("too large", m.id)
    if m.kind == 1:
        try:
            return data.decode()
        except UnicodeDecodeError:
            raise Bad("corrupt", m.id) from None
    return data


def _inflate(data: bytes, id: int, max_size: int) -> bytes:
    inflater = zlib.decompressobj(wbits=-15)
    try:
        out = inflater.decompress(data, max_size + 1)  # bounded: no inflation bombs
    except zlib.error:
        raise Bad("corrupt", id) from None
    if len(out) > max_size:
        raise Bad("too large", id)
    if not inflater.eof:
        raise Bad("corrupt", id)  # a truncated stream
    return out


def encode_msg(id: int, data: Union[str, bytes], key: Optional[bytes],
               compression_threshold: Optional[int]) -> Frame:
    """The frame for server msg ``id``: text for ``str``, binary for ``bytes``."""
    kind, carried, z = (1, data.encode(), 0) if isinstance(data, str) else (2, bytes(data), 0)
    if compression_threshold is not None and len(carried) >= compression_threshold:
        deflate = zlib.compressobj(wbits=-15)  # raw DEFLATE, no zlib header
        packed = deflate.compress(carried) + deflate.flush()
        if len(packed) < len(carried):
            carried, z = packed, 1
    sig = sign(key, kind, id, z, carried) if key is not None else None
    if kind == 2:
        head = HEADER.pack(1, 2, z | (2 if sig else 0), 0, id, len(carried))
        return head + (bytes.fromhex(sig) if sig else b"") + carried
    extra: Dict[str, Any] = {"z": 1} if z else {}
    if sig:
        extra["sig"] = sig
    d = base64.b64encode(carried).decode() if z else data
    return frame(t="msg", id=id, d=d, **extra)


def frame_to_bytes(f: Frame) -> bytes:
    """A frame as a store keeps it: text frames as UTF-8 (they start with ``{``), binary as is
    (they start with version byte 1), so the two never collide."""
    return f.encode() if isinstance(f, str) else f


def frame_from_bytes(b: bytes) -> Frame:
    """The inverse of :func:`frame_to_bytes`."""
    return b.decode() if b[:1] == b"{" else b
