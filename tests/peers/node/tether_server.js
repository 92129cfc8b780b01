#!/usr/bin/env node
// A Tether protocol reference server (docs/PROTOCOL.md, revision 2 with stream epochs, and
// revision 1 for clients that say no `rev`, or for all with `--rev 1`) on the Node `ws` library.
//
// The protocol core (sessions, epochs, hello/welcome, msg/ack/nack, dedup, resend, signatures,
// compression) comes first; the command line and the stdin control channel that Tether's tests
// drive come after it. The application on top records every delivered message and echoes it
// back as a new server message.
//
//   node tether_server.js [--port N] [--token T] [--key K] [--compression-threshold N] [--max-size N]
//                         [--rev 1|2]
//
// Prints `PORT <n>` once listening on 127.0.0.1, then answers each stdin line with one line,
// `OK ...` or `ERR ...`; exits when stdin closes. Commands: drop, close <code> [reason],
// stall on|off, reject-next final|transient <reason...>, send <sid> <text...>, restart, stats,
// dump <path>, quit (see tests/peers/README.md).
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const readline = require('node:readline');
const zlib = require('node:zlib');
const { WebSocketServer } = require('ws');

const HELLO_TIMEOUT_MS = 10000; // a new connection has this long to say hello
const opts = parseArgs(process.argv.slice(2));
const sessions = new Map(); // sid -> session, kept for the life of the process (also across `restart`)
const sockets = new Set(); // every TCP connection, upgraded or not: what `drop` and `restart` destroy
let stalled = false; // while true, nothing is read and writes are held back in order
const heldHandshakes = []; // upgrades that arrived while stalled, answered on `stall off`
let badSignatures = 0;
let rejectNext = null; // {final, reason} for the next hello, set by `reject-next`

class Bad extends Error {
  // An unusable frame: reported and, if it carried a msg id, nacked with `reason`.
  constructor(reason, id = null) {
    super(reason);
    this.id = id;
  }
}

const frame = (fields) => JSON.stringify({ v: 1, ...fields });
const isInt = (x, least = 0) => Number.isSafeInteger(x) && x >= least;
const validSid = (sid) => typeof sid === 'string' && /^[\x20-\x7e]{1,128}$/.test(sid);
const validEpoch = (ep) => typeof ep === 'string' && /^[0-9A-Za-z_-]{1,64}$/.test(ep); // `ep`, `sep`
const newEpoch = () => crypto.randomBytes(8).toString('hex'); // 16 random lowercase hex digits

// The session revision to serve a hello with: 2 when both sides speak it (the client says
// `rev` >= 2), else 1; null for a revision-2 hello with a malformed `ep` or `sep`.
function helloRev(hello) {
  if (!(opts.rev >= 2 && isInt(hello.rev, 2))) return 1; // revision 1 ignores `ep` and `sep`
  if (!validEpoch(hello.ep) || ('sep' in hello && !validEpoch(hello.sep))) return null;
  return 2; // a later revision is answered with ours, 2
}

function sessionFor(sid) {
  if (!sessions.has(sid)) {
    sessions.set(sid, {
      ep: newEpoch(), // our outbound stream's epoch: new with every new state
      cep: null, // the client stream's epoch that `lastIn` counts in (null: none with an epoch)
      lastIn: 0, // highest client msg id delivered to the application
      nextOut: 1, // id of the next server msg
      unacked: new Map(), // server id -> encoded frame, in id order, until the client acks it
      link: null, // the connection currently serving this session, if any
      delivered: 0,
      duplicates: 0,
      log: [], // delivered payloads, for `dump`
    });
  }
  return sessions.get(sid);
}

// Every write goes through here, so `stall` can hold it back without reordering.
function put(ws, item) {
  if (stalled) ws.held.push(item);
  else if (Buffer.isBuffer(item) || typeof item === 'string') ws.send(item);
  else ws.close(item.code, item.reason);
}

function sign(kind, id, z, carried) {
  const head = Buffer.alloc(11);
  head.writeUInt8(1, 0);
  head.writeUInt8(kind, 1);
  head.writeBigUInt64BE(BigInt(id), 2);
  head.writeUInt8(z, 10);
  return crypto.createHmac('sha256', opts.key).update(head).update(carried).digest('hex');
}

