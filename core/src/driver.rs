//! Caller-driven I/O (`io_driver = "caller"`): the thread that waits runs the I/O.
//!
//! With the shared runtime ([`crate::IoDriver::Runtime`]) a client's session runs on one of
//! Tether's threads and every message crosses to the application's thread and back: a wake-up
//! (system call and context switch) each way. Here each client has its own current-thread
//! tokio runtime, and the application's thread drives it whenever it waits on the client
//! (`next_event` with a timeout, `dispatch` with a wait, `wait_closed`, `wait_status`,
//! `wait_change`, `shutdown`): the socket is read and written on that thread, and the event
//! it waits for is produced there too. A poll that does not wait (`poll_event`,
//! `poll_events`, `dispatch` with no wait) runs one non-blocking pass when nobody else
//! drives and the last pass is older than [`PASS_EVERY`], so a game loop that polls once a
//! frame does its I/O itself while a tight polling loop stays cheap.
//!
//! The keeper: when nobody has driven for `keeper_after`, a thread of the client's
//! (`tether-keeper`) drives instead, so heartbeats are answered, pings sent and reconnects
//! made while the application does not wait (a loading screen, a long frame). It hands the
//! runtime back as soon as the application waits again. With `keeper_after` unset there is
//! no keeper and no thread besides the application's: nothing happens between two polls (a
//! pause longer than the heartbeat's `ping_interval + pong_timeout` loses the link). When the
//! client is dropped, a keeper (started then, if there was none) finishes the close.
//!
//! Wakes that cost a system call are avoided where nobody is driving: a `send` then leaves a
//! note ([`Driver::ring`]) that the next driver turns into the session's wake-up on its own
//! thread, instead of waking a runtime nobody is running.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use tokio::sync::Notify;

use crate::client::StartError;
use crate::hook::{Hook, HookSlot};

/// What [`Driver::drive`] ended with.
pub(crate) enum Drive<T> {
    /// The future completed.
    Done(T),
    /// The timeout passed first.
    TimedOut,
    /// This thread cannot drive (it is inside a runtime): wait the blocking way.
    Elsewhere,
}

/// A poll that does not wait runs a pass at most this often.
pub(crate) const PASS_EVERY: Duration = Duration::from_micros(50);

/// One client's runtime and who drives it.
pub(crate) struct Driver {
    /// Always `Some` until `Drop` takes it to shut it down in the background: the last
    /// reference may go on a thread inside another runtime, where a plain drop would panic.
    rt: Option<Runtime>,
    /// Application threads inside [`Driver::drive`] (driving, or waiting for the runtime).
    callers: AtomicUsize,
    /// The keeper is inside its drive.
    keeper_driving: AtomicBool,
    /// Asks a driving keeper to hand the runtime over.
    keeper_yield: Notify,
    /// An event loop asked a driving keeper to hand the runtime back ([`Driver::pass_now`]).
    reclaim: AtomicBool,
    /// The session's doorbell (the outbox's `arrived`), rung late: see [`Driver::ring`].
    doorbell: Arc<Notify>,
    deferred: AtomicBool,
    /// Called when a send leaves a note and nobody drives (an event loop schedules a pass).
    io_hook: HookSlot,
    /// The session task has ended: nothing is left to drive.
    done: AtomicBool,
    done_notify: Notify,
    /// Nanoseconds after `base` when the last application drive or pass ended.
    last_drive: AtomicU64,
    base: Instant,
    keeper: Mutex<KeeperState>,
    keeper_cv: Condvar,
}

#[derive(Default)]
struct KeeperState {
    /// A keeper thread runs (or was started).
    running: bool,
    /// Drive at once, without waiting for the application to be idle (the client is gone).
    urgent: bool,
}

