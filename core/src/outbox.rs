//! The outbox: a bounded FIFO of accepted messages, shared by the caller's threads (which push)
//! and the session task (which writes from the front).
//!
//! Raw mode: a message stays until its batch has been flushed to the socket; a batch whose
//! write fails stays at the front and is written again after the reconnect, so a broken link
//! never loses an accepted message (a server may then see it twice).
//!
//! Envelope mode: a message stays until the server acknowledges it. The front `written` entries
//! have been written and await their ack; after each `welcome` they are rewound and written
//! again, in order, before anything new. Bounds count both messages and bytes, including the
//! batch being written and the messages awaiting acks.
//!
//! Every way a message leaves the outbox without being delivered goes through [`Outbox::fail`]
//! style helpers that record the failure under the same lock, so [`Outbox::status`] never sees
//! a message that is neither queued, acked nor failed.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::Waker;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio_tungstenite::tungstenite::{Message as WsMessage, Utf8Bytes};

use crate::config::OverflowPolicy;
use crate::error::{SendError, SendFailure};
use crate::event::MessageId;
use crate::store::Store;

/// Failures remembered for [`Outbox::status`]; older ones are forgotten (reported `Unknown`).
const FAILURE_LOG_CAPACITY: usize = 65_536;

/// An outbound payload as it will go on the wire.
#[derive(Clone, Debug)]
pub(crate) enum Payload {
    Text(Utf8Bytes),
    Binary(Bytes),
}

impl Payload {
    pub(crate) fn len(&self) -> usize {
        match self {
            Payload::Text(t) => t.len(),
            Payload::Binary(b) => b.len(),
        }
    }

    pub(crate) fn to_ws(&self) -> WsMessage {
        match self {
            Payload::Text(t) => WsMessage::Text(t.clone()),
            Payload::Binary(b) => WsMessage::Binary(b.clone()),
        }
    }
}

#[derive(Debug)]
struct Entry {
    id: MessageId,
    payload: Payload,
    /// When it was last written (envelope mode).
    written_at: Option<Instant>,
    /// How many times it has been written.
    writes: u32,
    /// How many ack timeouts it has had.
    timeouts: u32,
    /// How many links the peer closed with 1009 while this was the largest message in flight.
    refusals: u32,
}

/// Where a message stands, as far as this client can tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting in the outbox to be written.
    Queued,
    /// Written to the socket; in envelope mode, awaiting the server's ack.
    Written,
    /// The server acknowledged it (envelope mode).
    Acked,
    /// It will never be delivered.
    Failed(SendFailure),
    /// Not an id this client issued, or too old to remember.
    Unknown,
}

impl DeliveryStatus {
    /// The status's name, as the bindings show it: `queued`, `written`, `acked`, `failed` or
    /// `unknown`.
    pub fn as_str(&self) -> &'static str {
        match self {
            DeliveryStatus::Queued => "queued",
            DeliveryStatus::Written => "written",
            DeliveryStatus::Acked => "acked",
            DeliveryStatus::Failed(_) => "failed",
            DeliveryStatus::Unknown => "unknown",
        }
    }
}

/// What a wait for a message's status waits for ([`crate::Client::wait_status`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Want {
    /// The message was written to the socket (or reached a final status: acked, failed,
    /// unknown).
    Written,
    /// Envelope mode: the server acknowledged the message (or it failed, or is unknown). In
    /// raw mode, which has no acks, `Written` is final, so this is the same as
    /// [`Want::Written`].
    Acked,
}

