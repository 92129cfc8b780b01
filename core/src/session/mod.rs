//! The session task: one per client, on the internal runtime. It owns the connection life
//! cycle (connect → open → ready → pump → reconnect or close) and is the only writer of the
//! state.
//!
//! The pump is one `select!` loop over reading, writing, commands and timers; each arm hands
//! its event to a small method. The parts with state of their own are types of their own,
//! each tested without sockets: the writer (`writer.rs`), the close handshake (`close.rs`),
//! pings (`ping.rs`), the event batch (`batch.rs`), the heartbeat (`heartbeat.rs`) and the
//! retry state (`retry.rs`).

mod batch;
mod close;
mod ping;
mod wire;
mod writer;

use std::sync::atomic::Ordering;
use std::sync::Arc;

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
use crate::reach::ConnectAttempt;
use crate::resume::ResumeState;
use crate::retry::{RetryState, RetryStep};
use crate::shared::Shared;
use batch::OpenBatch;
use close::{Closing, LinkEnd};
use ping::{rtt_nanos, Pinger};
use wire::*;
use writer::Writer;

/// Requests from the client handle. Messages do not travel here: they go through the outbox.
#[derive(Debug)]
pub(crate) enum Command {
    Close { code: u16, reason: String },
}

type Sink = SplitSink<Ws, WsMessage>;
type Stream = SplitStream<Ws>;
type ReadResult = Option<Result<WsMessage, WsError>>;

/// Frames handled at most per read before the other arms get a turn.
const READ_BURST: usize = 256;

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

/// The live parts of one link.
struct Link {
    writer: Writer<Sink>,
    stream: Stream,
    /// A reusable buffer for the messages taken from the outbox.
    taken: Vec<(MessageId, Payload)>,
    /// Envelope control frames (pongs, nacks) to write before the next messages.
    control: Vec<WsMessage>,
    /// Envelope mode: an `ack upto last_server_id` is owed.
    ack_due: bool,
    ping_timer: Option<tokio::time::Interval>,
    pinger: Pinger,
    /// What the running write carries from the outbox.
    batch: Batch,
    /// Dead-link detection.
    heartbeat: Heartbeat,
    /// The application's close, once asked for.
    closing: Option<Closing>,
    /// A message waiting for room in the event queue; reading is paused meanwhile.
    pending_inbound: Option<PendingInbound>,
    /// We sent a close frame for a frame we refused: see [`linger_after_close`].
    linger: bool,
}

