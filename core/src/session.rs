//! The session task: one per client, on the internal runtime. It owns the connection life
//! cycle (connect → open → ready → pump → reconnect or close) and is the only writer of the
//! state.
//!
//! The pump is one `select!` loop over reading, writing, commands and timers. Writes run as an
//! owned future (it takes the sink and gives it back), so reading goes on while a write is
//! blocked: a client that stops reading while it waits for its flush deadlocks as soon as the
//! peer's echoes fill the socket buffers.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};

use crate::config::{Config, Protocol};
use crate::connect::{write_meter, Connector, Ws};
use crate::envelope::{control, Codec, Inbound, Welcome};
use crate::error::{Disconnect, SendFailure};
use crate::event::{Event, IdRange, Message, MessageId, State, Text};
use crate::heartbeat::Heartbeat;
use crate::outbox::{Batch, Expiry, Payload};
use crate::resume::ResumeState;
use crate::retry::{backoff_delay, RetryDecision};
use crate::shared::Shared;

/// Requests from the client handle. Messages do not travel here: they go through the outbox.
#[derive(Debug)]
pub(crate) enum Command {
    Close { code: u16, reason: String },
}

type Sink = SplitSink<Ws, WsMessage>;
type Stream = SplitStream<Ws>;
type WriteFuture =
    Pin<Box<dyn Future<Output = (Sink, Vec<WsMessage>, Result<(), WsError>)> + Send>>;

/// How one link ended.
enum LinkEnd {
    /// The application's close finished (or timed out).
    UserClosed { code: u16, reason: String },
    /// The link broke; the retry policy decides what happens next.
    Lost(Disconnect),
}

/// Progress of a user-requested close on an open link.
struct Closing {
    code: u16,
    reason: String,
    deadline: Instant,
    frame_sent: bool,
}

impl Closing {
    /// The link ends as the application's close.
    fn ended(self) -> LinkEnd {
        LinkEnd::UserClosed {
            code: self.code,
            reason: self.reason,
        }
    }
}

/// Time allowed to exchange the closing frames after a failure, where waiting longer helps no one.
const BEST_EFFORT_CLOSE: Duration = Duration::from_secs(1);

pub(crate) struct Session {
    pub shared: Arc<Shared>,
    pub config: Arc<Config>,
    pub connector: Connector,
    pub commands: UnboundedReceiver<Command>,
    /// Envelope mode only.
    pub codec: Option<Codec>,
    /// Envelope mode: the highest server message id delivered to the application (for
    /// de-duplication, and sent in `hello`).
    pub last_server_id: u64,
    /// Envelope mode: the stream epochs and the ack high-water mark (revision 2).
    pub resume: ResumeState,
}

/// An inbound message waiting for room in the event queue, with its envelope id.
type PendingInbound = (Message, Option<u64>);

impl Session {
    pub(crate) async fn run(mut self) {
        let mut guard = EndGuard {
            shared: self.shared.clone(),
            finished: false,
        };
        let reason = self.connect_loop().await;
        finish(&self.shared, reason);
        guard.finished = true;
    }

