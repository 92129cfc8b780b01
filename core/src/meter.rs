//! A byte counter under the WebSocket: how much the socket has accepted so far.
//!
//! The heartbeat needs it. A ping queued behind a large frame cannot reach the peer before that
//! frame has, so silence after it proves nothing while the frame is still going out; but a link
//! on which nothing moves for the pong timeout is dead all the same (a peer that stopped
//! reading, a stalled path). The counter tells the two apart without looking into the
//! WebSocket's buffers. (The kernel's share is kept small by `TCP_NOTSENT_LOWAT` where the
//! system has it, see `connect.rs`, so that a write stays pending while its bytes trickle out.)

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// What the socket reports, shared with the session.
#[derive(Debug, Default)]
struct Counts {
    /// Bytes the socket accepted.
    written: AtomicU64,
    /// When the socket first refused bytes (it was full) since the session last asked.
    full_since: Mutex<Option<Instant>>,
}

/// A TCP stream that counts the bytes written to it; reads pass through untouched.
#[derive(Debug)]
pub(crate) struct Metered {
    inner: TcpStream,
    counts: Arc<Counts>,
}

impl Metered {
    pub(crate) fn new(inner: TcpStream) -> Self {
        Metered {
            inner,
            counts: Arc::default(),
        }
    }

    /// A handle that reads the count while the stream is owned elsewhere.
    pub(crate) fn meter(&self) -> WriteMeter {
        WriteMeter(self.counts.clone())
    }

    fn count(&self, polled: &Poll<io::Result<usize>>) {
        match polled {
            Poll::Ready(Ok(n)) => {
                self.counts.written.fetch_add(*n as u64, Ordering::Relaxed);
            }
            Poll::Pending => {
                // Only when the socket is full, so a fast link pays nothing for this.
                let mut full = lock(&self.counts.full_since);
                if full.is_none() {
                    *full = Some(Instant::now());
                }
            }
            Poll::Ready(Err(_)) => {}
        }
    }
}

/// Reads how many bytes a link's socket has accepted.
#[derive(Clone, Debug)]
pub(crate) struct WriteMeter(Arc<Counts>);

impl WriteMeter {
    /// Bytes written to the socket since the connection was made.
    pub(crate) fn written(&self) -> u64 {
        self.0.written.load(Ordering::Relaxed)
    }

    /// When the socket was first full since the last call.
    fn take_full_since(&self) -> Option<Instant> {
        lock(&self.0.full_since).take()
    }
}

impl AsyncRead for Metered {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Metered {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.count(&polled);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.count(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain data: a panic elsewhere cannot leave it inconsistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Estimates when the bytes written so far will have left the path to the peer.
///
/// The queues between the socket and the slowest hop (the kernel's unsent share, the bytes in
/// flight, a relay's, a modem's or a proxy's buffer) are invisible from here and their size is
/// not known; nor is the pace of the slowest hop (the pace at which the socket takes bytes is
/// not it: measured on a throttled relay whose receive buffer keeps growing, it was half as fast
/// again as the link). What is known is how long a write kept the socket full: the path was
/// saturated for that long, and the queues it filled in that time need about as long again to
/// drain at worst. So a write that kept the socket full for `S` is taken to leave the path `S`
/// after it completed (the heartbeat caps that, see `DRAIN_GRACE_TIMEOUTS`). A write that never
/// found the socket full (an idle or a fast link) adds nothing, so an idle link's dead-link
/// bound is unchanged.
#[derive(Debug)]
pub(crate) struct Drain {
    meter: WriteMeter,
    /// When everything written so far is estimated to have left.
    clears_at: Option<Instant>,
}

impl Drain {
    pub(crate) fn new(meter: WriteMeter) -> Self {
        Drain {
            meter,
            clears_at: None,
        }
    }

    /// Bytes the socket accepted so far.
    pub(crate) fn written(&self) -> u64 {
        self.meter.written()
    }

    /// A write starts.
    pub(crate) fn write_started(&mut self) {
        self.meter.take_full_since();
    }

    /// The running write completed. Returns when the bytes queued before it started are
    /// estimated to have left: what a frame at the front of the write waited behind.
    pub(crate) fn write_finished(&mut self) -> Option<Instant> {
        let now = Instant::now();
        let ahead = self.clears_at.filter(|at| *at > now);
        if let Some(full_since) = self.meter.take_full_since() {
            let clears = now + now.duration_since(full_since);
            self.clears_at = Some(ahead.map_or(clears, |at| at.max(clears)));
        }
        ahead
    }
}

#[cfg(test)]
impl WriteMeter {
    /// A meter with no socket, moved by hand: for tests of what reads it.
    pub(crate) fn fake() -> Self {
        WriteMeter(Arc::default())
    }

    /// The socket accepted `n` more bytes.
    pub(crate) fn accept(&self, n: u64) {
        self.0.written.fetch_add(n, Ordering::Relaxed);
    }

    /// The socket refused bytes (it is full) since `since`.
    pub(crate) fn full_since(&self, since: Instant) {
        *lock(&self.0.full_since) = Some(since);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_write_that_kept_the_socket_full_delays_what_follows() {
        let meter = WriteMeter::fake();
        let mut drain = Drain::new(meter.clone());
        drain.write_started();
        assert_eq!(
            drain.write_finished(),
            None,
            "a write that never found it full"
        );
        drain.write_started();
        meter.full_since(Instant::now() - Duration::from_secs(2));
        assert_eq!(
            drain.write_finished(),
            None,
            "nothing was ahead of this write"
        );
        drain.write_started();
        let ahead = drain
            .write_finished()
            .expect("the previous write still drains");
        assert!(ahead > Instant::now() + Duration::from_secs(1), "{ahead:?}");
        meter.accept(10);
        assert_eq!(drain.written(), 10);
    }
}
