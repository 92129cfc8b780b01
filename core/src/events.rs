//! The event channel between the session task (producer) and the application (consumer).
//!
//! A crossbeam channel carries the events. Its memory is bounded by kind:
//! * inbound messages need a credit from a semaphore of `event_queue_capacity` permits; the
//!   session awaits a credit before it reads on, so a slow application pauses reading from
//!   the socket (TCP backpressure) instead of growing a queue;
//! * `Written` reports coalesce: while one is unconsumed, later ones only raise a shared
//!   high-water mark that the consumer reads when it takes the event;
//! * the rest are one per state change or per failed message.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use tokio::sync::Semaphore;

use crate::event::{Event, MessageId};

#[derive(Default)]
struct WrittenMark {
    up_to: AtomicU64,
    event_pending: AtomicBool,
}

/// Producer side, owned by the shared client state.
pub(crate) struct EventSink {
    tx: Sender<Event>,
    credit: Arc<Semaphore>,
    written: Arc<WrittenMark>,
}

/// Consumer side: the dispatcher thread, or the application in poll mode.
pub(crate) struct EventSource {
    rx: Receiver<Event>,
    credit: Arc<Semaphore>,
    written: Arc<WrittenMark>,
    /// Credits consumed but not yet returned (returned in batches).
    owed: AtomicUsize,
    batch: usize,
}

pub(crate) fn channel(inbound_capacity: usize) -> (EventSink, EventSource) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let credit = Arc::new(Semaphore::new(inbound_capacity));
    let written = Arc::new(WrittenMark::default());
    (
        EventSink {
            tx,
            credit: credit.clone(),
            written: written.clone(),
        },
        EventSource {
            rx,
            credit,
            written,
            owed: AtomicUsize::new(0),
            batch: (inbound_capacity / 16).max(1),
        },
    )
}

impl EventSink {
    /// Emit a control event (never blocks).
    pub(crate) fn emit(&self, event: Event) {
        // The receiver lives in the Client (poll) or the dispatcher; if both are gone nobody
        // is listening any more and dropping the event is correct.
        let _ = self.tx.send(event);
    }

    /// Try to take a credit for one inbound message without waiting.
    pub(crate) fn try_inbound_credit(&self) -> bool {
        match self.credit.try_acquire() {
            Ok(permit) => {
                permit.forget();
                true
            }
            Err(_) => false,
        }
    }

    /// Wait for a credit for one inbound message (the application consumed one).
    pub(crate) async fn inbound_credit(&self) {
        if let Ok(permit) = self.credit.acquire().await {
            permit.forget();
        }
    }

    /// Report that every accepted message up to `up_to` has been written.
    pub(crate) fn written(&self, up_to: MessageId) {
        self.written.up_to.fetch_max(up_to.0, Ordering::SeqCst);
        if !self.written.event_pending.swap(true, Ordering::SeqCst) {
            self.emit(Event::Written { up_to });
        }
    }
}

impl EventSource {
    fn take(&self, event: Event) -> Event {
        match event {
            Event::Written { .. } => {
                // Clear the flag before reading the mark: a report racing with us then either
                // lands in the value we read or emits a fresh event.
                self.written.event_pending.store(false, Ordering::SeqCst);
                Event::Written {
                    up_to: MessageId(self.written.up_to.load(Ordering::SeqCst)),
                }
            }
            other => other,
        }
    }

    /// Return the inbound credit of a consumed event (call after the application is done
    /// with it: after the callback in callback mode, at once in poll mode).
    pub(crate) fn release(&self, event: &Event) {
        if matches!(event, Event::Message(_)) {
            self.return_credit();
        }
    }

    /// Return one inbound credit.
    pub(crate) fn return_credit(&self) {
        if self.owed.fetch_add(1, Ordering::Relaxed) + 1 >= self.batch {
            self.flush_credit();
        }
    }

    fn flush_credit(&self) {
        let n = self.owed.swap(0, Ordering::Relaxed);
        if n > 0 {
            self.credit.add_permits(n);
        }
    }

    /// The next event, if one is pending.
    pub(crate) fn try_next(&self) -> Option<Event> {
        match self.rx.try_recv() {
            Ok(ev) => Some(self.take(ev)),
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => {
                self.flush_credit();
                None
            }
        }
    }

    /// The next event, waiting up to `timeout`.
    pub(crate) fn next_timeout(&self, timeout: Duration) -> Option<Event> {
        if let Ok(ev) = self.rx.try_recv() {
            return Some(self.take(ev));
        }
        self.flush_credit();
        match self.rx.recv_timeout(timeout) {
            Ok(ev) => Some(self.take(ev)),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }

    /// The next event, waiting as long as it takes; None when no producer is left.
    pub(crate) fn next_blocking(&self) -> Option<Event> {
        if let Ok(ev) = self.rx.try_recv() {
            return Some(self.take(ev));
        }
        self.flush_credit();
        self.rx.recv().ok().map(|ev| self.take(ev))
    }

    /// Move up to `max` events into `out`, waiting up to `wait` for the first; returns how
    /// many. Inbound credits are returned for the moved messages (the caller owns them now).
    pub(crate) fn take_into(&self, out: &mut Vec<Event>, max: usize, wait: Duration) -> usize {
        let mut taken = 0;
        while taken < max {
            let next = if taken == 0 && !wait.is_zero() {
                self.next_timeout(wait)
            } else {
                self.try_next()
            };
            let Some(event) = next else { break };
            self.release(&event);
            out.push(event);
            taken += 1;
        }
        taken
    }

    /// Number of events waiting.
    pub(crate) fn pending(&self) -> usize {
        self.rx.len()
    }
}
