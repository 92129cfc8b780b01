#!/usr/bin/env python3
"""A Tether protocol reference server (docs/PROTOCOL.md, revision 2 with stream epochs, and
revision 1 for clients that say no `rev`, or for all with `--rev 1`) on the Python `websockets`
library.

The protocol core (sessions, epochs, hello/welcome, msg/ack/nack, dedup, resend, signatures,
compression) is the first half of this file; the second half is the command line and the
stdin control channel that Tether's tests drive. The application on top just records every
delivered message and echoes it back as a new server message.

    tether_server.py [--port N] [--token T] [--key K] [--compression-threshold N] [--max-size N]
                     [--rev 1|2]

Prints `PORT <n>` once listening on 127.0.0.1, then answers each stdin line with one line,
`OK ...` or `ERR ...`; exits when stdin closes. Commands: drop, close <code> [reason],
stall on|off, reject-next final|transient <reason...>, send <sid> <text...>, restart, stats,
dump <path>, quit (see tests/peers/README.md).
"""

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import re
import secrets
import struct
import sys
import zlib

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

HELLO_TIMEOUT = 10  # seconds a new connection has to say hello
HEADER = struct.Struct(">BBBBQI")  # binary msg: version, kind, flags, reserved, id, length
EPOCH = re.compile(r"[0-9A-Za-z_-]{1,64}")  # the syntax of `ep` and `sep`

args = None  # the parsed command line
sessions = {}  # sid -> Session, kept for the life of the process (also across `restart`)
links = set()  # every TCP connection, upgraded or not: what `drop`, `stall`, `restart` act on
running = None  # asyncio.Event, cleared while stalled: writers wait on it
bad_signatures = 0
reject_next = None  # (final, reason) for the next hello, set by `reject-next`


class Session:
    def __init__(self):
        self.ep = secrets.token_hex(8)  # our outbound stream's epoch: new with every new state
        self.cep = None  # the client stream's epoch that `last_in` counts in (None: no rev-2 one)
        self.last_in = 0  # highest client msg id delivered to the application
        self.next_out = 1  # id of the next server msg
        self.unacked = {}  # server id -> encoded frame, in id order, until the client acks it
        self.link = None  # the connection currently serving this session, if any
        self.delivered = self.duplicates = 0
        self.log = []  # delivered payloads, for `dump`


class Bad(Exception):
    """Bad(reason, msg_id or None): an unusable frame, reported and, if it had a msg id, nacked."""


class Link(ServerConnection):
    """A connection whose writes go through one queue, so they keep their order and `stall` can
    hold them back; tracked from the moment TCP connects so `stall` also freezes handshakes."""

    def connection_made(self, transport):
        super().connection_made(transport)
        links.add(self)
        self.outbox = asyncio.Queue()  # frames (str/bytes) or (code, reason) to close
        self.writer = asyncio.ensure_future(self.write_all())
        # Later, not now: before Python 3.11 asyncio starts reading only after this returns.
        asyncio.get_running_loop().call_soon(lambda: running.is_set() or transport.pause_reading())

    def connection_lost(self, exc):
        links.discard(self)
        self.writer.cancel()
        super().connection_lost(exc)

    def put(self, item):
        self.outbox.put_nowait(item)

    async def write_all(self):
        while True:
            item = await self.outbox.get()
            await running.wait()
            try:
                await (self.close(*item) if isinstance(item, tuple) else self.send(item))
            except ConnectionClosed:
                return


def frame(**fields):
    return json.dumps({"v": 1, **fields}, separators=(",", ":"), ensure_ascii=False)


def is_int(x, least=0):
    return type(x) is int and least <= x < 1 << 64  # `type`, not isinstance: JSON true is no id


def valid_sid(sid):
    return isinstance(sid, str) and 1 <= len(sid) <= 128 and all(" " <= c <= "~" for c in sid)


def valid_epoch(ep):
    return isinstance(ep, str) and EPOCH.fullmatch(ep) is not None


