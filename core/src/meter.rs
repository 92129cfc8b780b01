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
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
/// What the socket reports, shared with the session.
#[derive(Debug, Default)]
struct Counts {
    /// Bytes the socket accepted.
    written: AtomicU64,
    /// Progress seen while the socket was full, since the session last reset it.
    samples: Mutex<Samples>,
}

/// Two points (when, bytes accepted) of a write that keeps the socket full, at least
/// [`SAMPLE_SPACING`] apart: the link's recent pace, not the burst at the write's start.
#[derive(Debug, Default, Clone, Copy)]
struct Samples {
    older: Option<(Instant, u64)>,
    newer: Option<(Instant, u64)>,
}

/// Spacing of the pace samples.
const SAMPLE_SPACING: Duration = Duration::from_millis(500);

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
                let now = Instant::now();
                let written = self.counts.written.load(Ordering::Relaxed);
                let mut samples = lock(&self.counts.samples);
                if samples
                    .newer
                    .is_none_or(|(at, _)| now.duration_since(at) >= SAMPLE_SPACING)
                {
                    samples.older = samples.newer;
                    samples.newer = Some((now, written));
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

    /// The pace samples since the last call.
    fn take_samples(&self) -> Samples {
        std::mem::take(&mut *lock(&self.0.samples))
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
/// A write that keeps the socket full measures the link's pace `R` (bytes per second accepted
/// over its last few hundred milliseconds, when the path is full and takes only what leaves at
/// the far end). The bytes of a write then need `size / R` to leave, counted from when the write
/// started or from when what was queued before it has left, whichever is later. A frame written
/// next waits until then. The bytes the path holds (the kernel's unsent share, the bytes in
/// flight, a relay's or a modem's queue) are thereby accounted for without being visible.
#[derive(Debug)]
pub(crate) struct Drain {
    meter: WriteMeter,
    /// The running write: when it started and the bytes accepted by then.
    started: Option<(Instant, u64)>,
    /// Bytes per second, measured on the last write that kept the socket full.
    rate: Option<f64>,
    /// When everything written so far is estimated to have left.
    clears_at: Option<Instant>,
}

/// A pace measured over less time than this is not used.
const MIN_MEASURE: Duration = Duration::from_millis(100);

impl Drain {
    pub(crate) fn new(meter: WriteMeter) -> Self {
        Drain {
            meter,
            started: None,
            rate: None,
            clears_at: None,
        }
    }

    /// Bytes the socket accepted so far.
    pub(crate) fn written(&self) -> u64 {
        self.meter.written()
    }

    /// A write starts.
    pub(crate) fn write_started(&mut self) {
        self.meter.take_samples();
        self.started = Some((Instant::now(), self.meter.written()));
    }

    /// The running write completed. Returns when the bytes queued before it started are
    /// estimated to have left: what a frame at the front of the write waited behind.
    pub(crate) fn write_finished(&mut self) -> Option<Instant> {
        let now = Instant::now();
        let ahead = self.clears_at.filter(|at| *at > now);
        let Some((t0, w0)) = self.started.take() else {
            return ahead;
        };
        let w1 = self.meter.written();
        let samples = self.meter.take_samples();
        if let Some((at, w)) = samples.older.or(samples.newer) {
            let span = now.duration_since(at);
            if span >= MIN_MEASURE && w1 > w {
                self.rate = Some((w1 - w) as f64 / span.as_secs_f64());
            }
        }
        if let Some(rate) = self.rate {
            let base = ahead.map_or(t0, |at| at.max(t0));
            let secs = w1.saturating_sub(w0) as f64 / rate;
            self.clears_at = Some(base + Duration::from_secs_f64(secs.min(86_400.0)));
        }
        ahead
    }
}
