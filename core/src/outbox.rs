//! The outbox: a bounded FIFO of accepted messages, shared by the caller's threads (which push)
//! and the session task (which writes from the front).
//!
//! Every accepted message stays in the outbox until its batch has been flushed to the socket;
//! a batch whose write fails stays at the front and is written again after the reconnect, so a
//! broken link never loses an accepted message (in raw mode a server may then see it twice;
//! envelope mode de-duplicates). Bounds count both messages and bytes, including the batch being
//! written.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use tokio_tungstenite::tungstenite::{Message as WsMessage, Utf8Bytes};

use crate::config::OverflowPolicy;
use crate::error::SendError;
use crate::event::MessageId;

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
}

#[derive(Debug, Default)]
struct Inner {
    queue: VecDeque<Entry>,
    bytes: usize,
    /// The first `in_flight` entries belong to the batch being written.
    in_flight: usize,
    next_id: u64,
    closed: bool,
    high_water_messages: usize,
    high_water_bytes: usize,
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
}

pub(crate) struct Outbox {
    inner: Mutex<Inner>,
    /// Signalled whenever room is freed or the outbox closes (for the `Wait` policy).
    room: Condvar,
    /// Wakes the session task when a message arrives.
    pub(crate) arrived: tokio::sync::Notify,
    max_messages: usize,
    max_bytes: usize,
    policy: OverflowPolicy,
}

