//! The reference client: bare tokio-tungstenite 0.30 on a single-threaded tokio runtime, written
//! the fast way (split sink and stream, feed many / flush once, the reader never waits for the
//! writer). It is the limit for a client built on this stack, and what every other client's
//! figures are divided by.
//!
//! `bench-raw --url URL --workload rr|pipe|idle|free [--kind text|binary] [--size N]
//!            [--window N] [--duration S] [--warmup S] [--conns N] [--iters N]`

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tether_bench::{mark, payload, rss_kib, rtt_result, summary, throughput_result, Args, Json};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::{Bytes, Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn main() {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let workload = args.str("workload", "rr");
    let json = Json::default()
        .str("client", "raw")
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

async fn connect(url: &str) -> Ws {
    match tokio_tungstenite::connect_async_with_config(url, None, true).await {
        Ok((ws, _)) => ws,
        Err(e) => tether_bench::die(&format!("connect {url}: {e}")),
    }
}

fn message(args: &Args) -> Message {
    let data = payload(args.usize("size", 64));
    match args.str("kind", "text").as_str() {
        "binary" => Message::Binary(Bytes::from(data)),
        _ => Message::Text(Utf8Bytes::try_from(data).expect("ascii")),
    }
}

/// (a) one message in flight: send, wait for the echo, repeat.
async fn rr(args: &Args, json: Json) -> Json {
    let url = args.str("url", "ws://127.0.0.1:9001/");
    let msg = message(args);
    let mut ws = connect(&url).await;
    let round_trip = async |ws: &mut Ws| {
        ws.send(msg.clone()).await.expect("send");
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(_) | Message::Binary(_))) => return,
                Some(Ok(_)) => {}
                other => tether_bench::die(&format!("read: {other:?}")),
            }
        }
    };
    let warmup = Instant::now() + args.secs("warmup", 0.2);
    while Instant::now() < warmup {
        round_trip(&mut ws).await;
    }
    let duration = args.secs("duration", 2.0);
    let mut samples = Vec::with_capacity(1 << 20);
    mark("start");
    let start = Instant::now();
    loop {
        let t0 = Instant::now();
        round_trip(&mut ws).await;
        let t1 = Instant::now();
        samples.push((t1 - t0).as_nanos() as u64);
        if t1 - start >= duration {
            break;
        }
    }
    let elapsed = start.elapsed();
    mark("end");
    let _ = ws.close(None).await;
    rtt_result(json, samples, elapsed)
}

/// (b), (c) pipelined: keep up to `window` messages in flight for `duration`, then wait for the
/// last echo. Rate = echoes / (first send .. last echo).
async fn pipe(args: &Args, json: Json) -> Json {
    let url = args.str("url", "ws://127.0.0.1:9001/");
    let msg = message(args);
    let window = args.usize("window", 1000) as u64;
    let ws = connect(&url).await;
    let (mut sink, mut stream) = ws.split();
    // Warm-up: a few windows' worth, in step.
    let warm_until = Instant::now() + args.secs("warmup", 0.2);
    while Instant::now() < warm_until {
        for _ in 0..window.min(100) {
            sink.feed(msg.clone()).await.expect("send");
        }
        sink.flush().await.expect("flush");
        let mut got = 0;
        while got < window.min(100) {
            if let Some(Ok(Message::Text(_) | Message::Binary(_))) = stream.next().await {
                got += 1;
            }
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
        let msg = msg.clone();
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
                for _ in 0..free {
                    sink.feed(msg.clone()).await.expect("send");
                }
                sent += free;
                sink.flush().await.expect("flush");
            }
            sent_total.set(sent);
            done.notify_one(); // the reader may be waiting for an echo that is not coming
            sink
        }
    };
    let reader = {
        let received = received.clone();
        let sent_total = sent_total.clone();
        let room = room.clone();
        async move {
            let mut bytes = 0u64;
            let mut last = start;
            loop {
                if received.get() >= sent_total.get() {
                    break;
                }
                let next = tokio::select! {
                    biased;
                    next = stream.next() => next,
                    _ = done.notified() => continue,
                };
                match next {
                    Some(Ok(Message::Text(t))) => {
                        bytes += t.len() as u64;
                    }
                    Some(Ok(Message::Binary(b))) => {
                        bytes += b.len() as u64;
                    }
                    Some(Ok(_)) => continue,
                    other => tether_bench::die(&format!("read: {other:?}")),
                }
                received.set(received.get() + 1);
                last = Instant::now();
                room.notify_one();
            }
            (stream, bytes, last)
        }
    };
    let (sink, (stream, bytes, last)) = tokio::join!(writer, reader);
    let elapsed = last - start;
    mark("end");
    let mut ws = sink.reunite(stream).expect("reunite");
    let _ = ws.close(None).await;
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
    // Connect with bounded concurrency (the listen backlog is large, but SYN queues are not).
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(256));
    let mut tasks = Vec::with_capacity(conns);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    for _ in 0..conns {
        let gate = gate.clone();
        let url = url.clone();
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await.expect("gate");
            let mut ws = connect(&url).await;
            drop(permit);
            let _ = tx.send(());
            // An idle connection: just be ready to read.
            while let Some(Ok(_)) = ws.next().await {}
        }));
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
}

/// (f) the raw equivalent of freeing a live client: close handshake until the stream ends.
async fn free(args: &Args, json: Json) -> Json {
    let url = args.str("url", "ws://127.0.0.1:9001/");
    let iters = args.usize("iters", 30);
    let mut ns = Vec::with_capacity(iters);
    mark("start");
    for _ in 0..iters {
        let mut ws = connect(&url).await;
        // Let the connection settle as an idle live one.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let t0 = Instant::now();
        let _ = ws.close(None).await;
        while let Some(Ok(_)) = ws.next().await {}
        ns.push(t0.elapsed().as_nanos() as u64);
    }
    mark("end");
    summary(json.int("count", iters as u64), "free", ns)
}