impl DeliveryStatus {
    /// True once this status satisfies `want`, or can never change again.
    fn reaches(&self, want: Want, keep_until_acked: bool) -> bool {
        match self {
            DeliveryStatus::Queued => false,
            DeliveryStatus::Written => want == Want::Written || !keep_until_acked,
            DeliveryStatus::Acked | DeliveryStatus::Failed(_) | DeliveryStatus::Unknown => true,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    queue: VecDeque<Entry>,
    bytes: usize,
    /// Envelope mode: the first `written` entries were written and await acks.
    written: usize,
    /// Raw mode: the first `in_flight` entries belong to the batch being written.
    in_flight: usize,
    /// Raw mode: the first `aborted` entries belong to the batch whose write was cut by the end
    /// of the last link (until the next batch is taken), for [`Outbox::refused_too_large`].
    aborted: usize,
    next_id: u64,
    closed: bool,
    high_water_messages: usize,
    high_water_bytes: usize,
    failed: HashMap<u64, SendFailure>,
    failed_order: VecDeque<u64>,
    /// Highest id whose failure record was evicted from the log.
    forgotten_below: u64,
    wakers: HashMap<u64, Vec<Waker>>,
    /// The persistent outbox (`outbox_path`), if configured: every message accepted is
    /// recorded before `push` returns, and every removal is noted for the next flush.
    store: Option<Store>,
}

impl Inner {
    fn protected(&self) -> usize {
        self.written + self.in_flight
    }

    fn remove_at(&mut self, index: usize) -> Option<Entry> {
        let entry = self.queue.remove(index)?;
        if let Some(store) = self.store.as_mut() {
            store.done(entry.id);
        }
        self.bytes -= entry.payload.len();
        if index < self.written {
            self.written -= 1;
        }
        if index < self.in_flight {
            self.in_flight -= 1;
        }
        if index < self.aborted {
            self.aborted -= 1;
        }
        Some(entry)
    }

    /// Write what the store noted (after a removal), compacting when due.
    fn persist(&mut self) {
        if let Some(store) = self.store.as_mut() {
            let live = self.queue.iter().map(|e| (e.id, &e.payload));
            store.flush(live, self.next_id);
        }
    }

    fn record_failure(&mut self, id: MessageId, reason: SendFailure) {
        if self.failed_order.len() >= FAILURE_LOG_CAPACITY {
            if let Some(old) = self.failed_order.pop_front() {
                self.failed.remove(&old);
                self.forgotten_below = self.forgotten_below.max(old);
            }
        }
        self.failed.insert(id.0, reason);
        self.failed_order.push_back(id.0);
    }

    fn index_of_written(&self, id: MessageId) -> Option<usize> {
        let written = self.queue.range(..self.written);
        let at = written.clone().position(|e| e.id >= id)?;
        (self.queue[at].id == id).then_some(at)
    }

    fn wake(&mut self, id: MessageId) {
        if let Some(wakers) = self.wakers.remove(&id.0) {
            wakers.into_iter().for_each(Waker::wake);
        }
    }

    /// Messages up to `last` were written: wake the futures waiting on them (those waiting for
    /// an ack look again and register anew).
    fn wake_written(&mut self, last: MessageId) {
        if self.wakers.is_empty() {
            return;
        }
        self.wakers.retain(|id, wakers| {
            if *id > last.0 {
                return true;
            }
            wakers.drain(..).for_each(Waker::wake);
            false
        });
    }
}

/// The result of a push: the new id, plus any messages dropped to make room.
pub(crate) struct Pushed {
    pub id: MessageId,
    pub dropped: Vec<MessageId>,
}

/// What the session took for one write.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub messages: usize,
    pub bytes: usize,
    pub last_id: Option<MessageId>,
    /// Messages in the batch that had been written before.
    pub rewrites: usize,
}

/// What an expired ack deadline means for the front message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// Nothing expired.
    None,
    /// Write everything unacked again (the receiver de-duplicates).
    Rewind,
    /// The front message ran out of retries and was removed as failed.
    Failed(MessageId, u32),
}

/// A snapshot of the outbox's size (see [`Outbox::depth`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Depth {
    /// Messages in the outbox (including those being written or awaiting an ack).
    pub messages: usize,
    /// Their payload bytes.
    pub bytes: usize,
    /// Of those, written and waiting for an ack (envelope mode).
    pub awaiting_ack: usize,
    /// The most messages queued at once.
    pub high_water_messages: usize,
    /// The most payload bytes queued at once.
    pub high_water_bytes: usize,
}

pub(crate) struct Outbox {
    inner: Mutex<Inner>,
    /// Signalled whenever room is freed, a message resolves, or the outbox closes.
    changed: Condvar,
    /// Threads waiting on `changed`.
    sleepers: AtomicUsize,
    /// Wakes the session task when a message arrives (rung through `driver` when the client
    /// drives its I/O on the caller's thread: see [`crate::driver::Driver::ring`]).
    pub(crate) arrived: Arc<tokio::sync::Notify>,
    driver: std::sync::OnceLock<std::sync::Weak<crate::driver::Driver>>,
    max_messages: usize,
    max_bytes: usize,
    policy: OverflowPolicy,
    keep_until_acked: bool,
    /// A persistent store was put in place ([`Outbox::restore`]).
    persistent: std::sync::atomic::AtomicBool,
}

