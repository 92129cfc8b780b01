//! A peer: fastwebsockets 0.10 (crates.io, Deno's WebSocket implementation), written the way
//! its own examples and a speed-minded user write it, on a current-thread tokio runtime like
//! `bench-raw`.
//!
//! * Handshake with the crate's own `handshake::client` (its `upgrade` feature, over hyper);
//!   the handshake is not measured.
//! * The socket split into halves (`WebSocket::split(tokio::io::split)`, its `unstable-split`
//!   feature, as in the crate's `echo_server_split` example): a `FragmentCollectorRead` on the
//!   read half (whole messages, as every other client gets them) and a `WebSocketWrite` on the
//!   write half, so the reader never waits for the writer.
//! * fastwebsockets writes each frame straight to its stream (one `write` per frame, no
//!   buffer of its own). The write half therefore sits on a `tokio::io::BufWriter` of 128 KiB
//!   (tungstenite's default write buffer, which `bench-raw` gets) and the writer flushes once
//!   per batch: the equivalent of raw's `feed` many / `flush` once. Frames larger than the
//!   buffer go out with one vectored write (header + payload), as the crate does by itself.
//! * A client must mask what it sends, and fastwebsockets masks in place: a borrowed payload
//!   would be copied into a new `Vec` per message. The client copies the payload into one
//!   reused scratch buffer instead and hands that over mutably (`Payload::BorrowedMut`): one
//!   copy, no allocation per message.
//! * The crate's defaults otherwise (8 KiB initial read buffer, growing as frames need; UTF-8
//!   validation of text frames; auto pong and close).
//!
//! `bench-fastwebsockets --url URL --workload rr|pipe|idle|free [--kind text|binary]
//!                       [--size N] [--window N] [--duration S] [--warmup S] [--conns N]
//!                       [--iters N] [--settle S]`
//!
//! Output protocol (read by bench/run.py): `MARK start`, `MARK end`, `RESULT {json}`.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fastwebsockets::{
    FragmentCollectorRead, Frame, OpCode, Payload, WebSocketError, WebSocketRead, WebSocketWrite,
};
use http_body_util::Empty;
use hyper::header::{CONNECTION, UPGRADE};
use hyper::upgrade::Upgraded;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tether_bench::{mark, payload, rss_kib, rtt_result, summary, throughput_result, Args, Json};
use tokio::io::{BufWriter, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

type Io = TokioIo<Upgraded>;
type Reader = FragmentCollectorRead<ReadHalf<Io>>;
type Writer = WebSocketWrite<BufWriter<WriteHalf<Io>>>;

/// tungstenite's default write buffer: what `bench-raw` batches into before a write.
const WRITE_BUFFER: usize = 128 << 10;

fn main() {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let workload = args.str("workload", "rr");
    let json = Json::default()
        .str("client", "fastwebsockets")
        .str("workload", &workload);
    let result = rt.block_on(async {
        match workload.as_str() {
            "rr" => rr(&args, json).await,
            "pipe" => pipe(&args, json).await,
            "idle" => idle(&args, json).await,
            "free" => free(&args, json).await,
            other => tether_bench::die(&format!("unknown workload {other}")),
        }
    });
    result.emit();
}

/// hyper runs the HTTP/1 connection task of the handshake on the runtime.
struct SpawnExecutor;

impl<Fut> hyper::rt::Executor<Fut> for SpawnExecutor
where
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    fn execute(&self, fut: Fut) {
        tokio::task::spawn(fut);
    }
}

/// Connect and split: the read half collects fragments, the write half is buffered.
async fn connect(url: &str) -> (Reader, Writer) {
    let rest = url
        .strip_prefix("ws://")
        .unwrap_or_else(|| tether_bench::die(&format!("not a ws:// url: {url}")));
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let stream = TcpStream::connect(host)
        .await
        .unwrap_or_else(|e| tether_bench::die(&format!("connect {host}: {e}")));
    let _ = stream.set_nodelay(true); // as tokio-tungstenite's connect_async(.., true)
    let req = Request::builder()
        .method("GET")
        .uri(format!("http://{host}{path}"))
        .header("Host", host)
        .header(UPGRADE, "websocket")
        .header(CONNECTION, "upgrade")
        .header(
            "Sec-WebSocket-Key",
            fastwebsockets::handshake::generate_key(),
        )
        .header("Sec-WebSocket-Version", "13")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let (ws, _) = fastwebsockets::handshake::client(&SpawnExecutor, req, stream)
        .await
        .unwrap_or_else(|e| tether_bench::die(&format!("handshake {url}: {e}")));
    let (rx, tx): (WebSocketRead<_>, _) = ws.split(|io| {
        let (r, w) = tokio::io::split(io);
        (r, BufWriter::with_capacity(WRITE_BUFFER, w))
    });
    (FragmentCollectorRead::new(rx), tx)
}

