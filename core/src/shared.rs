//! State shared between a [`crate::Client`] handle and its session task.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::error::SendFailure;
use crate::event::{Event, MessageId, State, Stats};
use crate::event_queue::EventSink;
use crate::outbox::Outbox;
use crate::reach::ConnectionInfo;

/// Monotonic counters, updated by the session task, read by anyone.
#[derive(Default)]
pub(crate) struct Counters {
    pub messages_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub messages_received: AtomicU64,
    pub bytes_received: AtomicU64,
    pub reconnects: AtomicU64,
    pub send_failures: AtomicU64,
    pub messages_acked: AtomicU64,
    pub messages_resent: AtomicU64,
    pub duplicates_dropped: AtomicU64,
    pub inbound_rejected: AtomicU64,
    /// Last ping round trip in nanoseconds; 0 means none measured yet.
    pub last_rtt_nanos: AtomicU64,
    /// Last app-level ping round trip in nanoseconds; 0 means none measured yet.
    pub last_app_rtt_nanos: AtomicU64,
}

/// A descriptor an event loop can watch (Unix); nothing elsewhere.
#[cfg(unix)]
pub(crate) type LinkFd = std::os::fd::OwnedFd;
/// A descriptor an event loop can watch (Unix); nothing elsewhere.
#[cfg(not(unix))]
pub(crate) type LinkFd = std::convert::Infallible;

pub(crate) struct Shared {
    pub outbox: Outbox,
    pub events: EventSink,
    pub counters: Counters,
    state: AtomicU8,
    closed: Mutex<bool>,
    closed_cv: Condvar,
    /// Wakes asynchronous waiters for the end ([`Shared::closed`]).
    closed_notify: tokio::sync::Notify,
    /// Envelope mode, revision 2: the server epoch of the last welcome.
    server_epoch: Mutex<Option<String>>,
    /// What the last connection negotiated.
    connection_info: Mutex<Option<ConnectionInfo>>,
    /// Caller-driven I/O: the live link's number and a duplicate of its socket, for an event
    /// loop that drives the client when the socket is readable (`Client::io_socket`).
    link_socket: Mutex<Option<(u64, LinkFd)>>,
}

impl Shared {
    pub(crate) fn new(outbox: Outbox, events: EventSink) -> Self {
        Shared {
            outbox,
            events,
            counters: Counters::default(),
            state: AtomicU8::new(State::Connecting as u8),
            closed: Mutex::new(false),
            closed_cv: Condvar::new(),
            closed_notify: tokio::sync::Notify::new(),
            server_epoch: Mutex::new(None),
            connection_info: Mutex::new(None),
            link_socket: Mutex::new(None),
        }
    }

    /// The live link's socket (set while a link is up, with the connection's number; None
    /// drops the duplicate, right after the link's own descriptor closed).
    pub(crate) fn set_link_socket(&self, fd: Option<LinkFd>) {
        let connection = self.connection_info().map_or(0, |i| i.connection);
        *self.link_socket.lock().unwrap_or_else(|p| p.into_inner()) = fd.map(|fd| (connection, fd));
    }

    /// The live link's number, if its socket can be watched.
    pub(crate) fn link_number(&self) -> Option<u64> {
        let slot = self.link_socket.lock().unwrap_or_else(|p| p.into_inner());
        slot.as_ref().map(|(n, _)| *n)
    }

    /// A new duplicate of the live link's socket, with the link's number.
    #[cfg(unix)]
    pub(crate) fn link_socket(&self) -> Option<(u64, LinkFd)> {
        let slot = self.link_socket.lock().unwrap_or_else(|p| p.into_inner());
        let (n, fd) = slot.as_ref()?;
        Some((*n, fd.try_clone().ok()?))
    }

    /// Record a new connection's negotiated values (before its `Open` state event), numbered
    /// one after the previous connection.
    pub(crate) fn set_connection_info(&self, mut info: ConnectionInfo) {
        let mut slot = self
            .connection_info
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        info.connection = slot.as_ref().map_or(1, |prev| prev.connection + 1);
        *slot = Some(info);
    }