impl Outbox {
    pub(crate) fn new(
        max_messages: usize,
        max_bytes: usize,
        policy: OverflowPolicy,
        keep_until_acked: bool,
    ) -> Self {
        Outbox {
            inner: Mutex::new(Inner {
                next_id: 1,
                ..Inner::default()
            }),
            changed: Condvar::new(),
            sleepers: AtomicUsize::new(0),
            arrived: Arc::new(tokio::sync::Notify::new()),
            driver: std::sync::OnceLock::new(),
            max_messages,
            max_bytes,
            policy,
            keep_until_acked,
            persistent: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Wake the session: a message arrived.
    fn ring(&self) {
        match self.driver.get().and_then(std::sync::Weak::upgrade) {
            Some(driver) => driver.ring(),
            None => self.arrived.notify_one(),
        }
    }

    /// The client's I/O is driven by `driver` (caller-driven mode): ring the session through it.
    pub(crate) fn driven_by(&self, driver: &Arc<crate::driver::Driver>) {
        let _ = self.driver.set(Arc::downgrade(driver));
    }

    /// Put a persistent store in place with the messages it restored (before any push). In
    /// envelope mode they count as written (an earlier process may have written them): the
    /// next `welcome` acks those the server has and the rest are written again, in order.
    pub(crate) fn restore(&self, store: Store, messages: Vec<(MessageId, Payload)>, next_id: u64) {
        let mut inner = self.lock();
        for (id, payload) in messages {
            inner.bytes += payload.len();
            inner.queue.push_back(Entry {
                id,
                payload,
                written_at: None,
                writes: u32::from(self.keep_until_acked),
                timeouts: 0,
                refusals: 0,
            });
        }
        if self.keep_until_acked {
            inner.written = inner.queue.len();
        }
        inner.next_id = inner.next_id.max(next_id);
        inner.high_water_messages = inner.queue.len();
        inner.high_water_bytes = inner.bytes;
        inner.store = Some(store);
        self.persistent.store(true, Ordering::Relaxed);
    }

    /// Note the server's position (envelope mode: the highest server id delivered to the
    /// application, and its epoch) in the persistent store, if any.
    pub(crate) fn note_server_position(&self, epoch: Option<&str>, last: u64) {
        if !self.persistent.load(Ordering::Relaxed) {
            return; // the common case: no lock per inbound message
        }
        let mut inner = self.lock();
        if let Some(store) = inner.store.as_mut() {
            store.server_position(epoch, last);
            inner.persist();
        }
    }

    /// Whether a persistent store is in place.
    pub(crate) fn is_persistent(&self) -> bool {
        self.persistent.load(Ordering::Relaxed)
    }

    /// Close the persistent store (at the session's end): what is left stays in the file
    /// for the next client started with it, and the file is free for that client.
    pub(crate) fn release_store(&self) -> bool {
        let mut inner = self.lock();
        inner.persist();
        inner.store.take().is_some()
        // `persistent` stays set: what was accepted was kept in the file.
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the queue half-updated in a way that
        // matters more than losing the client, so recover the guard instead of propagating.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wait for a change, up to `timeout`, counted in `sleepers`.
    fn wait_changed<'a>(
        &self,
        inner: MutexGuard<'a, Inner>,
        timeout: Duration,
    ) -> MutexGuard<'a, Inner> {
        // Counted under the lock, before the wait releases it: a notifier that changed the
        // state after we looked sees the count.
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        let inner = self
            .changed
            .wait_timeout(inner, timeout)
            .unwrap_or_else(|p| p.into_inner())
            .0;
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        inner
    }

    /// Wake the threads waiting for a change. Only when there are any: a condition variable's
    /// notify is a system call even when nobody waits, and this runs on every write.
    fn notify_changed(&self) {
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            self.changed.notify_all();
        }
    }

    fn fits(&self, inner: &Inner, len: usize) -> bool {
        inner.queue.len() < self.max_messages && inner.bytes + len <= self.max_bytes
    }

