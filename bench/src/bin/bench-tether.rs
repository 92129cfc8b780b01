//! Tether's Rust API (`tether-core`), the way an application uses it.
//!
//! `--mode poll` (default): the application thread sends and drains events with
//! `Client::next_event` / `poll_event`. `--mode cb`: events arrive on the client's dispatcher
//! thread through a callback, which also sends the next messages (the shape of a C or Python
//! callback application). `--mode async` (workloads rr and pipe): an async application on its
//! own single-threaded tokio runtime, the client started with `Client::connect_on` on that
//! runtime and awaited with `recv_event` / `recv_events` (the shape of the raw client: one
//! thread for the application and the socket).
//!
//! `bench-tether --url URL --workload rr|pipe|idle|poll|free [--mode poll|cb]
//!               [--protocol raw|envelope] [--kind text|binary] [--size N] [--window N]
//!               [--duration S] [--warmup S] [--conns N] [--iters N]
//!               [--io runtime|caller]  (caller: the waiting thread runs the I/O)
//!               [--read-buffer BYTES] [--write-batch BYTES]  (these two: experiments)
//!               [--outbox-path FILE --outbox-sync none|batch|always]`  (bench/outbox.py)
//!
//! Configuration: Tether's defaults, except the outbox bound, raised to 8192 messages /
//! 128 MiB so that 1,000 messages of 64 KiB fit in flight (workload c).

use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tether_bench::{
    die, mark, payload, rss_kib, rtt_result, summary, throughput_result, Args, Json,
};
use tether_core::{
    Bytes, Client, Config, Event, EventDelivery, IoDriver, OutboxSync, Protocol, State, Text,
};

const WAIT: Duration = Duration::from_secs(20);

fn main() {
    let args = Args::parse();
    let workload = args.str("workload", "rr");
    let mode = args.str("mode", "poll");
    let protocol = args.str("protocol", "raw");
    let io = match args.str("io", "runtime").as_str() {
        "caller" => "-caller",
        _ => "",
    };
    let json = Json::default()
        .str("client", &format!("tether-rust-{mode}{io}"))
        .str("workload", &workload)
        .str("protocol", &protocol);
    let result = match (workload.as_str(), mode.as_str()) {
        ("rr", "poll") => rr_poll(&args, json),
        ("rr", "cb") => rr_cb(&args, json),
        ("pipe", "poll") => pipe_poll(&args, json),
        ("pipe", "cb") => pipe_cb(&args, json),
        ("rr", "async") => on_own_runtime(|| rr_async(&args, json)),
        ("pipe", "async") => on_own_runtime(|| pipe_async(&args, json)),
        ("idle", _) => idle(&args, json),
        ("poll", _) => poll_cost(&args, json),
        ("free", _) => free(&args, json, &mode),
        (w, m) => die(&format!("unknown workload/mode {w}/{m}")),
    };
    result.emit();
}

fn config(args: &Args) -> Config {
    let url = args.str("url", "ws://127.0.0.1:9001/");
    let protocol = match args.str("protocol", "raw").as_str() {
        "envelope" => Protocol::Envelope,
        _ => Protocol::Raw,
    };
    // The bench server speaks the Tether protocol on /tether.
    let url = if protocol == Protocol::Envelope {
        format!("{}/tether", url.trim_end_matches('/'))
    } else {
        url
    };
    let mut builder = Config::builder(url)
        .protocol(protocol)
        .outbox_limits(8192, 128 << 20);
    // `--io caller`: the waiting thread runs the I/O (the keeper at its default).
    if args.str("io", "runtime") == "caller" {
        builder = builder.io_driver(IoDriver::Caller);
    }
    // Experiments only (not used by run.py): other I/O buffer sizes than Tether's defaults.
    if let Some(n) = args.opt_usize("read-buffer") {
        builder = builder.read_buffer_size(n);
    }
    if let Some(n) = args.opt_usize("write-batch") {
        builder = builder.write_batch_bytes(n);
    }
    // The persistent outbox (bench/outbox.py measures its cost beside the in-memory one).
    if let Some(path) = args.opt_str("outbox-path") {
        let _ = std::fs::remove_file(&path); // a fresh file per run
        let sync = match args.str("outbox-sync", "batch").as_str() {
            "none" => OutboxSync::None,
            "always" => OutboxSync::Always,
            _ => OutboxSync::Batch,
        };
        builder = builder.outbox_path(path).outbox_sync(sync);
    }
    builder
        .build()
        .unwrap_or_else(|e| die(&format!("config: {e}")))
}

