//! Helpers shared by the integration tests: a fast config and an event recorder that waits for
//! events instead of sleeping.
#![allow(dead_code)]

pub mod ref_server;

use std::time::{Duration, Instant};

use tether_core::{Client, ConfigBuilder, Disconnect, Event, EventDelivery, State};

/// Generous upper bound for anything that should happen "soon" on a loaded 2-core machine.
pub const SOON: Duration = Duration::from_secs(10);

/// A config for tests: fast backoff, no heartbeat unless a test asks, short close timeout.
pub fn fast(url: &str) -> ConfigBuilder {
    ConfigBuilder::new(url)
        .backoff(Duration::from_millis(10), Duration::from_millis(100), 2.0)
        .min_uptime(Duration::from_millis(0))
        .heartbeat(None, Duration::from_secs(1))
        .connect_timeout(Duration::from_secs(5))
        .close_timeout(Duration::from_secs(3))
}

/// A poll-mode client plus the log of every event it has delivered so far.
pub struct Recorder {
    pub client: Client,
    pub log: Vec<Event>,
}

impl Recorder {
    pub fn connect(config: ConfigBuilder) -> Recorder {
        let config = config.build().expect("valid test config");
        let client = Client::connect(config, EventDelivery::Poll).expect("client starts");
        Recorder {
            client,
            log: Vec::new(),
        }
    }

    /// Wait for the first event (after those already seen) that matches; panics with the
    /// log on timeout.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&Event) -> bool,
    ) -> Event {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "timed out after {timeout:?} waiting for {what}; events so far:\n{:#?}",
                    self.tail()
                );
            }
            if let Some(event) = self.client.next_event(left.min(Duration::from_millis(200))) {
                self.log.push(event.clone());
                if pred(&event) {
                    return event;
                }
            }
        }
    }

    /// The next `Disconnected` event.
    pub fn next_disconnect(&mut self) -> Event {
        self.wait_for("Disconnected", SOON, |e| {
            matches!(e, Event::Disconnected { .. })
        })
    }

    /// The next disconnect as (reason, will_reconnect).
    pub fn wait_disconnected(&mut self) -> (Disconnect, bool) {
        match self.next_disconnect() {
            Event::Disconnected {
                reason,
                will_reconnect,
            } => (reason, will_reconnect),
            other => unreachable!("next_disconnect returned {other:?}"),
        }
    }

    /// The reconnect attempt numbers seen so far, in order.
    pub fn attempts(&self) -> Vec<u32> {
        self.log
            .iter()
            .filter_map(|e| match e {
                Event::Reconnecting { attempt, .. } => Some(*attempt),
                _ => None,
            })
            .collect()
    }

    pub fn wait_state(&mut self, state: State) {
        self.wait_for(
            &format!("state {state}"),
            SOON,
            |e| matches!(e, Event::State { to, .. } if *to == state),
        );
    }

    /// Drain events for `window`, returning what arrived (used only to assert that something
    /// does NOT happen, which cannot be awaited).
    pub fn collect_for(&mut self, window: Duration) -> Vec<Event> {
        let mut got = Vec::new();
        self.collect_until(window, |event| {
            got.push(event.clone());
            false
        });
        got
    }

    /// Wait up to `window` for an event that matches; false if none came (for asserting that
    /// something does NOT happen in time, which cannot be awaited).
    pub fn collect_until(
        &mut self,
        window: Duration,
        mut pred: impl FnMut(&Event) -> bool,
    ) -> bool {
        let deadline = Instant::now() + window;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if let Some(event) = self.client.next_event(left) {
                self.log.push(event.clone());
                if pred(&event) {
                    return true;
                }
            }
        }
        false
    }

    /// Receive `n` data messages (skipping other events) and return their payloads as text.
    pub fn recv_texts(&mut self, n: usize, timeout: Duration) -> Vec<String> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let event = self.wait_for(&format!("message {} of {n}", out.len() + 1), timeout, |e| {
                matches!(e, Event::Message(_))
            });
            if let Event::Message(m) = event {
                out.push(String::from_utf8_lossy(m.as_bytes()).into_owned());
            }
        }
        out
    }

    fn tail(&self) -> &[Event] {
        let from = self.log.len().saturating_sub(40);
        &self.log[from..]
    }
}

/// Wait until `cond` holds, checking every millisecond; false on timeout.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !cond() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}