    /// Accept a message or say precisely why not. The caller has already checked its size
    /// against the outbound limit (which is at most `max_bytes`).
    pub(crate) fn push(&self, payload: Payload) -> Result<Pushed, SendError> {
        let len = payload.len();
        let mut inner = self.lock();
        let mut dropped = Vec::new();
        if inner.closed {
            return Err(SendError::Closed);
        }
        if !self.fits(&inner, len) {
            match self.policy {
                OverflowPolicy::Reject => return Err(full(&inner)),
                OverflowPolicy::Wait(timeout) => {
                    let deadline = Instant::now() + timeout;
                    while !inner.closed && !self.fits(&inner, len) {
                        let now = Instant::now();
                        if now >= deadline {
                            return Err(full(&inner));
                        }
                        inner = self.wait_changed(inner, deadline - now);
                    }
                    if inner.closed {
                        return Err(SendError::Closed);
                    }
                }
                OverflowPolicy::DropOldest => {
                    // Never drop what is written or being written: it may already be on the
                    // wire. Check first that dropping can make room, so nothing is dropped for
                    // nothing.
                    let protected = inner.protected();
                    let protected_bytes: usize = inner
                        .queue
                        .iter()
                        .take(protected)
                        .map(|e| e.payload.len())
                        .sum();
                    if protected >= self.max_messages || protected_bytes + len > self.max_bytes {
                        return Err(full(&inner));
                    }
                    while !self.fits(&inner, len) {
                        match inner.remove_at(protected) {
                            Some(old) => {
                                inner.record_failure(old.id, SendFailure::DroppedOldest);
                                inner.wake(old.id);
                                dropped.push(old.id);
                            }
                            None => break,
                        }
                    }
                }
            }
        }
        let id = MessageId(inner.next_id);
        if let Some(store) = inner.store.as_mut() {
            // Recorded (with the drops above) before the id is given out: an accepted message
            // is in the file. On failure nothing is accepted; the drops stay noted.
            store
                .accepted(id, &payload)
                .map_err(|e| SendError::Storage(e.to_string()))?;
        }
        // The session takes every unwritten message per batch: wake it only when there were none.
        let had_unwritten = inner.queue.len() > inner.protected();
        inner.next_id += 1;
        inner.bytes += len;
        inner.queue.push_back(Entry {
            id,
            payload,
            written_at: None,
            writes: 0,
            timeouts: 0,
            refusals: 0,
        });
        inner.high_water_messages = inner.high_water_messages.max(inner.queue.len());
        inner.high_water_bytes = inner.high_water_bytes.max(inner.bytes);
        drop(inner);
        if !had_unwritten {
            self.ring();
        }
        Ok(Pushed { id, dropped })
    }

    /// Take the next unwritten messages (up to `max_bytes`, at least one) as a batch, appending
    /// them to `out`. Raw mode: they stay queued until [`Outbox::commit`]. Envelope mode: they
    /// count as written from now on and stay until acked.
    pub(crate) fn take_batch(
        &self,
        max_bytes: usize,
        out: &mut Vec<(MessageId, Payload)>,
    ) -> Batch {
        let mut inner = self.lock();
        debug_assert_eq!(inner.in_flight, 0, "one batch at a time");
        inner.aborted = 0;
        if let Some(store) = inner.store.as_mut() {
            // OutboxSync::Batch: on disk before it goes on the wire.
            store.sync_batch();
        }
        let now = Instant::now();
        let start = inner.written;
        let mut batch = Batch::default();
        for entry in inner.queue.iter_mut().skip(start) {
            if batch.messages > 0 && batch.bytes + entry.payload.len() > max_bytes {
                break;
            }
            out.push((entry.id, entry.payload.clone()));
            batch.messages += 1;
            batch.bytes += entry.payload.len();
            batch.last_id = Some(entry.id);
            if entry.writes > 0 {
                batch.rewrites += 1;
            }
            entry.writes += 1;
            entry.written_at = Some(now);
        }
        if self.keep_until_acked {
            inner.written += batch.messages;
            if let Some(last) = batch.last_id {
                // Envelope mode counts them written from now on (see `status_of`).
                inner.wake_written(last);
                drop(inner);
                self.notify_changed();
            }
        } else {
            inner.in_flight = batch.messages;
        }
        batch
    }

    /// The batch was flushed. Raw mode: remove it (it is as delivered as raw mode can know).
    pub(crate) fn commit(&self) {
        if self.keep_until_acked {
            return;
        }
        let mut inner = self.lock();
        let n = inner.in_flight;
        inner.in_flight = 0;
        // Raw mode keeps `written` at 0, so the batch is exactly the first `n` entries.
        let last = inner.queue.get(n.wrapping_sub(1)).map(|e| e.id);
        for _ in 0..n {
            inner.remove_at(0);
        }
        inner.persist();
        if let Some(last) = last {
            inner.wake_written(last);
        }
        drop(inner);
        self.notify_changed();
    }

    /// The batch's write failed: keep it at the front for the next connection.
    pub(crate) fn abort_batch(&self) {
        let mut inner = self.lock();
        inner.aborted = inner.in_flight;
        inner.in_flight = 0;
    }

