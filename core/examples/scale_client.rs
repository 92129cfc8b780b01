//! The client side of the scale-out soak (`python/tests/test_scale_out.py`) and of the second
//! act of `make demo`: many Tether clients in envelope mode, in one process, each with its own
//! session, streaming sequence-numbered messages to a load balancer in front of several server
//! instances, and each keeping its own log of what it was told.
//!
//! ```text
//! scale_client --url ws://127.0.0.1:PORT/ --out log.json
//!     [--clients 100] [--messages 300] [--rate 10] [--window 64]
//!     [--proxies 10] [--link-faults 20] [--stall-ms 1200] [--seed 1]
//!     [--sid-prefix scale] [--deadline 300] [--narrate]
//! ```
//!
//! Client `i` has session id `<prefix>-<i>` and sends the texts `<sid>:0`, `<sid>:1`, ... up to
//! `--messages`, at most `--rate` a second and with at most `--window` unresolved at a time.
//! With `--proxies N > 0` the clients connect through N in-process fault proxies (client `i`
//! through proxy `i % N`), which cut, reset and stall their links (`--link-faults` in all,
//! spread evenly over the messages sent; a stall lasts `--stall-ms`, longer than the
//! heartbeat's timeout, so the client must notice it on its own).
//!
//! Protocol on stdout, one line each: `READY <clients>` once every client is started;
//! `PROGRESS <sent> <acked> <failed> <echoes> <link faults>` every 200 ms; `FAULT <what>` for
//! each link fault; `DONE <ok|incomplete>` at the very end, after the log was written.
//! On stdin the orchestrator writes `finish` once its own faults (server kills, restarts) are
//! over; the driver ends only after that (or after stdin closes), after every link fault, and
//! once every message is resolved and every echo of an acked message arrived.
//!
//! The log (`--out`, JSON): per session the ids acked, in the order the acks came; the ids
//! failed, with the reason; the echoes received, in order, as sequence numbers (an echo that is
//! not `<own sid>:<n>` goes to `foreign_echoes`); and the client's counters. Ids start at 1, so
//! id `n` carries sequence number `n - 1` (checked: `ids_match_seq`).

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tether_core::{Client, Config, Event, EventDelivery, Message, OverflowPolicy, Protocol, State};
use tether_test_peers::{Direction, Fault, Proxy};

const USAGE: &str = "usage: scale_client --url WS_URL --out PATH [--clients N] [--messages N] \
[--rate PER_SEC] [--window N] [--proxies N] [--link-faults N] [--stall-ms MS] [--seed N] \
[--sid-prefix S] [--deadline SECS] [--narrate]";

