//! Dead-link detection: when silence after a ping means the link is dead.
//!
//! The peer can answer a ping only once the ping has reached it, and a ping queued behind a
//! large frame on a slow link (a phone's uplink) reaches it long after it was due. So:
//!
//! * the pong deadline runs from the moment the write carrying the ping completes (the ping is
//!   in the socket), plus the time the bytes queued ahead of it are estimated to need to leave
//!   (see [`Drain`]; at most [`DRAIN_GRACE_TIMEOUTS`] timeouts), not from when it was due;
//! * until the ping is in the socket the link counts as alive as long as the socket keeps
//!   accepting bytes: a write that makes no progress for a whole timeout (the peer stopped
//!   reading, the path is stalled) is a dead link as well.
//!
//! On an idle link the ping is written at once and nothing is queued ahead of it, so a dead
//! link is still found within `interval + timeout`.

use std::time::Duration;

use tokio::time::Instant;

use crate::meter::{Drain, WriteMeter};

/// The pong deadline is stretched by at most this many timeouts for bytes still leaving ahead
/// of the ping, so that a link that dies right after a large write is still found.
pub(crate) const DRAIN_GRACE_TIMEOUTS: u32 = 4;

/// The heartbeat state of one link.
pub(crate) struct Heartbeat {
    timeout: Duration,
    /// Write progress of the socket; without it (an unknown stream), due counts as sent.
    drain: Option<Drain>,
    /// A ping is due or being written and nothing has arrived since: the write progress seen
    /// last (bytes accepted, when).
    leaving: Option<(u64, Instant)>,
    /// The write currently running carries the ping.
    in_write: bool,
    /// The ping is in the socket: the link is dead unless a frame arrives by then.
    dead_at: Option<Instant>,
}

impl Heartbeat {
    pub(crate) fn new(timeout: Duration, meter: Option<WriteMeter>) -> Self {
        Heartbeat {
            timeout,
            drain: meter.map(Drain::new),
            leaving: None,
            in_write: false,
            dead_at: None,
        }
    }

    fn bytes_written(&self) -> u64 {
        self.drain.as_ref().map_or(0, Drain::written)
    }

    /// The ping timer fired (and reading is not paused): the peer owes us a frame.
    pub(crate) fn ping_due(&mut self) {
        if self.dead_at.is_none() && self.leaving.is_none() {
            self.leaving = Some((self.bytes_written(), Instant::now()));
        }
    }

    /// The ping goes into the write about to start.
    pub(crate) fn ping_queued(&mut self) {
        self.in_write = true;
    }

    /// A write starts.
    pub(crate) fn write_started(&mut self) {
        if let Some(drain) = self.drain.as_mut() {
            drain.write_started();
        }
    }

    /// The running write completed: if it carried the ping, the pong deadline starts now, after
    /// what is still leaving ahead of the ping.
    pub(crate) fn written(&mut self) {
        let ahead = self.drain.as_mut().and_then(Drain::write_finished);
        if std::mem::take(&mut self.in_write) && self.leaving.take().is_some() {
            let now = Instant::now();
            let grace = self.timeout * DRAIN_GRACE_TIMEOUTS;
            let clear = ahead.map_or(now, |at| Instant::from_std(at).clamp(now, now + grace));
            self.dead_at = Some(clear + self.timeout);
        }
    }

    /// Any frame proves the peer alive.
    pub(crate) fn frame_received(&mut self) {
        self.leaving = None;
        self.dead_at = None;
    }

    /// When [`Heartbeat::expired`] must be asked next.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match (self.dead_at, self.leaving) {
            (Some(at), _) => Some(at),
            (None, Some((_, since))) => Some(since + self.timeout),
            (None, None) => None,
        }
    }

    /// The deadline passed: true if the link is dead. A ping still on its way out behind bytes
    /// the socket keeps accepting gets another timeout from now.
    pub(crate) fn expired(&mut self) -> bool {
        let now = Instant::now();
        if let Some(at) = self.dead_at {
            return now >= at;
        }
        let Some((bytes, since)) = self.leaving else {
            return false;
        };
        if now < since + self.timeout {
            return false;
        }
        let written = self.bytes_written();
        if self.drain.is_some() && written > bytes {
            self.leaving = Some((written, now));
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(10);

    /// The deadline is about `from + TIMEOUT` (give or take the time the test takes).
    fn about(deadline: Option<Instant>, from: Instant) -> bool {
        deadline.is_some_and(|at| {
            at >= from + TIMEOUT && at <= Instant::now() + TIMEOUT + Duration::from_secs(1)
        })
    }

    #[test]
    fn no_deadline_until_a_ping_is_due() {
        let mut hb = Heartbeat::new(TIMEOUT, None);
        assert_eq!(hb.deadline(), None);
        hb.write_started();
        hb.written();
        assert_eq!(hb.deadline(), None, "a write without the ping arms nothing");
        assert!(!hb.expired());
    }

    #[test]
    fn the_pong_deadline_runs_from_when_the_ping_is_written() {
        let mut hb = Heartbeat::new(TIMEOUT, None);
        let due = Instant::now();
        hb.ping_due();
        assert!(
            about(hb.deadline(), due),
            "while the ping is on its way out"
        );
        hb.ping_queued();
        hb.write_started();
        let written = Instant::now();
        hb.written();
        assert!(about(hb.deadline(), written));
        assert!(!hb.expired(), "not before the deadline");
        hb.frame_received();
        assert_eq!(hb.deadline(), None, "any frame proves the peer alive");
    }

    #[test]
    fn silence_past_the_deadline_is_a_dead_link() {
        let mut hb = Heartbeat::new(Duration::ZERO, None);
        hb.ping_due();
        assert!(hb.expired(), "no meter: a due ping counts as sent");
        let mut hb = Heartbeat::new(Duration::ZERO, None);
        hb.ping_due();
        hb.ping_queued();
        hb.written();
        assert!(hb.expired());
    }

    #[test]
    fn a_socket_that_keeps_accepting_bytes_rearms_the_deadline() {
        let meter = WriteMeter::fake();
        let mut hb = Heartbeat::new(Duration::ZERO, Some(meter.clone()));
        hb.ping_due();
        hb.ping_queued();
        hb.write_started();
        meter.accept(1000);
        assert!(
            !hb.expired(),
            "the write carrying the ping is making progress"
        );
        assert!(hb.expired(), "no progress since: dead");
    }

    #[test]
    fn the_pong_deadline_waits_for_bytes_queued_ahead_of_the_ping() {
        let meter = WriteMeter::fake();
        let mut hb = Heartbeat::new(TIMEOUT, Some(meter.clone()));
        // A large write kept the socket full for 5 s: its bytes need about as long to leave.
        hb.write_started();
        meter.full_since(std::time::Instant::now() - Duration::from_secs(5));
        hb.written();
        hb.ping_due();
        hb.ping_queued();
        hb.write_started();
        let written = Instant::now();
        hb.written();
        let at = hb.deadline().expect("armed");
        assert!(at >= written + TIMEOUT + Duration::from_secs(4), "{at:?}");
        assert!(at <= Instant::now() + TIMEOUT * (DRAIN_GRACE_TIMEOUTS + 1));
    }
}