    /// The first and last id of the queued messages that have been written at least once (they
    /// are the front of the queue: messages are written in order), or `None`.
    pub(crate) fn written_before(&self) -> Option<(MessageId, MessageId)> {
        let inner = self.lock();
        let first = inner.queue.front().filter(|e| e.writes > 0)?.id;
        let last = inner
            .queue
            .iter()
            .take_while(|e| e.writes > 0)
            .last()
            .map_or(first, |e| e.id);
        Some((first, last))
    }

    /// Envelope mode, after a `welcome`: everything unacked is written again, in order.
    pub(crate) fn rewind(&self) {
        self.lock().written = 0;
    }

    /// Remove written messages up to and including `upto`; returns their ids.
    pub(crate) fn ack_upto(&self, upto: u64) -> Vec<MessageId> {
        let mut inner = self.lock();
        let mut acked = Vec::new();
        while inner.written > 0 && inner.queue.front().is_some_and(|e| e.id.0 <= upto) {
            if let Some(entry) = inner.remove_at(0) {
                inner.wake(entry.id);
                acked.push(entry.id);
            }
        }
        inner.persist();
        drop(inner);
        if !acked.is_empty() {
            self.notify_changed();
        }
        acked
    }

    /// Remove one written message; true if it was awaiting its ack.
    pub(crate) fn ack_one(&self, id: MessageId) -> bool {
        self.remove_written(id, None)
    }

    /// Remove one written message as failed (the receiver refused it); true if it was there.
    pub(crate) fn fail_written(&self, id: MessageId, reason: SendFailure) -> bool {
        self.remove_written(id, Some(reason))
    }

    fn remove_written(&self, id: MessageId, failure: Option<SendFailure>) -> bool {
        let mut inner = self.lock();
        let Some(at) = inner.index_of_written(id) else {
            return false;
        };
        inner.remove_at(at);
        inner.persist();
        if let Some(reason) = failure {
            inner.record_failure(id, reason);
        }
        inner.wake(id);
        drop(inner);
        self.notify_changed();
        true
    }

    /// When the oldest unacked message's ack is due.
    pub(crate) fn ack_deadline(&self, timeout: Duration) -> Option<Instant> {
        let inner = self.lock();
        if inner.written == 0 {
            return None;
        }
        inner
            .queue
            .front()
            .and_then(|e| e.written_at)
            .map(|at| at + timeout)
    }

    /// Handle an expired ack deadline of the front message.
    pub(crate) fn expire(&self, now: Instant, timeout: Duration, retries: u32) -> Expiry {
        let mut inner = self.lock();
        let due = inner.written > 0
            && inner
                .queue
                .front()
                .and_then(|e| e.written_at)
                .is_some_and(|at| at + timeout <= now);
        if !due {
            return Expiry::None;
        }
        let Some(front) = inner.queue.front_mut() else {
            return Expiry::None;
        };
        front.timeouts += 1;
        if front.timeouts > retries {
            let (id, writes) = (front.id, front.writes);
            inner.remove_at(0);
            inner.persist();
            inner.record_failure(id, SendFailure::AckTimeout { attempts: writes });
            inner.wake(id);
            drop(inner);
            self.notify_changed();
            Expiry::Failed(id, writes)
        } else {
            inner.written = 0;
            Expiry::Rewind
        }
    }

    /// The peer closed the link with 1009 ("message too big"): count a refusal against the
    /// largest message in flight on it (written and unacked in envelope mode, in the running
    /// batch in raw mode, or in the batch the link's end cut; the oldest of equals). The peer
    /// refused a message at least that large, so that one is over its limit too, whichever it
    /// was; a message smaller than another one in flight is never blamed. At `strikes`
    /// refusals it is removed as failed and returned, so the queue behind it moves on.
    pub(crate) fn refused_too_large(
        &self,
        strikes: u32,
        wire_len: impl Fn(&Payload) -> usize,
    ) -> Option<(MessageId, u32)> {
        let mut inner = self.lock();
        let in_flight = inner.protected().max(inner.aborted);
        let mut largest: Option<(usize, usize)> = None;
        for (at, entry) in inner.queue.iter().take(in_flight).enumerate() {
            let len = wire_len(&entry.payload);
            if largest.is_none_or(|(_, max)| len > max) {
                largest = Some((at, len));
            }
        }
        let (at, _) = largest?;
        let entry = &mut inner.queue[at];
        entry.refusals += 1;
        let (id, refusals) = (entry.id, entry.refusals);
        if refusals < strikes {
            return None;
        }
        inner.remove_at(at);
        inner.persist();
        inner.record_failure(id, SendFailure::RefusedTooLarge { attempts: refusals });
        inner.wake(id);
        drop(inner);
        self.notify_changed();
        Some((id, refusals))
    }