    /// Connect, pump, and reconnect until the client closes for good; returns why.
    async fn connect_loop(&mut self) -> Disconnect {
        let policy = self.config.reconnect.clone();
        let mut attempt: u32 = 0;
        let mut outage_started: Option<Instant> = None;
        let mut connected_before = false;
        loop {
            self.shared.set_state(State::Connecting);
            let connected = tokio::select! {
                result = self.connector.connect() => result,
                command = self.commands.recv() => return user_close(command),
            };
            let reason = match connected {
                Err(e) => Disconnect::ConnectFailed(e),
                Ok((ws, protocol)) => {
                    tracing::info!(url = %self.config.url, ?protocol, "connected");
                    if connected_before {
                        self.shared
                            .counters
                            .reconnects
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    connected_before = true;
                    self.shared.set_state(State::Open);
                    let mut ws = ws;
                    let handshake = match &self.codec {
                        None => Ok(None),
                        Some(codec) => tokio::select! {
                            result = handshake(codec, &self.config, &self.resume, self.last_server_id, &mut ws) => result.map(Some),
                            command = self.commands.recv() => return user_close(command),
                        },
                    };
                    let up_since = Instant::now();
                    let end = match handshake {
                        Ok(welcome) => {
                            if let Some(welcome) = welcome {
                                self.welcomed(&welcome);
                            }
                            self.shared.set_state(State::Ready);
                            self.run_link(ws).await
                        }
                        Err(reason) => LinkEnd::Lost(reason),
                    };
                    if up_since.elapsed() >= policy.min_uptime {
                        attempt = 0;
                        outage_started = None;
                    }
                    match end {
                        LinkEnd::UserClosed { code, reason } => {
                            let reason = Disconnect::UserClose { code, reason };
                            self.shared.events.emit(Event::Disconnected {
                                reason: reason.clone(),
                                will_reconnect: false,
                            });
                            return reason;
                        }
                        LinkEnd::Lost(reason) => reason,
                    }
                }
            };
            tracing::warn!(%reason, "disconnected");

            let mut retry = policy.enabled && (policy.classifier)(&reason) == RetryDecision::Retry;
            let mut final_reason = reason.clone();
            let mut delay = Duration::ZERO;
            if retry {
                attempt = attempt.saturating_add(1);
                let started = *outage_started.get_or_insert_with(Instant::now);
                delay = backoff_delay(&policy, attempt);
                let exhausted = match (policy.max_attempts, policy.max_retry_duration) {
                    (Some(max), _) if attempt > max => {
                        Some(format!("{max} reconnect attempts used"))
                    }
                    (_, Some(cap)) if started.elapsed() + delay > cap => {
                        Some(format!("retry time cap of {cap:?} reached"))
                    }
                    _ => None,
                };
                if let Some(why) = exhausted {
                    retry = false;
                    final_reason = Disconnect::RetriesExhausted {
                        reason: why,
                        last: Box::new(reason.clone()),
                    };
                }
            }
            self.shared.events.emit(Event::Disconnected {
                reason,
                will_reconnect: retry,
            });
            if !retry {
                return final_reason;
            }
            self.shared.set_state(State::Reconnecting);
            self.shared
                .events
                .emit(Event::Reconnecting { attempt, delay });
            tracing::info!(attempt, ?delay, "reconnecting");
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                command = self.commands.recv() => return user_close(command),
            }
        }
    }

    /// Envelope mode, after `welcome`: what the server already has counts as acked and the
    /// rest is rewound to be written again, in order, before anything new. If a side lost its
    /// state (`resume.rs`), the server's new stream is not de-duplicated against the old one,
    /// and the application is told ([`Event::SessionReset`]) before it sees `Ready`.
    fn welcomed(&mut self, welcome: &Welcome) {
        let reset = self.resume.on_welcome(welcome, self.last_server_id);
        self.shared.set_server_epoch(self.resume.server_epoch());
        let last = welcome.last;
        let acked = self.shared.outbox.ack_upto(last);
        self.report_acked(&acked);
        self.shared.outbox.rewind();
        tracing::debug!(last, already_acked = acked.len(), "welcome");
        if let Some(mut reset) = reset {
            if reset.server_lost_state {
                // Never drop the new stream's messages as duplicates of the old one's.
                self.last_server_id = 0;
            }
            reset.resends_may_duplicate = self
                .shared
                .outbox
                .written_before()
                .map(|(first, last)| IdRange { first, last });
            tracing::warn!(?reset, "session reset: a side lost its session state");
            self.shared.events.emit(Event::SessionReset(reset));
        }
    }

    /// A link the peer closed with 1009 ("message too big"): one strike against the largest
    /// message in flight; at [`crate::TOO_LARGE_STRIKES`] it fails, so it does not block the
    /// queue forever (it would be written first again on every link).
    fn refused_too_large(&self, reason: &Disconnect) {
        if !matches!(reason, Disconnect::ServerClosed { code: 1009, .. }) {
            return;
        }
        let codec = self.codec.as_ref();
        let wire_len = |p: &Payload| codec.map_or(p.len(), |c| c.wire_len_bound(p));
        let strikes = crate::TOO_LARGE_STRIKES;
        if let Some((id, attempts)) = self.shared.outbox.refused_too_large(strikes, wire_len) {
            tracing::warn!(%id, attempts, "the server refused the message as too large: failed");
            self.shared
                .report_failed(&[id], &SendFailure::RefusedTooLarge { attempts });
        }
    }

    fn report_acked(&mut self, ids: &[MessageId]) {
        self.resume.note_acked(ids);
        self.shared
            .counters
            .messages_acked
            .fetch_add(ids.len() as u64, Ordering::Relaxed);
        for id in ids {
            self.shared.events.emit(Event::Acked { id: *id });
        }
    }

