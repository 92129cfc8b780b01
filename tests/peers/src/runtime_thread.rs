//! The scaffolding shared by [`Peer`](crate::Peer) and
//! [`Proxy`](crate::Proxy): a background OS thread running a private
//! single-threaded tokio runtime, driven by commands from synchronous code.
//!
//! Both handles need the same guarantees (start-up, every command and the
//! shutdown on drop are bounded in time, and a wedged runtime thread is
//! detached with a warning rather than hanging the test), so they live here
//! once; what runs on the runtime stays with each handle.

use std::future::Future;
use std::io;
use std::sync::{mpsc as std_mpsc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// How long starting waits for the runtime thread to be listening.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a blocking command waits for the runtime's answer before
/// panicking. Larger than every internal bound of the runtime side.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);
/// How long `Drop` waits for the runtime thread to finish.
const DROP_TIMEOUT: Duration = Duration::from_secs(5);

/// A command type whose controller stops (and tears everything down) on
/// [`RuntimeCommand::shutdown`].
pub(crate) trait RuntimeCommand: Send + 'static {
    /// The command sent when the handle is dropped.
    fn shutdown() -> Self;
}

/// Owns the runtime thread of one handle: the command sender, the "done"
/// signal and the join handle. Dropping it sends the shutdown command, waits
/// (bounded) for the thread to finish, then joins it or, if it is stuck,
/// detaches it with a warning.
pub(crate) struct RuntimeThread<C: RuntimeCommand> {
    /// `"tether test peer"`, ...: prefixes messages (and names the thread).
    what: &'static str,
    port: u16,
    commands: mpsc::UnboundedSender<C>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Disconnects when the runtime thread has finished.
    done: Mutex<std_mpsc::Receiver<()>>,
}

impl<C: RuntimeCommand> RuntimeThread<C> {
    /// Spawns the runtime thread and returns once it is listening.
    ///
    /// On the runtime, `bind` creates the listener; then `serve` gets the
    /// listener, its port and the command receiver, and its future is
    /// driven until it returns (the controller, which returns on
    /// [`RuntimeCommand::shutdown`]). Errors from building the runtime or
    /// from `bind`, and a start-up that takes too long, are returned.
    pub(crate) fn start<Fut>(
        what: &'static str,
        bind: impl FnOnce() -> io::Result<TcpListener> + Send + 'static,
        serve: impl FnOnce(TcpListener, u16, mpsc::UnboundedReceiver<C>) -> Fut + Send + 'static,
    ) -> io::Result<Self>
    where
        Fut: Future<Output = ()>,
    {
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = std_mpsc::channel::<io::Result<u16>>();
        let (done_tx, done_rx) = std_mpsc::channel::<()>();

        let thread = std::thread::Builder::new()
            .name(what.replace(' ', "-"))
            .spawn(move || {
                // Dropped when the thread ends: that is the "done" signal.
                let _done = done_tx;
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                // Binding needs the runtime's reactor, hence `block_on`.
                let bound = runtime.block_on(async {
                    let listener = bind()?;
                    let port = listener.local_addr()?.port();
                    Ok::<_, io::Error>((listener, port))
                });
                let (listener, port) = match bound {
                    Ok(bound) => bound,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let controller = serve(listener, port, command_rx);
                let _ = ready_tx.send(Ok(port));
                runtime.block_on(controller);
                runtime.shutdown_timeout(Duration::from_secs(1));
            })?;

        let port = match ready_rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(Ok(port)) => port,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{what}: runtime thread did not start listening in time"),
                ))
            }
        };
        Ok(RuntimeThread {
            what,
            port,
            commands,
            thread: Mutex::new(Some(thread)),
            done: Mutex::new(done_rx),
        })
    }

    /// The port the listener was bound to.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Sends a command to the runtime and waits (bounded) for its answer.
    ///
    /// # Panics
    ///
    /// Panics if the runtime thread is gone or does not answer in time:
    /// tests must not hang on a wedged peer.
    pub(crate) fn request<T>(&self, what: &str, make: impl FnOnce(std_mpsc::Sender<T>) -> C) -> T {
        let (reply, answer) = std_mpsc::channel();
        if self.commands.send(make(reply)).is_err() {
            panic!("{}: runtime thread is gone, cannot {what}", self.what);
        }
        match answer.recv_timeout(COMMAND_TIMEOUT) {
            Ok(value) => value,
            Err(e) => panic!("{}: no answer to {what}: {e}", self.what),
        }
    }
}

impl<C: RuntimeCommand> Drop for RuntimeThread<C> {
    fn drop(&mut self) {
        let _ = self.commands.send(C::shutdown());
        let finished = {
            let done = self.done.lock().unwrap_or_else(PoisonError::into_inner);
            !matches!(
                done.recv_timeout(DROP_TIMEOUT),
                Err(std_mpsc::RecvTimeoutError::Timeout)
            )
        };
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match thread {
            Some(thread) if finished => {
                let _ = thread.join();
            }
            Some(_) => eprintln!(
                "{} on port {}: runtime thread did not stop within {:?}; detaching it",
                self.what, self.port, DROP_TIMEOUT
            ),
            None => {}
        }
    }
}
