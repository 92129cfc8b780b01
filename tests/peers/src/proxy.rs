//! A fault-injecting TCP proxy for tests: [`Proxy`].
//!
//! A `Proxy` listens on `127.0.0.1` and relays every accepted TCP connection
//! to one upstream address (typically a [`Peer`](crate::Peer)), byte for
//! byte, while a test injects network faults on demand: FIN or RST cuts,
//! stalls, latency, throttling, cuts in the middle of a frame, slow drips,
//! refused or black-holed new connections, half-closes, and a seeded
//! "chaos" mode that picks faults at random on a schedule.
//!
//! Like [`Peer`](crate::Peer), the API is **synchronous**: each proxy owns a
//! background OS thread running its own single-threaded tokio runtime, and
//! every method blocks for a bounded time only.
//!
//! ```no_run
//! use std::time::Duration;
//! use tether_test_peers::{Direction, Fault, Peer, Proxy};
//!
//! let peer = Peer::start();
//! let upstream = format!("127.0.0.1:{}", peer.port()).parse().unwrap();
//! let proxy = Proxy::start(upstream);
//! // ... point a client at `proxy.url("/")` ...
//! proxy.set_fault(Fault::Stall { direction: Direction::Both });
//! proxy.set_fault(Fault::Pass);
//! proxy.cut_all();
//! assert!(proxy.wait_open_connections(0, Duration::from_secs(5)));
//! ```
//!
//! # How it works
//!
//! Each relayed connection is served by one task that drives, concurrently,
//! one pump per direction. A pump reads chunks of at most 16 KiB into a
//! small bounded queue (16 chunks) and forwards them, consulting the current
//! fault (a `tokio::sync::watch`) before each write, so a fault set with
//! [`Proxy::set_fault`] takes effect on open connections at once. A stalled
//! direction stops reading, so memory stays bounded and the sender sees TCP
//! backpressure. One-shot faults (cut, reset, half-close) are messages to
//! the connection tasks, acknowledged before the call returns.

use std::fmt;
use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr};
use std::str::FromStr;
use std::sync::{mpsc as std_mpsc, Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::observed::Observed;
use crate::runtime_thread::{RuntimeCommand, RuntimeThread};
use crate::tasks::{abort_and_wait, wait_acks, Registry};

/// Size of the read buffer of each direction of each connection.
const CHUNK: usize = 16 * 1024;
/// Chunks a direction may hold between reading and forwarding (bounds the
/// memory held per direction to `QUEUE_CHUNKS × CHUNK`).
const QUEUE_CHUNKS: usize = 16;
/// Bound on connecting to the upstream address.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a one-shot fault waits for every connection to acknowledge it.
const ONE_SHOT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pacing granularity of [`Fault::Throttle`]: one write per this period.
const THROTTLE_TICK: Duration = Duration::from_millis(20);
/// Lateness a pacer forgives (so timer jitter does not slow throttling down).
const PACER_SLACK: Duration = Duration::from_millis(50);
/// At most this many unread bytes are drained before a cut socket is closed.
const CUT_DRAIN_LIMIT: usize = 1 << 20;

// ---------------------------------------------------------------------------
// Public types.
// ---------------------------------------------------------------------------

/// Which direction(s) of a relayed connection a [`Fault::Stall`] affects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Both directions.
    Both,
    /// Bytes sent by the client towards the upstream server.
    ClientToServer,
    /// Bytes sent by the upstream server towards the client.
    ServerToClient,
}

/// A network fault the [`Proxy`] injects.
///
/// *Standing* faults ([`Pass`](Fault::Pass), [`Stall`](Fault::Stall),
/// [`Latency`](Fault::Latency), [`Throttle`](Fault::Throttle),
/// [`CutAfter`](Fault::CutAfter), [`SlowDrip`](Fault::SlowDrip),
/// [`RefuseNew`](Fault::RefuseNew), [`BlackholeNew`](Fault::BlackholeNew))
/// replace one another and stay in effect until the next standing fault;
/// they apply to open connections and to new ones. *One-shot* faults
/// ([`Cut`](Fault::Cut), [`Reset`](Fault::Reset),
/// [`HalfClose`](Fault::HalfClose)) act once on the connections open at the
/// time and leave the standing fault unchanged (see [`Fault::is_one_shot`]).
///
/// [`FromStr`] and [`Display`](fmt::Display) use a compact syntax (for the
/// `tether-proxy` binary): `pass`, `cut`, `reset`, `stall` (both
/// directions), `stall:c2s`, `stall:s2c`, `latency:MS`, `throttle:BPS`,
/// `cut-after:BYTES`, `slow-drip:BYTES:MS`, `refuse-new`, `blackhole-new`,
/// `half-close` (durations in whole milliseconds).
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// Forward normally (the initial state).
    Pass,
    /// One-shot: FIN both sides of every open connection (shut the write
    /// side down, drop the socket), including black-holed ones and ones
    /// still connecting upstream.
    Cut,
    /// One-shot: RST both sides of every open connection (`SO_LINGER` 0,
    /// then drop).
    Reset,
    /// Hold bytes in `direction`: stop reading and forwarding them, without
    /// FIN or RST (TCP stays open). Bytes already read are forwarded, in
    /// order, when the stall ends.
    Stall {
        /// The direction(s) stalled.
        direction: Direction,
    },
    /// Delay each chunk by this much after it was read (both directions),
    /// preserving order. Chunks are pipelined, so throughput is not limited
    /// to one chunk per delay.
    Latency(Duration),
    /// Rate-limit each direction of each connection to about this many
    /// bytes per second (paced in 20 ms slices). `0` stalls both
    /// directions.
    Throttle {
        /// The rate limit, per direction and connection.
        bytes_per_sec: u64,
    },
    /// Per connection: forward this many more client→server bytes (counted
    /// from when the fault was set, or from the connection's start for new
    /// connections), then cut the connection as [`Fault::Cut`] does, even in
    /// the middle of a frame. With `0`, the next client→server chunk is not
    /// forwarded and the connection is cut. Server→client bytes flow
    /// normally.
    CutAfter {
        /// Client→server bytes still forwarded before the cut.
        bytes: u64,
    },
    /// Forward at most `bytes` bytes per `every` in each direction of each
    /// connection (a zero `bytes` counts as 1).
    SlowDrip {
        /// Bytes forwarded per period.
        bytes: usize,
        /// The period.
        every: Duration,
    },
    /// Accept new connections, then close them at once (FIN, without
    /// connecting upstream). Open connections continue.
    RefuseNew,
    /// Accept new connections and never forward anything on them: no
    /// upstream connection is made, the client's bytes are read and
    /// discarded, nothing is ever sent back (no upgrade answer). Such a
    /// connection stays black-holed after the fault changes, until the
    /// client closes it or a [`Fault::Cut`]/[`Fault::Reset`]. Open
    /// connections continue.
    BlackholeNew,
    /// One-shot: on every open connection, shut down the server→client
    /// write side only (the client reads EOF). Client→server bytes are still
    /// forwarded; what the server sends afterwards is read and discarded.
    HalfClose,
}

