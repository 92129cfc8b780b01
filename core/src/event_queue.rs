//! The event channel between the session task (producer) and the application (consumer).
//!
//! A crossbeam channel carries the events. While the session handles a batch of frames read
//! in one go, the events it emits gather in a staging buffer and travel as one channel item:
//! one channel operation and at most one wake-up of the consumer per read batch instead of
//! per message (the consumer unpacks the batch into its own queue). Order is kept: everything
//! the session emits goes through the staging buffer while it is open.
//!
//! Memory is bounded by kind:
//! * inbound messages need a credit from a semaphore of `event_queue_capacity` permits; the
//!   session awaits a credit before it reads on, so a slow application pauses reading from
//!   the socket (TCP backpressure) instead of growing a queue;
//! * `Written` reports coalesce: while one is unconsumed, later ones only raise a shared
//!   high-water mark that the consumer reads when it takes the event;
//! * the rest are one per state change or per failed message.
//!
//! The wake hook (`Client::set_wake_hook`) tells an event loop that events became available:
//! it fires on the producer side at most once between two moments a consumer found the queue
//! empty (the consumer re-arms it then), so a batch costs one hook call whatever its size. A
//! batch consumer that stops with events left fires it itself ([`EventSource::rearm`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use tokio::sync::{Semaphore, TryAcquireError};

use crate::driver::Drive;
use crate::error::Disconnect;
use crate::event::{Event, MessageId};
use crate::hook::HookSlot;

/// A function called after every change an application may wait for (see
/// [`crate::Client::set_change_hook`]).
pub(crate) type ChangeHook = crate::hook::Hook;

/// The reasons the latest `Disconnected` and the `Closed` event carried, kept for readers that
/// do not consume events ([`crate::Client::last_disconnect`], [`crate::Client::close_reason`]).
#[derive(Default)]
struct Reasons {
    last_disconnect: Option<Disconnect>,
    closed: Option<Disconnect>,
    /// The thread that emitted `Closed` (the session task's), see [`EventSink::closing_here`].
    closed_on: Option<std::thread::ThreadId>,
}
/// The application's wake hook.
pub(crate) type WakeHook = crate::hook::Hook;

/// A session that stays busy still hands its events over once it gathered this many...
const MAX_BATCH: usize = 1024;
/// ...or this many bytes of inbound messages.
const MAX_BATCH_BYTES: usize = 256 << 10;

/// What travels through the channel.
enum Item {
    One(Event),
    Batch(Vec<Event>),
}

/// The session's staging buffer for one read batch.
#[derive(Default)]
struct Staging {
    open: bool,
    events: Vec<Event>,
    /// Payload bytes of the inbound messages in `events`.
    bytes: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing here can panic while holding the lock halfway through an update.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Default)]
struct WrittenMark {
    up_to: AtomicU64,
    event_pending: AtomicBool,
}

/// Producer side, owned by the shared client state.
pub(crate) struct EventSink {
    tx: Sender<Item>,
    credit: Arc<Semaphore>,
    written: Arc<WrittenMark>,
    staging: Mutex<Staging>,
    /// Events inside the channel (a batch counts its events).
    queued: Arc<AtomicUsize>,
    /// Wakes an asynchronous consumer ([`EventSource::next_async`]).
    ready: Arc<tokio::sync::Notify>,
    hook: HookSlot,
    /// Bumped before every change hook call; [`EventSink::wait_change`] sleeps on it.
    changes: Mutex<u64>,
    changed: Condvar,
    /// Threads asleep on `changed` (a notify is a system call even when nobody waits).
    change_sleepers: AtomicUsize,
    /// Wakes [`EventSink::changed_after`].
    change_notify: tokio::sync::Notify,
    reasons: Mutex<Reasons>,
    wake: Arc<Wake>,
}

/// The wake hook and its arming, shared by both ends.
#[derive(Default)]
struct Wake {
    hook: HookSlot,
    /// A consumer found the queue empty since the hook last fired: the next send fires it.
    /// Starts armed (nothing was pending at creation).
    armed: AtomicBool,
}

impl Wake {
    fn fire(&self) {
        // The hook runs on the session task or a sending thread.
        self.hook.fire("wake");
    }
}