def hello_rev(hello):
    """The session revision to serve a hello with: 2 when both sides speak it (the client says
    `rev` >= 2), else 1; None for a revision-2 hello with a malformed `ep` or `sep`."""
    if not (args.rev >= 2 and is_int(hello.get("rev"), 2)):
        return 1  # revision 1 ignores `ep` and `sep` (unknown fields)
    if not (valid_epoch(hello.get("ep")) and ("sep" not in hello or valid_epoch(hello["sep"]))):
        return None
    return 2  # a later revision is answered with ours, 2


def sign(kind, id, z, carried):
    data = bytes([1, kind]) + id.to_bytes(8, "big") + bytes([z]) + carried
    return hmac.new(args.key.encode(), data, hashlib.sha256).hexdigest()


def encode_msg(id, payload):
    """The frame for server msg `id`, built once: a resend after reconnect is byte-identical."""
    kind, carried, z = (1, payload.encode(), 0) if isinstance(payload, str) else (2, payload, 0)
    if args.compression_threshold is not None and len(carried) >= args.compression_threshold:
        deflate = zlib.compressobj(wbits=-15)  # raw DEFLATE, no zlib header
        packed = deflate.compress(carried) + deflate.flush()
        if len(packed) < len(carried):
            carried, z = packed, 1
    sig = sign(kind, id, z, carried) if args.key is not None else None
    if kind == 2:
        head = HEADER.pack(1, 2, z | (2 if sig else 0), 0, id, len(carried))
        return head + (bytes.fromhex(sig) if sig else b"") + carried
    extra = {"z": 1} if z else {}
    extra.update({"sig": sig} if sig else {})
    return frame(t="msg", id=id, d=base64.b64encode(carried).decode() if z else payload, **extra)


def app_send(session, payload):
    """Send one application message: number it, keep it until acked, write it if connected."""
    id = session.next_out
    session.next_out += 1
    session.unacked[id] = encode_msg(id, payload)
    if session.link:
        session.link.put(session.unacked[id])
    return id


async def refuse(ws, reject, code, reason):
    if reject:
        ws.put(frame(t="reject", reason=reject[1], final=reject[0]))
    ws.put((code, reason))
    await ws.wait_closed()  # returning earlier would let the library close first


async def handshake(ws):
    """Wait for hello, then reject it or answer welcome and resend; the session or None."""
    global reject_next
    try:
        raw = await asyncio.wait_for(ws.recv(), HELLO_TIMEOUT)
        hello = json.loads(raw) if isinstance(raw, str) else None
    except asyncio.TimeoutError:
        return await refuse(ws, None, 1008, "no hello")
    except ValueError:
        hello = None
    if not (isinstance(hello, dict) and hello.get("v") == 1 and hello.get("t") == "hello"
            and valid_sid(hello.get("sid")) and is_int(hello.get("last"))
            and hello_rev(hello) is not None):
        return await refuse(ws, None, 1002, "expected hello")
    if reject_next:
        reject, reject_next = reject_next, None
        return await refuse(ws, reject, 1008 if reject[0] else 1013, "rejected")
    if args.token is not None and hello.get("token") != args.token:
        return await refuse(ws, (True, "bad token"), 1008, "rejected")
    session = sessions.setdefault(hello["sid"], Session())
    if session.link:  # the client reconnected before we noticed its old link died
        session.link.put((1000, "session resumed on a new connection"))
    if hello_rev(hello) == 1:
        # Revision 1: `last` always counts in our one stream, and from now on `last_in` counts
        # in a client stream without an epoch.
        session.cep = None
        ws.put(frame(t="welcome", last=session.last_in))
        last = hello["last"]
    else:
        # A client stream other than the one `last_in` counts in (another epoch, or one without
        # an epoch): the client lost its state and numbers from 1 again, so none of its ids is
        # a duplicate. A session that never saw a client stream (made by the application's
        # `send`) just takes the client's epoch: nothing was lost.
        known = session.cep != hello["ep"] and (session.cep is not None or session.last_in > 0)
        if session.cep != hello["ep"]:
            session.cep = hello["ep"]
            session.last_in = 0
        extra = {"known": True} if known else {}
        ws.put(frame(t="welcome", last=session.last_in, rev=2, ep=session.ep, **extra))
        # `last` counts in our stream only if the client names it; otherwise resend everything.
        last = hello["last"] if hello.get("sep") == session.ep else 0
    for id in [id for id in session.unacked if id <= last]:
        del session.unacked[id]  # the client has these: they count as acknowledged
    for encoded in session.unacked.values():
        ws.put(encoded)  # the rest, in order, before anything new
    session.link = ws
    return session