    /// Pump one open link until it ends.
    async fn run_link(&mut self, ws: Ws) -> LinkEnd {
        let meter = write_meter(&ws);
        let (sink, stream) = ws.split();
        let mut link = Link {
            sink: Some(sink),
            stream,
            write: None,
            spare_buf: Vec::with_capacity(64),
            taken: Vec::with_capacity(64),
            control: Vec::new(),
            ack_due: false,
            app_ping_out: None,
            batch: Batch::default(),
            heartbeat: Heartbeat::new(self.config.pong_timeout, meter),
            linger: false,
        };
        // While the link is up, events gather in one batch that goes to the application when
        // the session has no more work at hand (or the batch is full): one channel operation
        // and at most one wake-up of the application per round of work, not per message, and
        // the application does not preempt the session while it still has frames to read or
        // write. Every path out of `pump` that awaits first closes the batch itself.
        self.shared.events.open_batch();
        let end = self.pump(&mut link).await;
        self.shared.events.close_batch();
        if link.write.is_some() {
            // The batch may or may not have reached the peer; keep it queued for the next link.
            self.shared.outbox.abort_batch();
        }
        if let LinkEnd::Lost(reason) = &end {
            self.refused_too_large(reason);
        }
        if link.linger {
            if let Some(sink) = link.sink.take() {
                linger_after_close(sink, link.stream).await;
            }
        }
        end
    }