/// Consumer side: the dispatcher thread, or the application in poll mode.
pub(crate) struct EventSource {
    rx: Receiver<Item>,
    /// Events taken out of the channel and not yet handed out (the rest of a batch).
    unpacked: Mutex<VecDeque<Event>>,
    queued: Arc<AtomicUsize>,
    ready: Arc<tokio::sync::Notify>,
    credit: Arc<Semaphore>,
    written: Arc<WrittenMark>,
    /// Credits consumed but not yet returned (returned in batches).
    owed: AtomicUsize,
    batch: usize,
    wake: Arc<Wake>,
    /// Caller-driven I/O: waits drive the client's runtime ([`crate::driver`]).
    driver: Option<Arc<crate::driver::Driver>>,
}

pub(crate) fn channel(inbound_capacity: usize) -> (EventSink, EventSource) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let credit = Arc::new(Semaphore::new(inbound_capacity));
    let written = Arc::new(WrittenMark::default());
    let queued = Arc::new(AtomicUsize::new(0));
    let ready = Arc::new(tokio::sync::Notify::new());
    let wake = Arc::new(Wake {
        hook: HookSlot::default(),
        armed: AtomicBool::new(true),
    });
    (
        EventSink {
            tx,
            credit: credit.clone(),
            written: written.clone(),
            staging: Mutex::new(Staging::default()),
            queued: queued.clone(),
            ready: ready.clone(),
            hook: HookSlot::default(),
            changes: Mutex::new(0),
            changed: Condvar::new(),
            change_sleepers: AtomicUsize::new(0),
            change_notify: tokio::sync::Notify::new(),
            reasons: Mutex::new(Reasons::default()),
            wake: wake.clone(),
        },
        EventSource {
            rx,
            unpacked: Mutex::new(VecDeque::new()),
            queued,
            ready,
            credit,
            written,
            owed: AtomicUsize::new(0),
            batch: (inbound_capacity / 16).max(1),
            wake,
            driver: None,
        },
    )
}

impl EventSink {
    /// Emit an event (never blocks): into the open batch, if any, otherwise at once.
    pub(crate) fn emit(&self, event: Event) {
        self.note(&event);
        {
            let mut staging = lock(&self.staging);
            if staging.open {
                if let Event::Message(m) = &event {
                    staging.bytes += m.len();
                }
                staging.events.push(event);
                return;
            }
        }
        self.send(1, Item::One(event));
    }

    /// Emit an event at once, past any batch being gathered (for the application's threads).
    pub(crate) fn emit_now(&self, event: Event) {
        self.note(&event);
        self.send(1, Item::One(event));
    }

    /// Keep the reasons of `Disconnected` and `Closed` for readers that consume no events.
    fn note(&self, event: &Event) {
        match event {
            Event::Disconnected { reason, .. } => {
                lock(&self.reasons).last_disconnect = Some(reason.clone());
            }
            Event::Closed { reason, .. } => {
                let mut reasons = lock(&self.reasons);
                reasons.closed = Some(reason.clone());
                reasons.closed_on = Some(std::thread::current().id());
            }
            _ => {}
        }
    }

    /// The reason of the latest `Disconnected` event emitted.
    pub(crate) fn last_disconnect(&self) -> Option<Disconnect> {
        lock(&self.reasons).last_disconnect.clone()
    }

    /// The reason of the `Closed` event, once emitted.
    pub(crate) fn close_reason(&self) -> Option<Disconnect> {
        lock(&self.reasons).closed.clone()
    }

    /// True on the thread that emitted `Closed`: a hook it runs inside that emit (the change
    /// hook, the wake hook) must never wait for the end to be marked, which comes after.
    pub(crate) fn closing_here(&self) -> bool {
        lock(&self.reasons).closed_on == Some(std::thread::current().id())
    }

    /// Install (or remove) the change hook.
    pub(crate) fn set_change_hook(&self, hook: Option<ChangeHook>) {
        self.hook.set(hook);
    }

    /// Call the change hook, if any (never with a lock of ours held), after bumping the
    /// change count and waking [`EventSink::wait_change`].
    pub(crate) fn fire_change_hook(&self) {
        *lock(&self.changes) += 1;
        // Sleepers count themselves under the `changes` lock before they sleep: one that is
        // not counted here has not read the count yet, and will see the new one.
        if self.change_sleepers.load(Ordering::SeqCst) > 0 {
            self.changed.notify_all();
        }
        self.change_notify.notify_waiters();
        // It runs on the session task or a sending thread.
        self.hook.fire("change");
    }