/// What to send: text or binary, built once and shared (no copy per send).
#[derive(Clone)]
enum Payload {
    Text(Text),
    Binary(Bytes),
}

impl Payload {
    fn new(args: &Args) -> Payload {
        let data = payload(args.usize("size", 64));
        match args.str("kind", "text").as_str() {
            "binary" => Payload::Binary(Bytes::from(data)),
            _ => Payload::Text(Text::from(String::from_utf8(data).expect("ascii"))),
        }
    }
    fn send(&self, client: &Client) -> Result<u64, tether_core::SendError> {
        match self {
            Payload::Text(t) => client.send_text(t.clone()).map(|id| id.0),
            Payload::Binary(b) => client.send_binary(b.clone()).map(|id| id.0),
        }
    }
}

/// Poll mode: connect and wait until Ready.
fn connect_poll(args: &Args) -> Client {
    let client = Client::connect(config(args), EventDelivery::Poll)
        .unwrap_or_else(|e| die(&format!("connect: {e}")));
    let deadline = Instant::now() + WAIT;
    while client.state() != State::Ready {
        match client.next_event(Duration::from_millis(100)) {
            Some(Event::Closed { reason, .. }) => die(&format!("closed: {reason}")),
            Some(Event::Disconnected { reason, .. }) => die(&format!("disconnected: {reason}")),
            _ => {}
        }
        if Instant::now() > deadline {
            die("not ready in time");
        }
    }
    while client.poll_event().is_some() {}
    client
}

fn unexpected(event: &Event) -> ! {
    die(&format!("unexpected event: {event:?}"))
}

/// (a) poll mode: send, wait for the echo, repeat.
fn rr_poll(args: &Args, json: Json) -> Json {
    let client = connect_poll(args);
    let p = Payload::new(args);
    let round_trip = || {
        p.send(&client)
            .unwrap_or_else(|e| die(&format!("send: {e}")));
        loop {
            match client.next_event(WAIT) {
                Some(Event::Message(_)) => return,
                Some(Event::Written { .. }) => {}
                Some(other) => unexpected(&other),
                None => die("no echo in time"),
            }
        }
    };
    let warmup = Instant::now() + args.secs("warmup", 0.2);
    while Instant::now() < warmup {
        round_trip();
    }
    let duration = args.secs("duration", 2.0);
    let mut samples = Vec::with_capacity(1 << 20);
    mark("start");
    let start = Instant::now();
    loop {
        let t0 = Instant::now();
        round_trip();
        let t1 = Instant::now();
        samples.push((t1 - t0).as_nanos() as u64);
        if t1 - start >= duration {
            break;
        }
    }
    let elapsed = start.elapsed();
    mark("end");
    client.shutdown(Duration::from_secs(5));
    rtt_result(json, samples, elapsed)
}

/// Run an async workload on a current-thread runtime (like the raw client's).
fn on_own_runtime<F: std::future::Future<Output = Json>>(work: impl FnOnce() -> F) -> Json {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| die(&format!("runtime: {e}")));
    rt.block_on(work())
}

/// Async mode: connect on the current runtime and await Ready.
async fn connect_async(args: &Args) -> Client {
    let handle = tokio::runtime::Handle::current();
    let client = Client::connect_on(config(args), EventDelivery::Poll, &handle)
        .unwrap_or_else(|e| die(&format!("connect: {e}")));
    let ready = async {
        while client.state() != State::Ready {
            match client.recv_event().await {
                Some(Event::Closed { reason, .. }) => die(&format!("closed: {reason}")),
                Some(Event::Disconnected { reason, .. }) => die(&format!("disconnected: {reason}")),
                _ => {}
            }
        }
    };
    if tokio::time::timeout(WAIT, ready).await.is_err() {
        die("not ready in time");
    }
    while client.poll_event().is_some() {}
    client
}

