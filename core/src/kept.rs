//! Routed delivery ([`crate::EventDelivery::Routed`]): the events the handler on the
//! dispatcher thread did not take wait here for the application's poll calls
//! ([`crate::Client::poll_events`], ...).
//!
//! Inbound messages are buffered once: a kept message keeps the inbound credit it took in the
//! event queue until the application takes it, so the event queue and this one together hold
//! at most `event_queue_capacity` messages (then the session stops reading the socket).
//! Consecutive [`Event::Written`] reports coalesce here too.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::event::Event;

#[derive(Default)]
struct State {
    queue: VecDeque<Event>,
    /// The dispatcher is done: nothing will be kept any more.
    finished: bool,
    /// Nobody will take events any more (the client is gone): keep nothing.
    closed: bool,
}

/// The events kept for the application, shared by the dispatcher thread and the client.
pub(crate) struct Kept {
    st: Mutex<State>,
    cv: Condvar,
    credit: Arc<Semaphore>,
}

impl Kept {
    pub(crate) fn new(credit: Arc<Semaphore>) -> Kept {
        Kept {
            st: Mutex::new(State::default()),
            cv: Condvar::new(),
            credit,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update below is complete under the lock: a panic cannot leave it half done.
        self.st.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keep `event` (a message with the credit it holds) behind the others.
    pub(crate) fn push(&self, event: Event) {
        let mut st = self.lock();
        if st.closed {
            drop(st);
            self.release(usize::from(matches!(event, Event::Message(_))));
            return;
        }
        match (st.queue.back_mut(), event) {
            (Some(Event::Written { up_to: last }), Event::Written { up_to }) => *last = up_to,
            (_, event) => st.queue.push_back(event),
        }
        drop(st);
        self.cv.notify_all();
    }

    /// Move up to `max` kept events into `out`, waiting up to `wait` for the first (not after
    /// [`Kept::finish`]); returns how many. Their messages' credits go back.
    pub(crate) fn take_into(&self, out: &mut Vec<Event>, max: usize, wait: Duration) -> usize {
        let st = self.lock();
        let (mut st, _) = self
            .cv
            .wait_timeout_while(st, wait, |s| {
                max > 0 && s.queue.is_empty() && !s.finished && !s.closed
            })
            .unwrap_or_else(PoisonError::into_inner);
        let n = max.min(st.queue.len());
        let before = out.len();
        out.extend(st.queue.drain(..n));
        drop(st);
        let messages = out[before..]
            .iter()
            .filter(|e| matches!(e, Event::Message(_)))
            .count();
        self.release(messages);
        n
    }

    fn release(&self, messages: usize) {
        if messages > 0 {
            self.credit.add_permits(messages);
        }
    }

    /// Number of events kept.
    pub(crate) fn pending(&self) -> usize {
        self.lock().queue.len()
    }

    /// The dispatcher is done: a waiting take returns.
    pub(crate) fn finish(&self) {
        self.lock().finished = true;
        self.cv.notify_all();
    }

    /// Nobody will take events any more: drop what is kept (returning the credits) and keep
    /// nothing from now on.
    pub(crate) fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        let dropped = std::mem::take(&mut st.queue);
        drop(st);
        self.release(
            dropped
                .iter()
                .filter(|e| matches!(e, Event::Message(_)))
                .count(),
        );
        self.cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Message, MessageId};

    fn message(text: &str) -> Event {
        Event::Message(Message::Text(text.into()))
    }

    #[test]
    fn kept_messages_hold_their_credit_until_taken() {
        let credit = Arc::new(Semaphore::new(0));
        let kept = Kept::new(credit.clone());
        kept.push(message("a"));
        kept.push(Event::Written {
            up_to: MessageId(1),
        });
        kept.push(message("b"));
        assert_eq!(kept.pending(), 3);
        assert_eq!(credit.available_permits(), 0, "held while kept");
        let mut out = Vec::new();
        assert_eq!(kept.take_into(&mut out, 2, Duration::ZERO), 2);
        assert_eq!(out[0], message("a"));
        assert_eq!(credit.available_permits(), 1, "one message taken");
        assert_eq!(kept.take_into(&mut out, 10, Duration::ZERO), 1);
        assert_eq!(credit.available_permits(), 2);
    }

    #[test]
    fn written_reports_coalesce_at_the_back() {
        let kept = Kept::new(Arc::new(Semaphore::new(0)));
        kept.push(Event::Written {
            up_to: MessageId(1),
        });
        kept.push(Event::Written {
            up_to: MessageId(3),
        });
        kept.push(message("a"));
        kept.push(Event::Written {
            up_to: MessageId(4),
        });
        let mut out = Vec::new();
        kept.take_into(&mut out, 10, Duration::ZERO);
        let expected = [
            Event::Written {
                up_to: MessageId(3),
            },
            message("a"),
            Event::Written {
                up_to: MessageId(4),
            },
        ];
        assert_eq!(out, expected);
    }

    #[test]
    fn a_waiting_take_returns_on_push_and_on_finish() {
        let kept = Arc::new(Kept::new(Arc::new(Semaphore::new(0))));
        let k = kept.clone();
        let taker = std::thread::spawn(move || {
            let mut out = Vec::new();
            let first = k.take_into(&mut out, 1, Duration::from_secs(30));
            let second = k.take_into(&mut out, 1, Duration::from_secs(30));
            (first, second)
        });
        kept.push(message("a"));
        // The second take finds nothing and waits until the dispatcher is done.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while kept.pending() > 0 && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        kept.finish();
        assert_eq!(taker.join().expect("taker"), (1, 0));
    }

    #[test]
    fn a_closed_queue_keeps_nothing_and_returns_every_credit() {
        let credit = Arc::new(Semaphore::new(0));
        let kept = Kept::new(credit.clone());
        kept.push(message("a"));
        kept.close();
        assert_eq!(credit.available_permits(), 1);
        kept.push(message("b"));
        assert_eq!(kept.pending(), 0);
        assert_eq!(credit.available_permits(), 2);
    }
}