    /// How many changes there were so far (see [`EventSink::fire_change_hook`]).
    pub(crate) fn changes(&self) -> u64 {
        *lock(&self.changes)
    }

    /// Wait until the change count moved past `seen`, or `timeout`; returns the count then.
    pub(crate) fn wait_change(&self, seen: u64, timeout: Duration) -> u64 {
        let changes = lock(&self.changes);
        if *changes != seen || timeout.is_zero() {
            return *changes;
        }
        self.change_sleepers.fetch_add(1, Ordering::SeqCst);
        let (changes, _) = self
            .changed
            .wait_timeout_while(changes, timeout, |n| *n == seen)
            .unwrap_or_else(PoisonError::into_inner);
        self.change_sleepers.fetch_sub(1, Ordering::SeqCst);
        *changes
    }

    /// Resolves with the change count once it moved past `seen` (the asynchronous
    /// [`EventSink::wait_change`]).
    pub(crate) async fn changed_after(&self, seen: u64) -> u64 {
        loop {
            let notified = self.change_notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let now = self.changes();
            if now != seen {
                return now;
            }
            notified.await;
        }
    }

    fn send(&self, count: usize, item: Item) {
        self.queued.fetch_add(count, Ordering::SeqCst);
        // The receiver lives in the Client (poll) or the dispatcher; if both are gone nobody
        // is listening any more and dropping the event is correct.
        if self.tx.send(item).is_err() {
            self.queued.fetch_sub(count, Ordering::SeqCst);
            return;
        }
        // Cheap when nobody awaits: it only stores a permit.
        self.ready.notify_one();
        self.fire_change_hook();
        // After `queued` went up (SeqCst on both sides): a consumer arming the hook either
        // sees this event pending, or we see the hook armed.
        if self.wake.armed.swap(false, Ordering::SeqCst) {
            self.wake.fire();
        }
    }

    /// Install or remove the wake hook. If events are already pending, it fires at once (no
    /// consumer would otherwise find the queue empty to arm it before waiting).
    pub(crate) fn set_wake_hook(&self, hook: Option<WakeHook>) {
        self.wake.hook.set(hook);
        self.wake.armed.store(true, Ordering::SeqCst);
        if self.queued.load(Ordering::SeqCst) > 0 && self.wake.armed.swap(false, Ordering::SeqCst) {
            self.wake.fire();
        }
    }

    /// Nobody will run handlers any more (shutdown): stop holding inbound messages back for
    /// room, so that the close can still read the server's closing frame.
    pub(crate) fn stop_consuming(&self) {
        self.credit.close();
    }

    /// Gather what is emitted from now on into one batch, until [`EventSink::close_batch`].
    /// Only the session task opens batches, and it closes each before it awaits anything.
    pub(crate) fn open_batch(&self) {
        lock(&self.staging).open = true;
    }

    /// Send the gathered events as one item and stop gathering. Closing a batch that is not
    /// open does nothing.
    pub(crate) fn close_batch(&self) {
        self.send_staged(false);
    }

    /// Send the gathered events as one item and keep gathering.
    pub(crate) fn flush_batch(&self) {
        self.send_staged(true);
    }

    fn send_staged(&self, keep_open: bool) {
        let events = {
            // Taken and (when closing) closed under one lock, so nothing emitted meanwhile can
            // overtake the batch.
            let mut staging = lock(&self.staging);
            staging.open &= keep_open;
            staging.bytes = 0;
            std::mem::take(&mut staging.events)
        };
        self.send_all(events);
    }

    /// The gathered batch is as large as a batch should get (by count or by payload bytes).
    pub(crate) fn batch_is_full(&self) -> bool {
        let staging = lock(&self.staging);
        staging.events.len() >= MAX_BATCH || staging.bytes >= MAX_BATCH_BYTES
    }

    fn send_all(&self, events: Vec<Event>) {
        match events.len() {
            0 => {}
            1 => {
                if let Some(event) = events.into_iter().next() {
                    self.send(1, Item::One(event));
                }
            }
            n => self.send(n, Item::Batch(events)),
        }
    }