/// What the workload sends: the opcode and the payload, copied per send into a scratch
/// buffer that the library masks in place.
struct Outgoing {
    opcode: OpCode,
    data: Vec<u8>,
    scratch: Vec<u8>,
}

impl Outgoing {
    fn new(args: &Args) -> Outgoing {
        let data = payload(args.usize("size", 64));
        let opcode = match args.str("kind", "text").as_str() {
            "binary" => OpCode::Binary,
            _ => OpCode::Text,
        };
        Outgoing {
            opcode,
            scratch: Vec::with_capacity(data.len()),
            data,
        }
    }

    /// Queue one message into the write buffer (written when it fills or on flush).
    async fn feed(&mut self, tx: &mut Writer) {
        self.scratch.clear();
        self.scratch.extend_from_slice(&self.data);
        let frame = Frame::new(
            true,
            self.opcode,
            None,
            Payload::BorrowedMut(&mut self.scratch),
        );
        if let Err(e) = tx.write_frame(frame).await {
            tether_bench::die(&format!("send: {e}"));
        }
    }
}

/// Frames the read half owes the peer (pongs, the close reply): the writer sends them. The
/// bench server never pings, so this stays empty while measuring.
type Owed = Rc<RefCell<Vec<Frame<'static>>>>;

/// The next data message's length (control frames are handled by the library).
async fn next_message(rx: &mut Reader, owed: &Owed) -> Result<Option<usize>, WebSocketError> {
    let frame = rx
        .read_frame::<_, WebSocketError>(&mut |f: Frame<'static>| {
            owed.borrow_mut().push(f);
            std::future::ready(Ok(()))
        })
        .await?;
    Ok(match frame.opcode {
        OpCode::Text | OpCode::Binary => Some(frame.payload.len()),
        OpCode::Close => None,
        _ => Some(usize::MAX),
    })
}

async fn read_message(rx: &mut Reader, owed: &Owed) -> usize {
    loop {
        match next_message(rx, owed).await {
            Ok(Some(usize::MAX)) => continue,
            Ok(Some(n)) => return n,
            Ok(None) => tether_bench::die("read: the server closed"),
            Err(e) => tether_bench::die(&format!("read: {e}")),
        }
    }
}

async fn send_owed(tx: &mut Writer, owed: &Owed) {
    let frames: Vec<_> = owed.borrow_mut().drain(..).collect();
    for f in frames {
        let _ = tx.write_frame(f).await;
    }
}

async fn flush(tx: &mut Writer) {
    if let Err(e) = tx.flush().await {
        tether_bench::die(&format!("flush: {e}"));
    }
}

/// Close handshake: send a close frame and read until the server's close (or the end).
async fn close(rx: &mut Reader, tx: &mut Writer, owed: &Owed) {
    let _ = tx.write_frame(Frame::close(1000, b"")).await;
    let _ = tx.flush().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), next_message(rx, owed)).await {
            Ok(Ok(Some(_))) => continue,
            _ => break,
        }
    }
}

/// (a) one message in flight: send, wait for the echo, repeat.
async fn rr(args: &Args, json: Json) -> Json {
    let url = args.str("url", "ws://127.0.0.1:9001/");
    let mut out = Outgoing::new(args);
    let (mut rx, mut tx) = connect(&url).await;
    let owed = Owed::default();
    let warmup = Instant::now() + args.secs("warmup", 0.2);
    while Instant::now() < warmup {
        out.feed(&mut tx).await;
        flush(&mut tx).await;
        read_message(&mut rx, &owed).await;
    }
    let duration = args.secs("duration", 2.0);
    let mut samples = Vec::with_capacity(1 << 20);
    mark("start");
    let start = Instant::now();
    loop {
        let t0 = Instant::now();
        out.feed(&mut tx).await;
        flush(&mut tx).await;
        read_message(&mut rx, &owed).await;
        let t1 = Instant::now();
        samples.push((t1 - t0).as_nanos() as u64);
        if t1 - start >= duration {
            break;
        }
    }
    let elapsed = start.elapsed();
    mark("end");
    close(&mut rx, &mut tx, &owed).await;
    rtt_result(json, samples, elapsed)
}