impl Link {
    /// The link ends as the application's close, if one is under way.
    fn closing_end(&mut self) -> Option<LinkEnd> {
        self.closing.take().map(Closing::ended)
    }
}

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
        let mut retry = RetryState::default();
        let mut connected_before = false;
        let mut attempt = ConnectAttempt::first();
        loop {
            self.shared.set_state(State::Connecting);
            let connected = tokio::select! {
                result = self.connector.connect(&attempt) => result,
                command = self.commands.recv() => return user_close(command),
            };
            let reason = match connected {
                Err(e) => Disconnect::ConnectFailed(e),
                Ok(connected) => {
                    let protocol = connected.info.subprotocol.clone();
                    tracing::info!(url = %self.config.url, ?protocol, "connected");
                    if std::mem::replace(&mut connected_before, true) {
                        let reconnects = &self.shared.counters.reconnects;
                        reconnects.fetch_add(1, Ordering::Relaxed);
                    }
                    self.shared.set_connection_info(connected.info);
                    self.shared.set_link_socket(connected.fd);
                    let served = self.serve(connected.ws, connected.token, &mut retry).await;
                    self.shared.set_link_socket(None);
                    match served {
                        Ok(lost) => lost,
                        Err(end) => return end,
                    }
                }
            };
            tracing::warn!(%reason, "disconnected");
            let step = retry.next(&policy, &reason, Instant::now());
            attempt = ConnectAttempt::after(&step, connected_before, &reason);
            let will_reconnect = matches!(step, RetryStep::Retry { .. });
            // Stopping: `Closing` until `finish` has failed what is left and reached `Closed`.
            let next = if will_reconnect {
                State::Reconnecting
            } else {
                State::Closing
            };
            let disconnected = Event::Disconnected {
                reason,
                will_reconnect,
            };
            self.shared.set_state_after(next, Some(disconnected));
            let (attempt, delay) = match step {
                RetryStep::Retry { attempt, delay } => (attempt, delay),
                RetryStep::Stop(final_reason) => return final_reason,
            };
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

    /// One connection: the envelope handshake, then the pump. `Ok`: the link was lost for this
    /// reason; `Err`: the client ends for this reason (the application closed).
    async fn serve(
        &mut self,
        mut ws: Ws,
        token: Option<String>,
        retry: &mut RetryState,
    ) -> Result<Disconnect, Disconnect> {
        self.shared.set_state(State::Open);
        let hello = HelloParts {
            resume: &self.resume,
            last_server_id: self.last_server_id,
            token: token.as_deref(),
        };
        let handshake = match &self.codec {
            None => Ok(None),
            Some(codec) => tokio::select! {
                result = handshake(codec, &self.config, hello, &mut ws) => result.map(Some),
                command = self.commands.recv() => return Err(user_close(command)),
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
        retry.link_was_up(up_since.elapsed(), &self.config.reconnect);
        match end {
            LinkEnd::UserClosed { code, reason } => {
                let reason = Disconnect::UserClose { code, reason };
                self.shared.events.emit(Event::Disconnected {
                    reason: reason.clone(),
                    will_reconnect: false,
                });
                Err(reason)
            }
            LinkEnd::Lost(reason) => Ok(reason),
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
        self.persist_server_position();
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
        let ping_timer = self.config.ping_interval.map(|every| {
            let mut timer = tokio::time::interval_at(Instant::now() + every, every);
            timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
            timer
        });
        let mut link = Link {
            writer: Writer::new(sink),
            stream,
            taken: Vec::with_capacity(64),
            control: Vec::new(),
            ack_due: false,
            ping_timer,
            pinger: Pinger::new(self.config.app_ping),
            batch: Batch::default(),
            heartbeat: Heartbeat::new(self.config.pong_timeout, meter),
            closing: None,
            pending_inbound: None,
            linger: false,
        };
        // Every path out of `pump` that awaits first closes the batch itself.
        let shared = self.shared.clone();
        let batch = OpenBatch::open(&shared.events);
        let end = self.pump(&mut link, &batch).await;
        drop(batch);
        if link.writer.is_writing() {
            // The batch may or may not have reached the peer; keep it queued for the next link.
            self.shared.outbox.abort_batch();
        }
        if let LinkEnd::Lost(reason) = &end {
            self.refused_too_large(reason);
        }
        if link.linger {
            if let Some(sink) = link.writer.take_sink() {
                linger_after_close(sink, link.stream).await;
            }
        }
        end
    }

    /// The link's loop: start what can be written, then wait for the first of: a close
    /// request, the write's end, new messages, frames read, room for a held message, and the
    /// ack, ping, heartbeat and close timers. Each arm is a line or a method.
    async fn pump(&mut self, link: &mut Link, batch: &OpenBatch<'_>) -> LinkEnd {
        let shared = self.shared.clone();
        let config = self.config.clone();
        let envelope = config.protocol == Protocol::Envelope;
        loop {
            batch.yield_if_full().await;
            self.start_write(link);
            let idle = link.writer.is_idle();
            let reading = link.pending_inbound.is_none();
            let closing_deadline = link.closing.as_ref().map(Closing::deadline);
            let heartbeat_deadline = link.heartbeat.deadline();
            let ack_deadline = envelope
                .then(|| shared.outbox.ack_deadline(config.ack_timeout))
                .flatten()
                .map(Instant::from_std);

            tokio::select! {
                biased;
                command = self.commands.recv(), if link.closing.is_none() => {
                    let (code, reason) = close_request(command);
                    shared.set_state(State::Closing);
                    link.closing = Some(Closing::new(code, reason, Instant::now() + config.close_timeout));
                }
                result = link.writer.finished() => {
                    if let Some(end) = self.write_finished(link, result) {
                        return end;
                    }
                }
                _ = shared.outbox.arrived.notified(), if idle => {}
                frame = link.stream.next(), if reading => {
                    if let Some(end) = self.read_frames(link, frame).await {
                        return end;
                    }
                }
                _ = shared.events.inbound_credit(), if !reading => {
                    if let Some((message, id)) = link.pending_inbound.take() {
                        shared.events.emit(Event::Message(message));
                        self.delivered(id, link);
                    }
                }
                _ = sleep_until_opt(ack_deadline) => self.ack_timer_fired(),
                _ = tick(&mut link.ping_timer) => {
                    link.pinger.fire();
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
                    if let Some(end) = link.closing_end() {
                        tracing::warn!(timeout = ?config.close_timeout, "close timed out");
                        return end;
                    }
                }
                // Polled only when every branch above is pending, that is when the session is
                // about to go idle: hand the events gathered so far to the application now.
                () = batch.flush_when_idle() => {}
            }
        }
    }

    /// If no write is running, start one with what is due, in this order: the ping, an ack,
    /// control frames, the next batch from the outbox, and the close frame once all is out.
    fn start_write(&mut self, link: &mut Link) {
        let Some(mut buf) = link.writer.next_buf() else {
            return;
        };
        if link.pinger.queue_due(&mut buf) {
            link.heartbeat.ping_queued();
        }
        if link.ack_due {
            link.ack_due = false;
            buf.push(control::ack_upto(self.last_server_id));
        }
        buf.append(&mut link.control);
        self.take_messages(link, &mut buf);
        if let Some(closing) = link.closing.as_mut() {
            // Envelope mode: the close waits for every ack too (unacked ones would fail).
            let envelope = self.config.protocol == Protocol::Envelope;
            let drained =
                link.batch.messages == 0 && (!envelope || self.shared.outbox.depth().messages == 0);
            buf.extend(closing.frame_when_drained(drained));
        }
        if link.writer.start(buf) {
            link.heartbeat.write_started();
        }
    }

    /// The next batch from the outbox, encoded into `buf` (none after our close frame).
    fn take_messages(&mut self, link: &mut Link, buf: &mut Vec<WsMessage>) {
        let shared = &self.shared;
        link.batch = if link.closing.as_ref().is_some_and(|c| !c.takes_messages()) {
            Batch::default()
        } else {
            let limit = self.config.write_batch_bytes;
            shared.outbox.take_batch(limit, &mut link.taken)
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
    }

    /// The running write completed; `Some` if the link ends with it.
    fn write_finished(&mut self, link: &mut Link, result: Result<(), WsError>) -> Option<LinkEnd> {
        let shared = &self.shared;
        if let Err(e) = result {
            shared.outbox.abort_batch();
            if let Some(end) = link.closing_end() {
                return Some(end);
            }
            // A peer that refuses a message closes (1009) and drops the link while the
            // message is still being written: the write fails on the reset, with the close
            // frame already received and unread.
            let lost = Disconnect::ConnectionLost(format!("write failed: {e}"));
            return Some(LinkEnd::Lost(
                close_already_received(&mut link.stream).unwrap_or(lost),
            ));
        }
        link.heartbeat.written();
        let batch = std::mem::take(&mut link.batch);
        if let Some(last) = batch.last_id {
            shared.outbox.commit();
            let counters = &shared.counters;
            counters
                .messages_sent
                .fetch_add(batch.messages as u64, Ordering::Relaxed);
            counters
                .bytes_sent
                .fetch_add(batch.bytes as u64, Ordering::Relaxed);
            shared.events.written(last);
        }
        None
    }

    /// Handle `first` and the frames already read behind it (up to [`READ_BURST`], until the
    /// application runs out of room); `Some` if the link ends.
    async fn read_frames(&mut self, link: &mut Link, first: ReadResult) -> Option<LinkEnd> {
        link.heartbeat.frame_received();
        let mut frame = first;
        let mut handled = 0usize;
        loop {
            let end = match frame {
                Some(Ok(message)) => self.on_frame(link, message).await,
                Some(Err(e)) => {
                    self.shared.events.close_batch();
                    match link.closing_end() {
                        Some(end) => Some(end),
                        None => Some(LinkEnd::Lost(self.read_failed(link, e).await)),
                    }
                }
                None => {
                    self.shared.events.close_batch();
                    let lost = "connection closed without a close frame";
                    let end = link.closing_end();
                    Some(end.unwrap_or(LinkEnd::Lost(Disconnect::ConnectionLost(lost.into()))))
                }
            };
            if end.is_some() {
                return end;
            }
            handled += 1;
            if link.pending_inbound.is_some() || handled >= READ_BURST {
                return None;
            }
            frame = link.stream.next().now_or_never()?;
        }
    }

    /// One frame read; `Some` if the link ends with it (a close frame).
    async fn on_frame(&mut self, link: &mut Link, frame: WsMessage) -> Option<LinkEnd> {
        let envelope = self.config.protocol == Protocol::Envelope;
        match frame {
            frame @ (WsMessage::Text(_) | WsMessage::Binary(_)) if envelope => {
                link.pending_inbound = self.on_envelope(&frame, link);
            }
            WsMessage::Text(t) => {
                link.pending_inbound = self.deliver(Message::Text(Text(t)), None, link);
            }
            WsMessage::Binary(b) => {
                link.pending_inbound = self.deliver(Message::Binary(b), None, link);
            }
            WsMessage::Pong(payload) => {
                if let Some(rtt) = link.pinger.pong(&payload) {
                    let last = &self.shared.counters.last_rtt_nanos;
                    last.store(rtt_nanos(rtt), Ordering::Relaxed);
                }
            }
            WsMessage::Ping(_) | WsMessage::Frame(_) => {
                // tungstenite queues the pong itself; it goes out with the next read or write.
            }
            WsMessage::Close(frame) => {
                self.shared.events.close_batch();
                // Let tungstenite flush its reply, briefly.
                drain(&mut link.stream).await;
                let end = link.closing_end();
                return Some(end.unwrap_or_else(|| LinkEnd::Lost(server_closed(frame))));
            }
        }
        None
    }

    /// Envelope mode: the oldest unacked message is overdue.
    fn ack_timer_fired(&self) {
        let config = &self.config;
        let now = std::time::Instant::now();
        match self
            .shared
            .outbox
            .expire(now, config.ack_timeout, config.ack_retries)
        {
            Expiry::Failed(id, attempts) => {
                tracing::warn!(%id, attempts, "no ack: message failed");
                self.shared
                    .report_failed(&[id], &SendFailure::AckTimeout { attempts });
            }
            Expiry::Rewind => tracing::info!("ack timeout: writing unacked messages again"),
            Expiry::None => {}
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
            self.persist_server_position();
        }
    }

    /// Persistent outbox: the server's stream position survives the process, so a restarted
    /// client neither delivers a server message twice nor asks for a stream it left.
    fn persist_server_position(&self) {
        self.shared
            .outbox
            .note_server_position(self.resume.server_epoch(), self.last_server_id);
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
                let nanos = rtt_nanos(link.pinger.app_pong(ts));
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
        if let (Some(code), Some(sink)) = (code, link.writer.sink_mut()) {
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
    let mut failure = match &reason {
        Disconnect::UserClose { .. } => SendFailure::Closed,
        other => SendFailure::ConnectionFailed(other.to_string()),
    };
    if shared.outbox.is_persistent() {
        // Not lost: they stay in the file for the next client started with it.
        failure = SendFailure::Kept(failure.to_string());
    }
    let undelivered = shared.outbox.close_and_fail_all(&failure);
    // Before `Closed`: a closed client's file is free for the next one.
    shared.outbox.release_store();
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