/// Async mode: close and await the end.
async fn close_async(client: Client) {
    let _ = client.close(1000, "");
    let _ = tokio::time::timeout(Duration::from_secs(5), client.closed()).await;
}

/// (a) async: send, await the echo, repeat.
async fn rr_async(args: &Args, json: Json) -> Json {
    let client = connect_async(args).await;
    let p = Payload::new(args);
    let round_trip = || async {
        p.send(&client)
            .unwrap_or_else(|e| die(&format!("send: {e}")));
        loop {
            match client.recv_event().await {
                Some(Event::Message(_)) => return,
                Some(Event::Written { .. }) => {}
                Some(other) => unexpected(&other),
                None => die("no event"),
            }
        }
    };
    let warmup = Instant::now() + args.secs("warmup", 0.2);
    while Instant::now() < warmup {
        round_trip().await;
    }
    let duration = args.secs("duration", 2.0);
    let mut samples = Vec::with_capacity(1 << 20);
    mark("start");
    let start = Instant::now();
    loop {
        let t0 = Instant::now();
        round_trip().await;
        let t1 = Instant::now();
        samples.push((t1 - t0).as_nanos() as u64);
        if t1 - start >= duration {
            break;
        }
    }
    let elapsed = start.elapsed();
    mark("end");
    close_async(client).await;
    rtt_result(json, samples, elapsed)
}

/// (b), (c), (d) async: as `pipe_poll`, awaiting batches of events.
async fn pipe_async(args: &Args, json: Json) -> Json {
    let client = connect_async(args).await;
    let envelope = client.config().protocol() == Protocol::Envelope;
    let p = Payload::new(args);
    let window = args.usize("window", 1000) as u64;
    let mut events = Vec::with_capacity(1024);
    let mut run = async |duration: Duration, tally: &mut Tally| -> Instant {
        let start = Instant::now();
        let mut last = start;
        let mut stopping = false;
        loop {
            if !stopping {
                tally.top_up(&client, &p, window, envelope);
                stopping = start.elapsed() >= duration;
            }
            if stopping && tally.done(envelope) == tally.sent {
                return last;
            }
            match tokio::time::timeout(WAIT, client.recv_events(&mut events, 1024)).await {
                Ok(_) => {
                    for ev in events.drain(..) {
                        if let Some(t) = tally.on_event(ev) {
                            last = t;
                        }
                    }
                }
                Err(_) => die("no event in time"),
            }
        }
    };
    run(args.secs("warmup", 0.2), &mut Tally::default()).await;
    let mut tally = Tally::default();
    mark("start");
    let start = Instant::now();
    let last = run(args.secs("duration", 2.0), &mut tally).await;
    mark("end");
    close_async(client).await;
    throughput_result(json, tally.done(envelope), tally.bytes, last - start)
        .int("window", window)
        .int("acked", tally.acked)
}

/// Counts kept while pipelining.
#[derive(Default)]
struct Tally {
    sent: u64,
    received: u64,
    bytes: u64,
    acked: u64,
}

impl Tally {
    /// Messages completed: echoed (and, in envelope mode, acked).
    fn done(&self, envelope: bool) -> u64 {
        if envelope {
            self.received.min(self.acked)
        } else {
            self.received
        }
    }
    /// Send until `window` messages are in flight (or the outbox is full).
    fn top_up(&mut self, client: &Client, p: &Payload, window: u64, envelope: bool) {
        let free = window - (self.sent - self.done(envelope));
        for _ in 0..free {
            match p.send(client) {
                Ok(_) => self.sent += 1,
                Err(tether_core::SendError::QueueFull { .. }) => break,
                Err(e) => die(&format!("send: {e}")),
            }
        }
    }