    async fn pump(&mut self, link: &mut Link) -> LinkEnd {
        let shared = self.shared.clone();
        let config = self.config.clone();
        let mut pending_inbound: Option<PendingInbound> = None;
        let envelope = config.protocol == Protocol::Envelope;
        let mut ping_timer = config.ping_interval.map(|every| {
            let mut timer = tokio::time::interval_at(Instant::now() + every, every);
            timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
            timer
        });
        let mut ping_due = false;
        let mut ping_seq: u64 = 0;
        let mut ping_out: Option<(u64, Instant)> = None;
        let mut closing: Option<Closing> = None;

        loop {
            if shared.events.batch_is_full() {
                // Busy for long enough: hand the events over and let other tasks run (on a
                // current-thread runtime that includes the application, which consumes them
                // and sends more; without this it would wait until the socket runs dry).
                shared.events.flush_batch();
                tokio::task::yield_now().await;
            }
            if link.write.is_none() {
                if let Some(sink) = link.sink.take() {
                    let mut buf = std::mem::take(&mut link.spare_buf);
                    if ping_due {
                        ping_due = false;
                        ping_seq += 1;
                        buf.push(WsMessage::Ping(Bytes::copy_from_slice(
                            &ping_seq.to_be_bytes(),
                        )));
                        ping_out = Some((ping_seq, Instant::now()));
                        link.heartbeat.ping_queued();
                        if config.app_ping {
                            let ts = unix_millis();
                            link.app_ping_out = Some((ts, Instant::now()));
                            buf.push(control::ping(ts));
                        }
                    }
                    if link.ack_due {
                        link.ack_due = false;
                        buf.push(control::ack_upto(self.last_server_id));
                    }
                    buf.append(&mut link.control);
                    let close_frame_sent = closing.as_ref().is_some_and(|c| c.frame_sent);
                    link.batch = if close_frame_sent {
                        Batch::default()
                    } else {
                        shared
                            .outbox
                            .take_batch(config.write_batch_bytes, &mut link.taken)
                    };
                    if link.batch.rewrites > 0 {
                        shared
                            .counters
                            .messages_resent
                            .fetch_add(link.batch.rewrites as u64, Ordering::Relaxed);
                    }
                    for (id, payload) in link.taken.drain(..) {
                        buf.push(match &self.codec {
                            None => payload.to_ws(),
                            Some(codec) => encode(codec, id, &payload),
                        });
                    }
                    // Envelope mode: the close waits for every ack too (unacked ones would fail).
                    let drained =
                        link.batch.messages == 0 && (!envelope || shared.outbox.depth().0 == 0);
                    if let Some(c) = closing.as_mut().filter(|c| !c.frame_sent && drained) {
                        buf.push(WsMessage::Close(Some(CloseFrame {
                            code: CloseCode::from(c.code),
                            reason: c.reason.clone().into(),
                        })));
                        c.frame_sent = true;
                    }
                    if buf.is_empty() {
                        link.sink = Some(sink);
                        link.spare_buf = buf;
                    } else {
                        link.heartbeat.write_started();
                        link.write = Some(write_all(sink, buf));
                    }
                }
            }
            let sink_idle = link.sink.is_some();
            let reading = pending_inbound.is_none();
            let closing_deadline = closing.as_ref().map(|c| c.deadline);
            let heartbeat_deadline = link.heartbeat.deadline();
            let ack_deadline = if envelope {
                shared
                    .outbox
                    .ack_deadline(config.ack_timeout)
                    .map(Instant::from_std)
            } else {
                None
            };

            tokio::select! {
                biased;
                command = self.commands.recv(), if closing.is_none() => {
                    let (code, reason) = close_request(command);
                    shared.set_state(State::Closing);
                    closing = Some(Closing { code, reason, deadline: Instant::now() + config.close_timeout, frame_sent: false });
                }
                (sink, mut buf, result) = poll_write(&mut link.write) => {
                    link.write = None;
                    link.sink = Some(sink);
                    buf.clear();
                    link.spare_buf = buf;
                    match result {
                        Ok(()) => {
                            link.heartbeat.written();
                            let batch = std::mem::take(&mut link.batch);
                            if let Some(last) = batch.last_id {
                                shared.outbox.commit();
                                shared.counters.messages_sent.fetch_add(batch.messages as u64, Ordering::Relaxed);
                                shared.counters.bytes_sent.fetch_add(batch.bytes as u64, Ordering::Relaxed);
                                shared.events.written(last);
                            }
                        }
                        Err(e) => {
                            shared.outbox.abort_batch();
                            if let Some(c) = closing {
                                return c.ended();
                            }
                            // A peer that refuses a message closes (1009) and drops the link
                            // while the message is still being written: the write fails on the
                            // reset, with the close frame already received and unread.
                            let lost = Disconnect::ConnectionLost(format!("write failed: {e}"));
                            return LinkEnd::Lost(close_already_received(&mut link.stream).unwrap_or(lost));
                        }
                    }
                }
                _ = shared.outbox.arrived.notified(), if sink_idle => {}
                frame = link.stream.next(), if reading => {
                    link.heartbeat.frame_received();
                    let mut frame = frame;
                    let mut handled = 0usize;
                    loop {
                            match frame {
                                Some(Ok(frame @ (WsMessage::Text(_) | WsMessage::Binary(_)))) if envelope => {
                                    pending_inbound = self.on_envelope(&frame, link);
                                }
                                Some(Ok(WsMessage::Text(t))) => {
                                    pending_inbound = self.deliver(Message::Text(Text(t)), None, link);
                                }
                                Some(Ok(WsMessage::Binary(b))) => {
                                    pending_inbound = self.deliver(Message::Binary(b), None, link);
                                }
                                Some(Ok(WsMessage::Pong(payload))) => {
                                    if let Some((seq, sent)) = ping_out {
                                        if payload.as_ref() == seq.to_be_bytes() {
                                            let rtt = sent.elapsed().as_nanos().clamp(1, u64::MAX as u128) as u64;
                                            shared.counters.last_rtt_nanos.store(rtt, Ordering::Relaxed);
                                            ping_out = None;
                                        }
                                    }
                                }
                                Some(Ok(WsMessage::Ping(_) | WsMessage::Frame(_))) => {
                                    // tungstenite queues the pong itself; it goes out with the next read or write.
                                }
                                Some(Ok(WsMessage::Close(frame))) => {
                                    shared.events.close_batch();
                                    // Let tungstenite flush its reply, briefly.
                                    drain(&mut link.stream).await;
                                    if let Some(c) = closing {
                                        return c.ended();
                                    }
                                    return LinkEnd::Lost(server_closed(frame));
                                }
                                Some(Err(e)) => {
                                    shared.events.close_batch();
                                    if let Some(c) = closing {
                                        return c.ended();
                                    }
                                    return LinkEnd::Lost(self.read_failed(link, e).await);
                                }
                                None => {
                                    shared.events.close_batch();
                                    if let Some(c) = closing {
                                        return c.ended();
                                    }
                                    return LinkEnd::Lost(Disconnect::ConnectionLost("connection closed without a close frame".into()));
                                }
                            }
                        handled += 1;
                        if pending_inbound.is_some() || handled >= 256 {
                            break;
                        }
                        match link.stream.next().now_or_never() {
                            Some(next) => frame = next,
                            None => break,
                        }
                    }
                }
                _ = shared.events.inbound_credit(), if !reading => {
                    if let Some((message, id)) = pending_inbound.take() {
                        shared.events.emit(Event::Message(message));
                        self.delivered(id, link);
                    }
                }
                _ = sleep_until_opt(ack_deadline) => {
                    match shared.outbox.expire(std::time::Instant::now(), config.ack_timeout, config.ack_retries) {
                        Expiry::Failed(id, attempts) => {
                            tracing::warn!(%id, attempts, "no ack: message failed");
                            shared.report_failed(&[id], &SendFailure::AckTimeout { attempts });
                        }
                        Expiry::Rewind => tracing::info!("ack timeout: writing unacked messages again"),
                        Expiry::None => {}
                    }
                }
                _ = tick(&mut ping_timer) => {
                    ping_due = true;
                    // While reading is paused for the application, silence proves nothing.
                    if reading {
                        link.heartbeat.ping_due();
                    }
                }
                _ = sleep_until_opt(heartbeat_deadline), if reading => {
                    if link.heartbeat.expired() {
                        tracing::warn!(timeout = ?config.pong_timeout, "heartbeat deadline missed: link is dead");
                        return LinkEnd::Lost(Disconnect::HeartbeatTimeout(config.pong_timeout));
                    }
                }
                _ = sleep_until_opt(closing_deadline) => {
                    if let Some(c) = closing {
                        tracing::warn!(timeout = ?config.close_timeout, "close timed out");
                        return c.ended();
                    }
                }
                // Polled only when every branch above is pending, that is when the session is
                // about to go idle: hand the events gathered so far to the application now.
                () = flush_when_idle(&shared) => {}
            }
        }
    }

