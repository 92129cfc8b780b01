//! Chaos soak with delivery accounting: a client sends sequence-numbered messages in envelope
//! mode through the fault-injecting proxy to each reference server, while the proxy injects
//! random faults and the server restarts a few times. At the end every message must be acked
//! exactly once or failed exactly once, and the server's application must have seen each acked
//! message exactly once, in order: lost 0, duplicated 0, out of order 0.
//!
//! CI size: 20,000 messages and 100 faults per server. `TETHER_CHAOS_LONG=1` (see `make chaos`):
//! 1,000,000 messages and 1,000 faults. The report is printed and written as JSON to
//! `target/tmp/chaos-<server>.json`.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fast;
use common::ref_server::{Kind, RefServer};
use tether_core::{
    Client, Disconnect, Event, EventDelivery, Message, OverflowPolicy, Protocol, State,
};
use tether_test_peers::{Direction, Fault, Proxy};

struct Plan {
    messages: u64,
    faults: usize,
    restarts: usize,
    every: Duration,
    outbox_messages: usize,
}

fn plan() -> Plan {
    if std::env::var_os("TETHER_CHAOS_LONG").is_some() {
        Plan {
            messages: 1_000_000,
            faults: 1000,
            restarts: 10,
            every: Duration::from_millis(40),
            outbox_messages: 4096,
        }
    } else {
        Plan {
            messages: 20_000,
            faults: 100,
            restarts: 3,
            every: Duration::from_millis(40),
            outbox_messages: 2000,
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn soak(kind: Kind) {
    let plan = plan();
    let Some(mut server) = RefServer::start(kind, &[]) else {
        return;
    };
    let proxy = Proxy::start(([127, 0, 0, 1], server.port).into());
    let sid = format!("chaos-{kind:?}");
    let config = fast(&proxy.url("/"))
        .protocol(Protocol::Envelope)
        .session_id(&sid)
        .heartbeat(Some(Duration::from_millis(100)), Duration::from_millis(300))
        .backoff(Duration::from_millis(5), Duration::from_millis(100), 2.0)
        .connect_timeout(Duration::from_secs(2))
        .handshake_timeout(Duration::from_secs(2))
        .ack_timeout(Duration::from_secs(3), 50)
        .outbox_limits(plan.outbox_messages, 16 << 20)
        .overflow_policy(OverflowPolicy::Wait(Duration::from_secs(120)))
        .build()
        .expect("config");
    let client = Arc::new(Client::connect(config, EventDelivery::Poll).expect("client"));

    let faults = vec![
        Fault::Cut,
        Fault::Reset,
        Fault::Stall {
            direction: Direction::Both,
        },
        Fault::CutAfter { bytes: 3000 },
        Fault::Latency(Duration::from_millis(5)),
        Fault::Pass,
    ];
    let started = Instant::now();
    proxy.start_chaos(plan.every, faults, 0x7e7e_0001);

    let sender = {
        let client = client.clone();
        let n = plan.messages;
        std::thread::spawn(move || {
            for i in 0..n {
                if let Err(e) = client.send_text(format!("{i}")) {
                    return Err(format!("send {i}: {e}"));
                }
            }
            Ok(())
        })
    };

    let mut acked: HashMap<u64, u32> = HashMap::new();
    let mut failed: HashMap<u64, String> = HashMap::new();
    let mut failed_twice = 0;
    let mut echoes: HashMap<String, u32> = HashMap::new();
    let mut down_since: Option<Instant> = None;
    let mut restore_times: Vec<Duration> = Vec::new();
    let mut disconnects = 0u64;
    let mut restarts_done = 0;
    let mut chaos_on = true;
    let deadline = started + Duration::from_secs(if plan.messages > 100_000 { 3600 } else { 100 });
    loop {
        assert!(
            Instant::now() < deadline,
            "{kind:?}: soak did not finish: acked {} failed {} echoes {}",
            acked.len(),
            failed.len(),
            echoes.len()
        );
        if let Some(event) = client.next_event(Duration::from_millis(20)) {
            match event {
                Event::Acked { id } => *acked.entry(id.0).or_default() += 1,
                Event::SendFailed { id, reason } => {
                    let again = failed.insert(id.0, reason.to_string()).is_some();
                    failed_twice += u32::from(again);
                }
                Event::Message(Message::Text(t)) => *echoes.entry(t.to_string()).or_default() += 1,
                Event::Disconnected {
                    reason,
                    will_reconnect,
                } => {
                    assert!(
                        will_reconnect,
                        "{kind:?}: chaos must never stop the client: {reason}"
                    );
                    assert!(
                        !matches!(reason, Disconnect::HandshakeFailed(_)),
                        "{reason}"
                    );
                    disconnects += 1;
                    down_since.get_or_insert_with(Instant::now);
                }
                Event::State {
                    to: State::Ready, ..
                } => {
                    if let Some(since) = down_since.take() {
                        restore_times.push(since.elapsed());
                    }
                }
                _ => {}
            }
        }
        let injected = proxy.faults_injected().len();
        // A few server restarts (session state kept) spread over the run.
        if restarts_done < plan.restarts
            && injected >= (restarts_done + 1) * plan.faults / (plan.restarts + 1)
        {
            server.command("restart");
            restarts_done += 1;
        }
        if chaos_on && injected >= plan.faults && sender.is_finished() {
            proxy.stop_chaos();
            proxy.set_fault(Fault::Pass);
            chaos_on = false;
        }
        let resolved = (acked.len() + failed.len()) as u64;
        if !chaos_on && resolved == plan.messages && echoes.len() >= acked.len() {
            break;
        }
    }
    sender
        .join()
        .expect("sender thread")
        .expect("every send accepted");
    let elapsed = started.elapsed();

    let delivered = server.delivered(&sid);
    let mut app_duplicates = 0u64;
    let mut out_of_order = 0u64;
    let mut seen = std::collections::HashSet::new();
    let mut previous: Option<u64> = None;
    for payload in &delivered {
        let n: u64 = payload.parse().expect("payloads are numbers");
        if !seen.insert(n) {
            app_duplicates += 1;
        }
        if previous.is_some_and(|p| n <= p) {
            out_of_order += 1;
        }
        previous = Some(n);
    }
    let lost = acked
        .keys()
        .filter(|id| !seen.contains(&(**id - 1)))
        .count() as u64;
    let stats = client.stats();
    restore_times.sort();
    let mut failure_reasons: HashMap<&str, u64> = HashMap::new();
    for reason in failed.values() {
        *failure_reasons.entry(reason.as_str()).or_default() += 1;
    }
    let report = serde_json::json!({
        "server": format!("{kind:?}"),
        "messages": plan.messages,
        "faults_injected": proxy.faults_injected().len(),
        "server_restarts": restarts_done,
        "seconds": elapsed.as_secs_f64(),
        "sent": plan.messages,
        "acked": acked.len(),
        "failed": failed.len(),
        "failure_reasons": failure_reasons,
        "resent": stats.messages_resent,
        "server_app_duplicates": app_duplicates,
        "lost": lost,
        "out_of_order": out_of_order,
        "client_duplicates_dropped": stats.duplicates_dropped,
        "echo_duplicates_seen_by_app": echoes.values().filter(|n| **n > 1).count(),
        "disconnects": disconnects,
        "reconnects": stats.reconnects,
        "restore_ms_p50": percentile(&restore_times, 50.0).as_secs_f64() * 1e3,
        "restore_ms_p99": percentile(&restore_times, 99.0).as_secs_f64() * 1e3,
        "outbox_high_water_messages": stats.outbox_high_water_messages,
        "outbox_high_water_bytes": stats.outbox_high_water_bytes,
        "outbox_bound_messages": plan.outbox_messages,
    });
    println!(
        "| {:<6} | {:>9} | {:>6} | {:>9} | {:>6} | {:>7} | {:>4} | {:>4} | {:>4} | {:>10} | {:>8.1} | {:>8.1} | {:>9} |",
        format!("{kind:?}"),
        plan.messages,
        proxy.faults_injected().len(),
        acked.len(),
        failed.len(),
        stats.messages_resent,
        app_duplicates,
        lost,
        out_of_order,
        stats.reconnects,
        percentile(&restore_times, 50.0).as_secs_f64() * 1e3,
        percentile(&restore_times, 99.0).as_secs_f64() * 1e3,
        stats.outbox_high_water_messages,
    );
    println!("{report}");
    let path =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("chaos-{kind:?}.json"));
    let _ = std::fs::write(
        &path,
        serde_json::to_string_pretty(&report).unwrap_or_default(),
    );

    assert_eq!(failed_twice, 0, "no id failed twice");
    assert!(
        acked.values().all(|n| *n == 1),
        "{kind:?}: an id was acked twice"
    );
    assert!(
        acked.keys().all(|id| !failed.contains_key(id)),
        "{kind:?}: an id was acked and failed"
    );
    assert_eq!(
        (acked.len() + failed.len()) as u64,
        plan.messages,
        "every id resolved"
    );
    assert_eq!(app_duplicates, 0, "{kind:?}: {report}");
    assert_eq!(lost, 0, "{kind:?}: {report}");
    assert_eq!(out_of_order, 0, "{kind:?}: {report}");
    assert!(
        echoes.values().all(|n| *n == 1),
        "{kind:?}: the client application saw an echo twice"
    );
    assert!(proxy.faults_injected().len() >= plan.faults);
    assert!(
        stats.outbox_high_water_messages <= plan.outbox_messages as u64,
        "{report}"
    );
    assert!(disconnects > 0, "faults were felt: {report}");
}

#[test]
fn chaos_soak_rust() {
    soak(Kind::Rust)
}

#[test]
fn chaos_soak_python() {
    soak(Kind::Python)
}

#[test]
fn chaos_soak_node() {
    soak(Kind::Node)
}
