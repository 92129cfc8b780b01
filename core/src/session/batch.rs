//! Event batching while a link is up. Events gather in one batch that goes to the application
//! when the session has no more work at hand (or the batch is full): one channel operation and
//! at most one wake-up of the application per round of work, not per message, and the
//! application does not preempt the session while it still has frames to read or write.

use crate::event_queue::EventSink;

/// What the batch guard needs of the event channel.
pub(crate) trait Batching {
    fn open_batch(&self);
    fn close_batch(&self);
    fn flush_batch(&self);
    fn batch_is_full(&self) -> bool;
}

impl Batching for EventSink {
    fn open_batch(&self) {
        EventSink::open_batch(self)
    }
    fn close_batch(&self) {
        EventSink::close_batch(self)
    }
    fn flush_batch(&self) {
        EventSink::flush_batch(self)
    }
    fn batch_is_full(&self) -> bool {
        EventSink::batch_is_full(self)
    }
}

/// An open batch; closed (its events sent) when dropped, on every way out of the pump.
pub(crate) struct OpenBatch<'a, B: Batching + ?Sized = EventSink>(&'a B);

impl<'a, B: Batching + ?Sized> OpenBatch<'a, B> {
    pub(crate) fn open(events: &'a B) -> Self {
        events.open_batch();
        OpenBatch(events)
    }

    /// Busy for long enough: hand the events over and let other tasks run (on a
    /// current-thread runtime that includes the application, which consumes them and sends
    /// more; without this it would wait until the socket runs dry).
    pub(crate) async fn yield_if_full(&self) {
        if self.0.batch_is_full() {
            self.0.flush_batch();
            tokio::task::yield_now().await;
        }
    }

    /// Send the events gathered so far, keep gathering, and never complete: polled last in
    /// the pump's `select!`, that is when the session is about to go idle.
    pub(crate) fn flush_when_idle(&self) -> impl std::future::Future<Output = ()> + '_ {
        std::future::poll_fn(move |_| {
            self.0.flush_batch();
            std::task::Poll::Pending
        })
    }
}

impl<B: Batching + ?Sized> Drop for OpenBatch<'_, B> {
    fn drop(&mut self) {
        self.0.close_batch();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;
    use std::cell::RefCell;

    #[derive(Default)]
    struct Log {
        calls: RefCell<Vec<&'static str>>,
        full: bool,
    }

    impl Batching for Log {
        fn open_batch(&self) {
            self.calls.borrow_mut().push("open");
        }
        fn close_batch(&self) {
            self.calls.borrow_mut().push("close");
        }
        fn flush_batch(&self) {
            self.calls.borrow_mut().push("flush");
        }
        fn batch_is_full(&self) -> bool {
            self.full
        }
    }

    #[test]
    fn the_batch_is_closed_on_every_way_out() {
        let log = Log::default();
        {
            let batch = OpenBatch::open(&log);
            assert!(batch.flush_when_idle().now_or_never().is_none());
            // A batch that is not full is not flushed on the way through.
            assert!(batch.yield_if_full().now_or_never().is_some());
        }
        assert_eq!(*log.calls.borrow(), ["open", "flush", "close"]);
    }

    #[test]
    fn a_full_batch_is_flushed_and_the_task_yields() {
        let log = Log {
            full: true,
            ..Log::default()
        };
        let batch = OpenBatch::open(&log);
        let mut yielding = Box::pin(batch.yield_if_full());
        assert!(yielding.as_mut().now_or_never().is_none(), "yields once");
        drop(yielding);
        drop(batch);
        assert_eq!(*log.calls.borrow(), ["open", "flush", "close"]);
    }
}