    fn on_event(&mut self, event: Event) -> Option<Instant> {
        match event {
            Event::Message(m) => {
                self.received += 1;
                self.bytes += m.len() as u64;
                Some(Instant::now())
            }
            Event::Acked { .. } => {
                self.acked += 1;
                Some(Instant::now())
            }
            Event::Written { .. } => None,
            other => unexpected(&other),
        }
    }
}

/// (b), (c), (d) poll mode: keep up to `window` messages in flight (not yet echoed, and in
/// envelope mode not yet acked) for `duration`, then wait for the rest.
fn pipe_poll(args: &Args, json: Json) -> Json {
    let client = connect_poll(args);
    let envelope = client.config().protocol() == Protocol::Envelope;
    let p = Payload::new(args);
    let window = args.usize("window", 1000) as u64;
    let run = |duration: Duration, tally: &mut Tally| -> Instant {
        let start = Instant::now();
        let mut last = start;
        let mut stopping = false;
        loop {
            if !stopping {
                tally.top_up(&client, &p, window, envelope);
                stopping = start.elapsed() >= duration;
            }
            if stopping && tally.done(envelope) == tally.sent {
                return last;
            }
            match client.next_event(WAIT) {
                Some(ev) => {
                    if let Some(t) = tally.on_event(ev) {
                        last = t;
                    }
                }
                None => die("no event in time"),
            }
            while let Some(ev) = client.poll_event() {
                if let Some(t) = tally.on_event(ev) {
                    last = t;
                }
            }
        }
    };
    run(args.secs("warmup", 0.2), &mut Tally::default());
    let mut tally = Tally::default();
    mark("start");
    let start = Instant::now();
    let last = run(args.secs("duration", 2.0), &mut tally);
    mark("end");
    client.shutdown(Duration::from_secs(5));
    throughput_result(json, tally.done(envelope), tally.bytes, last - start)
        .int("window", window)
        .int("acked", tally.acked)
}

/// Callback mode: the state the handler keeps, and the client it sends on.
struct CbState {
    client: Arc<OnceLock<Client>>,
    payload: Payload,
    envelope: bool,
    window: u64,
    tally: Tally,
    /// Round-trip mode: when the message in flight was sent; samples.
    rr: bool,
    t0: Instant,
    samples: Vec<u64>,
    /// Measuring: until `deadline`; `last` is the time of the last completion.
    running: bool,
    stopping: bool,
    start: Instant,
    deadline: Instant,
    last: Instant,
    done_tx: Option<mpsc::Sender<()>>,
    ready_tx: Option<mpsc::Sender<()>>,
}

impl CbState {
    fn on_event(&mut self, event: Event) {
        match event {
            Event::State {
                to: State::Ready, ..
            } => {
                if let Some(tx) = self.ready_tx.take() {
                    let _ = tx.send(());
                }
            }
            Event::State { .. } | Event::Written { .. } => {}
            // Shutting down (the measurement is over).
            _ if !self.running => {}
            ev @ (Event::Message(_) | Event::Acked { .. }) => {
                if !self.running {
                    return;
                }
                let now = Instant::now();
                if self.rr {
                    if matches!(ev, Event::Message(_)) {
                        self.samples.push((now - self.t0).as_nanos() as u64);
                        if now >= self.deadline {
                            self.finish(now);
                        } else {
                            self.t0 = Instant::now();
                            self.send_one();
                        }
                    }
                    return;
                }
                if let Some(t) = self.tally.on_event(ev) {
                    self.last = t;
                }
                if !self.stopping {
                    if now >= self.deadline {
                        self.stopping = true;
                    } else {
                        self.top_up();
                    }
                }
                if self.stopping && self.tally.done(self.envelope) == self.tally.sent {
                    self.finish(now);
                }
            }
            other => unexpected(&other),
        }
    }

    fn send_one(&mut self) {
        let client = self.client.get().expect("client");
        self.payload
            .send(client)
            .unwrap_or_else(|e| die(&format!("send: {e}")));
        self.tally.sent += 1;
    }