// The frame for server msg `id`, built once: a resend after reconnect is byte-identical.
function encodeMsg(id, payload) {
  const kind = typeof payload === 'string' ? 1 : 2;
  let carried = kind === 1 ? Buffer.from(payload) : payload;
  let z = 0;
  if (opts.compressionThreshold !== null && carried.length >= opts.compressionThreshold) {
    const packed = zlib.deflateRawSync(carried); // raw DEFLATE, no zlib header
    if (packed.length < carried.length) [carried, z] = [packed, 1];
  }
  const sig = opts.key !== null ? sign(kind, id, z, carried) : null;
  if (kind === 2) {
    const head = Buffer.alloc(16);
    head.writeUInt8(1, 0);
    head.writeUInt8(2, 1);
    head.writeUInt8(z | (sig ? 2 : 0), 2);
    head.writeBigUInt64BE(BigInt(id), 4);
    head.writeUInt32BE(carried.length, 12);
    return Buffer.concat([head, sig ? Buffer.from(sig, 'hex') : Buffer.alloc(0), carried]);
  }
  const d = z ? carried.toString('base64') : payload;
  return frame({ t: 'msg', id, d, ...(z ? { z: 1 } : {}), ...(sig ? { sig } : {}) });
}

// Send one application message: number it, keep it until acked, write it if connected.
function appSend(session, payload) {
  const id = session.nextOut++;
  session.unacked.set(id, encodeMsg(id, payload));
  if (session.link) put(session.link, session.unacked.get(id));
  return id;
}

function refuse(ws, reject, code, reason) {
  if (reject) put(ws, frame({ t: 'reject', reason: reject.reason, final: reject.final }));
  put(ws, { code, reason });
  return false; // handshake result: no session, ignore what else arrives
}

// The first frame: reject it or answer welcome and resend. Returns the session or false.
function handshake(ws, raw) {
  let hello = null;
  try {
    hello = raw === null ? null : JSON.parse(raw);
  } catch {}
  const valid = hello && hello.v === 1 && hello.t === 'hello' && validSid(hello.sid) && isInt(hello.last);
  const rev = valid ? helloRev(hello) : null;
  if (rev === null) {
    return refuse(ws, null, 1002, 'expected hello');
  }
  if (rejectNext) {
    const reject = rejectNext;
    rejectNext = null;
    return refuse(ws, reject, reject.final ? 1008 : 1013, 'rejected');
  }
  if (opts.token !== null && hello.token !== opts.token) {
    return refuse(ws, { final: true, reason: 'bad token' }, 1008, 'rejected');
  }
  const session = sessionFor(hello.sid);
  // The client reconnected before we noticed its old link died.
  if (session.link) put(session.link, { code: 1000, reason: 'session resumed on a new connection' });
  let last = hello.last;
  if (rev === 1) {
    // Revision 1: `last` always counts in our one stream, and from now on `lastIn` counts in a
    // client stream without an epoch.
    session.cep = null;
    put(ws, frame({ t: 'welcome', last: session.lastIn }));
  } else {
    // A client stream other than the one `lastIn` counts in (another epoch, or one without an
    // epoch): the client lost its state and numbers from 1 again, so none of its ids is a
    // duplicate. A session that never saw a client stream (made by the application's `send`)
    // just takes the client's epoch: nothing was lost.
    const known = session.cep !== hello.ep && (session.cep !== null || session.lastIn > 0);
    if (session.cep !== hello.ep) {
      session.cep = hello.ep;
      session.lastIn = 0;
    }
    const extra = known ? { known: true } : {};
    put(ws, frame({ t: 'welcome', last: session.lastIn, rev: 2, ep: session.ep, ...extra }));
    // `last` counts in our stream only if the client names it; otherwise resend everything.
    if (hello.sep !== session.ep) last = 0;
  }
  for (const [id, encoded] of session.unacked) {
    if (id <= last) session.unacked.delete(id); // the client has it: counts as acknowledged
    else put(ws, encoded); // the rest, in order, before anything new
  }
  session.link = ws;
  return session;
}

function parseBinary(buf) {
  if (buf.length < 16) throw new Bad('malformed');
  const [version, kind, flags, reserved] = buf;
  const id = Number(buf.readBigUInt64BE(4));
  const start = flags & 2 ? 48 : 16;
  const lengthOk = buf.length === start + buf.readUInt32BE(12); // false: the header lies about L
  if (version !== 1 || kind !== 2 || flags & ~3 || reserved || id < 1 || !lengthOk) {
    throw new Bad('malformed', id >= 1 ? id : null);
  }
  return [id, flags & 1, buf.subarray(start), flags & 2 ? buf.subarray(16, 48).toString('hex') : null];
}