    /// Refuse new messages from now on (sends get `Closed`); queued ones stay for draining.
    pub(crate) fn close_intake(&self) {
        self.lock().closed = true;
        self.notify_changed();
    }

    /// Close intake and remove everything as failed with `reason`; returns the ids. With a
    /// persistent store they stay in its file (nothing is noted as done there).
    pub(crate) fn close_and_fail_all(&self, reason: &SendFailure) -> Vec<MessageId> {
        let mut inner = self.lock();
        inner.closed = true;
        inner.in_flight = 0;
        inner.aborted = 0;
        inner.written = 0;
        inner.bytes = 0;
        let ids: Vec<MessageId> = inner.queue.drain(..).map(|e| e.id).collect();
        for id in &ids {
            inner.record_failure(*id, reason.clone());
        }
        for (_, wakers) in inner.wakers.drain() {
            wakers.into_iter().for_each(Waker::wake);
        }
        drop(inner);
        self.notify_changed();
        ids
    }

    /// Where message `id` stands.
    pub(crate) fn status(&self, id: MessageId) -> DeliveryStatus {
        status_of(&self.lock(), id, self.keep_until_acked)
    }

    /// Wait until `id`'s status reaches `want` or is final (or the timeout); returns the
    /// status then.
    pub(crate) fn wait_status(
        &self,
        id: MessageId,
        want: Want,
        timeout: Duration,
    ) -> DeliveryStatus {
        let deadline = Instant::now() + timeout;
        let mut inner = self.lock();
        loop {
            let status = status_of(&inner, id, self.keep_until_acked);
            let now = Instant::now();
            if status.reaches(want, self.keep_until_acked) || now >= deadline {
                return status;
            }
            inner = self.wait_changed(inner, deadline - now);
        }
    }

    /// Poll-style [`Outbox::wait_status`]: the status if it reached `want` or is final, else
    /// register `waker` for the next change of `id`.
    pub(crate) fn poll_status(
        &self,
        id: MessageId,
        want: Want,
        waker: &Waker,
    ) -> Option<DeliveryStatus> {
        let mut inner = self.lock();
        let status = status_of(&inner, id, self.keep_until_acked);
        if status.reaches(want, self.keep_until_acked) || inner.closed_for_good() {
            return Some(status);
        }
        let wakers = inner.wakers.entry(id.0).or_default();
        if !wakers.iter().any(|w| w.will_wake(waker)) {
            wakers.push(waker.clone());
        }
        None
    }

    /// How full the outbox is now, and has been at most.
    pub(crate) fn depth(&self) -> Depth {
        let inner = self.lock();
        Depth {
            messages: inner.queue.len(),
            bytes: inner.bytes,
            awaiting_ack: inner.written,
            high_water_messages: inner.high_water_messages,
            high_water_bytes: inner.high_water_bytes,
        }
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.lock().queue.is_empty()
    }
}

impl Inner {
    /// Closed and drained: nothing can resolve any more.
    fn closed_for_good(&self) -> bool {
        self.closed && self.queue.is_empty()
    }
}

fn status_of(inner: &Inner, id: MessageId, keep_until_acked: bool) -> DeliveryStatus {
    if id.0 == 0 || id.0 >= inner.next_id {
        return DeliveryStatus::Unknown;
    }
    if let Some(reason) = inner.failed.get(&id.0) {
        return DeliveryStatus::Failed(reason.clone());
    }
    // Ids in the queue are in ascending order.
    if let Ok(at) = inner.queue.binary_search_by_key(&id, |e| e.id) {
        let written = if keep_until_acked {
            at < inner.written
        } else {
            false
        };
        return if written {
            DeliveryStatus::Written
        } else {
            DeliveryStatus::Queued
        };
    }
    if id.0 <= inner.forgotten_below {
        return DeliveryStatus::Unknown;
    }
    if keep_until_acked {
        DeliveryStatus::Acked
    } else {
        DeliveryStatus::Written
    }
}