impl Fault {
    /// `true` for [`Fault::Cut`], [`Fault::Reset`] and [`Fault::HalfClose`],
    /// which act once on the open connections instead of replacing the
    /// standing fault.
    pub fn is_one_shot(&self) -> bool {
        matches!(self, Fault::Cut | Fault::Reset | Fault::HalfClose)
    }

    /// Whether this fault holds bytes travelling in `way`.
    fn stalls(&self, way: Way) -> bool {
        match self {
            Fault::Stall { direction } => match direction {
                Direction::Both => true,
                Direction::ClientToServer => way == Way::ClientToServer,
                Direction::ServerToClient => way == Way::ServerToClient,
            },
            Fault::Throttle { bytes_per_sec: 0 } => true,
            _ => false,
        }
    }

    fn one_shot(&self) -> Option<OneShot> {
        match self {
            Fault::Cut => Some(OneShot::Cut),
            Fault::Reset => Some(OneShot::Reset),
            Fault::HalfClose => Some(OneShot::HalfClose),
            _ => None,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Pass => f.write_str("pass"),
            Fault::Cut => f.write_str("cut"),
            Fault::Reset => f.write_str("reset"),
            Fault::Stall { direction } => match direction {
                Direction::Both => f.write_str("stall"),
                Direction::ClientToServer => f.write_str("stall:c2s"),
                Direction::ServerToClient => f.write_str("stall:s2c"),
            },
            Fault::Latency(delay) => write!(f, "latency:{}", delay.as_millis()),
            Fault::Throttle { bytes_per_sec } => write!(f, "throttle:{bytes_per_sec}"),
            Fault::CutAfter { bytes } => write!(f, "cut-after:{bytes}"),
            Fault::SlowDrip { bytes, every } => {
                write!(f, "slow-drip:{bytes}:{}", every.as_millis())
            }
            Fault::RefuseNew => f.write_str("refuse-new"),
            Fault::BlackholeNew => f.write_str("blackhole-new"),
            Fault::HalfClose => f.write_str("half-close"),
        }
    }
}

impl FromStr for Fault {
    type Err = String;

    /// Parses the syntax described on [`Fault`] (case-sensitive).
    fn from_str(s: &str) -> Result<Fault, String> {
        fn num<T: FromStr>(what: &str, v: Option<&str>) -> Result<T, String>
        where
            T::Err: fmt::Display,
        {
            let v = v.ok_or_else(|| format!("{what} is missing"))?;
            v.parse().map_err(|e| format!("bad {what} {v:?}: {e}"))
        }
        let mut parts = s.trim().split(':');
        let name = parts.next().unwrap_or("");
        let first = parts.next();
        let second = parts.next();
        let fault = match (name, first) {
            ("pass", None) => Fault::Pass,
            ("cut", None) => Fault::Cut,
            ("reset", None) => Fault::Reset,
            ("stall", None | Some("both")) => Fault::Stall {
                direction: Direction::Both,
            },
            ("stall", Some("c2s")) => Fault::Stall {
                direction: Direction::ClientToServer,
            },
            ("stall", Some("s2c")) => Fault::Stall {
                direction: Direction::ServerToClient,
            },
            ("latency", _) => Fault::Latency(Duration::from_millis(num("latency (ms)", first)?)),
            ("throttle", _) => Fault::Throttle {
                bytes_per_sec: num("throttle (bytes/s)", first)?,
            },
            ("cut-after", _) => Fault::CutAfter {
                bytes: num("cut-after (bytes)", first)?,
            },
            ("slow-drip", _) => Fault::SlowDrip {
                bytes: num("slow-drip bytes", first)?,
                every: Duration::from_millis(num("slow-drip period (ms)", second)?),
            },
            ("refuse-new", None) => Fault::RefuseNew,
            ("blackhole-new", None) => Fault::BlackholeNew,
            ("half-close", None) => Fault::HalfClose,
            _ => return Err(format!("unknown fault {s:?}")),
        };
        let expected_parts = match fault {
            Fault::SlowDrip { .. } => 3,
            Fault::Stall { .. } => 1 + usize::from(first.is_some()),
            Fault::Latency(_) | Fault::Throttle { .. } | Fault::CutAfter { .. } => 2,
            _ => 1,
        };
        let given = 1 + usize::from(first.is_some()) + usize::from(second.is_some());
        if given != expected_parts || parts.next().is_some() {
            return Err(format!("wrong number of ':' fields in fault {s:?}"));
        }
        Ok(fault)
    }
}