    fn top_up(&mut self) {
        let client = self.client.get().expect("client");
        self.tally
            .top_up(client, &self.payload, self.window, self.envelope);
    }

    fn finish(&mut self, now: Instant) {
        self.running = false;
        self.last = now;
        if let Some(tx) = self.done_tx.take() {
            let _ = tx.send(());
        }
    }
}

/// Start a callback-mode client; returns it with the handler's shared state.
fn connect_cb(args: &Args, rr: bool) -> (Arc<OnceLock<Client>>, Arc<Mutex<CbState>>) {
    let holder: Arc<OnceLock<Client>> = Arc::new(OnceLock::new());
    let (ready_tx, ready_rx) = mpsc::channel();
    let now = Instant::now();
    let config = config(args);
    let state = Arc::new(Mutex::new(CbState {
        client: holder.clone(),
        payload: Payload::new(args),
        envelope: config.protocol() == Protocol::Envelope,
        window: args.usize("window", 1000) as u64,
        tally: Tally::default(),
        rr,
        t0: now,
        samples: Vec::with_capacity(1 << 20),
        running: false,
        stopping: false,
        start: now,
        deadline: now,
        last: now,
        done_tx: None,
        ready_tx: Some(ready_tx),
    }));
    let handler_state = state.clone();
    // The handler holds the lock while it runs: the main thread only touches the state
    // between measurements.
    let client = Client::connect(
        config,
        EventDelivery::callback(move |event| {
            handler_state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .on_event(event)
        }),
    )
    .unwrap_or_else(|e| die(&format!("connect: {e}")));
    if holder.set(client).is_err() {
        die("client set twice");
    }
    if ready_rx.recv_timeout(WAIT).is_err() {
        die("not ready in time");
    }
    (holder, state)
}

/// Run one measured (or warm-up) phase in callback mode; returns when the handler is done.
fn cb_phase(state: &Arc<Mutex<CbState>>, duration: Duration) -> Instant {
    let (tx, rx) = mpsc::channel();
    {
        let mut s = state.lock().unwrap();
        let now = Instant::now();
        s.tally = Tally::default();
        s.samples.clear();
        s.running = true;
        s.stopping = false;
        s.start = now;
        s.deadline = now + duration;
        s.done_tx = Some(tx);
        if s.rr {
            s.t0 = Instant::now();
            s.send_one();
        } else {
            s.top_up();
        }
    }
    if rx.recv_timeout(duration + WAIT).is_err() {
        die("callback run did not finish in time");
    }
    state.lock().unwrap().last
}

fn rr_cb(args: &Args, json: Json) -> Json {
    let (client, state) = connect_cb(args, true);
    cb_phase(&state, args.secs("warmup", 0.2));
    mark("start");
    let start = Instant::now();
    let last = cb_phase(&state, args.secs("duration", 2.0));
    mark("end");
    let samples = std::mem::take(&mut state.lock().unwrap().samples);
    shutdown_cb(client);
    rtt_result(json, samples, last - start)
}

fn pipe_cb(args: &Args, json: Json) -> Json {
    let (client, state) = connect_cb(args, false);
    cb_phase(&state, args.secs("warmup", 0.2));
    mark("start");
    let start = Instant::now();
    let last = cb_phase(&state, args.secs("duration", 2.0));
    mark("end");
    let (done, bytes, acked, window) = {
        let s = state.lock().unwrap();
        (
            s.tally.done(s.envelope),
            s.tally.bytes,
            s.tally.acked,
            s.window,
        )
    };
    shutdown_cb(client);
    throughput_result(json, done, bytes, last - start)
        .int("window", window)
        .int("acked", acked)
}

/// The handler holds a handle to its own client (to send from callbacks); take it back out to
/// shut down.
fn shutdown_cb(holder: Arc<OnceLock<Client>>) {
    match Arc::try_unwrap(holder) {
        Ok(cell) => {
            if let Some(client) = cell.into_inner() {
                client.shutdown(Duration::from_secs(5));
            }
        }
        Err(shared) => {
            if let Some(client) = shared.get() {
                let _ = client.close(1000, "");
                client.wait_closed(Duration::from_secs(5));
            }
        }
    }
}

