//! Running the application's event handler: the one place that decides on which thread a
//! handler runs, that it never runs twice at once or re-entrantly, before
//! [`crate::Client::connect`] returned or after [`crate::Client::shutdown`] returned, and
//! when an inbound message's credit goes back. Both delivery modes and both bindings use it:
//!
//! * callback modes: the dispatcher thread ([`run_dispatcher`]) runs the handler given to
//!   [`crate::EventDelivery::Callback`] or [`crate::EventDelivery::Routed`] (whose handler
//!   may hand an event back, kept for the poll calls in [`crate::kept`]);
//! * poll mode: [`crate::Client::dispatch`] ([`dispatch`]) runs a handler on the caller's
//!   thread, in chunks taken from the queue with one queue operation each.

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::event::Event;
use crate::event_queue::EventSource;
use crate::kept::Kept;

/// Most events [`crate::Client::dispatch`] takes from the queue at once: bounds the memory a
/// dispatch keeps between calls, while the queue's lock is shared by this many events.
pub(crate) const CHUNK: usize = 256;

/// Why [`crate::Client::dispatch`] did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DispatchError {
    /// Called from inside a handler of the same client (a handler must return before the
    /// next event is handled).
    #[error("dispatch called from inside one of the same client's event handlers")]
    Reentered,
    /// Another thread is dispatching this client's events right now.
    #[error("dispatch called while another thread dispatches the same client's events")]
    Busy,
    /// The client delivers its events to a callback on its dispatcher thread.
    #[error("dispatch needs poll delivery; this client runs its handler on a dispatcher thread")]
    CallbackMode,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing here can be left half-updated by a panic (handlers run under catch_unwind).
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Source of client identities for [`in_handler`] (never reused, unlike addresses).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The clients whose handlers run on this thread, innermost last (a handler of one client
    /// may dispatch another client's events).
    static RUNNING: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// Marks "a handler of client `id` runs on this thread" for its lifetime.
struct Scope(u64);

impl Scope {
    fn enter(id: u64) -> Scope {
        let _ = RUNNING.try_with(|r| r.borrow_mut().push(id));
        Scope(id)
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let _ = RUNNING.try_with(|r| {
            let mut r = r.borrow_mut();
            if let Some(at) = r.iter().rposition(|id| *id == self.0) {
                r.remove(at);
            }
        });
    }
}

/// Clears the busy flag when a dispatch ends (panics included).
struct Busy<'a>(&'a AtomicBool);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// One client's handler lifecycle, shared by the client and its dispatcher thread.
pub(crate) struct Handlers {
    id: u64,
    /// Released at the end of `Client::connect`: no handler runs before.
    started: Mutex<bool>,
    started_cv: Condvar,
    /// Held while a handler runs; [`Handlers::stop`] takes it to wait for a running one.
    gate: Mutex<()>,
    /// No handler starts once this is set.
    stopped: AtomicBool,
    /// Poll mode: a dispatch is running.
    busy: AtomicBool,
    /// Callback modes: the dispatcher thread is done (it handled `Closed`, or the producer
    /// is gone); no handler runs any more.
    finished: AtomicBool,
    /// Poll mode: the chunk being handled. Only the dispatch holding `busy` locks it, so it
    /// is never contended; it keeps its capacity from one dispatch to the next.
    chunk: Mutex<Vec<Event>>,
}

impl Handlers {
    pub(crate) fn new() -> Handlers {
        Handlers {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            started: Mutex::new(false),
            started_cv: Condvar::new(),
            gate: Mutex::new(()),
            stopped: AtomicBool::new(false),
            busy: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            chunk: Mutex::new(Vec::new()),
        }
    }

    /// Let handlers run (the end of `Client::connect`).
    pub(crate) fn start(&self) {
        *lock(&self.started) = true;
        self.started_cv.notify_all();
    }

    fn wait_started(&self) {
        let mut started = lock(&self.started);
        while !*started {
            started = self
                .started_cv
                .wait(started)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// True on a thread running one of this client's handlers.
    pub(crate) fn in_handler(&self) -> bool {
        RUNNING
            .try_with(|r| r.borrow().contains(&self.id))
            .unwrap_or(false)
    }

    /// Callback modes: the dispatcher thread is done, its last handler call included.
    pub(crate) fn is_finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst)
    }