/// What the command line asks for.
#[derive(Clone, Debug)]
struct Args {
    url: String,
    out: String,
    clients: usize,
    messages: u64,
    rate: f64,
    window: u64,
    proxies: usize,
    link_faults: usize,
    stall: Duration,
    seed: u64,
    sid_prefix: String,
    deadline: Duration,
    narrate: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        url: String::new(),
        out: String::new(),
        clients: 100,
        messages: 300,
        rate: 10.0,
        window: 64,
        proxies: 10,
        link_faults: 20,
        stall: Duration::from_millis(1200),
        seed: 1,
        sid_prefix: "scale".to_owned(),
        deadline: Duration::from_secs(300),
        narrate: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--narrate" {
            args.narrate = true;
            continue;
        }
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.to_owned());
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let bad = |e: &dyn std::fmt::Display| format!("bad {flag} {value:?}: {e}");
        match flag.as_str() {
            "--url" => args.url = value,
            "--out" => args.out = value,
            "--clients" => args.clients = value.parse().map_err(|e| bad(&e))?,
            "--messages" => args.messages = value.parse().map_err(|e| bad(&e))?,
            "--rate" => args.rate = value.parse().map_err(|e| bad(&e))?,
            "--window" => args.window = value.parse().map_err(|e| bad(&e))?,
            "--proxies" => args.proxies = value.parse().map_err(|e| bad(&e))?,
            "--link-faults" => args.link_faults = value.parse().map_err(|e| bad(&e))?,
            "--stall-ms" => args.stall = Duration::from_millis(value.parse().map_err(|e| bad(&e))?),
            "--seed" => args.seed = value.parse().map_err(|e| bad(&e))?,
            "--sid-prefix" => args.sid_prefix = value,
            "--deadline" => {
                args.deadline = Duration::from_secs(value.parse().map_err(|e| bad(&e))?)
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if args.url.is_empty() || args.out.is_empty() {
        return Err(format!("--url and --out are required\n{USAGE}"));
    }
    if args.clients == 0 || args.window == 0 || args.rate <= 0.0 || !args.rate.is_finite() {
        return Err(format!(
            "--clients, --window and --rate must be positive\n{USAGE}"
        ));
    }
    Ok(args)
}

/// Counters every client task adds to, read by the progress printer and the fault injector.
#[derive(Default)]
struct Totals {
    sent: AtomicU64,
    acked: AtomicU64,
    failed: AtomicU64,
    echoes: AtomicU64,
    link_faults: AtomicUsize,
    /// The orchestrator said `finish` (or closed stdin).
    finish: AtomicBool,
    /// Every link fault was injected and the last stall is over.
    faults_done: AtomicBool,
}

/// One client's own record.
#[derive(Default)]
struct SessionLog {
    acked: Vec<u64>,
    failed: Vec<(u64, String)>,
    echoes: Vec<u64>,
    foreign_echoes: Vec<String>,
    ids_match_seq: bool,
    send_errors: Vec<String>,
    disconnects: u64,
    resets: u64,
    sent: u64,
    complete: bool,
}

/// Prints one protocol line and flushes, so the orchestrator sees it at once.
fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn config_for(url: &str, sid: &str, window: u64) -> Result<Config, tether_core::ConfigError> {
    Config::builder(url)
        .protocol(Protocol::Envelope)
        .session_id(sid)
        // The heartbeat notices a stalled link (no FIN, no RST) within about a second.
        .heartbeat(Some(Duration::from_millis(250)), Duration::from_millis(750))
        .backoff(Duration::from_millis(20), Duration::from_millis(500), 2.0)
        .min_uptime(Duration::ZERO)
        .connect_timeout(Duration::from_secs(2))
        .handshake_timeout(Duration::from_secs(3))
        // Resends on the same link are de-duplicated by the server; giving up would make a
        // message "failed" that the server may still have: only a dead link should resend.
        .ack_timeout(Duration::from_secs(10), 1000)
        // The window bounds what is unresolved; the outbox only needs room for it.
        .outbox_limits(window as usize * 2 + 16, 64 << 20)
        .overflow_policy(OverflowPolicy::Reject)
        .close_timeout(Duration::from_secs(3))
        .build()
}

/// One client: send paced and windowed, record every event, end when everything is resolved
/// and the orchestrator's faults are over.
async fn run_client(
    index: usize,
    sid: String,
    client: Client,
    args: Arc<Args>,
    totals: Arc<Totals>,
    started: Instant,
) -> (String, SessionLog, tether_core::Stats) {
    let mut log = SessionLog {
        ids_match_seq: true,
        ..SessionLog::default()
    };
    let period = Duration::from_secs_f64(1.0 / args.rate);
    // Spread the clients' first sends over one period, so they do not tick in lockstep.
    let offset = period.mul_f64(index as f64 / args.clients as f64);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut finished_check = tokio::time::interval(Duration::from_millis(100));
    let mut events = Vec::with_capacity(256);
    let mut resolved = 0u64;
    let mut echoed = 0u64;
    let mut closed = false;
    let prefix = format!("{sid}:");
    let deadline = tokio::time::Instant::from_std(started + args.deadline);
    let say = |what: String| {
        if args.narrate {
            emit(&format!(
                "[{:>6.2}s] {sid}: {what}",
                started.elapsed().as_secs_f64()
            ));
        }
    };
    loop {
        let can_send = log.sent < args.messages && log.sent - resolved < args.window;
        tokio::select! {
            _ = ticker.tick(), if can_send => {
                let seq = log.sent;
                match client.send_text(format!("{sid}:{seq}")) {
                    Ok(id) => {
                        log.ids_match_seq &= id.0 == seq + 1;
                        log.sent += 1;
                        totals.sent.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        log.send_errors.push(format!("seq {seq}: {e}"));
                        break;
                    }
                }
            }
            n = client.recv_events(&mut events, 256) => {
                if n == 0 {
                    break;
                }
                for event in events.drain(..) {
                    match event {
                        Event::Acked { id } => {
                            log.acked.push(id.0);
                            resolved += 1;
                            totals.acked.fetch_add(1, Ordering::Relaxed);
                        }
                        Event::SendFailed { id, reason } => {
                            say(format!("message {} FAILED: {reason}", id.0));
                            log.failed.push((id.0, reason.to_string()));
                            resolved += 1;
                            totals.failed.fetch_add(1, Ordering::Relaxed);
                        }
                        Event::Message(Message::Text(t)) => {
                            match t.strip_prefix(prefix.as_str()).and_then(|n| n.parse().ok()) {
                                Some(seq) => log.echoes.push(seq),
                                None => log.foreign_echoes.push(t.to_string()),
                            }
                            echoed += 1;
                            totals.echoes.fetch_add(1, Ordering::Relaxed);
                        }
                        Event::Message(Message::Binary(b)) => {
                            log.foreign_echoes.push(format!("<{} binary bytes>", b.len()));
                        }
                        Event::Disconnected { reason, will_reconnect } => {
                            log.disconnects += 1;
                            say(format!(
                                "link lost: {reason} (will reconnect: {will_reconnect}); {} acked so far",
                                log.acked.len()
                            ));
                        }
                        Event::State { to: State::Ready, .. } => {
                            let stats = client.stats();
                            if log.disconnects == 0 {
                                say("ready: streaming".to_owned());
                            } else {
                                say(format!(
                                    "ready again on a new link: session resumed, {} unresolved \
                                     messages go now (the unacked ones again)",
                                    stats.awaiting_ack + stats.outbox_messages,
                                ));
                            }
                        }
                        Event::Closed { .. } => closed = true,
                        other => {
                            // A session reset (revision 2) is worth knowing about: count it.
                            let name = format!("{other:?}");
                            if name.starts_with("SessionReset") {
                                log.resets += 1;
                                say(format!("session reset: {name}"));
                            }
                        }
                    }
                }
                if closed {
                    break;
                }
            }
            _ = finished_check.tick() => {}
            _ = tokio::time::sleep_until(deadline) => break,
        }
        let done = log.sent == args.messages
            && resolved == args.messages
            && echoed >= log.acked.len() as u64
            && totals.finish.load(Ordering::Relaxed)
            && totals.faults_done.load(Ordering::Relaxed);
        if done {
            log.complete = true;
            break;
        }
    }
    let stats = client.stats();
    if !closed {
        let _ = client.close(1000, "done");
        let _ = tokio::time::timeout(Duration::from_secs(5), client.closed()).await;
    }
    (sid, log, stats)
}

/// Injects `args.link_faults` link faults on random proxies, evenly spread over the messages
/// sent; a stall lasts `args.stall` and only one stall runs at a time.
fn inject_link_faults(proxies: &[Proxy], args: &Args, totals: &Totals, started: Instant) {
    let total = args.messages * args.clients as u64;
    let mut rng = fastrand::Rng::with_seed(args.seed);
    for n in 0..args.link_faults {
        let at = (n as u64 + 1) * total / (args.link_faults as u64 + 1);
        while totals.sent.load(Ordering::Relaxed) < at {
            if started.elapsed() > args.deadline {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let which = rng.usize(..proxies.len());
        let proxy = &proxies[which];
        match rng.u8(..3) {
            0 => {
                emit(&format!("FAULT cut proxy {which}"));
                proxy.cut_all();
            }
            1 => {
                emit(&format!("FAULT reset proxy {which}"));
                proxy.reset_all();
            }
            _ => {
                emit(&format!(
                    "FAULT stall proxy {which} for {} ms",
                    args.stall.as_millis()
                ));
                proxy.set_fault(Fault::Stall {
                    direction: Direction::Both,
                });
                std::thread::sleep(args.stall);
                proxy.set_fault(Fault::Pass);
            }
        }
        totals.link_faults.fetch_add(1, Ordering::Relaxed);
    }
}

fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(args) => Arc::new(args),
        Err(msg) => {
            eprintln!("{msg}");
            return std::process::ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("scale_client: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Arc<Args>) -> Result<bool, Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let started = Instant::now();
    let totals = Arc::new(Totals::default());

    // The in-process fault proxies, all relaying to the load balancer.
    let upstream: std::net::SocketAddr = {
        let url = url::Url::parse(&args.url)?;
        let host = url.host_str().ok_or("--url has no host")?;
        let port = url.port_or_known_default().ok_or("--url has no port")?;
        format!("{host}:{port}").parse()?
    };
    let mut proxies = Vec::new();
    for _ in 0..args.proxies {
        proxies.push(Proxy::try_start(upstream)?);
    }
    let path = url::Url::parse(&args.url)?.path().to_owned();

    let mut tasks = Vec::new();
    for i in 0..args.clients {
        let sid = format!("{}-{i}", args.sid_prefix);
        let url = match proxies.get(i % args.proxies.max(1)) {
            Some(proxy) => proxy.url(&path),
            None => args.url.clone(),
        };
        let config = config_for(&url, &sid, args.window)?;
        let client = Client::connect_on(config, EventDelivery::Poll, runtime.handle())?;
        tasks.push(runtime.spawn(run_client(
            i,
            sid,
            client,
            args.clone(),
            totals.clone(),
            started,
        )));
    }
    emit(&format!("READY {}", args.clients));

    // stdin: `finish` (or end of input) says the orchestrator's own faults are over.
    {
        let totals = totals.clone();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                match line {
                    Ok(l) if l.trim() == "finish" => break,
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            totals.finish.store(true, Ordering::Relaxed);
        });
    }

    let printing = AtomicBool::new(true);
    let results = std::thread::scope(|scope| {
        let faults = scope.spawn(|| {
            if !proxies.is_empty() {
                inject_link_faults(&proxies, &args, &totals, started);
            }
            totals.faults_done.store(true, Ordering::Relaxed);
        });
        let printer = scope.spawn(|| {
            while printing.load(Ordering::Relaxed) {
                emit(&format!(
                    "PROGRESS {} {} {} {} {}",
                    totals.sent.load(Ordering::Relaxed),
                    totals.acked.load(Ordering::Relaxed),
                    totals.failed.load(Ordering::Relaxed),
                    totals.echoes.load(Ordering::Relaxed),
                    totals.link_faults.load(Ordering::Relaxed),
                ));
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        let results = runtime.block_on(async {
            let mut results = Vec::new();
            for task in tasks {
                results.push(task.await);
            }
            results
        });
        printing.store(false, Ordering::Relaxed);
        let _ = printer.join();
        let _ = faults.join();
        results
    });

    let link_faults = totals.link_faults.load(Ordering::Relaxed);
    let mut sessions = serde_json::Map::new();
    let mut all_complete = true;
    let mut sums: HashMap<&str, u64> = HashMap::new();
    for result in results {
        let (sid, log, stats) = result?;
        all_complete &= log.complete;
        *sums.entry("sent").or_default() += log.sent;
        *sums.entry("acked").or_default() += log.acked.len() as u64;
        *sums.entry("failed").or_default() += log.failed.len() as u64;
        *sums.entry("echoes").or_default() += log.echoes.len() as u64;
        *sums.entry("disconnects").or_default() += log.disconnects;
        *sums.entry("session_resets").or_default() += log.resets;
        *sums.entry("reconnects").or_default() += stats.reconnects;
        *sums.entry("resent").or_default() += stats.messages_resent;
        *sums.entry("duplicates_dropped").or_default() += stats.duplicates_dropped;
        sessions.insert(
            sid,
            serde_json::json!({
                "complete": log.complete,
                "sent": log.sent,
                "acked": log.acked,
                "failed": log.failed,
                "echoes": log.echoes,
                "foreign_echoes": log.foreign_echoes,
                "ids_match_seq": log.ids_match_seq,
                "send_errors": log.send_errors,
                "disconnects": log.disconnects,
                "session_resets": log.resets,
                "reconnects": stats.reconnects,
                "resent": stats.messages_resent,
                "duplicates_dropped": stats.duplicates_dropped,
                "outbox_high_water_messages": stats.outbox_high_water_messages,
            }),
        );
    }
    let report = serde_json::json!({
        "complete": all_complete,
        "seconds": started.elapsed().as_secs_f64(),
        "clients": args.clients,
        "messages_per_client": args.messages,
        "link_faults": link_faults,
        "totals": sums,
        "sessions": sessions,
    });
    std::fs::write(&args.out, serde_json::to_vec(&report)?)?;
    drop(proxies);
    emit(&format!(
        "DONE {}",
        if all_complete { "ok" } else { "incomplete" }
    ));
    Ok(all_complete)
}
