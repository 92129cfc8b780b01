//! The write half of a link. A write runs as an owned future (it takes the sink and gives it
//! back), so reading goes on while a write is blocked: a client that stops reading while it
//! waits for its flush deadlocks as soon as the peer's echoes fill the socket buffers.

use std::future::Future;
use std::pin::Pin;

use futures_util::{Sink, SinkExt};
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};

type WriteFuture<S> =
    Pin<Box<dyn Future<Output = (S, Vec<WsMessage>, Result<(), WsError>)> + Send>>;

/// The sink while idle, or the write that owns it.
pub(crate) struct Writer<S> {
    /// The write half while no write is running.
    sink: Option<S>,
    /// The running write; it owns the sink until it completes.
    write: Option<WriteFuture<S>>,
    /// A reusable buffer for the next write.
    spare: Vec<WsMessage>,
}

impl<S> Writer<S>
where
    S: Sink<WsMessage, Error = WsError> + Unpin + Send + 'static,
{
    pub(crate) fn new(sink: S) -> Self {
        Writer {
            sink: Some(sink),
            write: None,
            spare: Vec::with_capacity(64),
        }
    }

    /// No write is running.
    pub(crate) fn is_idle(&self) -> bool {
        self.sink.is_some()
    }

    /// A write is running (its messages may or may not have reached the peer).
    pub(crate) fn is_writing(&self) -> bool {
        self.write.is_some()
    }

    /// An empty buffer to fill for the next write, if no write is running.
    pub(crate) fn next_buf(&mut self) -> Option<Vec<WsMessage>> {
        (self.write.is_none() && self.sink.is_some()).then(|| std::mem::take(&mut self.spare))
    }

    /// Write `buf` (from [`Writer::next_buf`]): feed it all, then flush once (one syscall
    /// burst per batch, not per message). Returns false, and writes nothing, if it is empty.
    pub(crate) fn start(&mut self, mut buf: Vec<WsMessage>) -> bool {
        let sink = match self.sink.take() {
            Some(sink) if !buf.is_empty() => sink,
            sink => {
                self.sink = sink;
                buf.clear();
                self.spare = buf;
                return false;
            }
        };
        self.write = Some(Box::pin(async move {
            let mut sink = sink;
            let mut result = Ok(());
            for message in buf.drain(..) {
                if let Err(e) = sink.feed(message).await {
                    result = Err(e);
                    break;
                }
            }
            if result.is_ok() {
                result = sink.flush().await;
            }
            buf.clear();
            (sink, buf, result)
        }));
        true
    }

    /// The running write's result; pending while none runs. Cancel-safe: the write goes on
    /// and a later call gets its result.
    pub(crate) async fn finished(&mut self) -> Result<(), WsError> {
        let (sink, mut buf, result) = match self.write.as_mut() {
            Some(write) => write.await,
            None => std::future::pending().await,
        };
        self.write = None;
        self.sink = Some(sink);
        buf.clear();
        self.spare = buf;
        result
    }

    /// The sink, while no write runs.
    pub(crate) fn sink_mut(&mut self) -> Option<&mut S> {
        self.sink.as_mut()
    }

    /// Take the sink (to reunite it with the stream), while no write runs.
    pub(crate) fn take_sink(&mut self) -> Option<S> {
        self.sink.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll};

    /// A sink that records what it is given, flushes and fails on demand.
    #[derive(Clone, Default)]
    struct Recorder {
        fed: Arc<Mutex<Vec<WsMessage>>>,
        flushes: Arc<Mutex<usize>>,
        fail_on: Option<&'static str>,
    }

    impl Sink<WsMessage> for Recorder {
        type Error = WsError;

        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), WsError>> {
            Poll::Ready(Ok(()))
        }

        fn start_send(self: Pin<&mut Self>, item: WsMessage) -> Result<(), WsError> {
            if self.fail_on.is_some_and(|t| item == WsMessage::text(t)) {
                return Err(WsError::ConnectionClosed);
            }
            self.fed.lock().expect("lock").push(item);
            Ok(())
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), WsError>> {
            *self.flushes.lock().expect("lock") += 1;
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), WsError>> {
            Poll::Ready(Ok(()))
        }
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn a_batch_is_fed_whole_then_flushed_once() {
        let sink = Recorder::default();
        let mut w = Writer::new(sink.clone());
        assert!(w.is_idle() && !w.is_writing());
        let mut buf = w.next_buf().expect("idle");
        buf.extend([WsMessage::text("a"), WsMessage::text("b")]);
        assert!(w.start(buf));
        assert!(!w.is_idle() && w.is_writing());
        assert!(w.next_buf().is_none(), "one write at a time");
        assert!(block_on(w.finished()).is_ok());
        assert!(w.is_idle() && !w.is_writing());
        assert_eq!(
            *sink.fed.lock().expect("lock"),
            ["a", "b"].map(WsMessage::text)
        );
        assert_eq!(*sink.flushes.lock().expect("lock"), 1);
        assert!(
            w.next_buf().is_some_and(|b| b.is_empty()),
            "the buffer comes back empty"
        );
    }

    #[test]
    fn an_empty_batch_writes_nothing() {
        let sink = Recorder::default();
        let mut w = Writer::new(sink.clone());
        let buf = w.next_buf().expect("idle");
        assert!(!w.start(buf));
        assert!(w.is_idle() && !w.is_writing());
        assert_eq!(*sink.flushes.lock().expect("lock"), 0);
    }

    #[test]
    fn a_failed_write_stops_and_gives_the_sink_back() {
        let sink = Recorder {
            fail_on: Some("bad"),
            ..Recorder::default()
        };
        let mut w = Writer::new(sink.clone());
        let mut buf = w.next_buf().expect("idle");
        buf.extend(["a", "bad", "c"].map(WsMessage::text));
        w.start(buf);
        assert!(block_on(w.finished()).is_err());
        assert_eq!(*sink.fed.lock().expect("lock"), [WsMessage::text("a")]);
        assert_eq!(
            *sink.flushes.lock().expect("lock"),
            0,
            "no flush after a failure"
        );
        assert!(w.sink_mut().is_some());
        assert!(w.take_sink().is_some());
    }
}
