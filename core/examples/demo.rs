//! The demo behind `make demo`: a bundled local echo server, and a client that keeps sending
//! while the server first closes the connection, then dies and comes back. The client
//! reconnects by itself; what the application sends during each outage waits in the outbox and
//! is delivered, in order, once the link is back.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tether_core::{Client, Config, Event, EventDelivery, Message};
use tether_test_peers::Peer;

struct Demo {
    client: Client,
    started: Instant,
    echoed: HashMap<String, usize>,
    next: usize,
}

impl Demo {
    fn say(&self, what: &str) {
        println!("[{:>6.3}s] {what}", self.started.elapsed().as_secs_f64());
    }

    /// Handle one event: count echoes, print everything else.
    fn on(&mut self, event: Event) -> Event {
        match &event {
            Event::Message(Message::Text(t)) => *self.echoed.entry(t.to_string()).or_default() += 1,
            Event::Written { .. } => {}
            other => self.say(&format!("{other:?}")),
        }
        event
    }

    fn send(&mut self, n: usize) -> Result<(), tether_core::SendError> {
        for _ in 0..n {
            self.client.send_text(format!("msg-{}", self.next))?;
            self.next += 1;
        }
        self.say(&format!(
            "application sent {n} messages (state: {})",
            self.client.state()
        ));
        Ok(())
    }

    /// Process events until `pred` matches one (bounded).
    fn until(
        &mut self,
        what: &str,
        mut pred: impl FnMut(&Demo, &Event) -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Some(event) = self.client.next_event(Duration::from_millis(50)) {
                let event = self.on(event);
                if pred(self, &event) {
                    return Ok(());
                }
            } else if pred(
                self,
                &Event::Written {
                    up_to: tether_core::MessageId(0),
                },
            ) {
                return Ok(());
            }
        }
        Err(format!("timed out waiting for {what}"))
    }

    fn all_echoed(&mut self) -> Result<(), String> {
        self.until("echoes", |d, _| d.echoed.len() >= d.next)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Peer::start();
    let config = Config::builder(server.url())
        .backoff(Duration::from_millis(100), Duration::from_secs(1), 2.0)
        .heartbeat(Some(Duration::from_secs(1)), Duration::from_secs(1))
        .build()?;
    let client = Client::connect(config, EventDelivery::Poll)?;
    let mut demo = Demo {
        client,
        started: Instant::now(),
        echoed: HashMap::new(),
        next: 0,
    };
    demo.say(&format!("echo server listening on {}", server.url()));

    demo.send(100)?; // queued while connecting, flushed once ready
    demo.all_echoed()?;

    demo.say(">>> the server closes every connection (1012 service restart)");
    server.close_all(1012, "service restart");
    demo.until("the disconnect", |_, e| {
        matches!(e, Event::Disconnected { .. })
    })?;
    demo.send(100)?; // while reconnecting: they wait in the outbox
    demo.all_echoed()?;

    demo.say(">>> the server process goes away (connections dropped, port closed)");
    server.stop();
    demo.until("the disconnect", |_, e| {
        matches!(e, Event::Disconnected { .. })
    })?;
    demo.send(50)?;
    demo.until("a failed reconnect attempt", |_, e| {
        matches!(e, Event::Disconnected { .. })
    })?;
    demo.send(50)?;
    demo.say(">>> the server comes back on the same port");
    server.restart();
    demo.all_echoed()?;

    let stats = demo.client.stats();
    let sent = demo.next;
    let lost = (0..sent)
        .filter(|i| !demo.echoed.contains_key(&format!("msg-{i}")))
        .count();
    let duplicated = demo.echoed.values().filter(|n| **n > 1).count();
    println!();
    println!(
        "sent {sent}, written {}, echoed back {}, lost {lost}, duplicated {duplicated}",
        stats.messages_sent,
        demo.echoed.len()
    );
    println!(
        "reconnects {}, outbox high-water {} messages, last ping RTT {:?}",
        stats.reconnects, stats.outbox_high_water_messages, stats.last_rtt
    );
    demo.client.shutdown(Duration::from_secs(5));
    if lost > 0 {
        return Err(format!("{lost} messages lost").into());
    }
    Ok(())
}