    /// Try to take a credit for one inbound message without waiting. Always succeeds once the
    /// consumer is gone (nobody will return credits; the message is then dropped unread).
    pub(crate) fn try_inbound_credit(&self) -> bool {
        match self.credit.try_acquire() {
            Ok(permit) => {
                permit.forget();
                true
            }
            Err(TryAcquireError::Closed) => true,
            Err(TryAcquireError::NoPermits) => false,
        }
    }

    /// Wait for a credit for one inbound message (the application consumed one).
    pub(crate) async fn inbound_credit(&self) {
        if let Ok(permit) = self.credit.acquire().await {
            permit.forget();
        }
    }

    /// No credit is left for another inbound message: the session stops reading the socket
    /// until the application takes some.
    pub(crate) fn credit_exhausted(&self) -> bool {
        self.credit.available_permits() == 0 && !self.credit.is_closed()
    }

    /// Report that every accepted message up to `up_to` has been written.
    pub(crate) fn written(&self, up_to: MessageId) {
        self.written.up_to.fetch_max(up_to.0, Ordering::SeqCst);
        if !self.written.event_pending.swap(true, Ordering::SeqCst) {
            self.emit(Event::Written { up_to });
        } else {
            // No new event (the pending one is raised), but statuses changed.
            self.fire_change_hook();
        }
    }
}

impl Drop for EventSource {
    fn drop(&mut self) {
        self.stop_consuming();
    }
}

impl EventSource {
    /// Nobody will consume events any more (the poll-mode client or the dispatcher is gone):
    /// stop holding inbound messages back for room that will never come, so that a close
    /// started by dropping the client can still read the server's closing frame.
    pub(crate) fn stop_consuming(&self) {
        self.credit.close();
    }

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

    /// The inbound credits, for a queue that holds messages taken from this one until the
    /// application takes them ([`crate::kept::Kept`]).
    pub(crate) fn credit(&self) -> Arc<Semaphore> {
        self.credit.clone()
    }

    /// Return one inbound credit.
    pub(crate) fn return_credit(&self) {
        if self.owed.fetch_add(1, Ordering::Relaxed) + 1 >= self.batch {
            self.flush_credit();
        }
    }

    pub(crate) fn flush_credit(&self) {
        let n = self.owed.swap(0, Ordering::Relaxed);
        if n > 0 {
            self.credit.add_permits(n);
        }
    }

    /// Move a channel item into the unpacked queue (behind what is already there).
    fn unpack(&self, unpacked: &mut VecDeque<Event>, item: Item) {
        match item {
            Item::One(event) => {
                self.queued.fetch_sub(1, Ordering::SeqCst);
                unpacked.push_back(event);
            }
            Item::Batch(events) => {
                self.queued.fetch_sub(events.len(), Ordering::SeqCst);
                if unpacked.is_empty() {
                    // Reuses the batch's allocation.
                    *unpacked = VecDeque::from(events);
                } else {
                    unpacked.extend(events);
                }
            }
        }
    }

    /// The next event without waiting, from the unpacked queue or the channel. Finding both
    /// empty arms the wake hook.
    fn pop(&self, unpacked: &mut VecDeque<Event>) -> Option<Event> {
        if unpacked.is_empty() {
            let item = match self.rx.try_recv() {
                Ok(item) => item,
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => {
                    self.wake.armed.store(true, Ordering::SeqCst);
                    if self.queued.load(Ordering::SeqCst) == 0 {
                        return None;
                    }
                    // An event was sent before we armed: its sender saw the hook disarmed.
                    // Take it ourselves, and disarm again (unless a later send already fired).
                    let Ok(item) = self.rx.try_recv() else {
                        return None;
                    };
                    self.wake.armed.store(false, Ordering::SeqCst);
                    item
                }
            };
            self.unpack(unpacked, item);
        }
        unpacked.pop_front().map(|event| self.take(event))
    }

    /// Waits drive `driver`'s runtime on the waiting thread (caller-driven I/O).
    pub(crate) fn set_driver(&mut self, driver: Arc<crate::driver::Driver>) {
        self.driver = Some(driver);
    }