    /// A dispatch is running (on any thread).
    pub(crate) fn is_dispatching(&self) -> bool {
        self.busy.load(Ordering::Acquire)
    }

    /// No handler starts from now on. Waits for a handler running on another thread; from
    /// inside a handler it cannot, and the current one is the last.
    pub(crate) fn stop(&self) {
        if self.in_handler() {
            self.stopped.store(true, Ordering::SeqCst);
        } else {
            let _gate = lock(&self.gate);
            self.stopped.store(true, Ordering::SeqCst);
        }
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Run `handler` on `event` unless stopped; a panic is caught and logged. Returns false
    /// if stopped (the event was dropped unseen).
    fn run(&self, handler: &mut dyn FnMut(Event), event: Event) -> bool {
        let _gate = lock(&self.gate);
        if self.is_stopped() {
            return false;
        }
        if catch_unwind(AssertUnwindSafe(|| handler(event))).is_err() {
            tracing::error!(
                "an event handler panicked; the event was dropped and the client carries on"
            );
        }
        true
    }
}

/// The handler of a dispatcher thread: it may hand an event back, to be kept for the
/// application's poll calls ([`crate::EventDelivery::Routed`]).
pub(crate) type RoutedHandler = Box<dyn FnMut(Event) -> Option<Event> + Send>;

/// The dispatcher thread: wait for `Client::connect` to return, then deliver events serially
/// until the terminal `Closed` (after a shutdown, without calling the handler). An event the
/// handler hands back goes to `kept` (a message with its inbound credit, returned when the
/// application takes it), and `changed` runs (it fires the change hook); so it does at the
/// end, once finished.
pub(crate) fn run_dispatcher(
    source: EventSource,
    mut handler: RoutedHandler,
    handlers: &Handlers,
    kept: Option<&Kept>,
    changed: &dyn Fn(),
) {
    let _scope = Scope::enter(handlers.id);
    handlers.wait_started();
    while let Some(event) = source.next_blocking() {
        let last = matches!(event, Event::Closed { .. });
        let mut back = None;
        let message = matches!(event, Event::Message(_));
        handlers.run(&mut |e| back = handler(e), event);
        match (back, kept) {
            (Some(event), Some(kept)) => {
                kept.push(event);
                changed();
            }
            _ if message => source.return_credit(),
            _ => {}
        }
        if last {
            break;
        }
    }
    handlers.finished.store(true, Ordering::SeqCst);
    if let Some(kept) = kept {
        kept.finish();
    }
    changed();
}

/// Poll mode: [`crate::Client::dispatch`].
pub(crate) fn dispatch(
    source: &EventSource,
    handlers: &Handlers,
    max: usize,
    wait: Duration,
    handler: &mut dyn FnMut(Event),
) -> Result<usize, DispatchError> {
    if handlers.in_handler() {
        return Err(DispatchError::Reentered);
    }
    if handlers.busy.swap(true, Ordering::Acquire) {
        return Err(DispatchError::Busy);
    }
    let _busy = Busy(&handlers.busy);
    let _scope = Scope::enter(handlers.id);
    let ran = dispatch_chunks(source, handlers, max, wait, handler);
    // Whatever is left or came meanwhile gets the event loop's wake hook.
    source.rearm();
    Ok(ran)
}

fn dispatch_chunks(
    source: &EventSource,
    handlers: &Handlers,
    max: usize,
    wait: Duration,
    handler: &mut dyn FnMut(Event),
) -> usize {
    let mut chunk = lock(&handlers.chunk);
    // The bound: `max`, or with 0 the events pending once the first one is in hand (after the
    // wait, if any), so that a steady stream cannot keep the caller forever.
    let mut bound = max;
    let mut wait = wait;
    let mut ran = 0;
    loop {
        let wanted = if bound == 0 {
            if source.take_chunk(&mut chunk, 1, wait) == 0 {
                return 0;
            }
            bound = 1 + source.pending();
            let more = (bound - 1).min(CHUNK - 1);
            source.take_chunk(&mut chunk, more, Duration::ZERO);
            1 + more
        } else {
            let wanted = (bound - ran).min(CHUNK);
            source.take_chunk(&mut chunk, wanted, wait);
            wanted
        };
        wait = Duration::ZERO; // only the first take waits
        let taken = chunk.len();
        let mut drained = chunk.drain(..);
        for event in drained.by_ref() {
            let message = matches!(event, Event::Message(_));
            let handled = handlers.run(handler, event);
            // The credit goes back once the handler is done with the message.
            if message {
                source.return_credit();
            }
            if !handled {
                break;
            }
            ran += 1;
        }
        // Stopped (shutdown, from a handler or another thread): the rest are dropped unseen.
        for event in drained {
            source.release(&event);
        }
        // Fewer than asked for means the queue was empty: no need to ask again.
        if taken < wanted || ran >= bound || handlers.is_stopped() {
            if taken < wanted {
                source.flush_credit();
            }
            return ran;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::State;
    use crate::event_queue::channel;
    use std::sync::{mpsc, Arc};

    #[test]
    fn the_dispatcher_thread_runs_no_handler_before_start() {
        let (sink, source) = channel(16);
        sink.emit(Event::State {
            from: State::Connecting,
            to: State::Open,
        });
        let handlers = Arc::new(Handlers::new());
        let (tx, rx) = mpsc::channel();
        let h = handlers.clone();
        let thread = std::thread::spawn(move || {
            let handler = Box::new(move |e: Event| {
                let _ = tx.send(e);
                None
            });
            run_dispatcher(source, handler, &h, None, &|| {});
        });
        // An event is pending, but the latch is closed: nothing arrives.
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        handlers.start();
        assert!(rx.recv_timeout(Duration::from_secs(10)).is_ok());
        drop(sink);
        thread
            .join()
            .expect("dispatcher ends when the producer is gone");
    }

    #[test]
    fn a_stopped_dispatcher_drops_events_unseen() {
        let (sink, source) = channel(16);
        let handlers = Arc::new(Handlers::new());
        handlers.start();
        handlers.stop();
        assert!(!handlers.in_handler());
        let (tx, rx) = mpsc::channel::<Event>();
        let h = handlers.clone();
        sink.emit(Event::State {
            from: State::Connecting,
            to: State::Open,
        });
        drop(sink);
        std::thread::spawn(move || {
            let handler = Box::new(move |e| {
                let _ = tx.send(e);
                None
            });
            run_dispatcher(source, handler, &h, None, &|| {});
        })
        .join()
        .expect("ends");
        assert!(rx.try_recv().is_err(), "no handler call after stop");
        assert!(handlers.is_finished());
    }

    #[test]
    fn a_routed_dispatcher_keeps_what_the_handler_hands_back_with_its_credit() {
        use crate::event::Message;
        use std::sync::atomic::AtomicUsize;
        let (sink, source) = channel(2);
        let credit = source.credit();
        let kept = Arc::new(Kept::new(credit.clone()));
        let handlers = Arc::new(Handlers::new());
        handlers.start();
        // Two credits: both messages get in; the handler takes the state change and hands
        // both messages back.
        assert!(sink.try_inbound_credit() && sink.try_inbound_credit());
        let text = |t: &str| Event::Message(Message::Text(t.into()));
        sink.emit(text("a"));
        sink.emit(Event::State {
            from: State::Connecting,
            to: State::Open,
        });
        sink.emit(text("b"));
        sink.emit(Event::Closed {
            reason: crate::Disconnect::UserClose {
                code: 1000,
                reason: String::new(),
            },
            undelivered: 0,
        });
        let changes = Arc::new(AtomicUsize::new(0));
        let (h, k, c) = (handlers.clone(), kept.clone(), changes.clone());
        std::thread::spawn(move || {
            let handler = Box::new(|e: Event| matches!(e, Event::Message(_)).then_some(e));
            let changed = move || {
                c.fetch_add(1, Ordering::SeqCst);
            };
            run_dispatcher(source, handler, &h, Some(&k), &changed);
        })
        .join()
        .expect("ends after Closed");
        assert!(handlers.is_finished());
        assert_eq!(changes.load(Ordering::SeqCst), 3, "two kept, one end");
        // Still held: no credit until the application takes them.
        assert_eq!(credit.available_permits(), 0);
        let mut out = Vec::new();
        assert_eq!(kept.take_into(&mut out, 10, Duration::ZERO), 2);
        assert_eq!(out, [text("a"), text("b")]);
        assert_eq!(credit.available_permits(), 2);
    }
}