function onFrame(ws, session, data, isBinary) {
  if (isBinary) return onMsg(ws, session, 2, ...parseBinary(data));
  let f = null;
  try {
    f = JSON.parse(data.toString());
  } catch {}
  const t = f && typeof f === 'object' ? f.t : undefined;
  const msgId = t === 'msg' && isInt(f.id, 1) ? f.id : null;
  if (t === undefined || f.v !== 1) throw new Bad('malformed', msgId);
  if (t === 'msg' && msgId && typeof f.d === 'string' && [undefined, 0, 1].includes(f.z)) {
    const carried = Buffer.from(f.d, f.z ? 'base64' : 'utf8');
    if (f.z && carried.toString('base64') !== f.d) throw new Bad('corrupt', msgId); // lenient decoder
    onMsg(ws, session, 1, msgId, f.z ? 1 : 0, carried, f.sig);
  } else if (t === 'ack' && (isInt(f.id) || isInt(f.upto))) {
    const upto = isInt(f.upto) ? f.upto : 0;
    for (const id of [...session.unacked.keys()]) {
      if (id === f.id || id <= upto) session.unacked.delete(id);
    }
  } else if (t === 'nack' && isInt(f.id)) {
    session.unacked.delete(f.id); // refused for good: never resend it
  } else if (t === 'ping' && isInt(f.ts)) {
    put(ws, frame({ t: 'pong', ts: f.ts }));
  } else if (t !== 'pong') {
    throw new Bad('malformed', msgId);
  }
}

function onMsg(ws, session, kind, id, z, carried, sig) {
  if (opts.key !== null) {
    const want = Buffer.from(sign(kind, id, z, carried));
    const got = Buffer.from(typeof sig === 'string' ? sig : '');
    if (got.length !== want.length || !crypto.timingSafeEqual(got, want)) {
      badSignatures++;
      throw new Bad('bad signature', id); // checked first, before dedup and inflate
    }
  }
  if (id <= session.lastIn) {
    session.duplicates++; // a resend of something we have: ack again, don't deliver
    return put(ws, frame({ t: 'ack', upto: session.lastIn }));
  }
  let payload = z ? inflate(carried, id) : carried;
  if (kind === 1) {
    try {
      payload = new TextDecoder('utf-8', { fatal: true }).decode(payload);
    } catch {
      throw new Bad('corrupt', id);
    }
  }
  session.lastIn = id;
  put(ws, frame({ t: 'ack', upto: id }));
  session.delivered++;
  session.log.push(kind === 1 ? payload : 'b64:' + payload.toString('base64'));
  appSend(session, payload); // the application: echo it as a new server msg
}

function inflate(data, id) {
  try {
    return zlib.inflateRawSync(data, { maxOutputLength: opts.maxSize }); // bounded: no inflation bombs
  } catch (e) {
    throw new Bad(e.code === 'ERR_BUFFER_TOO_LARGE' ? 'too large' : 'corrupt', id);
  }
}

function onConnection(ws) {
  ws.held = [];
  if (stalled) ws.pause();
  let session = null; // null: waiting for hello; false: refused
  const timer = setTimeout(() => {
    session = refuse(ws, null, 1008, 'no hello');
  }, HELLO_TIMEOUT_MS);
  ws.on('message', (data, isBinary) => {
    if (session === null) {
      clearTimeout(timer);
      session = handshake(ws, isBinary ? null : data.toString());
    } else if (session) {
      try {
        onFrame(ws, session, data, isBinary);
      } catch (e) {
        if (!(e instanceof Bad)) throw e;
        console.error(`tether_server: ${e.message} (msg id ${e.id})`); // reported; the link stays up
        if (e.id !== null) put(ws, frame({ t: 'nack', id: e.id, reason: e.message }));
      }
    }
  });
  ws.on('error', () => {}); // e.g. a frame over --max-size: ws closes the link (1009) itself
  ws.on('close', () => {
    clearTimeout(timer);
    if (session && session.link === ws) session.link = null;
  });
}

// ---- command line and control channel (for tests; not part of the protocol) ----