    /// Count an inbound message and pass it on if the application has room; otherwise hand it
    /// back to be held (and reading paused) until it does.
    fn deliver(
        &mut self,
        message: Message,
        id: Option<u64>,
        link: &mut Link,
    ) -> Option<PendingInbound> {
        let message = detach_small(message);
        let counters = &self.shared.counters;
        counters.messages_received.fetch_add(1, Ordering::Relaxed);
        counters
            .bytes_received
            .fetch_add(message.len() as u64, Ordering::Relaxed);
        if self.shared.events.try_inbound_credit() {
            self.shared.events.emit(Event::Message(message));
            self.delivered(id, link);
            None
        } else {
            Some((message, id))
        }
    }

    /// An envelope message reached the application: remember it and acknowledge it. Acks go
    /// out only for what the application has, so a message is never acked and then lost here.
    fn delivered(&mut self, id: Option<u64>, link: &mut Link) {
        if let Some(id) = id {
            self.last_server_id = self.last_server_id.max(id);
            link.ack_due = true;
        }
    }

    /// Envelope mode: handle one inbound data frame.
    fn on_envelope(&mut self, frame: &WsMessage, link: &mut Link) -> Option<PendingInbound> {
        let decoded = self.codec.as_ref()?.decode(frame);
        match decoded {
            Ok(Inbound::Msg { id, payload }) => {
                if id <= self.last_server_id {
                    // A resend of something the application already has: ack again, drop it.
                    self.shared
                        .counters
                        .duplicates_dropped
                        .fetch_add(1, Ordering::Relaxed);
                    link.ack_due = true;
                    None
                } else {
                    self.deliver(payload, Some(id), link)
                }
            }
            Ok(Inbound::Ack { id }) => {
                if self.shared.outbox.ack_one(MessageId(id)) {
                    self.report_acked(&[MessageId(id)]);
                }
                None
            }
            Ok(Inbound::AckUpTo { upto }) => {
                let acked = self.shared.outbox.ack_upto(upto);
                self.report_acked(&acked);
                None
            }
            Ok(Inbound::Nack { id, reason }) => {
                let failure = SendFailure::Rejected(reason);
                if self
                    .shared
                    .outbox
                    .fail_written(MessageId(id), failure.clone())
                {
                    self.shared.report_failed(&[MessageId(id)], &failure);
                }
                None
            }
            Ok(Inbound::Ping { ts }) => {
                link.control.push(control::pong(ts));
                None
            }
            Ok(Inbound::Pong { ts }) => {
                // Our own ping: measure with the monotonic clock; otherwise from the timestamp.
                let rtt = match link.app_ping_out.take() {
                    Some((sent_ts, sent_at)) if sent_ts == ts => sent_at.elapsed(),
                    _ => Duration::from_millis(unix_millis().saturating_sub(ts)),
                };
                let nanos = rtt.as_nanos().clamp(1, u64::MAX as u128) as u64;
                self.shared
                    .counters
                    .last_app_rtt_nanos
                    .store(nanos, Ordering::Relaxed);
                None
            }
            Ok(other @ (Inbound::Hello(_) | Inbound::Welcome(_) | Inbound::Reject { .. })) => {
                self.inbound_rejected(
                    format!("unexpected {} after the handshake", inbound_name(&other)),
                    None,
                    link,
                );
                None
            }
            Err(e) => {
                self.inbound_rejected(e.to_string(), e.message_id(), link);
                None
            }
        }
    }