    /// What the last connection negotiated, if one was made.
    pub(crate) fn connection_info(&self) -> Option<ConnectionInfo> {
        self.connection_info
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Record the server epoch of the welcome just accepted (once per handshake).
    pub(crate) fn set_server_epoch(&self, ep: Option<&str>) {
        let mut current = self.server_epoch.lock().unwrap_or_else(|p| p.into_inner());
        if current.as_deref() != ep {
            *current = ep.map(str::to_owned);
        }
    }

    /// The server epoch of the last welcome, if the server speaks revision 2.
    pub(crate) fn server_epoch(&self) -> Option<String> {
        self.server_epoch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn state(&self) -> State {
        State::from_u8(self.state.load(Ordering::SeqCst))
    }

    /// Change state and report it. Only the session task calls this, so changes are ordered.
    pub(crate) fn set_state(&self, to: State) {
        self.set_state_after(to, None);
    }

    /// Go to state `to`, emitting `first` (the `Disconnected` that says why the link ended)
    /// before the `State` change event, the documented order. The state itself changes before
    /// either is emitted: an application that takes `first` and then reads the state (or
    /// waits for `Ready`) never sees the lost link's `Ready`.
    pub(crate) fn set_state_after(&self, to: State, first: Option<Event>) {
        let from = State::from_u8(self.state.swap(to as u8, Ordering::SeqCst));
        if let Some(first) = first {
            self.events.emit(first);
        }
        if from != to {
            tracing::debug!(%from, %to, "state change");
            self.events.emit(Event::State { from, to });
        }
    }

    /// Report each id as failed, once (the outbox has already recorded the failures). For the
    /// session task: the events join the batch it is gathering, if any.
    pub(crate) fn report_failed(&self, ids: &[MessageId], reason: &SendFailure) {
        self.report_failed_with(ids, reason, EventSink::emit);
    }

    /// [`Shared::report_failed`] for the application's threads: sent at once, since the
    /// session may be idle and would not send a batch it is gathering until it has work.
    pub(crate) fn report_failed_now(&self, ids: &[MessageId], reason: &SendFailure) {
        self.report_failed_with(ids, reason, EventSink::emit_now);
    }

    fn report_failed_with(
        &self,
        ids: &[MessageId],
        reason: &SendFailure,
        emit: fn(&EventSink, Event),
    ) {
        self.counters
            .send_failures
            .fetch_add(ids.len() as u64, Ordering::Relaxed);
        for id in ids {
            emit(
                &self.events,
                Event::SendFailed {
                    id: *id,
                    reason: reason.clone(),
                },
            );
        }
    }

    pub(crate) fn mark_closed(&self) {
        let mut closed = self.closed.lock().unwrap_or_else(|p| p.into_inner());
        *closed = true;
        self.closed_cv.notify_all();
        self.closed_notify.notify_waiters();
        drop(closed);
        self.events.fire_change_hook();
    }

    fn is_closed(&self) -> bool {
        *self.closed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Resolves once the session has ended.
    pub(crate) async fn closed(&self) {
        loop {
            let notified = self.closed_notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_closed() {
                return;
            }
            notified.await;
        }
    }

    /// Wait until the session has ended; true if it has.
    ///
    /// The `Closed` event is queued a moment before the end is marked (so that whoever wakes
    /// here finds it to poll), and its reason is noted before it is queued: once that reason is
    /// there, a caller may already hold the event, and "not closed" would contradict it, so
    /// the wait covers that moment whatever `timeout` says. Not on the thread emitting
    /// `Closed` itself: a hook it runs inside that emit would wait for a mark that comes only
    /// after the emit returns (it gets "not yet", then the hook fires again once marked).
    pub(crate) fn wait_closed(&self, timeout: Duration) -> bool {
        const CLOSING_MOMENT: Duration = Duration::from_secs(1);
        let timeout = if self.events.close_reason().is_some() && !self.events.closing_here() {
            timeout.max(CLOSING_MOMENT)
        } else {
            timeout
        };
        let deadline = Instant::now() + timeout;
        let mut closed = self.closed.lock().unwrap_or_else(|p| p.into_inner());
        while !*closed {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            closed = self
                .closed_cv
                .wait_timeout(closed, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }

    pub(crate) fn stats(&self) -> Stats {
        let c = &self.counters;
        let depth = self.outbox.depth();
        let nanos = |n: &AtomicU64| {
            let n = n.load(Ordering::Relaxed);
            (n != 0).then(|| Duration::from_nanos(n))
        };
        Stats {
            messages_sent: c.messages_sent.load(Ordering::Relaxed),
            bytes_sent: c.bytes_sent.load(Ordering::Relaxed),
            messages_received: c.messages_received.load(Ordering::Relaxed),
            bytes_received: c.bytes_received.load(Ordering::Relaxed),
            reconnects: c.reconnects.load(Ordering::Relaxed),
            send_failures: c.send_failures.load(Ordering::Relaxed),
            messages_acked: c.messages_acked.load(Ordering::Relaxed),
            messages_resent: c.messages_resent.load(Ordering::Relaxed),
            duplicates_dropped: c.duplicates_dropped.load(Ordering::Relaxed),
            inbound_rejected: c.inbound_rejected.load(Ordering::Relaxed),
            awaiting_ack: depth.awaiting_ack as u64,
            outbox_messages: depth.messages as u64,
            outbox_bytes: depth.bytes as u64,
            outbox_high_water_messages: depth.high_water_messages as u64,
            outbox_high_water_bytes: depth.high_water_bytes as u64,
            last_rtt: nanos(&c.last_rtt_nanos),
            last_app_rtt: nanos(&c.last_app_rtt_nanos),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OverflowPolicy;
    use crate::event_queue;
    use std::sync::Arc;

    #[test]
    fn a_caller_holding_the_closed_event_is_never_told_not_closed() {
        let (sink, _source) = event_queue::channel(16);
        let outbox = Outbox::new(16, 1 << 20, OverflowPolicy::Reject, false);
        let shared = Arc::new(Shared::new(outbox, sink));
        // The session's order, on the session's own thread: the Closed event goes out, then
        // the end is marked a little later.
        let (emitted_tx, emitted_rx) = std::sync::mpsc::channel();
        let marker = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                shared.events.emit(crate::Event::Closed {
                    reason: crate::Disconnect::UserClose {
                        code: 1000,
                        reason: String::new(),
                    },
                    undelivered: 0,
                });
                emitted_tx.send(()).expect("test thread waits");
                std::thread::sleep(Duration::from_millis(50));
                shared.mark_closed();
            })
        };
        emitted_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the Closed event was emitted");
        // Someone who already got that event asks without waiting: the answer is yes.
        assert!(shared.wait_closed(Duration::ZERO));
        marker.join().expect("marker thread");
    }

    #[test]
    fn not_closed_without_the_closed_event() {
        let (sink, _source) = event_queue::channel(16);
        let outbox = Outbox::new(16, 1 << 20, OverflowPolicy::Reject, false);
        let shared = Shared::new(outbox, sink);
        assert!(!shared.wait_closed(Duration::ZERO));
        assert!(!shared.wait_closed(Duration::from_millis(20)));
    }
}