function parseArgs(argv) {
  const o = { port: 0, token: null, key: null, compressionThreshold: null, maxSize: 16 << 20, rev: 2 };
  const names = {
    '--port': 'port',
    '--token': 'token',
    '--key': 'key',
    '--compression-threshold': 'compressionThreshold',
    '--max-size': 'maxSize',
    '--rev': 'rev',
  };
  for (let i = 0; i < argv.length; i += 2) {
    const name = names[argv[i]];
    const text = name === 'token' || name === 'key';
    const value = text ? argv[i + 1] : Number(argv[i + 1]);
    const number = Number.isSafeInteger(value) && value >= 0 && (name !== 'rev' || [1, 2].includes(value));
    if (!name || argv[i + 1] === undefined || !(text || number)) {
      console.error(
        'usage: tether_server.js [--port N] [--token T] [--key K] [--compression-threshold N] [--max-size N]' +
          ' [--rev 1|2]',
      );
      process.exit(2);
    }
    o[name] = value;
  }
  return o;
}

// `noServer`: one WebSocketServer across `restart`, fed by whichever HTTP server listens.
const wss = new WebSocketServer({
  noServer: true,
  maxPayload: opts.maxSize,
  // Hold upgrades while stalled (no 101 answer) and let them through on `stall off`.
  verifyClient: (info, done) => (stalled ? heldHandshakes.push(done) : done(true)),
});
wss.on('connection', onConnection);

function listen(port) {
  const server = http.createServer((req, res) => res.writeHead(426).end());
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('upgrade', (req, socket, head) => {
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

function setStalled(on) {
  stalled = on;
  for (const ws of wss.clients) {
    if (on) ws.pause();
    else {
      ws.resume();
      for (const item of ws.held.splice(0)) put(ws, item);
    }
  }
  if (!on) for (const done of heldHandshakes.splice(0)) done(true);
}

async function command(line, state) {
  // Splits at the first space, like Python's str.partition: the rest keeps its spaces.
  const split = (s) => {
    const at = s.indexOf(' ');
    return at < 0 ? [s, ''] : [s.slice(0, at), s.slice(at + 1)];
  };
  const [name, rest] = split(line);
  if (name === 'drop') {
    for (const socket of sockets) socket.destroy(); // TCP close, no close frame
  } else if (name === 'close') {
    const [code, reason] = split(rest);
    if (!/^\d+$/.test(code) || +code < 1000 || +code > 4999) return 'ERR bad close code';
    for (const ws of wss.clients) put(ws, { code: +code, reason });
  } else if (name === 'stall' && (rest === 'on' || rest === 'off')) {
    setStalled(rest === 'on');
  } else if (name === 'reject-next') {
    const [kind, reason] = split(rest);
    if (!['final', 'transient'].includes(kind) || !reason) {
      return 'ERR usage: reject-next final|transient <reason>';
    }
    rejectNext = { final: kind === 'final', reason };
  } else if (name === 'send') {
    const [sid, text] = split(rest);
    if (!validSid(sid)) return 'ERR bad sid';
    return `OK ${appSend(sessionFor(sid), text)}`;
  } else if (name === 'restart') {
    const port = state.server.address().port;
    const closed = new Promise((resolve) => state.server.close(resolve));
    for (const socket of sockets) socket.destroy();
    await closed;
    state.server = await listen(port); // same port; `sessions` is untouched
  } else if (name === 'stats') {
    const out = { sessions: {}, connections: wss.clients.size, bad_signatures: badSignatures };
    for (const [sid, s] of sessions) {
      const { delivered, duplicates, ep, cep } = s;
      out.sessions[sid] = { delivered, duplicates, last_in: s.lastIn, ep, cep };
    }
    return 'OK ' + JSON.stringify(out);
  } else if (name === 'dump' && rest) {
    const out = {};
    for (const [sid, s] of sessions) out[sid] = s.log;
    fs.writeFileSync(rest, JSON.stringify(out));
  } else if (name !== 'quit') {
    return `ERR unknown command ${JSON.stringify(line)}`;
  }
  return 'OK';
}

async function main() {
  const state = { server: await listen(opts.port) };
  process.stdout.write(`PORT ${state.server.address().port}\n`);
  for await (const line of readline.createInterface({ input: process.stdin })) {
    let answer;
    try {
      answer = await command(line.replace(/\r$/, ''), state);
    } catch (e) {
      answer = `ERR ${e.message}`;
    }
    process.stdout.write(answer + '\n');
    if (line.trim() === 'quit') break;
  }
  for (const socket of sockets) socket.destroy();
  process.stdout.write('', () => process.exit(0)); // once the last answer is out
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