    fn inbound_rejected(&self, reason: String, nack_id: Option<u64>, link: &mut Link) {
        tracing::warn!(%reason, "inbound frame rejected");
        self.shared
            .counters
            .inbound_rejected
            .fetch_add(1, Ordering::Relaxed);
        if let Some(id) = nack_id {
            link.control.push(control::nack(id, &reason));
        }
        self.shared.events.emit(Event::InboundRejected { reason });
    }

    /// Classify a read error; for limit and protocol violations tell the server why with a
    /// close frame (best effort).
    async fn read_failed(&self, link: &mut Link, e: WsError) -> Disconnect {
        let (reason, code) = match e {
            WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => (
                Disconnect::InboundTooLarge {
                    size,
                    limit: max_size,
                },
                Some(CloseCode::Size),
            ),
            WsError::Utf8(detail) => (
                Disconnect::ProtocolError {
                    code: 1007,
                    detail: format!("invalid UTF-8 in a text message: {detail}"),
                },
                Some(CloseCode::Invalid),
            ),
            WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => (
                Disconnect::ConnectionLost("connection reset without a closing handshake".into()),
                None,
            ),
            WsError::Protocol(p) => (
                Disconnect::ProtocolError {
                    code: 1002,
                    detail: p.to_string(),
                },
                Some(CloseCode::Protocol),
            ),
            WsError::Io(io) => (Disconnect::ConnectionLost(io.to_string()), None),
            other => (Disconnect::ConnectionLost(other.to_string()), None),
        };
        tracing::warn!(%reason, "read failed");
        if let (Some(code), Some(sink)) = (code, link.sink.as_mut()) {
            let frame = CloseFrame {
                code,
                reason: close_reason_text(&reason).into(),
            };
            let sent =
                tokio::time::timeout(BEST_EFFORT_CLOSE, sink.send(WsMessage::Close(Some(frame))))
                    .await;
            link.linger = matches!(sent, Ok(Ok(())));
        }
        reason
    }
}

/// Report everything still queued as failed, then go to Closed. The last event.
fn finish(shared: &Shared, reason: Disconnect) {
    // A link that ended without leaving `pump` normally may have left a batch open.
    shared.events.close_batch();
    let failure = match &reason {
        Disconnect::UserClose { .. } => SendFailure::Closed,
        other => SendFailure::ConnectionFailed(other.to_string()),
    };
    let undelivered = shared.outbox.close_and_fail_all(&failure);
    shared.report_failed(&undelivered, &failure);
    shared.set_state(State::Closed);
    tracing::info!(%reason, undelivered = undelivered.len(), "closed");
    shared.events.emit(Event::Closed {
        reason,
        undelivered: undelivered.len(),
    });
    shared.mark_closed();
}

/// Ends the client properly even when the session task does not run to its end: when the
/// runtime it runs on shuts down (a runtime the application gave to [`crate::Client::connect_on`])
/// or when it panics. The application then still gets its `SendFailed` events and `Closed`.
struct EndGuard {
    shared: Arc<Shared>,
    finished: bool,
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let why = if std::thread::panicking() {
            "internal error: the client's session task panicked"
        } else {
            "the runtime running this client shut down"
        };
        finish(&self.shared, Disconnect::ConnectionLost(why.into()));
    }
}

/// The live parts of one link.
struct Link {
    /// The write half while no write is running.
    sink: Option<Sink>,
    stream: Stream,
    /// The running write; it owns the sink until it completes.
    write: Option<WriteFuture>,
    /// A reusable buffer for the next batch.
    spare_buf: Vec<WsMessage>,
    /// A reusable buffer for the messages taken from the outbox.
    taken: Vec<(MessageId, Payload)>,
    /// Envelope control frames (pongs, nacks) to write before the next messages.
    control: Vec<WsMessage>,
    /// Envelope mode: an `ack upto last_server_id` is owed.
    ack_due: bool,
    /// Envelope mode: the app-level ping awaiting its pong (timestamp sent, when).
    app_ping_out: Option<(u64, Instant)>,
    /// What the running write carries from the outbox.
    batch: Batch,
    /// Dead-link detection.
    heartbeat: Heartbeat,
    /// We sent a close frame for a frame we refused: see [`linger_after_close`].
    linger: bool,
}

