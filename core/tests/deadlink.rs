//! Dead-link detection timing through a fault-injecting proxy: how long after a FIN cut, an RST
//! or a silent stall (no FIN, no RST, both directions) the application hears
//! `Event::Disconnected`, over many trials, with the reason each one is reported with.
//!
//! One client is reused for every trial: fault → wait Disconnected → Pass → wait Ready → next.
//! The figures are printed as a table (run with `--nocapture` to see it):
//!
//! ```sh
//! cargo test -p tether-core --test deadlink -- --nocapture
//! ```

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{fast, wait_until, Recorder, SOON};
use tether_core::{Disconnect, Event, State};
use tether_test_peers::{Direction, Fault, Peer, Proxy};

const INTERVAL: Duration = Duration::from_millis(200);
const TIMEOUT: Duration = Duration::from_millis(300);
/// Scheduling slack for a loaded 2-core machine.
const MARGIN: Duration = Duration::from_millis(500);
/// Bound for faults TCP reports by itself (FIN, RST).
const TCP_BOUND: Duration = Duration::from_millis(500);
const TRIALS: usize = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Cut,
    Reset,
    Stall,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Cut => "cut (FIN)",
            Kind::Reset => "reset (RST)",
            Kind::Stall => "stall (both ways)",
        }
    }
}

/// p50 (lower median) and max of the samples.
fn summary(samples: &[Duration]) -> (Duration, Duration) {
    let mut sorted = samples.to_vec();
    sorted.sort();
    (sorted[(sorted.len() - 1) / 2], sorted[sorted.len() - 1])
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// A client (heartbeat on or off) talking to an echo peer through a proxy.
struct Rig {
    _peer: Peer,
    proxy: Proxy,
    rec: Recorder,
}

impl Rig {
    fn start(heartbeat: bool) -> Rig {
        let peer = Peer::start();
        let upstream: SocketAddr = format!("127.0.0.1:{}", peer.port())
            .parse()
            .expect("address");
        let proxy = Proxy::start(upstream);
        let interval = heartbeat.then_some(INTERVAL);
        let mut rec =
            Recorder::connect(fast(&proxy.url("/")).heartbeat(interval, TIMEOUT).backoff(
                Duration::from_millis(5),
                Duration::from_millis(20),
                2.0,
            ));
        rec.wait_state(State::Ready);
        Rig {
            _peer: peer,
            proxy,
            rec,
        }
    }

    /// One trial: inject `kind` (after `settle`, so faults fall at every phase of the ping
    /// timer), return how long the application took to hear about it, then heal the link.
    fn trial(&mut self, kind: Kind, settle: Duration) -> Duration {
        std::thread::sleep(settle);
        // Measured from just before the fault is requested: `cut_all`/`reset_all` return only
        // once the sockets are closed, so this errs on the slow side.
        let started = Instant::now();
        match kind {
            Kind::Cut => self.proxy.cut_all(),
            Kind::Reset => self.proxy.reset_all(),
            Kind::Stall => self.proxy.set_fault(Fault::Stall {
                direction: Direction::Both,
            }),
        }
        let event = self.rec.next_disconnect();
        let noticed = started.elapsed();
        let Event::Disconnected {
            reason,
            will_reconnect,
        } = event
        else {
            unreachable!()
        };
        assert!(will_reconnect, "{kind:?}: a dead link is retried");
        match kind {
            Kind::Stall => assert_eq!(reason, Disconnect::HeartbeatTimeout(TIMEOUT)),
            Kind::Cut | Kind::Reset => assert!(
                matches!(reason, Disconnect::ConnectionLost(_)),
                "{kind:?}: {reason:?}"
            ),
        }
        if kind == Kind::Stall {
            self.proxy.set_fault(Fault::Pass);
        }
        self.rec.wait_state(State::Ready);
        noticed
    }
}

/// Settle time of trial `i`: spread over two ping intervals so the fault lands at every
/// phase of the heartbeat timer (deterministic, so runs are comparable).
fn settle(i: usize) -> Duration {
    Duration::from_millis(20 + (i as u64 * 53) % 400)
}

#[test]
fn dead_links_are_detected_promptly_with_the_right_reason() {
    let mut rig = Rig::start(true);
    let mut rows = Vec::new();
    for kind in [Kind::Cut, Kind::Reset, Kind::Stall] {
        let samples: Vec<Duration> = (0..TRIALS).map(|i| rig.trial(kind, settle(i))).collect();
        let (p50, max) = summary(&samples);
        rows.push((kind, p50, max, samples));
    }
    assert_eq!(
        rig.rec.client.stats().reconnects,
        3 * TRIALS as u64,
        "every trial ended in exactly one reconnect"
    );

    eprintln!(
        "\ndead-link detection: fault -> Event::Disconnected, {TRIALS} trials each \
         (heartbeat interval {INTERVAL:?}, pong timeout {TIMEOUT:?})"
    );
    eprintln!("| fault | p50 | max | reported as |");
    eprintln!("|---|---|---|---|");
    for (kind, p50, max, _) in &rows {
        let reason = match kind {
            Kind::Stall => "HeartbeatTimeout",
            _ => "ConnectionLost",
        };
        eprintln!(
            "| {} | {} | {} | {reason} |",
            kind.name(),
            ms(*p50),
            ms(*max)
        );
    }

    for (kind, _, max, samples) in &rows {
        let bound = match kind {
            Kind::Stall => INTERVAL + TIMEOUT + MARGIN,
            Kind::Cut | Kind::Reset => TCP_BOUND,
        };
        assert!(
            *max <= bound,
            "{}: worst {max:?} over the bound {bound:?}; all: {samples:?}",
            kind.name()
        );
    }
    // A stall is noticed when a ping has gone unanswered for the pong timeout; a detection
    // much faster than that would be a false alarm, not a measurement.
    let stall = &rows[2].3;
    assert!(
        stall.iter().all(|d| *d >= Duration::from_millis(50)),
        "a stall is found by the heartbeat, not at once: {stall:?}"
    );
}

#[test]
fn cuts_and_resets_are_noticed_without_any_heartbeat() {
    // FIN and RST reach the client's socket: detection must not wait for a heartbeat that
    // is not even configured.
    let mut rig = Rig::start(false);
    for kind in [Kind::Cut, Kind::Reset] {
        let samples: Vec<Duration> = (0..5)
            .map(|i| rig.trial(kind, Duration::from_millis(10 + 7 * i as u64)))
            .collect();
        let (_, max) = summary(&samples);
        assert!(
            max <= TCP_BOUND,
            "{}: {samples:?} without heartbeat",
            kind.name()
        );
    }
}

#[test]
fn a_stall_without_heartbeat_goes_unnoticed_which_is_why_the_heartbeat_exists() {
    // The baseline the heartbeat improves on: with no heartbeat, a silent link looks alive
    // (TCP gives up only after minutes). After the stall ends the link simply carries on.
    let mut rig = Rig::start(false);
    rig.proxy.set_fault(Fault::Stall {
        direction: Direction::Both,
    });
    let during = rig.rec.collect_for(INTERVAL + TIMEOUT + MARGIN);
    assert!(
        !during
            .iter()
            .any(|e| matches!(e, Event::Disconnected { .. })),
        "{during:?}"
    );
    assert_eq!(rig.rec.client.state(), State::Ready);
    rig.proxy.set_fault(Fault::Pass);
    rig.rec.client.send_text("still here").expect("queued");
    assert_eq!(rig.rec.recv_texts(1, SOON), ["still here"]);
    assert!(wait_until(SOON, || rig.proxy.open_connections() == 1));
}