impl Outbox {
    pub(crate) fn new(max_messages: usize, max_bytes: usize, policy: OverflowPolicy) -> Self {
        Outbox {
            inner: Mutex::new(Inner {
                next_id: 1,
                ..Inner::default()
            }),
            room: Condvar::new(),
            arrived: tokio::sync::Notify::new(),
            max_messages,
            max_bytes,
            policy,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the queue half-updated in a way that
        // matters more than losing the client, so recover the guard instead of propagating.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
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
                        inner = self
                            .room
                            .wait_timeout(inner, deadline - now)
                            .unwrap_or_else(|p| p.into_inner())
                            .0;
                    }
                    if inner.closed {
                        return Err(SendError::Closed);
                    }
                }
                OverflowPolicy::DropOldest => {
                    // Never drop what is being written: it may already be on the wire. Check
                    // first that dropping can make room, so nothing is dropped for nothing.
                    let in_flight_bytes: usize = inner
                        .queue
                        .iter()
                        .take(inner.in_flight)
                        .map(|e| e.payload.len())
                        .sum();
                    if inner.in_flight >= self.max_messages
                        || in_flight_bytes + len > self.max_bytes
                    {
                        return Err(full(&inner));
                    }
                    while !self.fits(&inner, len) {
                        let at = inner.in_flight;
                        match inner.queue.remove(at) {
                            Some(old) => {
                                inner.bytes -= old.payload.len();
                                dropped.push(old.id);
                            }
                            None => break,
                        }
                    }
                }
            }
        }
        let id = MessageId(inner.next_id);
        inner.next_id += 1;
        inner.bytes += len;
        inner.queue.push_back(Entry { id, payload });
        inner.high_water_messages = inner.high_water_messages.max(inner.queue.len());
        inner.high_water_bytes = inner.high_water_bytes.max(inner.bytes);
        drop(inner);
        self.arrived.notify_one();
        Ok(Pushed { id, dropped })
    }

    /// Take the front of the queue (up to `max_bytes`, at least one message) as the next batch,
    /// appending the wire messages to `out`. The entries stay queued until [`Outbox::commit`].
    pub(crate) fn take_batch(&self, max_bytes: usize, out: &mut Vec<WsMessage>) -> Batch {
        let mut inner = self.lock();
        debug_assert_eq!(inner.in_flight, 0, "one batch at a time");
        let mut batch = Batch::default();
        for entry in inner.queue.iter() {
            if batch.messages > 0 && batch.bytes + entry.payload.len() > max_bytes {
                break;
            }
            out.push(entry.payload.to_ws());
            batch.messages += 1;
            batch.bytes += entry.payload.len();
            batch.last_id = Some(entry.id);
        }
        inner.in_flight = batch.messages;
        batch
    }

    /// The batch was flushed: remove it.
    pub(crate) fn commit(&self) {
        let mut inner = self.lock();
        let n = inner.in_flight;
        for entry in inner.queue.drain(..n).collect::<Vec<_>>() {
            inner.bytes -= entry.payload.len();
        }
        inner.in_flight = 0;
        drop(inner);
        self.room.notify_all();
    }

    /// The batch's write failed: keep it at the front for the next connection.
    pub(crate) fn abort_batch(&self) {
        self.lock().in_flight = 0;
    }

    /// Refuse new messages from now on (sends get `Closed`); queued ones stay for draining.
    pub(crate) fn close_intake(&self) {
        self.lock().closed = true;
        self.room.notify_all();
    }

    /// Close intake and remove everything, returning the ids that will never be written.
    pub(crate) fn close_and_take_all(&self) -> Vec<MessageId> {
        let mut inner = self.lock();
        inner.closed = true;
        inner.in_flight = 0;
        inner.bytes = 0;
        let ids = inner.queue.drain(..).map(|e| e.id).collect();
        drop(inner);
        self.room.notify_all();
        ids
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.lock().queue.is_empty()
    }

    /// (messages, bytes, high-water messages, high-water bytes)
    pub(crate) fn depth(&self) -> (usize, usize, usize, usize) {
        let inner = self.lock();
        (
            inner.queue.len(),
            inner.bytes,
            inner.high_water_messages,
            inner.high_water_bytes,
        )
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
    use std::sync::Arc;
    use std::time::Duration;

    fn text(s: &str) -> Payload {
        Payload::Text(Utf8Bytes::from(s))
    }

    #[test]
    fn reject_policy_bounds_by_count_and_bytes() {
        let ob = Outbox::new(2, 10, OverflowPolicy::Reject);
        assert_eq!(ob.push(text("aaaa")).map(|p| p.id).ok(), Some(MessageId(1)));
        assert!(matches!(
            ob.push(text("bbbbbbb")),
            Err(SendError::QueueFull {
                messages: 1,
                bytes: 4
            })
        ));
        assert_eq!(ob.push(text("cc")).map(|p| p.id).ok(), Some(MessageId(2)));
        assert!(matches!(
            ob.push(text("d")),
            Err(SendError::QueueFull { messages: 2, .. })
        ));
    }

    #[test]
    fn batches_keep_order_and_failed_batches_stay_queued() {
        let ob = Outbox::new(10, 100, OverflowPolicy::Reject);
        for s in ["a", "b", "c"] {
            ob.push(text(s)).map(|_| ()).expect("room");
        }
        let mut out = Vec::new();
        let b = ob.take_batch(2, &mut out);
        assert_eq!((b.messages, b.last_id), (2, Some(MessageId(2))));
        ob.abort_batch();
        out.clear();
        let b = ob.take_batch(100, &mut out);
        assert_eq!(b.messages, 3, "aborted batch is taken again, in order");
        assert_eq!(out[0], WsMessage::Text("a".into()));
        ob.commit();
        assert!(ob.is_empty());
    }

    #[test]
    fn drop_oldest_spares_the_batch_being_written() {
        let ob = Outbox::new(3, 100, OverflowPolicy::DropOldest);
        for s in ["a", "b", "c"] {
            ob.push(text(s)).map(|_| ()).expect("room");
        }
        let mut out = Vec::new();
        ob.take_batch(1, &mut out); // "a" in flight
        let p = ob.push(text("d")).expect("drop-oldest makes room");
        assert_eq!(p.dropped, vec![MessageId(2)]);
        assert_eq!(p.id, MessageId(4));
    }

    #[test]
    fn wait_policy_blocks_until_room_then_times_out() {
        let ob = Arc::new(Outbox::new(
            1,
            100,
            OverflowPolicy::Wait(Duration::from_secs(5)),
        ));
        ob.push(text("a")).map(|_| ()).expect("room");
        let ob2 = ob.clone();
        let waiter = std::thread::spawn(move || ob2.push(text("b")).map(|p| p.id));
        let mut out = Vec::new();
        ob.take_batch(100, &mut out);
        ob.commit();
        assert_eq!(waiter.join().ok().and_then(|r| r.ok()), Some(MessageId(2)));

        let ob = Outbox::new(1, 100, OverflowPolicy::Wait(Duration::from_millis(50)));
        ob.push(text("a")).map(|_| ()).expect("room");
        assert!(matches!(
            ob.push(text("b")),
            Err(SendError::QueueFull { .. })
        ));
    }

    #[test]
    fn close_wakes_waiters_and_reports_everything_left() {
        let ob = Arc::new(Outbox::new(
            1,
            100,
            OverflowPolicy::Wait(Duration::from_secs(30)),
        ));
        ob.push(text("a")).map(|_| ()).expect("room");
        let ob2 = ob.clone();
        let waiter = std::thread::spawn(move || ob2.push(text("b")).map(|p| p.id));
        // Whether the waiter is already blocked or not yet, close must make it return Closed.
        assert_eq!(ob.close_and_take_all(), vec![MessageId(1)]);
        assert_eq!(waiter.join().ok(), Some(Err(SendError::Closed)));
    }
}