/// Feed the whole batch, then flush once: one syscall burst per batch, not per message.
fn write_all(mut sink: Sink, mut buf: Vec<WsMessage>) -> WriteFuture {
    Box::pin(async move {
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
    })
}

async fn poll_write(
    write: &mut Option<WriteFuture>,
) -> (Sink, Vec<WsMessage>, Result<(), WsError>) {
    match write {
        Some(fut) => fut.await,
        None => std::future::pending().await,
    }
}

/// Messages up to this size get their own allocation on receipt (see [`detach_small`]).
const DETACH_BELOW: usize = 4 << 10;

/// A small inbound message in its own allocation instead of a slice of the connection's read
/// buffer. A slice keeps the whole buffer alive while the application holds the message, so
/// (1) an application that keeps a few small messages would pin a read buffer for each, and
/// (2) the reader cannot reuse its buffer and reads into ever smaller leftovers of it: with
/// 64-byte messages that was ten times more `recvfrom` calls than with a reusable buffer. The
/// copy costs less than those calls; large messages stay zero-copy.
fn detach_small(message: Message) -> Message {
    if message.len() > DETACH_BELOW {
        return message;
    }
    match message {
        Message::Text(t) => Message::Text(Text::from(t.as_str().to_owned())),
        Message::Binary(b) => Message::Binary(Bytes::copy_from_slice(&b)),
    }
}

/// Send the events gathered so far, keep gathering, and never complete.
fn flush_when_idle(shared: &Shared) -> impl Future<Output = ()> + '_ {
    std::future::poll_fn(move |_| {
        shared.events.flush_batch();
        std::task::Poll::Pending
    })
}

