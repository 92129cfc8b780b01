//! Small runtime-side helpers used by the peer, the proxy and the reference
//! server alike.

use std::collections::HashMap;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Duration;

/// Aborts every task, then waits until each has been dropped (so the sockets
/// they owned are closed when this returns). All are aborted before the
/// first await so that none keeps running while another is awaited.
pub(crate) async fn abort_and_wait(tasks: Vec<JoinHandle<()>>) {
    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// Waits until every acknowledgement has arrived (or its sender was
/// dropped), giving up on the rest once `timeout` has elapsed overall.
pub(crate) async fn wait_acks(acks: Vec<oneshot::Receiver<()>>, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    for ack in acks {
        // Ok or Err(closed) both mean "done"; Elapsed means "gave up".
        let _ = tokio::time::timeout_at(deadline, ack).await;
    }
}

/// The connection tasks of a listener (peer or proxy), by id, each with the
/// channel `E` its controller uses to reach it. Kept in one type so that
/// registering, forgetting and killing connections work the same for both.
pub(crate) struct Registry<E> {
    next_id: u64,
    conns: HashMap<u64, Conn<E>>,
}

struct Conn<E> {
    /// The connection's task; `None` only once taken to be killed.
    task: Option<JoinHandle<()>>,
    channel: E,
}

impl<E> Default for Registry<E> {
    fn default() -> Self {
        Registry {
            next_id: 0,
            conns: HashMap::new(),
        }
    }
}

impl<E> Registry<E> {
    /// Registers the task `spawn` starts for a new connection, under a fresh
    /// id (passed to `spawn`). On a single-threaded runtime the task cannot
    /// run before it is registered, as long as the registry stays locked.
    pub(crate) fn insert(&mut self, channel: E, spawn: impl FnOnce(u64) -> JoinHandle<()>) {
        let id = self.next_id;
        self.next_id += 1;
        let task = spawn(id);
        let conn = Conn {
            task: Some(task),
            channel,
        };
        self.conns.insert(id, conn);
    }

    /// Forgets connection `id` (when its task ends). Dropping the task's own
    /// `JoinHandle` merely detaches it.
    pub(crate) fn remove(&mut self, id: u64) {
        self.conns.remove(&id);
    }

    /// The channel of connection `id`, if it is still registered.
    pub(crate) fn channel_mut(&mut self, id: u64) -> Option<&mut E> {
        self.conns.get_mut(&id).map(|conn| &mut conn.channel)
    }

    /// The channels of every registered connection.
    pub(crate) fn channels(&self) -> impl Iterator<Item = &E> {
        self.conns.values().map(|conn| &conn.channel)
    }

    /// Empties the registry and returns the tasks, to be killed with
    /// [`abort_and_wait`] once the registry is unlocked (an aborted task's
    /// guard locks it to remove itself).
    pub(crate) fn drain_tasks(&mut self) -> Vec<JoinHandle<()>> {
        self.conns
            .drain()
            .filter_map(|(_, conn)| conn.task)
            .collect()
    }
}