/// (e) idle: `conns` clients in poll mode, all Ready; RSS per connection.
fn idle(args: &Args, json: Json) -> Json {
    let conns = args.usize("conns", 1000);
    let settle = args.secs("settle", 1.0);
    let before = rss_kib();
    mark("start");
    let started = Instant::now();
    let config = config(args);
    let clients: Vec<Client> = (0..conns)
        .map(|_| {
            Client::connect(config.clone(), EventDelivery::Poll)
                .unwrap_or_else(|e| die(&format!("connect: {e}")))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let ready = clients.iter().filter(|c| c.state() == State::Ready).count();
        if ready == conns {
            break;
        }
        if Instant::now() > deadline {
            die(&format!("only {ready} of {conns} clients ready"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let connect_time = started.elapsed();
    // Drain the connect events as an application would.
    for c in &clients {
        while c.poll_event().is_some() {}
    }
    std::thread::sleep(settle);
    let after = rss_kib();
    mark("end");
    let reconnects: u64 = clients.iter().map(|c| c.stats().reconnects).sum();
    let result = json
        .int("conns", conns as u64)
        .int("rss_before_kib", before)
        .int("rss_after_kib", after)
        .num(
            "rss_per_conn_kib",
            after.saturating_sub(before) as f64 / conns as f64,
        )
        .num("connect_seconds", connect_time.as_secs_f64())
        .int("reconnects", reconnects);
    // Exit without closing 10,000 clients one by one: the kernel closes the sockets.
    result.emit();
    std::process::exit(0);
}

/// The cost of `poll_event` on a connected, idle client (nothing pending).
fn poll_cost(args: &Args, json: Json) -> Json {
    let client = connect_poll(args);
    let iters = args.usize("iters", 10_000_000);
    for _ in 0..iters / 10 {
        std::hint::black_box(client.poll_event());
    }
    let mut best = f64::MAX;
    let mut runs = Vec::new();
    mark("start");
    for _ in 0..5 {
        let t0 = Instant::now();
        for _ in 0..iters / 5 {
            if std::hint::black_box(client.poll_event()).is_some() {
                die("an event arrived on an idle client");
            }
        }
        let ns = t0.elapsed().as_nanos() as f64 / (iters / 5) as f64;
        best = best.min(ns);
        runs.push(ns);
    }
    mark("end");
    runs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    client.shutdown(Duration::from_secs(5));
    json.int("count", iters as u64)
        .num("poll_ns", runs[runs.len() / 2])
        .num("poll_min_ns", best)
}

/// (f) `Client::shutdown` on a live, idle, Ready client (the Rust equivalent of
/// `tether_client_free`): close handshake, session end, dispatcher joined (callback mode).
fn free(args: &Args, json: Json, mode: &str) -> Json {
    let iters = args.usize("iters", 30);
    let mut ns = Vec::with_capacity(iters);
    mark("start");
    for _ in 0..iters {
        let client = if mode == "cb" {
            let (tx, rx) = mpsc::channel();
            let tx = Mutex::new(Some(tx));
            let client = Client::connect(
                config(args),
                EventDelivery::callback(move |ev| {
                    if let Event::State {
                        to: State::Ready, ..
                    } = ev
                    {
                        if let Some(tx) = tx.lock().unwrap().take() {
                            let _ = tx.send(());
                        }
                    }
                }),
            )
            .unwrap_or_else(|e| die(&format!("connect: {e}")));
            if rx.recv_timeout(WAIT).is_err() {
                die("not ready in time");
            }
            client
        } else {
            connect_poll(args)
        };
        std::thread::sleep(Duration::from_millis(5));
        let t0 = Instant::now();
        if !client.shutdown(Duration::from_secs(5)) {
            die("shutdown timed out");
        }
        ns.push(t0.elapsed().as_nanos() as u64);
    }
    mark("end");
    summary(json.int("count", iters as u64), "free", ns)
}