impl Driver {
    /// A runtime for one client; `doorbell` is the notification its session waits on for
    /// new outbound messages.
    pub(crate) fn new(doorbell: Arc<Notify>) -> std::io::Result<Driver> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("tether-io")
            .build()?;
        Ok(Driver {
            rt: Some(rt),
            callers: AtomicUsize::new(0),
            keeper_driving: AtomicBool::new(false),
            keeper_yield: Notify::new(),
            reclaim: AtomicBool::new(false),
            doorbell,
            deferred: AtomicBool::new(false),
            io_hook: HookSlot::default(),
            done: AtomicBool::new(false),
            done_notify: Notify::new(),
            last_drive: AtomicU64::new(0),
            base: Instant::now(),
            keeper: Mutex::new(KeeperState::default()),
            keeper_cv: Condvar::new(),
        })
    }

    /// The runtime (always there while the driver is in use: only `Drop` takes it).
    fn rt(&self) -> Option<&Runtime> {
        self.rt.as_ref()
    }

    /// Spawn the session (the driver knows when it has ended), and the keeper if `keeper_after`.
    pub(crate) fn spawn_session(
        self: &Arc<Self>,
        session: impl Future<Output = ()> + Send + 'static,
        keeper_after: Option<Duration>,
    ) -> Result<(), StartError> {
        // Weak: the task lives in the runtime the driver owns.
        let me = Arc::downgrade(self);
        let Some(rt) = self.rt() else { return Ok(()) };
        rt.spawn(async move {
            session.await;
            if let Some(me) = me.upgrade() {
                me.done.store(true, Ordering::SeqCst);
                me.done_notify.notify_waiters();
                me.wake_keeper();
            }
        });
        if let Some(after) = keeper_after {
            self.start_keeper(after)
                .map_err(|e| StartError::Thread(e.to_string()))?;
        }
        Ok(())
    }

    /// Wake the session for new outbound messages. When nobody drives, only a note is left
    /// (no system call): the next driver rings on its own thread before anything else.
    pub(crate) fn ring(&self) {
        let first = !self.deferred.swap(true, Ordering::SeqCst);
        // After the note (SeqCst on both sides): a driver that started before it either sees
        // the note, or is counted here and woken directly.
        if self.callers.load(Ordering::SeqCst) > 0 || self.keeper_driving.load(Ordering::SeqCst) {
            self.doorbell.notify_one();
        } else if first {
            self.io_hook.fire("I/O");
        }
    }

    /// Install (or remove) the hook [`Driver::ring`] calls when it leaves the first note.
    pub(crate) fn set_io_hook(&self, hook: Option<Hook>) {
        self.io_hook.set(hook);
    }

    fn ring_deferred(&self) {
        if self.deferred.swap(false, Ordering::SeqCst) {
            self.doorbell.notify_one();
        }
    }

    /// True where driving is impossible: on a thread already inside a tokio runtime (this
    /// driver's, from a hook, or the application's own), where `block_on` would panic.
    fn cannot_drive() -> bool {
        tokio::runtime::Handle::try_current().is_ok()
    }

    /// Run the runtime on this thread until `fut` completes or `timeout` passes.
    /// [`Drive::Elsewhere`] where this thread cannot drive ([`Driver::cannot_drive`]): the
    /// caller then waits for another driver (the keeper) the blocking way.
    pub(crate) fn drive<F: Future>(&self, timeout: Duration, fut: F) -> Drive<F::Output> {
        let Some(rt) = self.rt().filter(|_| !Self::cannot_drive()) else {
            return Drive::Elsewhere;
        };
        self.callers.fetch_add(1, Ordering::SeqCst);
        if self.keeper_driving.load(Ordering::SeqCst) {
            self.keeper_yield.notify_one();
        }
        let _leave = Leave(self);
        rt.block_on(async {
            self.ring_deferred();
            match tokio::time::timeout(timeout, fut).await {
                Ok(value) => Drive::Done(value),
                Err(_) => Drive::TimedOut,
            }
        })
    }

    /// A poll that does not wait: one non-blocking pass (run what is ready, read the socket,
    /// run what that made ready) if nobody else drives and the last pass is older than
    /// [`PASS_EVERY`].
    pub(crate) fn pass(&self) -> bool {
        self.pass_due() && self.run_pass()
    }

    /// Run what is ready, read the socket, run what that made ready; false where this thread
    /// cannot drive.
    fn run_pass(&self) -> bool {
        let ran = self.drive(Duration::MAX, async {
            tokio::task::yield_now().await;
            tokio::task::yield_now().await;
        });
        matches!(ran, Drive::Done(()))
    }

    /// A pass now, whenever it was last run (an event loop: the socket is readable, or a send
    /// waits), unless another thread drives: then false, and a driving keeper is asked to
    /// hand the runtime back (it does the I/O meanwhile; a later call gets the runtime).
    pub(crate) fn pass_now(&self) -> bool {
        if self.callers.load(Ordering::SeqCst) > 0 {
            return false;
        }
        if self.keeper_driving.load(Ordering::SeqCst) {
            self.reclaim.store(true, Ordering::SeqCst);
            self.keeper_yield.notify_one();
            return false;
        }
        self.run_pass()
    }

    /// Whether a send left a note that no driver has rung yet.
    pub(crate) fn has_note(&self) -> bool {
        self.deferred.load(Ordering::SeqCst)
    }

    /// Whether [`Driver::pass`] would run a pass now.
    pub(crate) fn pass_due(&self) -> bool {
        self.callers.load(Ordering::SeqCst) == 0
            && !self.keeper_driving.load(Ordering::SeqCst)
            && self
                .now_ns()
                .saturating_sub(self.last_drive.load(Ordering::Relaxed))
                >= PASS_EVERY.as_nanos() as u64
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Whether the session task has ended.
    pub(crate) fn is_done(&self) -> bool {
        self.done.load(Ordering::SeqCst)
    }

    // ----- the keeper --------------------------------------------------------------------

    /// Start the keeper thread: it drives whenever nobody has for `after`. Idempotent.
    pub(crate) fn start_keeper(self: &Arc<Self>, after: Duration) -> std::io::Result<()> {
        let mut st = self.keeper.lock().unwrap_or_else(PoisonError::into_inner);
        if st.running || self.is_done() {
            return Ok(());
        }
        st.running = true;
        drop(st);
        let me = self.clone();
        let started = std::thread::Builder::new()
            .name("tether-keeper".into())
            .spawn(move || me.keep(after));
        if let Err(e) = started {
            self.keeper
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .running = false;
            return Err(e);
        }
        Ok(())
    }

    /// The application let go of the client: drive at once until the session ends (the
    /// close it started), starting a keeper if there is none.
    pub(crate) fn finish_in_background(self: &Arc<Self>) {
        self.keeper
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .urgent = true;
        self.wake_keeper();
        if let Err(e) = self.start_keeper(Duration::ZERO) {
            tracing::error!(error = %e, "could not start a thread to finish the close: the connection is dropped without its closing handshake");
        }
    }

    fn wake_keeper(&self) {
        let _st = self.keeper.lock().unwrap_or_else(PoisonError::into_inner);
        self.keeper_cv.notify_all();
    }

    /// The keeper thread: wait until nobody has driven for `after`, drive until somebody
    /// wants to, again; until the session has ended.
    fn keep(&self, after: Duration) {
        while self.wait_idle(after) {
            self.keeper_driving.store(true, Ordering::SeqCst);
            // After the flag (SeqCst): an application thread arriving from now on either is
            // seen here or sees the flag and asks us to yield.
            let rt = self
                .rt()
                .filter(|_| self.callers.load(Ordering::SeqCst) == 0);
            if let Some(rt) = rt {
                rt.block_on(async {
                    self.ring_deferred();
                    self.until_wanted().await;
                });
            }
            self.keeper_driving.store(false, Ordering::SeqCst);
            self.last_drive.store(self.now_ns(), Ordering::Relaxed);
        }
    }

    /// Sleep until nobody has driven for `after` (or at once once urgent); false once the
    /// session has ended.
    fn wait_idle(&self, after: Duration) -> bool {
        let mut st = self.keeper.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if self.is_done() {
                return false;
            }
            let last = self.last_drive.load(Ordering::Relaxed);
            let idle_for = Duration::from_nanos(self.now_ns().saturating_sub(last));
            let nobody = self.callers.load(Ordering::SeqCst) == 0;
            // Never driven yet (0): start connecting at once rather than after `after`.
            if nobody && (st.urgent || last == 0 || idle_for >= after) {
                return true;
            }
            let sleep = if nobody {
                after - idle_for
            } else {
                after.max(Duration::from_millis(1))
            };
            st = self
                .keeper_cv
                .wait_timeout(st, sleep)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// The keeper's drive: until an application thread wants the runtime or the session ends.
    async fn until_wanted(&self) {
        loop {
            let yielded = self.keeper_yield.notified();
            let done = self.done_notify.notified();
            tokio::pin!(yielded, done);
            yielded.as_mut().enable();
            done.as_mut().enable();
            if self.callers.load(Ordering::SeqCst) > 0
                || self.is_done()
                || self.reclaim.swap(false, Ordering::SeqCst)
            {
                return;
            }
            tokio::select! {
                _ = yielded => {}
                _ = done => {}
            }
        }
    }
}

/// Leaves [`Driver::drive`]: one caller less, and the time of its end for the keeper.
struct Leave<'a>(&'a Driver);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        let d = self.0;
        d.last_drive.store(d.now_ns(), Ordering::Relaxed);
        d.callers.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
