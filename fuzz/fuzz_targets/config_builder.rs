//! `ConfigBuilder::build` with every option fuzzed (structured input via `arbitrary`): it must
//! never panic, and a config it accepts must hold the invariants the client relies on.
#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tether_core::{Config, OverflowPolicy, Protocol};

#[derive(Arbitrary, Debug)]
struct Input {
    url: String,
    headers: Vec<(String, String)>,
    subprotocols: Vec<String>,
    connect_timeout_ms: u32,
    backoff: (u32, u32, f64),
    max_attempts: Option<u32>,
    max_retry_ms: Option<u32>,
    min_uptime_ms: u32,
    heartbeat_ms: Option<u32>,
    pong_timeout_ms: u32,
    outbox: (usize, usize),
    overflow: (u8, u32),
    queue_while_disconnected: bool,
    max_outbound: Option<usize>,
    inbound: (usize, usize),
    close_timeout_ms: u32,
    event_queue_capacity: usize,
    read_buffer_size: usize,
    write_batch_bytes: usize,
    envelope: bool,
    session_id: Option<String>,
    auth_token: Option<String>,
    signing_key: Option<Vec<u8>>,
    compression_threshold: Option<usize>,
    ack: (u32, u32),
    handshake_timeout_ms: u32,
    app_ping: Option<bool>,
}

fn ms(v: u32) -> Duration {
    Duration::from_millis(u64::from(v))
}

fuzz_target!(|input: Input| {
    let mut b = Config::builder(input.url.clone())
        .connect_timeout(ms(input.connect_timeout_ms))
        .backoff(ms(input.backoff.0), ms(input.backoff.1), input.backoff.2)
        .max_reconnect_attempts(input.max_attempts)
        .max_retry_duration(input.max_retry_ms.map(ms))
        .min_uptime(ms(input.min_uptime_ms))
        .heartbeat(input.heartbeat_ms.map(ms), ms(input.pong_timeout_ms))
        .outbox_limits(input.outbox.0, input.outbox.1)
        .overflow_policy(match input.overflow.0 % 3 {
            0 => OverflowPolicy::Reject,
            1 => OverflowPolicy::DropOldest,
            _ => OverflowPolicy::Wait(ms(input.overflow.1)),
        })
        .queue_while_disconnected(input.queue_while_disconnected)
        .max_inbound_size(input.inbound.0, input.inbound.1)
        .close_timeout(ms(input.close_timeout_ms))
        .event_queue_capacity(input.event_queue_capacity)
        .read_buffer_size(input.read_buffer_size)
        .write_batch_bytes(input.write_batch_bytes)
        .ack_timeout(ms(input.ack.0), input.ack.1)
        .handshake_timeout(ms(input.handshake_timeout_ms))
        .compression_threshold(input.compression_threshold);
    for (name, value) in &input.headers {
        b = b.header(name.clone(), value.clone());
    }
    for p in &input.subprotocols {
        b = b.subprotocol(p.clone());
    }
    if let Some(n) = input.max_outbound {
        b = b.max_outbound_message_size(n);
    }
    if input.envelope {
        b = b.protocol(Protocol::Envelope);
    }
    if let Some(id) = &input.session_id {
        b = b.session_id(id.clone());
    }
    if let Some(token) = &input.auth_token {
        b = b.auth_token(token.clone());
    }
    if let Some(key) = &input.signing_key {
        b = b.signing_key(key.clone());
    }
    if let Some(on) = input.app_ping {
        b = b.app_ping(on);
    }
    match b.build() {
        Ok(config) => {
            // Invariants the client relies on.
            assert!(config.max_outbound_message_size() > 0);
            assert!(config.max_outbound_message_size() <= input.outbox.1);
            assert!(config.max_inbound_message_size() > 0);
            let sid = config.session_id();
            assert!(
                !sid.is_empty() && sid.len() <= 128 && sid.bytes().all(|c| c.is_ascii_graphic())
            );
            let policy = config.reconnect();
            assert!(policy.multiplier.is_finite() && policy.multiplier >= 1.0);
            assert!(policy.max_delay >= policy.initial_delay && !policy.initial_delay.is_zero());
            assert_eq!(config.protocol() == Protocol::Envelope, input.envelope);
            // Backoff arithmetic must not panic for any attempt number.
            for attempt in [0, 1, 2, 63, 64, 1000, u32::MAX] {
                let ceiling = tether_core::backoff_ceiling(policy, attempt);
                assert!(ceiling <= policy.max_delay);
                let _ = tether_core::backoff_delay(policy, attempt);
            }
            assert!(tether_core::parse_ws_url(config.url()).is_ok());
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