    /// A poll that does not wait found nothing: with caller-driven I/O, run a non-blocking
    /// pass ([`crate::driver::Driver::pass`]) if nothing is pending (draining reads no
    /// clock) and one is due; true if it ran. Nothing at all without caller-driven I/O.
    pub(crate) fn pass_if_idle(&self) -> bool {
        match &self.driver {
            Some(driver) if self.pending() == 0 => driver.pass(),
            _ => false,
        }
    }

    /// The next event, waiting up to `timeout` (`None`: as long as it takes, or until no
    /// producer is left).
    fn wait_next(&self, timeout: Option<Duration>) -> Option<Event> {
        if let Some(event) = self.pop(&mut lock(&self.unpacked)) {
            return Some(event);
        }
        if let (Some(driver), Some(timeout)) = (&self.driver, timeout) {
            match driver.drive(timeout, self.next_async()) {
                Drive::Done(event) => return Some(event),
                Drive::TimedOut => return None,
                Drive::Elsewhere => {}
            }
        }
        // About to wait: give back the credits held in reserve so the session can read on.
        self.flush_credit();
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            // The unpacked queue's lock is not held while waiting: another thread polling the
            // same client may unpack meanwhile; order is kept because both append behind.
            let item = match deadline {
                None => self.rx.recv().ok()?,
                Some(deadline) => match self.rx.recv_deadline(deadline) {
                    Ok(item) => item,
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                        return self.pop(&mut lock(&self.unpacked));
                    }
                },
            };
            let mut unpacked = lock(&self.unpacked);
            self.unpack(&mut unpacked, item);
            if let Some(event) = self.pop(&mut unpacked) {
                return Some(event);
            }
        }
    }

    /// The next event, if one is pending.
    pub(crate) fn try_next(&self) -> Option<Event> {
        let event = self.pop(&mut lock(&self.unpacked));
        if event.is_none() {
            self.flush_credit();
        }
        event
    }

    /// The next event, waiting up to `timeout`.
    pub(crate) fn next_timeout(&self, timeout: Duration) -> Option<Event> {
        self.wait_next(Some(timeout))
    }

    /// The next event, waiting as long as it takes; None when no producer is left.
    pub(crate) fn next_blocking(&self) -> Option<Event> {
        self.wait_next(None)
    }

    /// The next event, awaited without blocking the thread (for a consumer on the runtime
    /// that drives the client).
    pub(crate) async fn next_async(&self) -> Event {
        loop {
            let notified = self.ready.notified();
            tokio::pin!(notified);
            // Registered before looking, so an event sent in between still wakes us.
            notified.as_mut().enable();
            if let Some(event) = self.try_next() {
                return event;
            }
            notified.await;
        }
    }

    /// Move up to `max` events into `out`, waiting up to `wait` for the first; returns how
    /// many. Inbound credits are returned for the moved messages (the caller owns them now).
    pub(crate) fn take_into(&self, out: &mut Vec<Event>, max: usize, wait: Duration) -> usize {
        let start = out.len();
        let taken = self.take_chunk(out, max, wait);
        out[start..].iter().for_each(|event| self.release(event));
        if taken < max {
            self.flush_credit();
        }
        self.rearm();
        taken
    }

    /// A batch consumer is done for now: arm the wake hook, and if events are left (it took
    /// as many as it wanted, or more came meanwhile), fire it now, so that an event loop that
    /// waits for the hook after each call never misses one. Costs one hook call per consumer
    /// call at most, never one per event.
    pub(crate) fn rearm(&self) {
        self.wake.armed.store(true, Ordering::SeqCst);
        if self.pending() > 0 && self.wake.armed.swap(false, Ordering::SeqCst) {
            self.wake.fire();
        }
    }

    /// Move up to `max` events into `out` (waiting up to `wait` for the first) without
    /// returning their inbound credits: the caller releases each ([`EventSource::release`])
    /// once its handler is done. One lock of the queue for the whole chunk.
    pub(crate) fn take_chunk(&self, out: &mut Vec<Event>, max: usize, wait: Duration) -> usize {
        if max == 0 {
            return 0;
        }
        let mut taken = 0;
        if wait.is_zero() {
            self.pass_if_idle();
        } else {
            match self.next_timeout(wait) {
                Some(event) => {
                    out.push(event);
                    taken = 1;
                }
                None => return 0,
            }
        }
        {
            let mut unpacked = lock(&self.unpacked);
            while taken < max {
                let Some(event) = self.pop(&mut unpacked) else {
                    break;
                };
                out.push(event);
                taken += 1;
            }
        }
        if taken < max {
            // Found the queue empty.
            self.flush_credit();
        }
        taken
    }

    /// Number of events waiting.
    pub(crate) fn pending(&self) -> usize {
        lock(&self.unpacked).len() + self.queued.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::State;

    fn state() -> Event {
        Event::State {
            from: State::Connecting,
            to: State::Open,
        }
    }

    /// A queue whose wake hook counts its calls.
    fn counted() -> (EventSink, EventSource, Arc<AtomicUsize>) {
        let (sink, source) = channel(16);
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        sink.set_wake_hook(Some(Arc::new(move || {
            c.fetch_add(1, Ordering::SeqCst);
        })));
        (sink, source, calls)
    }

    fn batch(sink: &EventSink, n: usize) {
        sink.open_batch();
        (0..n).for_each(|_| sink.emit(state()));
        sink.close_batch();
    }

    #[test]
    fn the_change_hook_fires_for_every_batch_and_written_raise_even_unread() {
        let (sink, source) = channel(16);
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        sink.set_change_hook(Some(Arc::new(move || {
            c.fetch_add(1, Ordering::SeqCst);
        })));
        batch(&sink, 3);
        batch(&sink, 2);
        // Nobody consumed anything: unlike the wake hook, it fires for each batch.
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        sink.written(MessageId(1));
        sink.written(MessageId(2)); // raises the pending report: no event, still a change
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        assert_eq!(source.pending(), 6);
        sink.set_change_hook(None);
        sink.emit(state());
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn disconnect_and_close_reasons_are_kept_unread() {
        let (sink, _source) = channel(16);
        assert!(sink.last_disconnect().is_none() && sink.close_reason().is_none());
        let lost = Disconnect::ConnectionLost("reset".into());
        sink.emit(Event::Disconnected {
            reason: lost.clone(),
            will_reconnect: true,
        });
        assert_eq!(sink.last_disconnect(), Some(lost.clone()));
        assert!(sink.close_reason().is_none());
        sink.emit(Event::Closed {
            reason: lost.clone(),
            undelivered: 0,
        });
        assert_eq!(sink.close_reason(), Some(lost));
    }

    #[test]
    fn the_wake_hook_fires_once_per_batch_for_a_drained_consumer() {
        let (sink, source, calls) = counted();
        assert_eq!(
            calls.load(Ordering::SeqCst),
            0,
            "nothing pending at install"
        );
        batch(&sink, 100);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "one call for a batch of 100"
        );
        // Not drained yet: more batches and single events do not call it again.
        batch(&sink, 50);
        sink.emit(state());
        sink.emit_now(state());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let mut out = Vec::new();
        // A consumer that stops with events left calls it (it may wait for it next).
        assert_eq!(source.take_into(&mut out, 100, Duration::ZERO), 100);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(source.take_into(&mut out, 100, Duration::ZERO), 52);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "drained: nothing to call it for"
        );
        // Found empty: armed again; the next batch calls it once more, the one after not.
        batch(&sink, 10);
        batch(&sink, 10);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert!(source.try_next().is_some());
    }

    #[test]
    fn installing_the_hook_with_events_pending_fires_it_at_once() {
        let (sink, source) = channel(16);
        sink.emit(state());
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        sink.set_wake_hook(Some(Arc::new(move || {
            c.fetch_add(1, Ordering::SeqCst);
        })));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        sink.emit(state());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(source.try_next().is_some());
        sink.set_wake_hook(None);
        assert!(source.try_next().is_some());
        assert!(source.try_next().is_none());
        sink.emit(state());
        assert_eq!(calls.load(Ordering::SeqCst), 1, "removed");
    }

    #[test]
    fn a_panicking_wake_hook_is_contained() {
        let (sink, source) = channel(16);
        sink.set_wake_hook(Some(Arc::new(|| panic!("hook"))));
        sink.emit(state());
        assert!(source.try_next().is_some());
    }
}