fn full(inner: &Inner) -> SendError {
    SendError::QueueFull {
        messages: inner.queue.len(),
        bytes: inner.bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_statuses_have_binding_names() {
        let failed = DeliveryStatus::Failed(SendFailure::DroppedOldest);
        let names = [
            DeliveryStatus::Queued,
            DeliveryStatus::Acked,
            failed,
            DeliveryStatus::Unknown,
        ]
        .map(|s| s.as_str());
        assert_eq!(names, ["queued", "acked", "failed", "unknown"]);
        assert_eq!(DeliveryStatus::Written.as_str(), "written");
    }
    use std::sync::Arc;

    fn text(s: &str) -> Payload {
        Payload::Text(Utf8Bytes::from(s))
    }

    fn raw(max_messages: usize, max_bytes: usize, policy: OverflowPolicy) -> Outbox {
        Outbox::new(max_messages, max_bytes, policy, false)
    }

    fn push(ob: &Outbox, s: &str) -> MessageId {
        ob.push(text(s)).map(|p| p.id).expect("room")
    }

    fn take(ob: &Outbox, max_bytes: usize) -> (Batch, Vec<MessageId>) {
        let mut out = Vec::new();
        let batch = ob.take_batch(max_bytes, &mut out);
        (batch, out.into_iter().map(|(id, _)| id).collect())
    }

    #[test]
    fn reject_policy_bounds_by_count_and_bytes() {
        let ob = raw(2, 10, OverflowPolicy::Reject);
        assert_eq!(push(&ob, "aaaa"), MessageId(1));
        assert!(matches!(
            ob.push(text("bbbbbbb")),
            Err(SendError::QueueFull {
                messages: 1,
                bytes: 4
            })
        ));
        assert_eq!(push(&ob, "cc"), MessageId(2));
        assert!(matches!(
            ob.push(text("d")),
            Err(SendError::QueueFull { messages: 2, .. })
        ));
    }

    #[test]
    fn batches_keep_order_and_failed_batches_stay_queued() {
        let ob = raw(10, 100, OverflowPolicy::Reject);
        for s in ["a", "b", "c"] {
            push(&ob, s);
        }
        let (b, ids) = take(&ob, 2);
        assert_eq!(
            (b.messages, b.last_id, ids.len()),
            (2, Some(MessageId(2)), 2)
        );
        ob.abort_batch();
        let (b, ids) = take(&ob, 100);
        assert_eq!(
            ids,
            [MessageId(1), MessageId(2), MessageId(3)],
            "aborted batch is taken again, in order"
        );
        assert_eq!(b.rewrites, 2);
        ob.commit();
        assert!(ob.is_empty());
        assert_eq!(ob.status(MessageId(1)), DeliveryStatus::Written);
    }

    #[test]
    fn a_1009_blames_the_largest_message_in_flight_and_fails_it_at_the_strike_limit() {
        let len = |p: &Payload| p.len();
        // Envelope mode: small, large, small written and unacked; one more not yet written.
        let ob = Outbox::new(10, 1 << 20, OverflowPolicy::Reject, true);
        let ids: Vec<MessageId> = ["s", "LARGE", "t", "HUGE-BUT-UNWRITTEN"]
            .iter()
            .map(|s| push(&ob, s))
            .collect();
        let mut out = Vec::new();
        ob.take_batch(7, &mut out);
        assert_eq!(out.len(), 3, "the fourth is not in flight");
        assert_eq!(ob.refused_too_large(3, len), None);
        ob.rewind();
        ob.take_batch(7, &mut Vec::new());
        assert_eq!(ob.refused_too_large(3, len), None);
        ob.rewind();
        ob.take_batch(7, &mut Vec::new());
        assert_eq!(ob.refused_too_large(3, len), Some((ids[1], 3)));
        assert_eq!(
            ob.status(ids[1]),
            DeliveryStatus::Failed(SendFailure::RefusedTooLarge { attempts: 3 })
        );
        // The others are untouched and still in order; the written count followed the removal.
        assert_eq!(ob.depth().messages, 3);
        assert_eq!(ob.depth().awaiting_ack, 2);
        assert_eq!(ob.ack_upto(ids[2].0), [ids[0], ids[2]]);

        // Raw mode: the batch the link's end cut is what was in flight; nothing else is blamed.
        let ob = raw(10, 1 << 20, OverflowPolicy::Reject);
        let big = push(&ob, "BIG");
        let small = push(&ob, "s");
        ob.take_batch(1, &mut Vec::new());
        ob.abort_batch();
        assert_eq!(ob.refused_too_large(2, len), None);
        ob.take_batch(1, &mut Vec::new());
        ob.abort_batch();
        assert_eq!(ob.refused_too_large(2, len), Some((big, 2)));
        let (_, taken) = take(&ob, 100);
        assert_eq!(taken, [small], "the queue moves on");
        ob.commit();
        assert_eq!(
            ob.refused_too_large(2, len),
            None,
            "nothing in flight, no one blamed"
        );
    }

    #[test]
    fn drop_oldest_spares_the_batch_being_written() {
        let ob = raw(3, 100, OverflowPolicy::DropOldest);
        for s in ["a", "b", "c"] {
            push(&ob, s);
        }
        take(&ob, 1); // "a" in flight
        let p = ob.push(text("d")).expect("drop-oldest makes room");
        assert_eq!(p.dropped, vec![MessageId(2)]);
        assert_eq!(p.id, MessageId(4));
        assert_eq!(
            ob.status(MessageId(2)),
            DeliveryStatus::Failed(SendFailure::DroppedOldest)
        );
    }

    #[test]
    fn wait_policy_blocks_until_room_then_times_out() {
        let ob = Arc::new(raw(1, 100, OverflowPolicy::Wait(Duration::from_secs(5))));
        push(&ob, "a");
        let ob2 = ob.clone();
        let waiter = std::thread::spawn(move || ob2.push(text("b")).map(|p| p.id));
        take(&ob, 100);
        ob.commit();
        assert_eq!(waiter.join().ok().and_then(|r| r.ok()), Some(MessageId(2)));

        let ob = raw(1, 100, OverflowPolicy::Wait(Duration::from_millis(50)));
        push(&ob, "a");
        assert!(matches!(
            ob.push(text("b")),
            Err(SendError::QueueFull { .. })
        ));
    }

    #[test]
    fn close_wakes_waiters_and_reports_everything_left() {
        let ob = Arc::new(raw(1, 100, OverflowPolicy::Wait(Duration::from_secs(30))));
        push(&ob, "a");
        let ob2 = ob.clone();
        let waiter = std::thread::spawn(move || ob2.push(text("b")).map(|p| p.id));
        // Whether the waiter is already blocked or not yet, close must make it return Closed.
        assert_eq!(
            ob.close_and_fail_all(&SendFailure::Closed),
            vec![MessageId(1)]
        );
        assert_eq!(waiter.join().ok(), Some(Err(SendError::Closed)));
        assert_eq!(
            ob.status(MessageId(1)),
            DeliveryStatus::Failed(SendFailure::Closed)
        );
    }

    #[test]
    fn envelope_mode_keeps_written_messages_until_acked_and_rewinds() {
        let ob = Outbox::new(10, 100, OverflowPolicy::Reject, true);
        for s in ["a", "b", "c", "d"] {
            push(&ob, s);
        }
        let (_, ids) = take(&ob, 100);
        assert_eq!(ids.len(), 4);
        assert_eq!(ob.status(MessageId(2)), DeliveryStatus::Written);
        assert_eq!(take(&ob, 100).1, [], "nothing new to write");
        assert_eq!(ob.ack_upto(2), [MessageId(1), MessageId(2)]);
        assert_eq!(ob.status(MessageId(1)), DeliveryStatus::Acked);
        assert!(ob.ack_one(MessageId(4)));
        assert!(!ob.ack_one(MessageId(4)), "acked once only");
        ob.rewind();
        let (b, ids) = take(&ob, 100);
        assert_eq!(
            (ids, b.rewrites),
            (vec![MessageId(3)], 1),
            "after a rewind the unacked one goes again"
        );
        assert!(ob.fail_written(MessageId(3), SendFailure::Rejected("no".into())));
        assert_eq!(
            ob.status(MessageId(3)),
            DeliveryStatus::Failed(SendFailure::Rejected("no".into()))
        );
        assert_eq!(ob.status(MessageId(99)), DeliveryStatus::Unknown);
    }

    #[test]
    fn ack_timeouts_rewind_then_fail_after_the_retries() {
        let ob = Outbox::new(10, 100, OverflowPolicy::Reject, true);
        push(&ob, "a");
        take(&ob, 100);
        let timeout = Duration::from_millis(10);
        let due = ob.ack_deadline(timeout).expect("a deadline");
        assert_eq!(
            ob.expire(due - Duration::from_millis(1), timeout, 1),
            Expiry::None
        );
        assert_eq!(ob.expire(due, timeout, 1), Expiry::Rewind);
        take(&ob, 100);
        let due = ob.ack_deadline(timeout).expect("a deadline");
        assert_eq!(ob.expire(due, timeout, 1), Expiry::Failed(MessageId(1), 2));
        assert!(ob.ack_deadline(timeout).is_none());
    }
}
