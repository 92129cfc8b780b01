//! Pings of one link: the WebSocket ping (its payload a sequence number, so that only the
//! answer to our last ping measures the round trip) and, in envelope mode, the app-level
//! ping (a timestamp). When they are due is the ping timer's business; whether silence after
//! them means a dead link is the heartbeat's (`heartbeat.rs`).

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::envelope::control;

/// The pings of one link.
#[derive(Debug)]
pub(crate) struct Pinger {
    /// Envelope mode with app-level pings on.
    app_ping: bool,
    /// The timer fired: a ping goes into the next write.
    due: bool,
    seq: u64,
    /// The WebSocket ping awaiting its pong (sequence number, when queued).
    out: Option<(u64, Instant)>,
    /// The app-level ping awaiting its pong (timestamp sent, when queued).
    app_out: Option<(u64, Instant)>,
}

impl Pinger {
    pub(crate) fn new(app_ping: bool) -> Self {
        Pinger {
            app_ping,
            due: false,
            seq: 0,
            out: None,
            app_out: None,
        }
    }

    /// The ping timer fired.
    pub(crate) fn fire(&mut self) {
        self.due = true;
    }

    /// If a ping is due, put it (and the app-level one) into `buf`; true if it did.
    pub(crate) fn queue_due(&mut self, buf: &mut Vec<WsMessage>) -> bool {
        if !std::mem::take(&mut self.due) {
            return false;
        }
        self.seq += 1;
        buf.push(WsMessage::Ping(Bytes::copy_from_slice(
            &self.seq.to_be_bytes(),
        )));
        self.out = Some((self.seq, Instant::now()));
        if self.app_ping {
            let ts = unix_millis();
            self.app_out = Some((ts, Instant::now()));
            buf.push(control::ping(ts));
        }
        true
    }

    /// A WebSocket pong arrived: the round trip, if it answers our last ping.
    pub(crate) fn pong(&mut self, payload: &[u8]) -> Option<Duration> {
        let (seq, sent) = self.out?;
        if payload != seq.to_be_bytes() {
            return None;
        }
        self.out = None;
        Some(sent.elapsed())
    }

    /// An app-level pong with timestamp `ts`: our own ping is measured with the monotonic
    /// clock; any other from the timestamp.
    pub(crate) fn app_pong(&mut self, ts: u64) -> Duration {
        match self.app_out.take() {
            Some((sent_ts, sent_at)) if sent_ts == ts => sent_at.elapsed(),
            _ => Duration::from_millis(unix_millis().saturating_sub(ts)),
        }
    }
}

/// A round trip as the stats store it: nanoseconds, at least 1 (0 means "none yet").
pub(crate) fn rtt_nanos(rtt: Duration) -> u64 {
    rtt.as_nanos().clamp(1, u64::MAX as u128) as u64
}

/// Milliseconds since the Unix epoch, for app-level ping timestamps.
pub(crate) fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ping_goes_out_only_when_due_and_once() {
        let mut p = Pinger::new(false);
        let mut buf = Vec::new();
        assert!(!p.queue_due(&mut buf));
        p.fire();
        assert!(p.queue_due(&mut buf));
        assert!(!p.queue_due(&mut buf));
        assert_eq!(
            buf,
            [WsMessage::Ping(Bytes::copy_from_slice(&1u64.to_be_bytes()))]
        );
    }

    #[test]
    fn only_the_pong_to_the_last_ping_measures() {
        let mut p = Pinger::new(false);
        let mut buf = Vec::new();
        p.fire();
        p.queue_due(&mut buf);
        p.fire();
        p.queue_due(&mut buf);
        assert_eq!(p.pong(&1u64.to_be_bytes()), None, "an older ping's pong");
        assert_eq!(p.pong(b"unsolicited"), None);
        assert!(p.pong(&2u64.to_be_bytes()).is_some());
        assert_eq!(p.pong(&2u64.to_be_bytes()), None, "answered already");
    }

    #[test]
    fn app_pings_ride_with_websocket_pings() {
        let mut p = Pinger::new(true);
        let mut buf = Vec::new();
        p.fire();
        assert!(p.queue_due(&mut buf));
        assert_eq!(buf.len(), 2);
        let foreign = unix_millis().saturating_sub(5_000);
        assert!(p.app_pong(foreign) >= Duration::from_secs(4));
        assert_eq!(rtt_nanos(Duration::ZERO), 1);
    }
}
