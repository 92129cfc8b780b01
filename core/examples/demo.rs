//! The demo behind `make demo`: "nothing lost, nothing silent", at a human scale.
//!
//! A Tether reference server (the protocol's Rust implementation from tests/peers) runs behind
//! a fault-injecting proxy. A client in envelope mode sends a few thousand numbered messages
//! while the link is cut, reset, stalled (no FIN, no RST: only the heartbeat can tell) and the
//! server restarts. Every event worth a human's attention is printed as it happens; at the end
//! the server's own record is checked against what the client was told.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tether_core::{Client, Config, Event, EventDelivery, OverflowPolicy, Protocol, State};
use tether_test_peers::tether_server::{Options, Server};
use tether_test_peers::{Direction, Fault, Proxy};

const MESSAGES: u64 = 3000;
const SID: &str = "demo-session";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let server = runtime.block_on(Server::start(Options::default()))?;
    let proxy = Proxy::start(([127, 0, 0, 1], server.port()).into());
    let config = Config::builder(proxy.url("/"))
        .protocol(Protocol::Envelope)
        .session_id(SID)
        .heartbeat(Some(Duration::from_millis(250)), Duration::from_millis(500))
        .backoff(Duration::from_millis(50), Duration::from_secs(1), 2.0)
        .min_uptime(Duration::from_millis(500))
        .outbox_limits(1000, 1 << 20)
        .overflow_policy(OverflowPolicy::Wait(Duration::from_secs(30)))
        .build()?;
    let client = Client::connect(config, EventDelivery::Poll)?;
    let started = Instant::now();
    let say = |what: String| println!("[{:>6.2}s] {what}", started.elapsed().as_secs_f64());
    say(format!(
        "reference server on 127.0.0.1:{}, client connects through the fault proxy at {}",
        server.port(),
        proxy.url("/")
    ));

    // The script of faults, by how many messages have been sent.
    let mut script: Vec<(u64, &str)> = vec![
        (400, "cut"),
        (900, "reset"),
        (1400, "stall"),
        (1900, "restart"),
        (2400, "cut"),
    ];
    script.reverse();
    let sent = AtomicU64::new(0);
    let mut acked = 0u64;
    let mut acked_payloads: HashSet<u64> = HashSet::new();
    let mut failed = 0u64;
    let mut down_since: Option<Instant> = None;
    let mut stalled_at: Option<Instant> = None;
    let mut restore_times = Vec::new();
    let mut echoes: HashSet<String> = HashSet::new();
    let mut echo_duplicates = 0u64;
    let deadline = started + Duration::from_secs(60);

    std::thread::scope(|scope| -> Result<(), Box<dyn std::error::Error>> {
        // The application's sender: a steady stream, 25 messages every 20 ms. While the link
        // is down the outbox holds them; when it is full, send waits (the overflow policy).
        let sender = scope.spawn(|| -> Result<(), tether_core::SendError> {
            for n in 0..MESSAGES {
                client.send_text(format!("{n}"))?;
                sent.store(n + 1, Ordering::SeqCst);
                if n % 25 == 24 {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            Ok(())
        });
        while Instant::now() < deadline
            && (!sender.is_finished() || acked + failed < MESSAGES || (echoes.len() as u64) < acked)
        {
            let n = sent.load(Ordering::SeqCst);
            if script.last().is_some_and(|(at, _)| n >= *at) {
                if let Some((_, fault)) = script.pop() {
                    match fault {
                        "cut" => {
                            say(">>> fault: the proxy cuts the connection (FIN)".into());
                            proxy.cut_all();
                        }
                        "reset" => {
                            say(">>> fault: the proxy resets the connection (RST)".into());
                            proxy.reset_all();
                        }
                        "stall" => {
                            say(">>> fault: the link stalls silently (no FIN, no RST): only the heartbeat can tell".into());
                            proxy.set_fault(Fault::Stall {
                                direction: Direction::Both,
                            });
                            stalled_at = Some(Instant::now());
                        }
                        _ => {
                            say(">>> fault: the server restarts (sessions kept)".into());
                            runtime.block_on(server.command("restart"));
                        }
                    }
                }
            }
            if stalled_at.is_some_and(|t| t.elapsed() > Duration::from_millis(1500)) {
                say(">>> the stall ends".into());
                proxy.set_fault(Fault::Pass);
                stalled_at = None;
            }
            let Some(event) = client.next_event(Duration::from_millis(20)) else {
                continue;
            };
            match event {
                Event::Acked { id } => {
                    acked += 1;
                    acked_payloads.insert(id.0 - 1); // ids start at 1, payloads at 0
                }
                Event::SendFailed { id, reason } => {
                    failed += 1;
                    say(format!("message {id} FAILED: {reason}"));
                }
                Event::Message(m) => {
                    let first_time =
                        echoes.insert(String::from_utf8_lossy(m.as_bytes()).into_owned());
                    echo_duplicates += u64::from(!first_time);
                }
                Event::Disconnected {
                    reason,
                    will_reconnect,
                } => {
                    down_since.get_or_insert_with(Instant::now);
                    say(format!("disconnected: {reason} (will reconnect: {will_reconnect}); {acked} acked so far"));
                }
                Event::Reconnecting { attempt, delay } => {
                    say(format!("reconnecting: attempt {attempt} in {delay:.0?}"))
                }
                Event::State {
                    to: State::Ready, ..
                } => {
                    let stats = client.stats();
                    let restored = down_since.take().map(|t| t.elapsed());
                    if let Some(t) = restored {
                        restore_times.push(t);
                    }
                    say(format!(
                        "ready{}: {} waiting messages go first, unacked ones again ({} resent in all so far)",
                        restored
                            .map(|t| format!(" after {t:.0?} down"))
                            .unwrap_or_default(),
                        stats.outbox_messages,
                        stats.messages_resent
                    ));
                }
                _ => {}
            }
        }
        sender.join().map_err(|_| "sender thread panicked")??;
        Ok(())
    })?;
    let sent = sent.load(Ordering::SeqCst);

    // The server's own record: what its application received, per session, in order.
    let dump = std::env::temp_dir().join(format!("tether-demo-{}.json", std::process::id()));
    runtime.block_on(server.command(&format!("dump {}", dump.display())));
    let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&dump)?)?;
    let _ = std::fs::remove_file(&dump);
    let delivered: Vec<u64> = record[SID]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()?.parse().ok()).collect())
        .unwrap_or_default();
    let unique: HashSet<u64> = delivered.iter().copied().collect();
    let duplicated = (delivered.len() - unique.len()) as u64;
    let out_of_order = delivered.windows(2).filter(|w| w[1] <= w[0]).count();
    // Lost: acked but never seen by the server's application, or never resolved at all.
    let lost = acked_payloads
        .iter()
        .filter(|n| !unique.contains(n))
        .count() as u64
        + (sent - acked - failed);
    let stats = client.stats();
    restore_times.sort();
    let p50 = restore_times
        .get(restore_times.len() / 2)
        .copied()
        .unwrap_or_default();
    let max = restore_times.last().copied().unwrap_or_default();

    println!();
    println!("| sent | acked | failed | resent | lost | duplicated | out of order | reconnects | restore p50 | restore max |");
    println!("|-----:|------:|-------:|-------:|-----:|-----------:|-------------:|-----------:|------------:|------------:|");
    println!(
        "| {sent} | {acked} | {failed} | {} | {lost} | {duplicated} | {out_of_order} | {} | {p50:.0?} | {max:.0?} |",
        stats.messages_resent, stats.reconnects
    );
    println!();
    println!("sent {sent}, acked {acked}, lost {lost}, duplicated {duplicated} (server echoes seen twice by the app: {echo_duplicates})");
    client.shutdown(Duration::from_secs(5));
    if lost > 0 || duplicated > 0 || out_of_order > 0 || echo_duplicates > 0 {
        return Err("delivery guarantees violated".into());
    }
    Ok(())
}
