//! Frame-level helpers of the session: the envelope handshake, what a close frame means,
//! the end of a link (lingering, draining) and inbound message storage.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};

use super::{Command, Sink, Stream};
use crate::config::Config;
use crate::connect::Ws;
use crate::envelope::{control, Codec, Inbound, Welcome};
use crate::error::Disconnect;
use crate::event::{Message, MessageId, Text};
use crate::outbox::Payload;
use crate::resume::ResumeState;

/// Time allowed to exchange the closing frames after a failure, where waiting longer helps no one.
pub(crate) const BEST_EFFORT_CLOSE: Duration = Duration::from_secs(1);

/// Messages up to this size get their own allocation on receipt (see [`detach_small`]).
const DETACH_BELOW: usize = 4 << 10;

/// A small inbound message in its own allocation instead of a slice of the connection's read
/// buffer. A slice keeps the whole buffer alive while the application holds the message, so
/// (1) an application that keeps a few small messages would pin a read buffer for each, and
/// (2) the reader cannot reuse its buffer and reads into ever smaller leftovers of it: with
/// 64-byte messages that was ten times more `recvfrom` calls than with a reusable buffer. The
/// copy costs less than those calls; large messages stay zero-copy.
pub(crate) fn detach_small(message: Message) -> Message {
    if message.len() > DETACH_BELOW {
        return message;
    }
    match message {
        Message::Text(t) => Message::Text(Text::from(t.as_str().to_owned())),
        Message::Binary(b) => Message::Binary(Bytes::copy_from_slice(&b)),
    }
}

/// The peer's close frame, if it has already arrived among the frames not read yet (without
/// waiting): after a failed write it says why the peer ended the link. Data frames before it
/// are passed over: the link is gone, and they were dropped with it before this existed too
/// (envelope mode has the server resend them).
pub(crate) fn close_already_received(stream: &mut Stream) -> Option<Disconnect> {
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
pub(crate) async fn linger_after_close(sink: Sink, stream: Stream) {
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
pub(crate) async fn drain(stream: &mut Stream) {
    let _ = tokio::time::timeout(BEST_EFFORT_CLOSE, async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
}

/// Envelope mode: `hello` → `welcome` (or `reject`), within `handshake_timeout`. Returns the
/// welcome: the highest client message id the server already has, and its epochs.
/// What `hello` carries besides the session id.
pub(crate) struct HelloParts<'a> {
    pub(crate) resume: &'a ResumeState,
    pub(crate) last_server_id: u64,
    /// This attempt's token (the credentials provider's, or the configured one).
    pub(crate) token: Option<&'a str>,
}

pub(crate) async fn handshake(
    codec: &Codec,
    config: &Config,
    hello: HelloParts<'_>,
    ws: &mut Ws,
) -> Result<Welcome, Disconnect> {
    let lost = |e: WsError| Disconnect::ConnectionLost(format!("during the handshake: {e}"));
    let HelloParts {
        resume,
        last_server_id,
        token,
    } = hello;
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

pub(crate) fn encode(codec: &Codec, id: MessageId, payload: &Payload) -> WsMessage {
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
pub(crate) fn server_closed(frame: Option<CloseFrame>) -> Disconnect {
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

pub(crate) fn inbound_name(inbound: &Inbound) -> &'static str {
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

/// The close the application asked for. No command at all means every handle is gone: the
/// application cannot hear from us any more, so close normally.
pub(crate) fn close_request(command: Option<Command>) -> (u16, String) {
    match command {
        Some(Command::Close { code, reason }) => (code, reason),
        None => (1000, String::new()),
    }
}

pub(crate) fn user_close(command: Option<Command>) -> Disconnect {
    let (code, reason) = close_request(command);
    Disconnect::UserClose { code, reason }
}

/// A close reason that fits a control frame (123 bytes), cut at a character boundary.
pub(crate) fn close_reason_text(reason: &Disconnect) -> String {
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