async fn tick(timer: &mut Option<tokio::time::Interval>) {
    match timer {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The peer's close frame, if it has already arrived among the frames not read yet (without
/// waiting): after a failed write it says why the peer ended the link. Data frames before it
/// are passed over: the link is gone, and they were dropped with it before this existed too
/// (envelope mode has the server resend them).
fn close_already_received(stream: &mut Stream) -> Option<Disconnect> {
    for _ in 0..256 {
        match stream.next().now_or_never()? {
            Some(Ok(WsMessage::Close(frame))) => return Some(server_closed(frame)),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return None,
        }
    }
    None
}

/// After our close frame for an inbound frame we refused (too large, invalid UTF-8, protocol
/// violation): keep the TCP connection open, reading and discarding whatever the peer still
/// sends, until it closes its side or [`BEST_EFFORT_CLOSE`] passes; then drop the socket.
///
/// RFC 6455 §7.1.1 and §5.5.1: after sending a close frame the endpoint waits for the peer to
/// end the connection. Dropping the socket at once while the peer is still writing (the rest
/// of an oversized message, say) makes the kernel answer its writes with a reset: the peer
/// sees "connection reset by peer" instead of our 1009 and a clean close, and may not even
/// read our close frame. The peer's close frame is not looked for: after some refusals the
/// frame stream cannot be parsed any further (a header announcing 2^62 bytes cannot be read
/// past), so this reads raw bytes below the WebSocket layer and waits for end of file, which
/// a peer sends after its close reply (or at once). Memory stays bounded (one small buffer);
/// time too.
async fn linger_after_close(sink: Sink, stream: Stream) {
    use tokio::io::AsyncReadExt;
    let Ok(mut ws) = stream.reunite(sink) else {
        return;
    };
    let raw = ws.get_mut();
    let mut discard = vec![0u8; 16 << 10];
    let _ = tokio::time::timeout(BEST_EFFORT_CLOSE, async {
        while let Ok(n) = raw.read(&mut discard).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// Read until the stream ends (which flushes tungstenite's queued close reply), bounded.
async fn drain(stream: &mut Stream) {
    let _ = tokio::time::timeout(BEST_EFFORT_CLOSE, async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
}

/// Envelope mode: `hello` → `welcome` (or `reject`), within `handshake_timeout`. Returns the
/// welcome: the highest client message id the server already has, and its epochs.
async fn handshake(
    codec: &Codec,
    config: &Config,
    resume: &ResumeState,
    last_server_id: u64,
    ws: &mut Ws,
) -> Result<Welcome, Disconnect> {
    let lost = |e: WsError| Disconnect::ConnectionLost(format!("during the handshake: {e}"));
    let token = config.auth_token.as_ref().map(|t| t.0.as_str());
    let exchange = async {
        ws.send(resume.hello(&config.session_id, last_server_id, token))
            .await
            .map_err(lost)?;
        loop {
            let frame = match ws.next().await {
                Some(Ok(frame)) => frame,
                Some(Err(e)) => return Err(lost(e)),
                None => {
                    return Err(Disconnect::ConnectionLost(
                        "closed during the handshake".into(),
                    ))
                }
            };
            match frame {
                WsMessage::Text(_) | WsMessage::Binary(_) => match codec.decode(&frame) {
                    Ok(Inbound::Welcome(welcome)) => return Ok(welcome),
                    Ok(Inbound::Reject { reason, is_final }) => {
                        return Err(Disconnect::Rejected { reason, is_final })
                    }
                    Ok(Inbound::Ping { ts }) => ws.send(control::pong(ts)).await.map_err(lost)?,
                    Ok(other) => {
                        return Err(Disconnect::HandshakeFailed(format!(
                            "expected welcome, got {}",
                            inbound_name(&other)
                        )))
                    }
                    Err(e) => {
                        return Err(Disconnect::HandshakeFailed(format!(
                            "expected welcome: {e}"
                        )))
                    }
                },
                WsMessage::Close(frame) => return Err(server_closed(frame)),
                WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_) => {}
            }
        }
    };
    match tokio::time::timeout(config.handshake_timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(Disconnect::HandshakeTimeout(config.handshake_timeout)),
    }
}

fn encode(codec: &Codec, id: MessageId, payload: &Payload) -> WsMessage {
    match payload {
        Payload::Text(t) => codec.text_msg(id.0, t.as_str()),
        Payload::Binary(b) => codec.binary_msg(id.0, b),
    }
}

/// tungstenite's stand-in for a close frame whose code may not be sent on the wire (1005, 1006,
/// 1015, below 1000, ...): it replaces the frame with this one before we see it.
const SUBSTITUTED_CLOSE: (u16, &str) = (1002, "Protocol violation");

/// The disconnect a server's close frame means. A frame tungstenite had to replace because its
/// code was illegal is the server's protocol error (retried), not a deliberate 1002 (final).
fn server_closed(frame: Option<CloseFrame>) -> Disconnect {
    let Some(frame) = frame else {
        return Disconnect::ServerClosed {
            code: 1005,
            reason: String::new(),
        };
    };
    let code = u16::from(frame.code);
    if (code, frame.reason.as_str()) == SUBSTITUTED_CLOSE {
        return Disconnect::ProtocolError {
            code: 1002,
            detail: "the server sent a close frame with a code that may not be sent on the wire"
                .into(),
        };
    }
    Disconnect::ServerClosed {
        code,
        reason: frame.reason.to_string(),
    }
}

fn inbound_name(inbound: &Inbound) -> &'static str {
    match inbound {
        Inbound::Hello(_) => "hello",
        Inbound::Welcome(_) => "welcome",
        Inbound::Reject { .. } => "reject",
        Inbound::Msg { .. } => "msg",
        Inbound::Ack { .. } | Inbound::AckUpTo { .. } => "ack",
        Inbound::Nack { .. } => "nack",
        Inbound::Ping { .. } => "ping",
        Inbound::Pong { .. } => "pong",
    }
}

/// Milliseconds since the Unix epoch, for app-level ping timestamps.
fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The close the application asked for. No command at all means every handle is gone: the
/// application cannot hear from us any more, so close normally.
fn close_request(command: Option<Command>) -> (u16, String) {
    match command {
        Some(Command::Close { code, reason }) => (code, reason),
        None => (1000, String::new()),
    }
}

fn user_close(command: Option<Command>) -> Disconnect {
    let (code, reason) = close_request(command);
    Disconnect::UserClose { code, reason }
}

/// A close reason that fits a control frame (123 bytes), cut at a character boundary.
fn close_reason_text(reason: &Disconnect) -> String {
    let mut text = reason.to_string();
    if text.len() > 123 {
        let mut cut = 123;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}
