//! The demo behind `make demo`: a bundled local echo server, and a client that sends a stream
//! of messages while the server closes the connection, then dies and comes back. The client
//! reconnects by itself, queues what is sent meanwhile, and nothing is lost.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tether_core::{Client, Config, Event, EventDelivery, Message};
use tether_test_peers::Peer;

const TOTAL: usize = 300;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Peer::start();
    println!("echo server listening on {}", server.url());
    let config = Config::builder(server.url())
        .backoff(Duration::from_millis(100), Duration::from_secs(1), 2.0)
        .heartbeat(Some(Duration::from_secs(1)), Duration::from_secs(1))
        .build()?;
    let client = Client::connect(config, EventDelivery::Poll)?;
    let started = Instant::now();
    let mut echoed: HashMap<String, usize> = HashMap::new();
    let mut last_written = 0;
    let mut show = |event: Event, echoed: &mut HashMap<String, usize>| match event {
        Event::Message(Message::Text(t)) => *echoed.entry(t.to_string()).or_default() += 1,
        Event::Written { up_to } => last_written = up_to.0,
        other => println!("[{:>6.3}s] {other:?}", started.elapsed().as_secs_f64()),
    };

    for i in 0..TOTAL {
        match i {
            100 => {
                println!(
                    "[{:>6.3}s] >>> server closes every connection (1012 service restart)",
                    started.elapsed().as_secs_f64()
                );
                server.close_all(1012, "service restart");
            }
            200 => {
                println!(
                    "[{:>6.3}s] >>> server process goes away (TCP dropped, port closed)",
                    started.elapsed().as_secs_f64()
                );
                server.stop();
            }
            250 => {
                println!(
                    "[{:>6.3}s] >>> server comes back on the same port",
                    started.elapsed().as_secs_f64()
                );
                server.restart();
            }
            _ => {}
        }
        client.send_text(format!("msg-{i}"))?;
        std::thread::sleep(Duration::from_millis(5));
        while let Some(event) = client.poll_event() {
            show(event, &mut echoed);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while echoed.len() < TOTAL && Instant::now() < deadline {
        if let Some(event) = client.next_event(Duration::from_millis(100)) {
            show(event, &mut echoed);
        }
    }
    let stats = client.stats();
    let lost = (0..TOTAL)
        .filter(|i| !echoed.contains_key(&format!("msg-{i}")))
        .count();
    let duplicated = echoed.values().filter(|n| **n > 1).count();
    println!();
    println!("sent {TOTAL}, written {last_written}, echoed back {}, lost {lost}, duplicated {duplicated}", echoed.len());
    println!(
        "reconnects {}, last ping RTT {:?}, outbox high-water {} messages",
        stats.reconnects, stats.last_rtt, stats.outbox_high_water_messages
    );
    println!("(raw mode is at-least-once: a message whose write was cut off is sent again; envelope mode adds acks and de-duplication)");
    client.shutdown(Duration::from_secs(5));
    if lost > 0 {
        return Err(format!("{lost} messages lost").into());
    }
    Ok(())
}