/// (b), (c) pipelined: keep up to `window` messages in flight for `duration`, then wait for the
/// last echo. Rate = echoes / (first send .. last echo). The same shape as `bench-raw`: a
/// writer and a reader future on one task, the reader never waits for the writer.
async fn pipe(args: &Args, json: Json) -> Json {
    let url = args.str("url", "ws://127.0.0.1:9001/");
    let mut out = Outgoing::new(args);
    let window = args.usize("window", 1000) as u64;
    let (mut rx, mut tx) = connect(&url).await;
    let owed = Owed::default();
    // Warm-up: a few windows' worth, in step.
    let warm_until = Instant::now() + args.secs("warmup", 0.2);
    while Instant::now() < warm_until {
        for _ in 0..window.min(100) {
            out.feed(&mut tx).await;
        }
        flush(&mut tx).await;
        for _ in 0..window.min(100) {
            read_message(&mut rx, &owed).await;
        }
    }

    let duration = args.secs("duration", 2.0);
    let received = Rc::new(Cell::new(0u64));
    let sent_total = Rc::new(Cell::new(u64::MAX));
    let room = Rc::new(Notify::new());
    let done = Rc::new(Notify::new());
    mark("start");
    let start = Instant::now();
    let writer = {
        let received = received.clone();
        let sent_total = sent_total.clone();
        let room = room.clone();
        let done = done.clone();
        let owed = owed.clone();
        async move {
            let mut sent = 0u64;
            loop {
                if start.elapsed() >= duration {
                    break;
                }
                let free = window - (sent - received.get());
                if free == 0 {
                    room.notified().await;
                    continue;
                }
                send_owed(&mut tx, &owed).await;
                for _ in 0..free {
                    out.feed(&mut tx).await;
                }
                sent += free;
                flush(&mut tx).await;
            }
            sent_total.set(sent);
            done.notify_one(); // the reader may be waiting for an echo that is not coming
            tx
        }
    };
    let reader = {
        let received = received.clone();
        let sent_total = sent_total.clone();
        let room = room.clone();
        let owed = owed.clone();
        async move {
            let mut bytes = 0u64;
            let mut last = start;
            loop {
                if received.get() >= sent_total.get() {
                    break;
                }
                // A read is not cancelled mid-frame (fastwebsockets' read_frame is not
                // cancel-safe): it is dropped only once nothing more is due, when the
                // buffer is at a frame boundary.
                let read = next_message(&mut rx, &owed);
                tokio::pin!(read);
                let next = loop {
                    tokio::select! {
                        biased;
                        next = &mut read => break Some(next),
                        _ = done.notified() => {
                            if received.get() >= sent_total.get() {
                                break None;
                            }
                        }
                    }
                };
                let Some(next) = next else { break };
                match next {
                    Ok(Some(usize::MAX)) => continue,
                    Ok(Some(n)) => bytes += n as u64,
                    Ok(None) => tether_bench::die("read: the server closed"),
                    Err(e) => tether_bench::die(&format!("read: {e}")),
                }
                received.set(received.get() + 1);
                last = Instant::now();
                room.notify_one();
            }
            (rx, bytes, last)
        }
    };
    let (mut tx, (mut rx, bytes, last)) = tokio::join!(writer, reader);
    let elapsed = last - start;
    mark("end");
    close(&mut rx, &mut tx, &owed).await;
    throughput_result(json, received.get(), bytes, elapsed).int("window", window)
}

/// (e) idle: `conns` connections held open by one process; RSS per connection.
async fn idle(args: &Args, json: Json) -> Json {
    let url = args.str("url", "ws://127.0.0.1:9001/");
    let conns = args.usize("conns", 1000);
    let settle = args.secs("settle", 1.0);
    let before = rss_kib();
    mark("start");
    let started = Instant::now();
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(256));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            for _ in 0..conns {
                let gate = gate.clone();
                let url = url.clone();
                let tx = tx.clone();
                tokio::task::spawn_local(async move {
                    let permit = gate.acquire_owned().await.expect("gate");
                    let (mut r, _w) = connect(&url).await;
                    drop(permit);
                    let _ = tx.send(());
                    // An idle connection: just be ready to read.
                    let owed = Owed::default();
                    while let Ok(Some(_)) = next_message(&mut r, &owed).await {}
                });
            }
            for _ in 0..conns {
                rx.recv().await.expect("connected");
            }
            let connect_time = started.elapsed();
            tokio::time::sleep(settle).await;
            let after = rss_kib();
            mark("end");
            json.int("conns", conns as u64)
                .int("rss_before_kib", before)
                .int("rss_after_kib", after)
                .num(
                    "rss_per_conn_kib",
                    (after.saturating_sub(before)) as f64 / conns as f64,
                )
                .num("connect_seconds", connect_time.as_secs_f64())
        })
        .await
}

/// (f) closing a live connection: close frame, then read until the server's close.
async fn free(args: &Args, json: Json) -> Json {
    let url = args.str("url", "ws://127.0.0.1:9001/");
    let iters = args.usize("iters", 30);
    let mut ns = Vec::with_capacity(iters);
    mark("start");
    for _ in 0..iters {
        let (mut rx, mut tx) = connect(&url).await;
        let owed = Owed::default();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let t0 = Instant::now();
        close(&mut rx, &mut tx, &owed).await;
        drop((rx, tx));
        ns.push(t0.elapsed().as_nanos() as u64);
    }
    mark("end");
    summary(json.int("count", iters as u64), "free", ns)
}