def parse_binary(raw):
    if len(raw) < HEADER.size:
        raise Bad("malformed", None)
    version, kind, flags, reserved, id, length = HEADER.unpack_from(raw)
    start = HEADER.size + (32 if flags & 2 else 0)
    if version != 1 or kind != 2 or flags & ~3 or reserved or id < 1 or len(raw) != start + length:
        raise Bad("malformed", id if id >= 1 else None)  # e.g. a header that lies about L
    return id, flags & 1, raw[start:], raw[HEADER.size:start].hex() if flags & 2 else None


def on_frame(ws, session, raw):
    if isinstance(raw, bytes):
        return on_msg(ws, session, 2, *parse_binary(raw))
    try:
        f = json.loads(raw)
    except ValueError:
        f = None
    t = f.get("t") if isinstance(f, dict) else None
    msg_id = f["id"] if t == "msg" and is_int(f.get("id"), 1) else None
    if t is None or f.get("v") != 1:
        raise Bad("malformed", msg_id)
    if t == "msg" and msg_id and isinstance(f.get("d"), str) and f.get("z", 0) in (0, 1):
        try:
            carried = base64.b64decode(f["d"], validate=True) if f.get("z") else f["d"].encode()
        except ValueError:
            raise Bad("corrupt", msg_id)
        on_msg(ws, session, 1, msg_id, 1 if f.get("z") else 0, carried, f.get("sig"))
    elif t == "ack" and (is_int(f.get("id")) or is_int(f.get("upto"))):
        upto = f["upto"] if is_int(f.get("upto")) else 0
        for id in [id for id in session.unacked if id == f.get("id") or id <= upto]:
            del session.unacked[id]
    elif t == "nack" and is_int(f.get("id")):
        session.unacked.pop(f["id"], None)  # refused for good: never resend it
    elif t == "ping" and is_int(f.get("ts")):
        ws.put(frame(t="pong", ts=f["ts"]))
    elif t != "pong":
        raise Bad("malformed", msg_id)


def on_msg(ws, session, kind, id, z, carried, sig):
    global bad_signatures
    if args.key is not None and not (isinstance(sig, str) and hmac.compare_digest(
            sig.encode(), sign(kind, id, z, carried).encode())):
        bad_signatures += 1
        raise Bad("bad signature", id)  # checked first, before dedup and inflate
    if id <= session.last_in:
        session.duplicates += 1  # a resend of something we have: ack again, don't deliver
        return ws.put(frame(t="ack", upto=session.last_in))
    payload = inflate(carried, id) if z else carried
    if kind == 1:
        try:
            payload = payload.decode()
        except UnicodeDecodeError:
            raise Bad("corrupt", id)
    session.last_in = id
    ws.put(frame(t="ack", upto=id))
    session.delivered += 1
    session.log.append(payload if kind == 1 else "b64:" + base64.b64encode(payload).decode())
    app_send(session, payload)  # the application: echo it as a new server msg


def inflate(data, id):
    inflater = zlib.decompressobj(wbits=-15)
    try:
        out = inflater.decompress(data, args.max_size + 1)  # bounded: no inflation bombs
    except zlib.error:
        raise Bad("corrupt", id)
    if len(out) > args.max_size:
        raise Bad("too large", id)
    if not inflater.eof:
        raise Bad("corrupt", id)  # truncated stream
    return out