// ---------------------------------------------------------------------------
// Shared state.
// ---------------------------------------------------------------------------

/// A direction of a relayed connection, internally.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Way {
    ClientToServer,
    ServerToClient,
}

/// The standing fault, with a generation bumped on every change.
#[derive(Clone, Debug)]
struct Standing {
    generation: u64,
    fault: Fault,
    /// Set by chaos mode (and to be reverted by it).
    by_chaos: bool,
}

#[derive(Default)]
struct State {
    accepted: usize,
    open: usize,
    client_to_server: u64,
    server_to_client: u64,
    log: Vec<(Instant, Fault)>,
}

struct Shared {
    state: Observed<State>,
    /// The standing fault. `watch` so that pumps can await changes; its
    /// sender is usable from any thread without a runtime.
    standing: watch::Sender<Standing>,
}

impl Shared {
    fn new() -> Self {
        Shared {
            state: Observed::new(State::default()),
            standing: watch::Sender::new(Standing {
                generation: 0,
                fault: Fault::Pass,
                by_chaos: false,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// Mutates the state and wakes every waiter.
    fn update<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        self.state.update(f)
    }

    /// Blocks until `f` returns `Some` or `timeout` elapses.
    fn wait_until<R>(&self, timeout: Duration, f: impl FnMut(&State) -> Option<R>) -> Option<R> {
        self.state.wait_until(timeout, f)
    }

    fn log(&self, fault: &Fault) {
        self.update(|s| s.log.push((Instant::now(), fault.clone())));
    }

    fn add_forwarded(&self, way: Way, n: usize) {
        let n = n as u64;
        self.update(|s| match way {
            Way::ClientToServer => s.client_to_server += n,
            Way::ServerToClient => s.server_to_client += n,
        });
    }

    /// Replaces the standing fault; returns the new generation.
    fn set_standing(&self, fault: Fault, by_chaos: bool) -> u64 {
        let mut generation = 0;
        self.standing.send_modify(|s| {
            s.generation += 1;
            s.fault = fault;
            s.by_chaos = by_chaos;
            generation = s.generation;
        });
        generation
    }

    /// Restores [`Fault::Pass`] if the standing fault was set by chaos mode
    /// (and, with `Some(generation)`, has not changed since).
    fn revert_chaos(&self, generation: Option<u64>) {
        self.standing.send_if_modified(|s| {
            let ours = s.by_chaos && generation.is_none_or(|g| g == s.generation);
            if ours {
                s.generation += 1;
                s.fault = Fault::Pass;
                s.by_chaos = false;
            }
            ours
        });
    }
}

// ---------------------------------------------------------------------------
// The synchronous handle.
// ---------------------------------------------------------------------------

/// A fault-injecting TCP proxy on `127.0.0.1`, driven from synchronous code.
/// See the [module documentation](self).
///
/// Dropping a `Proxy` stops chaos mode, stops listening, drops every
/// connection and joins the background thread (bounded: if the thread does
/// not finish within a few seconds it is detached and a warning printed).
pub struct Proxy {
    upstream: SocketAddr,
    shared: Arc<Shared>,
    /// Shuts the runtime down and joins its thread when the proxy is dropped.
    runtime: RuntimeThread<Command>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("port", &self.port())
            .field("upstream", &self.upstream)
            .field("fault", &self.fault())
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// Starts a proxy on a free port of `127.0.0.1` relaying every
    /// connection to `upstream`; returns once it is listening.
    ///
    /// The upstream address is connected to for each accepted connection
    /// (bounded by 5 s); if that fails, the client's connection is closed
    /// (FIN).
    ///
    /// # Panics
    ///
    /// Panics if the proxy cannot start (see [`Proxy::try_start`]).
    pub fn start(upstream: SocketAddr) -> Proxy {
        match Proxy::try_start(upstream) {
            Ok(proxy) => proxy,
            Err(e) => panic!("tether test proxy failed to start: {e}"),
        }
    }

    /// Like [`Proxy::start`], but returns an error instead of panicking when
    /// the port cannot be bound or the runtime thread cannot be started.
    pub fn try_start(upstream: SocketAddr) -> io::Result<Proxy> {
        let shared = Arc::new(Shared::new());
        let thread_shared = shared.clone();
        let runtime = RuntimeThread::start(
            "tether test proxy",
            || {
                // Unlike the peer, no SO_REUSEADDR: a proxy never rebinds.
                let socket = TcpSocket::new_v4()?;
                socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
                socket.listen(1024)
            },
            move |listener, _port, commands| {
                let ctx = Arc::new(Ctx {
                    upstream,
                    shared: thread_shared,
                    registry: Mutex::new(Registry::default()),
                });
                controller(ctx, listener, commands)
            },
        )?;
        Ok(Proxy {
            upstream,
            shared,
            runtime,
        })
    }

    /// The TCP port the proxy listens on (on `127.0.0.1`).
    pub fn port(&self) -> u16 {
        self.runtime.port()
    }

    /// The upstream address every connection is relayed to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// `ws://127.0.0.1:PORT{path}`; `path` should start with `/`.
    pub fn url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.port())
    }

    /// Injects `fault` and records it in [`Proxy::faults_injected`].
    ///
    /// A standing fault replaces the current one at once, for open
    /// connections (from their next chunk, or at once for a pump waiting on
    /// a stall or a delay) and for new ones. A one-shot fault
    /// ([`Fault::is_one_shot`]) acts on the connections open now and
    /// returns once every one of them has acted on it (bounded by a few
    /// seconds): after `Cut` or `Reset` the sockets are closed, after
    /// `HalfClose` the client's read side has received FIN.
    pub fn set_fault(&self, fault: Fault) {
        self.shared.log(&fault);
        match fault.one_shot() {
            Some(kind) => self
                .runtime
                .request("one-shot fault", |reply| Command::OneShot { kind, reply }),
            None => {
                self.shared.set_standing(fault, false);
            }
        }
    }

    /// The standing fault currently in effect ([`Fault::Pass`] at first;
    /// never a one-shot fault).
    pub fn fault(&self) -> Fault {
        self.shared.standing.borrow().fault.clone()
    }

    /// FIN both sides of every open connection now, like
    /// `set_fault(Fault::Cut)`. Returns once the sockets are closed.
    pub fn cut_all(&self) {
        self.set_fault(Fault::Cut);
    }

    /// RST both sides of every open connection now, like
    /// `set_fault(Fault::Reset)`. Returns once the sockets are closed.
    pub fn reset_all(&self) {
        self.set_fault(Fault::Reset);
    }

    /// TCP connections accepted since start, including refused and
    /// black-holed ones.
    pub fn connections_accepted(&self) -> usize {
        self.shared.lock().accepted
    }

    /// Client connections currently held open by the proxy (relayed, still
    /// connecting upstream, or black-holed). A connection is counted until
    /// both of its directions have ended (after EOF in both directions, a
    /// cut, a reset or an I/O error).
    pub fn open_connections(&self) -> usize {
        self.shared.lock().open
    }

    /// Blocks until [`Proxy::connections_accepted`] `>= n`; `false` on
    /// timeout.
    pub fn wait_connections(&self, n: usize, timeout: Duration) -> bool {
        self.shared
            .wait_until(timeout, |s| (s.accepted >= n).then_some(()))
            .is_some()
    }

    /// Blocks until [`Proxy::open_connections`] `== n`; `false` on timeout.
    pub fn wait_open_connections(&self, n: usize, timeout: Duration) -> bool {
        self.shared
            .wait_until(timeout, |s| (s.open == n).then_some(()))
            .is_some()
    }

    /// Bytes forwarded so far, over all connections:
    /// `(client→server, server→client)`.
    ///
    /// Bytes are counted as their write to the destination socket begins,
    /// so bytes a client or server has received are always counted; a write
    /// still blocked on a full socket buffer (or one that failed, ending its
    /// connection) is counted too.
    pub fn bytes_forwarded(&self) -> (u64, u64) {
        let state = self.shared.lock();
        (state.client_to_server, state.server_to_client)
    }

    /// Starts chaos mode (replacing a running one): at `start + k × every`
    /// for k = 1, 2, ..., picks a fault from `faults` with a deterministic
    /// RNG seeded by `seed` (the same seed and list give the same sequence),
    /// records it in [`Proxy::faults_injected`] and applies it. One-shot
    /// faults act on the connections open at that moment; standing faults
    /// other than [`Fault::Pass`] last `every / 2`, then [`Fault::Pass`] is
    /// restored (the restoration is not recorded, and is skipped if another
    /// fault was set meanwhile). A tick that comes late (busy machine) is
    /// applied at once; no pick is skipped.
    ///
    /// # Panics
    ///
    /// Panics if `faults` is empty or `every` is zero.
    pub fn start_chaos(&self, every: Duration, faults: Vec<Fault>, seed: u64) {
        assert!(!faults.is_empty(), "start_chaos needs at least one fault");
        assert!(!every.is_zero(), "start_chaos needs a non-zero period");
        self.runtime
            .request("start_chaos", |reply| Command::StartChaos {
                every,
                faults,
                seed,
                reply,
            });
    }

    /// Stops chaos mode (no-op if not running). If the standing fault was
    /// set by chaos mode, [`Fault::Pass`] is restored. Returns once no more
    /// chaos fault can be injected.
    pub fn stop_chaos(&self) {
        self.runtime
            .request("stop_chaos", |reply| Command::StopChaos { reply });
    }

    /// Every fault injected so far, by [`Proxy::set_fault`] (and
    /// [`Proxy::cut_all`]/[`Proxy::reset_all`]) or by chaos mode, with the
    /// time it was applied, oldest first.
    pub fn faults_injected(&self) -> Vec<(Instant, Fault)> {
        self.shared.lock().log.clone()
    }
}

// ---------------------------------------------------------------------------
// Runtime side: controller, accept loop, chaos.
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OneShot {
    Cut,
    Reset,
    HalfClose,
}

/// A command for the controller. Every command but `Shutdown` carries a
/// reply channel; the synchronous caller waits on it (with a timeout).
enum Command {
    OneShot {
        kind: OneShot,
        reply: std_mpsc::Sender<()>,
    },
    StartChaos {
        every: Duration,
        faults: Vec<Fault>,
        seed: u64,
        reply: std_mpsc::Sender<()>,
    },
    StopChaos {
        reply: std_mpsc::Sender<()>,
    },
    Shutdown,
}

impl RuntimeCommand for Command {
    fn shutdown() -> Self {
        Command::Shutdown
    }
}

/// A one-shot fault sent to one connection; `ack` is dropped once the
/// connection has acted on it (or ended).
struct Ctl {
    kind: OneShot,
    ack: oneshot::Sender<()>,
}

/// Everything the runtime-side tasks need.
struct Ctx {
    upstream: SocketAddr,
    shared: Arc<Shared>,
    registry: Mutex<Registry<mpsc::UnboundedSender<Ctl>>>,
}

impl Ctx {
    fn registry(&self) -> MutexGuard<'_, Registry<mpsc::UnboundedSender<Ctl>>> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn controller(
    ctx: Arc<Ctx>,
    listener: TcpListener,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let accept_task = tokio::spawn(accept_loop(listener, ctx.clone()));
    let mut chaos: Option<JoinHandle<()>> = None;
    while let Some(command) = commands.recv().await {
        match command {
            Command::OneShot { kind, reply } => {
                apply_one_shot(&ctx, kind).await;
                let _ = reply.send(());
            }
            Command::StartChaos {
                every,
                faults,
                seed,
                reply,
            } => {
                stop_chaos(&ctx, &mut chaos).await;
                chaos = Some(tokio::spawn(chaos_loop(ctx.clone(), every, faults, seed)));
                let _ = reply.send(());
            }
            Command::StopChaos { reply } => {
                stop_chaos(&ctx, &mut chaos).await;
                let _ = reply.send(());
            }
            Command::Shutdown => break,
        }
    }
    if let Some(task) = chaos.take() {
        task.abort();
        let _ = task.await;
    }
    accept_task.abort();
    // Awaiting guarantees the listener has been dropped (port freed).
    let _ = accept_task.await;
    kill_all(&ctx).await;
}

async fn stop_chaos(ctx: &Ctx, chaos: &mut Option<JoinHandle<()>>) {
    if let Some(task) = chaos.take() {
        task.abort();
        let _ = task.await;
        ctx.shared.revert_chaos(None);
    }
}

/// Aborts every connection task and waits until each has been dropped.
async fn kill_all(ctx: &Ctx) {
    let tasks = ctx.registry().drain_tasks();
    abort_and_wait(tasks).await;
}

/// Sends `kind` to every open connection and waits (bounded) until each has
/// acted on it.
async fn apply_one_shot(ctx: &Ctx, kind: OneShot) {
    let targets: Vec<mpsc::UnboundedSender<Ctl>> = ctx.registry().channels().cloned().collect();
    let mut acks = Vec::with_capacity(targets.len());
    for target in targets {
        let (ack, ack_rx) = oneshot::channel();
        if target.send(Ctl { kind, ack }).is_ok() {
            acks.push(ack_rx);
        }
    }
    wait_acks(acks, ONE_SHOT_TIMEOUT).await;
}

async fn accept_loop(listener: TcpListener, ctx: Arc<Ctx>) {
    loop {
        match listener.accept().await {
            Ok((tcp, _addr)) => {
                let fault = ctx.shared.standing.borrow().fault.clone();
                if fault == Fault::RefuseNew {
                    ctx.shared.update(|s| s.accepted += 1);
                    cut(tcp);
                    continue;
                }
                let blackhole = fault == Fault::BlackholeNew;
                let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
                // The runtime is single-threaded: the spawned task cannot run
                // before its entry is registered below (no await in between).
                ctx.registry().insert(ctl_tx, |id| {
                    ctx.shared.update(|s| {
                        s.accepted += 1;
                        s.open += 1;
                    });
                    tokio::spawn(serve(tcp, id, ctx.clone(), ctl_rx, blackhole))
                });
            }
            Err(e) => {
                // E.g. EMFILE: back off instead of spinning.
                eprintln!("tether test proxy: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// SplitMix64: a tiny deterministic generator, so that a chaos seed gives
/// the same sequence on every platform and toolchain.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

async fn chaos_loop(ctx: Arc<Ctx>, every: Duration, faults: Vec<Fault>, seed: u64) {
    let mut rng = SplitMix64(seed);
    let start = tokio::time::Instant::now();
    let mut at = start;
    loop {
        // A period too large to represent never ticks again.
        let Some(next) = at.checked_add(every) else {
            return std::future::pending().await;
        };
        at = next;
        tokio::time::sleep_until(at).await;
        let fault = faults[rng.below(faults.len())].clone();
        ctx.shared.log(&fault);
        match fault.one_shot() {
            Some(kind) => apply_one_shot(&ctx, kind).await,
            None if fault == Fault::Pass => {
                ctx.shared.set_standing(Fault::Pass, false);
            }
            None => {
                let generation = ctx.shared.set_standing(fault, true);
                if let Some(until) = at.checked_add(every / 2) {
                    tokio::time::sleep_until(until).await;
                } else {
                    std::future::pending::<()>().await;
                }
                ctx.shared.revert_chaos(Some(generation));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Serving one connection.
// ---------------------------------------------------------------------------

/// Removes the connection from the registry and fixes the open count when
/// the connection task ends or is aborted.
struct ConnGuard {
    id: u64,
    ctx: Arc<Ctx>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.ctx.registry().remove(self.id);
        self.ctx
            .shared
            .update(|s| s.open = s.open.saturating_sub(1));
    }
}

/// How a connection ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// Both directions finished (or the proxy is shutting down): just drop.
    Closed,
    /// FIN both sides.
    Cut,
    /// RST both sides.
    Reset,
}

/// What a pump returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// EOF read and propagated (FIN written).
    Done,
    /// A [`Fault::CutAfter`] limit was reached.
    Cut,
    /// An I/O error on either socket.
    Error,
}

/// Shuts the write side down (FIN), drains what has already arrived (so
/// that closing does not turn into a RST), and closes the socket.
fn cut(stream: TcpStream) {
    let Ok(stream) = stream.into_std() else {
        return;
    };
    let _ = stream.shutdown(Shutdown::Write);
    let mut stream = stream;
    let mut buf = [0_u8; 4096];
    let mut drained = 0;
    while drained < CUT_DRAIN_LIMIT {
        // The socket is non-blocking: this stops at WouldBlock.
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

/// Closes the socket with a RST (`SO_LINGER` 0).
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn serve(
    client: TcpStream,
    id: u64,
    ctx: Arc<Ctx>,
    mut ctl: mpsc::UnboundedReceiver<Ctl>,
    blackhole: bool,
) {
    let guard = ConnGuard {
        id,
        ctx: ctx.clone(),
    };
    let mut client = client;
    let _ = client.set_nodelay(true);
    // Acknowledgements released only once the sockets are closed.
    let mut acks = Vec::new();
    let mut half_closed = false;
    let mut server = None;
    let end = if blackhole {
        hold_blackholed(&mut client, &mut ctl, &mut acks, &mut half_closed).await
    } else {
        match connect_upstream(&mut client, &ctx, &mut ctl, &mut acks, &mut half_closed).await {
            Ok(mut stream) => {
                let _ = stream.set_nodelay(true);
                let end = relay(
                    &mut client,
                    &mut stream,
                    &ctx,
                    &mut ctl,
                    &mut acks,
                    half_closed,
                )
                .await;
                server = Some(stream);
                end
            }
            Err(end) => end,
        }
    };
    match end {
        End::Closed => {}
        End::Cut => {
            cut(client);
            if let Some(server) = server {
                cut(server);
            }
        }
        End::Reset => {
            reset(client);
            if let Some(server) = server {
                reset(server);
            }
        }
    }
    drop(guard);
    drop(acks);
}

/// Handles a one-shot fault arriving while the connection has only its
/// client socket. `Some(end)` ends the connection.
async fn client_only_ctl(
    ctl: Option<Ctl>,
    client: &mut TcpStream,
    acks: &mut Vec<oneshot::Sender<()>>,
    half_closed: &mut bool,
) -> Option<End> {
    let Some(Ctl { kind, ack }) = ctl else {
        return Some(End::Closed);
    };
    match kind {
        OneShot::Cut => {
            acks.push(ack);
            Some(End::Cut)
        }
        OneShot::Reset => {
            acks.push(ack);
            Some(End::Reset)
        }
        OneShot::HalfClose => {
            if !*half_closed {
                *half_closed = true;
                let _ = client.shutdown().await;
            }
            drop(ack);
            None
        }
    }
}

/// Reads and discards what the client sends, forwarding nothing, until the
/// client closes or a cut/reset.
async fn hold_blackholed(
    client: &mut TcpStream,
    ctl: &mut mpsc::UnboundedReceiver<Ctl>,
    acks: &mut Vec<oneshot::Sender<()>>,
    half_closed: &mut bool,
) -> End {
    let mut buf = vec![0_u8; CHUNK];
    loop {
        tokio::select! {
            read = client.read(&mut buf) => match read {
                Ok(0) => return End::Closed,
                Ok(_) => {}
                Err(_) => return End::Reset,
            },
            command = ctl.recv() => {
                if let Some(end) = client_only_ctl(command, client, acks, half_closed).await {
                    return end;
                }
            }
        }
    }
}

/// Connects to the upstream address (bounded), obeying one-shot faults
/// meanwhile. `Err(end)` if the connection ends instead.
async fn connect_upstream(
    client: &mut TcpStream,
    ctx: &Ctx,
    ctl: &mut mpsc::UnboundedReceiver<Ctl>,
    acks: &mut Vec<oneshot::Sender<()>>,
    half_closed: &mut bool,
) -> Result<TcpStream, End> {
    let connect = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(ctx.upstream));
    tokio::pin!(connect);
    loop {
        tokio::select! {
            connected = &mut connect => {
                return match connected {
                    Ok(Ok(stream)) => Ok(stream),
                    // Refused, failed or timed out: close the client (FIN).
                    Ok(Err(_)) | Err(_) => Err(End::Cut),
                };
            }
            command = ctl.recv() => {
                if let Some(end) = client_only_ctl(command, client, acks, half_closed).await {
                    return Err(end);
                }
            }
        }
    }
}

/// Relays both directions until both have ended, a one-shot fault ends the
/// connection, a [`Fault::CutAfter`] limit is reached, or an I/O error.
async fn relay(
    client: &mut TcpStream,
    server: &mut TcpStream,
    ctx: &Ctx,
    ctl: &mut mpsc::UnboundedReceiver<Ctl>,
    acks: &mut Vec<oneshot::Sender<()>>,
    half_closed: bool,
) -> End {
    let (client_read, client_write) = client.split();
    let (server_read, server_write) = server.split();
    // Hands the server→client pump a half-close request (with its ack).
    let (half_close_tx, half_close_rx) = oneshot::channel::<oneshot::Sender<()>>();
    let mut half_close_tx = Some(half_close_tx);
    let c2s = pump(
        Way::ClientToServer,
        client_read,
        server_write,
        ctx,
        None,
        false,
    );
    let s2c = pump(
        Way::ServerToClient,
        server_read,
        client_write,
        ctx,
        Some(half_close_rx),
        half_closed,
    );
    tokio::pin!(c2s, s2c);
    let mut c2s_done = false;
    let mut s2c_done = false;
    let outcome_end = |outcome: Outcome| match outcome {
        Outcome::Done => None,
        Outcome::Cut => Some(End::Cut),
        Outcome::Error => Some(End::Reset),
    };
    loop {
        if c2s_done && s2c_done {
            return End::Closed;
        }
        tokio::select! {
            outcome = &mut c2s, if !c2s_done => {
                if let Some(end) = outcome_end(outcome) {
                    return end;
                }
                c2s_done = true;
            }
            outcome = &mut s2c, if !s2c_done => {
                if let Some(end) = outcome_end(outcome) {
                    return end;
                }
                s2c_done = true;
            }
            command = ctl.recv() => match command {
                None => return End::Closed,
                Some(Ctl { kind: OneShot::Cut, ack }) => {
                    acks.push(ack);
                    return End::Cut;
                }
                Some(Ctl { kind: OneShot::Reset, ack }) => {
                    acks.push(ack);
                    return End::Reset;
                }
                Some(Ctl { kind: OneShot::HalfClose, ack }) => {
                    // If the pump is gone (FIN already forwarded), the ack
                    // is dropped here: nothing left to do.
                    if let Some(tx) = half_close_tx.take() {
                        let _ = tx.send(ack);
                    }
                }
            }
        }
    }
}

/// One chunk read from a socket.
struct Chunk {
    read_at: tokio::time::Instant,
    data: Vec<u8>,
}

/// Forwards one direction: a reader filling a bounded queue and a writer
/// applying the standing fault. Returns when the writer has finished (EOF
/// propagated, cut, or error) or the reader failed.
async fn pump<R, W>(
    way: Way,
    reader: R,
    writer: W,
    ctx: &Ctx,
    half_close: Option<oneshot::Receiver<oneshot::Sender<()>>>,
    discarding: bool,
) -> Outcome
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (tx, rx) = mpsc::channel(QUEUE_CHUNKS);
    let read = read_side(way, reader, tx, ctx.shared.standing.subscribe());
    let write = write_side(way, writer, rx, ctx, half_close, discarding);
    tokio::pin!(read, write);
    let mut read_done = false;
    loop {
        tokio::select! {
            result = &mut read, if !read_done => match result {
                Ok(()) => read_done = true,
                Err(_) => return Outcome::Error,
            },
            outcome = &mut write => return outcome,
        }
    }
}

/// Reads chunks into `queue` until EOF (then drops the queue's sender),
/// never while `way` is stalled.
async fn read_side<R: AsyncRead + Unpin>(
    way: Way,
    mut reader: R,
    queue: mpsc::Sender<Chunk>,
    mut standing: watch::Receiver<Standing>,
) -> io::Result<()> {
    let mut buf = vec![0_u8; CHUNK];
    loop {
        if standing.wait_for(|s| !s.fault.stalls(way)).await.is_err() {
            return Ok(());
        }
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        let chunk = Chunk {
            read_at: tokio::time::Instant::now(),
            data: buf[..n].to_vec(),
        };
        if queue.send(chunk).await.is_err() {
            return Ok(());
        }
    }
}

/// Resolves when a half-close is requested (with its ack); pending forever
/// if none can come.
async fn half_close_requested(
    slot: &mut Option<oneshot::Receiver<oneshot::Sender<()>>>,
) -> oneshot::Sender<()> {
    if let Some(rx) = slot {
        let requested = rx.await;
        *slot = None;
        if let Ok(ack) = requested {
            return ack;
        }
    }
    std::future::pending().await
}

/// What the writer does next with the current chunk.
enum Step {
    /// Write this many bytes of it.
    Write(usize),
    /// Wait until this instant (`None`: until the fault changes).
    Wait(Option<tokio::time::Instant>),
    /// End the connection with a cut.
    Cut,
}

/// An instant so far ahead that it is never reached in a test (about 30
/// years, like tokio's own "far future").
fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86_400 * 365 * 30)
}

/// Per-direction pacing for [`Fault::Throttle`] and [`Fault::SlowDrip`].
struct Pacer {
    /// When the next write may start.
    next: tokio::time::Instant,
    /// The standing fault's generation `next` belongs to.
    generation: u64,
}

impl Pacer {
    /// Records a write that started at `now` and may be followed by the
    /// next one after `cost`.
    fn wrote(&mut self, now: tokio::time::Instant, cost: Duration) {
        // Forgive small lateness (timer jitter) but never bank idle time.
        let base = if now.saturating_duration_since(self.next) <= PACER_SLACK {
            self.next
        } else {
            now
        };
        // A cost too large to represent means "never again".
        self.next = base.checked_add(cost).unwrap_or_else(far_future);
    }
}

/// Writes queued chunks, applying the standing fault before each write.
async fn write_side<W: AsyncWrite + Unpin>(
    way: Way,
    mut writer: W,
    mut queue: mpsc::Receiver<Chunk>,
    ctx: &Ctx,
    mut half_close: Option<oneshot::Receiver<oneshot::Sender<()>>>,
    mut discarding: bool,
) -> Outcome {
    let mut standing = ctx.shared.standing.subscribe();
    let mut pacer = Pacer {
        next: tokio::time::Instant::now(),
        generation: 0,
    };
    // Client→server bytes forwarded on this connection, and the
    // `CutAfter` baseline: (generation it applies to, count at that time).
    let mut forwarded: u64 = 0;
    let mut cut_base: Option<(u64, u64)> = None;

    loop {
        let chunk = tokio::select! {
            chunk = queue.recv() => chunk,
            ack = half_close_requested(&mut half_close) => {
                if !discarding {
                    discarding = true;
                    let _ = writer.shutdown().await;
                }
                drop(ack);
                continue;
            }
        };
        let Some(chunk) = chunk else {
            if discarding {
                return Outcome::Done;
            }
            return match writer.shutdown().await {
                Ok(()) => Outcome::Done,
                Err(_) => Outcome::Error,
            };
        };
        if discarding {
            continue;
        }
        let mut data = &chunk.data[..];
        while !data.is_empty() {
            let now = tokio::time::Instant::now();
            let current = standing.borrow_and_update().clone();
            if current.generation != pacer.generation {
                // A new fault starts its pacing afresh.
                pacer.next = now;
                pacer.generation = current.generation;
            }
            let step = match current.fault {
                ref fault if fault.stalls(way) => Step::Wait(None),
                Fault::Latency(delay) => {
                    let due = chunk.read_at.checked_add(delay).unwrap_or_else(far_future);
                    if now < due {
                        Step::Wait(Some(due))
                    } else {
                        Step::Write(data.len())
                    }
                }
                Fault::Throttle { bytes_per_sec } => {
                    if now < pacer.next {
                        Step::Wait(Some(pacer.next))
                    } else {
                        let slice =
                            bytes_per_sec.saturating_mul(THROTTLE_TICK.as_millis() as u64) / 1000;
                        Step::Write(data.len().min(slice.max(1) as usize))
                    }
                }
                Fault::SlowDrip { bytes, .. } => {
                    if now < pacer.next {
                        Step::Wait(Some(pacer.next))
                    } else {
                        Step::Write(data.len().min(bytes.max(1)))
                    }
                }
                Fault::CutAfter { bytes } if way == Way::ClientToServer => {
                    let base = match cut_base {
                        Some((generation, base)) if generation == current.generation => base,
                        _ => {
                            cut_base = Some((current.generation, forwarded));
                            forwarded
                        }
                    };
                    let remaining = bytes.saturating_sub(forwarded - base);
                    if remaining == 0 {
                        Step::Cut
                    } else {
                        Step::Write(
                            data.len()
                                .min(usize::try_from(remaining).unwrap_or(usize::MAX)),
                        )
                    }
                }
                _ => Step::Write(data.len()),
            };
            match step {
                Step::Cut => return Outcome::Cut,
                Step::Wait(until) => {
                    let sleep = async {
                        match until {
                            Some(until) => tokio::time::sleep_until(until).await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        changed = standing.changed() => {
                            if changed.is_err() {
                                return Outcome::Error;
                            }
                        }
                        () = sleep => {}
                        ack = half_close_requested(&mut half_close) => {
                            discarding = true;
                            let _ = writer.shutdown().await;
                            drop(ack);
                            break;
                        }
                    }
                }
                Step::Write(n) => {
                    // Counted before the write, so that whoever reads
                    // these bytes can rely on them being counted.
                    ctx.shared.add_forwarded(way, n);
                    let written = tokio::select! {
                        written = writer.write_all(&data[..n]) => written,
                        ack = half_close_requested(&mut half_close) => {
                            discarding = true;
                            let _ = writer.shutdown().await;
                            drop(ack);
                            break;
                        }
                    };
                    if written.is_err() {
                        return Outcome::Error;
                    }
                    data = &data[n..];
                    match current.fault {
                        Fault::Throttle { bytes_per_sec } => {
                            let cost =
                                Duration::from_secs_f64(n as f64 / bytes_per_sec.max(1) as f64);
                            pacer.wrote(now, cost);
                        }
                        Fault::SlowDrip { every, .. } => pacer.wrote(now, every),
                        _ => {}
                    }
                    if way == Way::ClientToServer {
                        forwarded += n as u64;
                        if let Fault::CutAfter { bytes } = current.fault {
                            let base = cut_base.map_or(0, |(_, base)| base);
                            if forwarded - base >= bytes {
                                return Outcome::Cut;
                            }
                        }
                    }
                }
            }
        }
    }
}
