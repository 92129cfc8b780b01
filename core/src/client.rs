//! The public client handle.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc::UnboundedSender;

use crate::config::{Config, IoDriver, OverflowPolicy, Protocol};
use crate::connect::Connector;
use crate::dispatch::{self, DispatchError, Handlers, RoutedHandler};
use crate::driver::{Drive, Driver};
use crate::error::{
    CloseError, ConfigError, DeliveryError, Disconnect, NotReady, SendError, SendFailure,
};
use crate::event::{Event, MessageId, State, Stats, Text};
use crate::event_queue::{self, EventSource};
use crate::kept::Kept;
use crate::outbox::{DeliveryStatus, Outbox, Payload, Want};
use crate::resume::ResumeState;
use crate::runtime::{self, RuntimeError};
use crate::session::{Command, Session};
use crate::shared::Shared;

/// How the application receives [`Event`]s.
pub enum EventDelivery {
    /// The application drains events on its own thread: with [`Client::dispatch`], which runs
    /// a handler on each (a game loop, an event loop, a binding), or by taking them with
    /// [`Client::poll_event`] / [`Client::next_event`] (a test). [`Client::set_wake_hook`]
    /// tells an event loop when to look.
    Poll,
    /// A dispatcher thread owned by the client calls this function for each event, serially,
    /// in order. It never runs on the runtime's I/O threads, so a slow handler cannot stall
    /// I/O (it only pauses reading once `event_queue_capacity` messages are waiting). A panic in
    /// the handler is caught and logged; the client carries on.
    ///
    /// Lifecycle: the handler never runs before [`Client::connect`] (or `connect_on`) has
    /// returned, and never starts after [`Client::shutdown`] has returned, even when its
    /// timeout expired (events left are then dropped without calling it). Dropping the
    /// client instead lets it deliver everything up to [`Event::Closed`] in the background.
    /// [`Client::in_handler`] tells whether the current thread is running it.
    Callback(Box<dyn FnMut(Event) + Send + 'static>),
    /// Callback delivery where the handler may decline an event by handing it back
    /// (`Some(event)`): it is then kept for the poll calls ([`Client::poll_events`],
    /// [`Client::next_events`], ...), in order, as in poll mode (a binding whose `recv()`
    /// takes what no callback does). Inbound messages are buffered once: a kept message holds
    /// its room in `event_queue_capacity` until it is taken, so a reader that falls behind
    /// pauses reading from the socket as in poll mode. Each kept event fires the change hook
    /// ([`Client::set_change_hook`]; the wake hook is poll mode's). Lifecycle as for
    /// `Callback`; once the client is dropped nothing is kept any more.
    Routed(Box<dyn FnMut(Event) -> Option<Event> + Send + 'static>),
}

impl EventDelivery {
    /// Callback delivery from a closure.
    pub fn callback(handler: impl FnMut(Event) + Send + 'static) -> Self {
        EventDelivery::Callback(Box::new(handler))
    }

    /// Routed delivery from a closure.
    pub fn routed(handler: impl FnMut(Event) -> Option<Event> + Send + 'static) -> Self {
        EventDelivery::Routed(Box::new(handler))
    }
}

/// What [`Client::close_bound`] allows beyond `close_timeout` for the closing handshake.
const CLOSE_MARGIN: Duration = Duration::from_secs(2);

/// Open the persistent outbox if `outbox_path` is set: the session id becomes the file's.
fn open_store(
    config: &mut Config,
) -> Result<Option<(crate::store::Store, crate::store::Restored)>, StartError> {
    let Some(path) = config.outbox_path.clone() else {
        return Ok(None);
    };
    let fresh_epoch = crate::resume::new_epoch();
    let params = crate::store::OpenParams {
        sync: config.outbox_sync,
        envelope: config.protocol == Protocol::Envelope,
        configured_sid: config.session_id_set.then_some(config.session_id.as_str()),
        fresh_sid: &config.session_id,
        fresh_epoch: &fresh_epoch,
    };
    let (store, restored) = crate::store::Store::open(&path, &params)?;
    if let Some(bytes) = restored.torn_bytes {
        tracing::warn!(
            path = %path.display(),
            bytes,
            "persistent outbox: a torn last record was cut off (it was being written when the process stopped; its send had not returned)"
        );
    }
    tracing::info!(
        path = %path.display(),
        messages = restored.messages.len(),
        next_id = restored.next_id,
        "persistent outbox opened"
    );
    config.session_id = restored.sid.clone();
    Ok(Some((store, restored)))
}

/// Caller-driven I/O: the client's own runtime, which the outbox rings and the event queue's
/// waits drive.
fn own_driver(outbox: &Outbox, source: &mut EventSource) -> Result<Arc<Driver>, StartError> {
    let driver =
        Driver::new(outbox.arrived.clone()).map_err(|e| RuntimeError::Start(e.to_string()))?;
    let driver = Arc::new(driver);
    outbox.driven_by(&driver);
    source.set_driver(driver.clone());
    Ok(driver)
}

/// Caller-driven I/O needs a thread that waits on the client: poll delivery, and no
/// `OverflowPolicy::Wait` without a keeper (a blocked `send` would wait for a write only a
/// waiting thread can do).
fn check_caller_driven(config: &Config, delivery: &EventDelivery) -> Result<(), StartError> {
    if !matches!(delivery, EventDelivery::Poll) {
        return Err(StartError::Blocking(
            "io_driver `caller` runs the I/O on the thread that waits for events: it needs poll delivery (events taken by the application: Rust EventDelivery::Poll, C TETHER_DISPATCH_POLL, Python without callbacks), not a dispatcher thread",
        ));
    }
    if config.keeper_after.is_none() && matches!(config.overflow, OverflowPolicy::Wait(_)) {
        return Err(StartError::Blocking(
            "OverflowPolicy::Wait blocks send() while the outbox is full, and with io_driver `caller` and no keeper (keeper_after unset) only the waiting thread writes the outbox out: use Reject or DropOldest, or set keeper_after",
        ));
    }
    Ok(())
}

/// Why [`Client::connect`] could not start a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The TLS settings could not be turned into a client configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The internal runtime could not start.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The dispatcher thread could not be spawned.
    #[error("could not spawn the dispatcher thread: {0}")]
    Thread(String),
    /// Settings that cannot work together because they would block the thread that must
    /// drive the client ([`Client::connect_on`] with a current-thread runtime, or
    /// [`crate::IoDriver::Caller`] without poll delivery).
    #[error("{0}")]
    Blocking(&'static str),
    /// The persistent outbox file (`outbox_path`) could not be used.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// A resilient WebSocket client: a cheap handle to a session task that connects, reconnects,
/// and pumps messages on Tether's internal runtime.
///
/// Every method only enqueues or reads shared state: none blocks on the network, and none runs
/// an event handler, so all are safe to call from inside a handler and from any thread
/// (`Client` is `Send + Sync`). Dropping the client starts a graceful close (code 1000) in the
/// background; use [`Client::shutdown`] to wait for it.
pub struct Client {
    shared: Arc<Shared>,
    config: Arc<Config>,
    commands: UnboundedSender<Command>,
    /// Poll mode only.
    events: Option<EventSource>,
    /// Routed mode only: what the handler handed back.
    kept: Option<Arc<Kept>>,
    handlers: Arc<Handlers>,
    /// Callback mode: the dispatcher thread, until `shutdown` joins it.
    dispatcher: Mutex<Option<JoinHandle<()>>>,
    /// Envelope mode: this client's stream epoch.
    epoch: String,
    /// Caller-driven I/O (`io_driver` `caller`): the client's own runtime.
    driver: Option<Arc<Driver>>,
}

impl Client {
    /// Start a client: returns at once; connecting happens in the background, on Tether's
    /// internal runtime, and is reported through events.
    pub fn connect(config: Config, delivery: EventDelivery) -> Result<Client, StartError> {
        if config.io_driver == IoDriver::Caller {
            return Client::start(config, delivery, None);
        }
        let handle = runtime::handle()?;
        Client::start(config, delivery, Some(&handle))
    }

    /// Start a client whose I/O runs on the application's own tokio runtime instead of
    /// Tether's: an async application then has no thread hop between its code and the
    /// socket (on a current-thread runtime both run on one thread, as with a bare
    /// tokio-tungstenite client). Use [`Client::recv_event`] and [`Client::closed`] to wait
    /// without blocking the runtime's thread.
    ///
    /// The runtime needs I/O and time enabled (`Builder::enable_all`). If it shuts down while
    /// the client lives, the client ends: queued messages get [`Event::SendFailed`], then
    /// [`Event::Closed`]. The blocking calls ([`Client::next_event`] with a timeout,
    /// [`Client::wait_closed`], [`Client::shutdown`], [`Client::wait_acked`]) must not be
    /// made on a thread that drives that runtime: they would wait for work only that thread
    /// can do. For the same reason [`crate::OverflowPolicy::Wait`], which blocks `send` while
    /// the outbox is full, is refused on a current-thread runtime ([`StartError::Blocking`]).
    pub fn connect_on(
        config: Config,
        delivery: EventDelivery,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Client, StartError> {
        if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread
            && matches!(config.overflow, OverflowPolicy::Wait(_))
        {
            return Err(StartError::Blocking(
                "OverflowPolicy::Wait blocks send() while the outbox is full, and on a current-thread runtime that thread is the one that must write the outbox out: use Reject or DropOldest",
            ));
        }
        Client::start(config, delivery, Some(runtime))
    }

    /// Start on `handle`, or (None) on a runtime of the client's own driven by the threads
    /// that wait on it ([`IoDriver::Caller`]).
    fn start(
        config: Config,
        delivery: EventDelivery,
        handle: Option<&tokio::runtime::Handle>,
    ) -> Result<Client, StartError> {
        if handle.is_none() {
            check_caller_driven(&config, &delivery)?;
        }
        let mut config = config;
        let restored = open_store(&mut config)?;
        let config = Arc::new(config);
        let connector = Connector::new(config.clone())?;
        let (sink, source) = event_queue::channel(config.event_queue_capacity);
        let keep_until_acked = config.protocol == Protocol::Envelope;
        let outbox = Outbox::new(
            config.outbox_max_messages,
            config.outbox_max_bytes,
            config.overflow,
            keep_until_acked,
        );
        let mut source = source;
        let driver = match handle {
            Some(_) => None,
            None => Some(own_driver(&outbox, &mut source)?),
        };
        let shared = Arc::new(Shared::new(outbox, sink));
        let (commands, command_rx) = tokio::sync::mpsc::unbounded_channel();

        let handlers = Arc::new(Handlers::new());
        let (events, dispatcher, kept) = start_delivery(delivery, source, &handlers, &shared)?;
        let codec = (config.protocol == Protocol::Envelope).then(|| {
            crate::envelope::Codec::new(
                config.signing_key.as_ref().map(|k| k.0.as_slice()),
                config.compression_threshold,
                config.max_inbound_message_size,
            )
        });
        // A new epoch per client: this incarnation starts its outbound stream without any
        // earlier incarnation's state, and says so in `hello`. Unless it restores a persisted
        // session: then it goes on with that stream, its epoch and its position in the server's.
        let (resume, last_server_id) = match restored {
            Some((store, r)) => {
                let resume = ResumeState::restored(r.epoch, r.server_epoch);
                shared.outbox.restore(store, r.messages, r.next_id);
                (resume, r.last_server_id)
            }
            None => (ResumeState::new(), 0),
        };
        let epoch = resume.epoch().to_owned();
        let session = Session {
            shared: shared.clone(),
            config: config.clone(),
            connector,
            commands: command_rx,
            codec,
            last_server_id,
            resume,
        };
        match (handle, &driver) {
            (Some(handle), _) => drop(handle.spawn(session.run())),
            (None, Some(driver)) => driver.spawn_session(session.run(), config.keeper_after)?,
            (None, None) => {}
        }
        let client = Client {
            shared,
            config,
            commands,
            events,
            kept,
            handlers,
            dispatcher: Mutex::new(dispatcher),
            epoch,
            driver,
        };
        // Last: the handler may run from now on.
        client.handlers.start();
        Ok(client)
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.shared.state()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Envelope mode: the epoch of this client's outbound stream (16 random hex digits, new for
    /// each `Client`), sent in every `hello` (`docs/PROTOCOL.md`, "Epochs").
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// Envelope mode: the server's stream epoch from the last `welcome`, or `None` before the
    /// first one and with a revision-1 server.
    pub fn server_epoch(&self) -> Option<String> {
        self.shared.server_epoch()
    }

    /// What the server chose on the last connection made: the subprotocol and the headers of
    /// its 101 answer (and the proxy and TCP peer). `None` before the first connection. Set
    /// before that connection's [`Event::State`] change to `Open`, so a handler seeing `Open`
    /// or `Ready` reads this connection's values (or a later one's: compare
    /// [`crate::ConnectionInfo::connection`]); it stays after the link is lost.
    pub fn connection_info(&self) -> Option<crate::ConnectionInfo> {
        self.shared.connection_info()
    }

    /// The configuration the client runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Queue a text message. Returns its id, or why it was refused (nothing queued then).
    /// The message is written as soon as the link is ready, in send order; its fate is reported
    /// by [`Event::Written`] or [`Event::SendFailed`].
    pub fn send_text(&self, text: impl Into<Text>) -> Result<MessageId, SendError> {
        self.send(Payload::Text(text.into().0))
    }

    /// Queue a binary message. See [`Client::send_text`].
    pub fn send_binary(&self, data: impl Into<Bytes>) -> Result<MessageId, SendError> {
        self.send(Payload::Binary(data.into()))
    }

    fn send(&self, payload: Payload) -> Result<MessageId, SendError> {
        // The limit is on what goes on the wire: in envelope mode the frame, with its fields and
        // signature and after JSON escaping, which can make a text several times larger.
        let size = match self.config.protocol {
            Protocol::Envelope => {
                crate::envelope::wire_len_bound(&payload, self.config.signing_key.is_some())
            }
            _ => payload.len(),
        };
        let limit = self.config.max_outbound_message_size;
        if size > limit {
            return Err(SendError::TooLarge { size, limit });
        }
        match self.shared.state() {
            State::Closing | State::Closed => return Err(SendError::Closed),
            State::Ready => {}
            _ if !self.config.queue_while_disconnected => return Err(SendError::NotReady),
            _ => {}
        }
        let pushed = self.shared.outbox.push(payload)?;
        if !pushed.dropped.is_empty() {
            self.shared
                .report_failed_now(&pushed.dropped, &SendFailure::DroppedOldest);
        }
        Ok(pushed.id)
    }

    /// Where message `id` stands: queued, written, acked (envelope mode), failed, or unknown.
    pub fn delivery_status(&self, id: MessageId) -> DeliveryStatus {
        self.shared.outbox.status(id)
    }

    /// Where message `id` stands for a waiter of `want`, without waiting: `None` while it is
    /// pending, `Some(Ok(()))` once it reached `want` (in raw mode `Written` is final), or
    /// `Some(Err)` when it never will: [`DeliveryError::NotSupported`] (acks in raw mode),
    /// [`DeliveryError::Failed`] with the reason, [`DeliveryError::Unknown`]. Once the client
    /// is closed nothing is left pending (the core fails every pending message before
    /// [`Event::Closed`]; should one still be, it reads as failed with [`SendFailure::Closed`]).
    pub fn delivery_outcome(&self, id: MessageId, want: Want) -> Option<Result<(), DeliveryError>> {
        if want == Want::Acked && self.config.protocol != Protocol::Envelope {
            return Some(Err(DeliveryError::NotSupported));
        }
        match self.delivery_status(id) {
            DeliveryStatus::Acked => Some(Ok(())),
            DeliveryStatus::Written if want == Want::Written => Some(Ok(())),
            DeliveryStatus::Failed(reason) => Some(Err(DeliveryError::Failed(reason))),
            DeliveryStatus::Unknown => Some(Err(DeliveryError::Unknown)),
            DeliveryStatus::Queued | DeliveryStatus::Written => self
                .wait_closed(Duration::ZERO)
                .then_some(Err(DeliveryError::Failed(SendFailure::Closed))),
        }
    }

    /// Envelope mode: block until the server acknowledges message `id` (Ok), the message fails
    /// ([`DeliveryError::Failed`] with the reason), or `timeout` passes
    /// ([`DeliveryError::Timeout`]). Raw mode has no acks: [`DeliveryError::NotSupported`].
    pub fn wait_acked(&self, id: MessageId, timeout: Duration) -> Result<(), DeliveryError> {
        if self.config.protocol != Protocol::Envelope {
            return Err(DeliveryError::NotSupported);
        }
        match self.wait_status(id, Want::Acked, timeout) {
            DeliveryStatus::Acked => Ok(()),
            DeliveryStatus::Failed(reason) => Err(DeliveryError::Failed(reason)),
            DeliveryStatus::Queued | DeliveryStatus::Written => Err(DeliveryError::Timeout),
            DeliveryStatus::Unknown => Err(DeliveryError::Unknown),
        }
    }

    /// Wait until message `id`'s status reaches `want` or is final (acked, failed, unknown),
    /// or `timeout` passes; returns the status then (`Queued` or `Written` after a timeout).
    /// Works in both delivery modes and consumes no event, so it may be called while events
    /// go unread (or from inside a handler, where it holds up the handler's thread). In raw
    /// mode `Written` is final: [`Want::Acked`] returns once the message is written.
    pub fn wait_status(&self, id: MessageId, want: Want, timeout: Duration) -> DeliveryStatus {
        self.driven(timeout, self.status(id, want), |t| {
            self.shared.outbox.wait_status(id, want, t)
        })
        .unwrap_or_else(|| self.shared.outbox.status(id))
    }

    /// The asynchronous [`Client::wait_status`]: a future that resolves to message `id`'s
    /// status once it reaches `want` or is final (no timeout of its own: combine it with your
    /// runtime's). Any executor can poll it; it holds no lock while pending.
    pub fn status(&self, id: MessageId, want: Want) -> StatusFuture {
        StatusFuture {
            shared: self.shared.clone(),
            id,
            want,
        }
    }

    /// Envelope mode: a future that resolves when message `id` is acknowledged or fails (no
    /// timeout of its own: combine it with your runtime's). Any executor can poll it.
    pub fn acked(&self, id: MessageId) -> AckFuture {
        AckFuture {
            shared: self.shared.clone(),
            id,
            envelope: self.config.protocol == Protocol::Envelope,
        }
    }

    /// Start a graceful close: refuse new sends, drain the outbox (up to `close_timeout`), send
    /// a close frame with `code` and `reason`, and wait for the server's. Returns at once; the
    /// end is reported by [`Event::Closed`] (after a [`Event::SendFailed`] for each message
    /// left unwritten). Closing again is a no-op.
    pub fn close(&self, code: u16, reason: &str) -> Result<(), CloseError> {
        if !(code == 1000 || (3000..=4999).contains(&code)) {
            return Err(CloseError::InvalidCode(code));
        }
        if reason.len() > 123 {
            return Err(CloseError::ReasonTooLong(reason.len()));
        }
        self.shared.outbox.close_intake();
        // The session may already be gone (closed for good); then there is nothing to do.
        let _ = self.commands.send(Command::Close {
            code,
            reason: reason.to_owned(),
        });
        Ok(())
    }

    /// Wait until the client is closed; true if it is.
    pub fn wait_closed(&self, timeout: Duration) -> bool {
        let closed = async {
            self.shared.closed().await;
            true
        };
        self.driven(timeout, closed, |t| self.shared.wait_closed(t))
            .unwrap_or_else(|| self.shared.wait_closed(Duration::ZERO))
    }

    /// Wait up to `timeout` for `fut`. Caller-driven I/O: the runtime runs on this thread
    /// meanwhile (`None` if the timeout passed). Otherwise, or where this thread cannot drive
    /// (inside a runtime), `blocking` waits the whole time for another thread's I/O. A zero
    /// timeout is a check: it never drives (the state must not move between what the caller
    /// read before and this answer).
    fn driven<T>(
        &self,
        timeout: Duration,
        fut: impl Future<Output = T>,
        blocking: impl FnOnce(Duration) -> T,
    ) -> Option<T> {
        if let Some(driver) = self.driver.as_ref().filter(|_| !timeout.is_zero()) {
            match driver.drive(timeout, fut) {
                Drive::Done(value) => return Some(value),
                Drive::TimedOut => return None,
                Drive::Elsewhere => {}
            }
        }
        Some(blocking(timeout))
    }

    /// Close with code 1000, wait up to `timeout` for the close to finish, and end the
    /// handler's life: in callback mode join the dispatcher thread after it delivered
    /// [`Event::Closed`] (when the close finished in time). However it ends, no handler starts
    /// after this returns (events left are dropped unseen), and a handler running on another
    /// thread (the dispatcher, or a [`Client::dispatch`] elsewhere) is waited for. Returns
    /// false if the timeout expired first (the close then goes on in the background).
    ///
    /// Called from inside a handler of this client it cannot wait for that handler: the
    /// current one is the last; it still waits up to `timeout` for the close (pass
    /// `Duration::ZERO` not to), and does not join. [`Client::close_bound`] is a timeout that
    /// covers a whole graceful close.
    pub fn shutdown(&self, timeout: Duration) -> bool {
        let _ = self.close(1000, "");
        let inside = self.handlers.in_handler();
        // Nobody will read events from here on (poll mode), or handlers stop now (from inside
        // one): stop holding inbound messages back for room, or a full queue would keep the
        // server's closing frame unread.
        if self.events.is_some() || inside {
            self.shared.events.stop_consuming();
        }
        if inside {
            self.handlers.stop();
        }
        let closed = self.wait_closed(timeout);
        if !inside {
            let thread = self
                .dispatcher
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take_if(|_| closed);
            if let Some(thread) = thread {
                // The dispatcher exits right after delivering Closed, which was emitted
                // before wait_closed returned.
                let _ = thread.join();
            }
            self.handlers.stop();
            self.shared.events.stop_consuming();
        }
        closed
    }

    /// How long a graceful close may take: `close_timeout` to drain the outbox, plus a margin
    /// for the closing handshake. The timeout for [`Client::shutdown`] when the application
    /// gives none.
    pub fn close_bound(&self) -> Duration {
        self.config.close_timeout + CLOSE_MARGIN
    }

    /// Poll mode: take up to `max` events (waiting up to `wait` for the first, then whatever
    /// else is pending) and run `handler` on each, on the calling thread, in order; returns
    /// how many were handled. `max` 0 means the events pending once the first one is in
    /// hand, so that a steady stream cannot keep the caller forever. Events are taken in
    /// chunks, one queue operation each; an inbound message's credit (room in
    /// `event_queue_capacity`) goes back once its handler returned. A panic in the handler is
    /// caught and logged (that event is dropped; dispatching carries on).
    ///
    /// If the client is shut down meanwhile (from the handler, or on another thread), it
    /// returns right after the current handler; the events it had taken are dropped.
    ///
    /// Errors: [`DispatchError::Reentered`] from inside a handler of this client,
    /// [`DispatchError::Busy`] while another thread dispatches it,
    /// [`DispatchError::CallbackMode`] in callback mode.
    pub fn dispatch(
        &self,
        max: usize,
        wait: Duration,
        handler: &mut dyn FnMut(Event),
    ) -> Result<usize, DispatchError> {
        let source = self.events.as_ref().ok_or(DispatchError::CallbackMode)?;
        dispatch::dispatch(source, &self.handlers, max, wait, handler)
    }

    /// True on a thread that is running a handler of this client: its dispatcher thread in
    /// callback mode, or inside [`Client::dispatch`] in poll mode. Bindings use it to refuse
    /// blocking calls that would wait for the handler's own thread.
    pub fn in_handler(&self) -> bool {
        self.handlers.in_handler()
    }

    /// Poll mode: a [`Client::dispatch`] is running right now, on any thread.
    pub fn is_dispatching(&self) -> bool {
        self.handlers.is_dispatching()
    }

    /// Install (or with `None` remove) a wake-up hook for an event loop (asyncio, libuv,
    /// epoll, a game loop): poll mode's "look now". It is called when events become
    /// available after a consumer found the queue empty (once for a whole batch, not per
    /// event), and when a [`Client::dispatch`] / [`Client::poll_events`] /
    /// [`Client::next_events`] call returns leaving events behind. So an event loop may wait
    /// for the hook after each such call and never miss an event; spurious calls are
    /// possible. If events are pending when the hook is installed, it is called at once.
    /// It runs on one of Tether's threads, a sending thread or the consumer's thread,
    /// possibly concurrently with the consumer: it must be cheap and must not block (write a
    /// byte to a pipe or eventfd, set a flag, post to a loop); a panic in it is caught and
    /// logged. In callback mode the dispatcher thread is the consumer and the hook is of no
    /// use.
    pub fn set_wake_hook(&self, hook: Option<Arc<dyn Fn() + Send + Sync>>) {
        self.shared.events.set_wake_hook(hook);
    }

    /// Poll mode: the next pending event, without waiting (routed mode: the next kept one).
    /// Always None in callback mode.
    pub fn poll_event(&self) -> Option<Event> {
        if let Some(kept) = &self.kept {
            return take_one(kept, Duration::ZERO);
        }
        let source = self.events.as_ref()?;
        let event = match source.try_next() {
            Some(event) => event,
            None if source.pass_if_idle() => source.try_next()?,
            None => return None,
        };
        source.release(&event);
        Some(event)
    }

    /// Poll mode: the next event, waiting up to `timeout` (routed mode: the next kept one;
    /// the wait ends early once the dispatcher is done). Always None in callback mode.
    pub fn next_event(&self, timeout: Duration) -> Option<Event> {
        if let Some(kept) = &self.kept {
            return take_one(kept, timeout);
        }
        let source = self.events.as_ref()?;
        let event = source.next_timeout(timeout)?;
        source.release(&event);
        Some(event)
    }

    /// Poll mode: the next event, awaited without blocking the thread (any executor can poll
    /// it; it is what an application on the runtime given to [`Client::connect_on`] uses).
    /// None in the callback modes (routed included). After [`Event::Closed`] no event comes
    /// any more, so do not await another one then.
    pub async fn recv_event(&self) -> Option<Event> {
        let source = self.events.as_ref()?;
        let event = source.next_async().await;
        source.release(&event);
        Some(event)
    }

    /// Poll mode: await the next event, then move it and whatever else is pending (up to
    /// `max` in all) into `out`; returns how many. 0 in callback mode or when `max` is 0.
    pub async fn recv_events(&self, out: &mut Vec<Event>, max: usize) -> usize {
        if max == 0 {
            return 0;
        }
        match self.recv_event().await {
            Some(event) => {
                out.push(event);
                1 + self.poll_events(out, max - 1)
            }
            None => 0,
        }
    }

    /// Resolves once the client is closed (after [`Event::Closed`] was emitted): the
    /// asynchronous [`Client::wait_closed`].
    pub async fn closed(&self) {
        self.shared.closed().await
    }

    /// Poll mode: move up to `max` pending events into `out` (appended, in order) without
    /// waiting; returns how many were moved. One call per frame of a game loop or per wake-up
    /// of an event loop takes a whole batch for the price of one queue operation. Routed mode:
    /// the kept events. Always 0 in callback mode.
    pub fn poll_events(&self, out: &mut Vec<Event>, max: usize) -> usize {
        self.next_events(out, max, Duration::ZERO)
    }

    /// Poll mode: like [`Client::poll_events`], but when nothing is pending wait up to
    /// `timeout` for the first event (then take it and whatever else is pending, up to `max`).
    pub fn next_events(&self, out: &mut Vec<Event>, max: usize, timeout: Duration) -> usize {
        match (&self.events, &self.kept) {
            (Some(source), _) => source.take_into(out, max, timeout),
            (None, Some(kept)) => kept.take_into(out, max, timeout),
            (None, None) => 0,
        }
    }

    /// Install (or, with `None`, remove) a function called after every change an application
    /// may wait for: each batch of events emitted (in either delivery mode), each raise of a
    /// pending [`Event::Written`] report, each event kept in routed mode, and the end of the
    /// client ([`Client::wait_closed`] turning true; in the callback modes also
    /// [`Client::is_finished`]). It carries no event: it is a cue to re-check [`Client::state`],
    /// [`Client::delivery_status`] or the event queue, for waits that do not consume events
    /// (a binding's blocking waits, an event loop's wake-up). It runs on one of Tether's
    /// threads, often the I/O thread: it must be cheap and must never block.
    pub fn set_change_hook(&self, hook: Option<Arc<dyn Fn() + Send + Sync>>) {
        self.shared.events.set_change_hook(hook);
    }

    /// The reason the latest [`Event::Disconnected`] carried (None before the first), whether
    /// or not that event has been consumed yet.
    pub fn last_disconnect(&self) -> Option<Disconnect> {
        self.shared.events.last_disconnect()
    }

    /// The reason [`Event::Closed`] carries, once it has been emitted (whether or not it has
    /// been consumed yet).
    pub fn close_reason(&self) -> Option<Disconnect> {
        self.shared.events.close_reason()
    }

    /// Whether this client's I/O is caller-driven ([`crate::IoDriver::Caller`]).
    pub fn is_caller_driven(&self) -> bool {
        self.driver.is_some()
    }

    /// Caller-driven I/O: the number of the live link whose socket [`Client::io_socket`]
    /// gives (it changes with every new connection), `None` while no link is up.
    pub fn io_link(&self) -> Option<u64> {
        self.shared.link_number()
    }

    /// Caller-driven I/O, for an event loop that drives the client when its socket is
    /// readable: the live link's number and a duplicate of its socket's descriptor, yours to
    /// watch for readiness and to close (never read or write it); `None` while no link is up
    /// and in the shared-runtime mode. Close it when [`Client::io_link`] changes: until then
    /// the duplicate keeps the connection's socket open.
    #[cfg(unix)]
    pub fn io_socket(&self) -> Option<(u64, std::os::fd::OwnedFd)> {
        self.shared.link_socket()
    }

    /// Caller-driven I/O, for an event loop: run one non-blocking pass now (the watched socket
    /// is readable, or a send waits), whenever the last one ran. False if none ran: not
    /// caller-driven, this thread cannot drive (inside a runtime), or another thread drives;
    /// a driving keeper is then asked to hand the runtime back, so a later call runs.
    pub fn drive_now(&self) -> bool {
        self.driver.as_ref().is_some_and(|d| d.pass_now())
    }

    /// Caller-driven I/O, for an event loop: install (or with `None` remove) a function called
    /// when a send leaves work for a driver while no thread drives (once, until a driver takes
    /// it): schedule a pass ([`Client::drive_now`]) soon on the loop. It runs on the sending
    /// thread, inside `send_*`: it must be cheap and must not block; a panic in it is caught
    /// and logged. Without caller-driven I/O it is never called.
    pub fn set_io_hook(&self, hook: Option<Arc<dyn Fn() + Send + Sync>>) {
        if let Some(driver) = &self.driver {
            driver.set_io_hook(hook);
        }
    }

    /// Caller-driven I/O: a `send` is waiting for a driver to write it.
    pub fn send_pending(&self) -> bool {
        self.driver.as_ref().is_some_and(|d| d.has_note())
    }

    /// Inbound messages fill `event_queue_capacity`: reading the socket is paused until the
    /// application takes some (an event loop stops watching the socket meanwhile, which stays
    /// readable).
    pub fn reading_paused(&self) -> bool {
        self.shared.events.credit_exhausted()
    }

    /// Poll mode: true when a poll that does not wait would do nothing now: no event pending,
    /// no [`Client::dispatch`] running, and with caller-driven I/O no I/O pass due (see
    /// `docs/CALLER_IO.md`). A binding's cheap fast path for an idle poll.
    pub fn poll_is_idle(&self) -> bool {
        !self.is_dispatching()
            && self.pending_events() == 0
            && self.driver.as_ref().is_none_or(|d| !d.pass_due())
    }

    /// Poll mode: number of events waiting (routed mode: kept).
    pub fn pending_events(&self) -> usize {
        match (&self.events, &self.kept) {
            (Some(source), _) => source.pending(),
            (None, Some(kept)) => kept.pending(),
            (None, None) => 0,
        }
    }

    /// True once no handler runs and nothing changes any more: the client is closed and, in
    /// the callback modes, the dispatcher thread has handled [`Event::Closed`] (its handler
    /// call included). The change hook fires when it turns true. Events may still wait for
    /// the poll calls ([`Client::pending_events`]).
    pub fn is_finished(&self) -> bool {
        if self.events.is_some() {
            self.shared.wait_closed(Duration::ZERO)
        } else {
            self.handlers.is_finished()
        }
    }

    /// The number of changes so far: it moves before each call of the change hook (see
    /// [`Client::set_change_hook`]), whether a hook is installed or not.
    pub fn changes(&self) -> u64 {
        self.shared.events.changes()
    }

    /// Wait up to `timeout` for [`Client::changes`] to move past `seen` (a value it returned);
    /// returns the count then. With [`Client::changes`] read before checking a condition,
    /// this is a wait for any state, status or queue change that misses none.
    pub fn wait_change(&self, seen: u64, timeout: Duration) -> u64 {
        let events = &self.shared.events;
        self.driven(timeout, events.changed_after(seen), |t| {
            events.wait_change(seen, t)
        })
        .unwrap_or_else(|| events.changes())
    }

    /// Wait up to `timeout` until the client is ready: `Ok`, or why not: the timeout passed
    /// ([`NotReady::Timeout`], with the state and the latest failure), or the client closed for
    /// good first ([`NotReady::Closed`], with the reason). Consumes no event; `Duration::ZERO`
    /// asks without waiting.
    pub fn wait_ready(&self, timeout: Duration) -> Result<(), NotReady> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            let seen = self.changes();
            match self.state() {
                State::Ready => return Ok(()),
                State::Closed if self.wait_closed(Duration::ZERO) => {
                    if let Some(reason) = self.close_reason() {
                        return Err(NotReady::Closed(reason));
                    }
                }
                _ => {}
            }
            let left = deadline.map_or(timeout, |d| d.saturating_duration_since(Instant::now()));
            if left.is_zero() {
                return Err(NotReady::Timeout {
                    state: self.state(),
                    last: self.last_disconnect(),
                });
            }
            self.wait_change(seen, left);
        }
    }

    /// Poll or routed mode, for a reader that takes only some kinds: move up to `max` events
    /// that `keep` accepts into `out`, waiting up to `wait` for the first; the events it does
    /// not accept that come before are dropped. Returns true when the stream has ended
    /// ([`Client::is_drained`]) and nothing was moved; false otherwise (something moved, or
    /// the wait is over).
    pub fn take_events(
        &self,
        out: &mut Vec<Event>,
        max: usize,
        wait: Duration,
        keep: &dyn Fn(&Event) -> bool,
    ) -> bool {
        let deadline = Instant::now().checked_add(wait);
        let start = out.len();
        let mut got = Vec::new();
        loop {
            let left = deadline.map_or(wait, |d| d.saturating_duration_since(Instant::now()));
            let dropped = self.next_events(&mut got, max, left) > 0;
            out.extend(got.drain(..).filter(|e| keep(e)));
            if out.len() > start {
                return false;
            }
            // Finished means every event was queued before: none pending, all were read.
            if self.is_drained() {
                return true;
            }
            if left.is_zero() && !dropped {
                return false;
            }
        }
    }

    /// True once the event stream has ended: [`Client::is_finished`], and no event is left
    /// for the poll calls.
    pub fn is_drained(&self) -> bool {
        self.is_finished() && self.pending_events() == 0
    }

    /// Stop pausing reads for room in `event_queue_capacity`: from now on inbound messages
    /// queue without that bound. For a session that is ending while the application may never
    /// take what is queued (a binding's `close()`): the closing handshake must still read the
    /// server's close frame.
    pub fn release_backpressure(&self) {
        self.shared.events.stop_consuming();
    }
}

fn take_one(kept: &Kept, wait: Duration) -> Option<Event> {
    let mut out = Vec::with_capacity(1);
    kept.take_into(&mut out, 1, wait);
    out.pop()
}

/// Start the dispatcher thread of a callback mode. It fires the change hook through a weak
/// reference, so that it never keeps the session's state alive.
/// Where a client's events go: kept for polling, or to a dispatcher thread running the handler.
type Delivery = (
    Option<EventSource>,
    Option<JoinHandle<()>>,
    Option<Arc<Kept>>,
);

fn start_delivery(
    delivery: EventDelivery,
    source: EventSource,
    handlers: &Arc<Handlers>,
    shared: &Arc<Shared>,
) -> Result<Delivery, StartError> {
    Ok(match delivery {
        EventDelivery::Poll => (Some(source), None, None),
        EventDelivery::Callback(mut handler) => {
            let handler: RoutedHandler = Box::new(move |event| {
                handler(event);
                None
            });
            let thread = spawn_dispatcher(source, handler, handlers, None, shared)?;
            (None, Some(thread), None)
        }
        EventDelivery::Routed(handler) => {
            let kept = Arc::new(Kept::new(source.credit()));
            let thread = spawn_dispatcher(source, handler, handlers, Some(kept.clone()), shared)?;
            (None, Some(thread), Some(kept))
        }
    })
}

fn spawn_dispatcher(
    source: EventSource,
    handler: RoutedHandler,
    handlers: &Arc<Handlers>,
    kept: Option<Arc<Kept>>,
    shared: &Arc<Shared>,
) -> Result<JoinHandle<()>, StartError> {
    let handlers = handlers.clone();
    let weak = Arc::downgrade(shared);
    let changed = move || {
        if let Some(shared) = weak.upgrade() {
            shared.events.fire_change_hook();
        }
    };
    std::thread::Builder::new()
        .name("tether-dispatch".into())
        .spawn(move || {
            dispatch::run_dispatcher(source, handler, &handlers, kept.as_deref(), &changed)
        })
        .map_err(|e| StartError::Thread(e.to_string()))
}

/// Resolves to a message's status once it reaches the wanted one or is final; see
/// [`Client::status`].
#[must_use = "futures do nothing unless polled"]
pub struct StatusFuture {
    shared: Arc<Shared>,
    id: MessageId,
    want: Want,
}

impl Future for StatusFuture {
    type Output = DeliveryStatus;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self
            .shared
            .outbox
            .poll_status(self.id, self.want, cx.waker())
        {
            Some(status) => Poll::Ready(status),
            None => Poll::Pending,
        }
    }
}

/// Resolves when a message is acknowledged (`Ok`) or fails; see [`Client::acked`].
#[must_use = "futures do nothing unless polled"]
pub struct AckFuture {
    shared: Arc<Shared>,
    id: MessageId,
    envelope: bool,
}

impl Future for AckFuture {
    type Output = Result<(), DeliveryError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if !self.envelope {
            return Poll::Ready(Err(DeliveryError::NotSupported));
        }
        match self
            .shared
            .outbox
            .poll_status(self.id, Want::Acked, cx.waker())
        {
            None => Poll::Pending,
            Some(DeliveryStatus::Acked) => Poll::Ready(Ok(())),
            Some(DeliveryStatus::Failed(reason)) => Poll::Ready(Err(DeliveryError::Failed(reason))),
            Some(_) => Poll::Ready(Err(DeliveryError::Unknown)),
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // Graceful close in the background; the dispatcher exits after delivering Closed.
        let _ = self.close(1000, "");
        // Routed mode: nobody can take kept events any more.
        if let Some(kept) = &self.kept {
            kept.close();
            self.shared.events.stop_consuming();
        }
        // Caller-driven I/O: nobody will wait on this client any more, so a keeper (started
        // now if there was none) drives the close to its end.
        if let Some(driver) = self.driver.as_ref().filter(|d| !d.is_done()) {
            self.shared.events.stop_consuming();
            driver.finish_in_background();
        }
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.config.url())
            .field("state", &self.state())
            .finish()
    }
}