async def handler(ws):
    session = None
    try:
        session = await handshake(ws)
        while session:
            raw = await ws.recv()
            try:
                on_frame(ws, session, raw)
            except Bad as bad:  # reported, nacked if it had a msg id; the link stays up
                reason, id = bad.args
                print(f"tether_server: {reason} (msg id {id})", file=sys.stderr, flush=True)
                if id is not None:
                    ws.put(frame(t="nack", id=id, reason=reason))
    except ConnectionClosed:
        pass
    finally:
        if session and session.link is ws:
            session.link = None


# ---- command line and control channel (for tests; not part of the protocol) ----


async def listen(port):
    # No library keepalive (the protocol has its own ping) and no handshake timeout: a
    # stalled server must keep connections open. compression=None: Tether compresses itself.
    return await serve(handler, "127.0.0.1", port, create_connection=Link, compression=None,
                       max_size=args.max_size, ping_interval=None, open_timeout=None)


async def command(line, server):
    """Runs one control command; returns (answer, server) since `restart` replaces the server."""
    global reject_next
    name, _, rest = line.partition(" ")
    if name == "drop":
        for link in list(links):
            link.transport.abort()  # TCP reset, no close frame
    elif name == "close":
        code, _, reason = rest.partition(" ")
        if not (code.isdigit() and 1000 <= int(code) <= 4999):
            return "ERR bad close code", server
        for link in server.connections:
            link.put((int(code), reason))
    elif name == "stall" and rest in ("on", "off"):
        for link in links:  # stop reading the sockets; writers wait on `running`
            if rest == "on":
                link.transport.pause_reading()
            else:
                link.transport.resume_reading()
        if rest == "on":
            running.clear()
        else:
            running.set()
    elif name == "reject-next":
        kind, _, reason = rest.partition(" ")
        if kind not in ("final", "transient") or not reason:
            return "ERR usage: reject-next final|transient <reason>", server
        reject_next = (kind == "final", reason)
    elif name == "send":
        sid, _, text = rest.partition(" ")
        if not valid_sid(sid):
            return "ERR bad sid", server
        return f"OK {app_send(sessions.setdefault(sid, Session()), text)}", server
    elif name == "restart":
        port = server.sockets[0].getsockname()[1]
        server.close(close_connections=False)
        for link in list(links):
            link.transport.abort()
        await server.wait_closed()
        server = await listen(port)  # same port; `sessions` is untouched
    elif name == "stats":
        stats = {"sessions": {sid: {"delivered": s.delivered, "duplicates": s.duplicates,
                                    "last_in": s.last_in, "ep": s.ep, "cep": s.cep}
                              for sid, s in sessions.items()},
                 "connections": len(server.connections), "bad_signatures": bad_signatures}
        return "OK " + json.dumps(stats, separators=(",", ":")), server
    elif name == "dump" and rest:
        try:
            with open(rest, "w", encoding="utf-8") as out:
                json.dump({sid: s.log for sid, s in sessions.items()}, out, ensure_ascii=False)
        except OSError as e:
            return f"ERR {e}", server
    elif name != "quit":
        return f"ERR unknown command {line!r}", server
    return "OK", server


async def main():
    global args, running
    parser = argparse.ArgumentParser(description="Tether protocol reference server")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", help="hellos must carry this token")
    parser.add_argument("--key", help="HMAC-SHA256 key (UTF-8): verify and sign every msg")
    parser.add_argument("--compression-threshold", type=int, help="compress payloads >= N bytes")
    parser.add_argument("--max-size", type=int, default=16 << 20, help="inbound and inflate limit")
    parser.add_argument("--rev", type=int, choices=(1, 2), default=2,
                        help="1: speak revision 1 only (ignore rev/ep/sep, welcome without them)")
    args = parser.parse_args()
    running = asyncio.Event()
    running.set()
    server = await listen(args.port)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    sys.stdin.reconfigure(encoding="utf-8", errors="replace")
    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            break
        answer, server = await command(line.rstrip("\r\n"), server)
        print(answer, flush=True)
        if line.strip() == "quit":
            break
    for link in list(links):
        link.transport.abort()


if __name__ == "__main__":
    asyncio.run(main())
