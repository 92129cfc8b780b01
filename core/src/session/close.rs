//! The close handshake the application asked for, on an open link: the close frame goes out
//! once everything queued before it has (in envelope mode, once every message is acked too),
//! and the link ends when the peer answers or `close_timeout` passes.

use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// How one link ended.
#[derive(Debug, PartialEq)]
pub(crate) enum LinkEnd {
    /// The application's close finished (or timed out).
    UserClosed { code: u16, reason: String },
    /// The link broke; the retry policy decides what happens next.
    Lost(crate::error::Disconnect),
}

/// Progress of a user-requested close on an open link.
#[derive(Debug)]
pub(crate) struct Closing {
    code: u16,
    reason: String,
    deadline: Instant,
    frame_sent: bool,
}

impl Closing {
    /// The application asked to close with `code` and `reason`; give up at `deadline`.
    pub(crate) fn new(code: u16, reason: String, deadline: Instant) -> Self {
        Closing {
            code,
            reason,
            deadline,
            frame_sent: false,
        }
    }

    /// When the close times out.
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether messages may still be written: not after our close frame.
    pub(crate) fn takes_messages(&self) -> bool {
        !self.frame_sent
    }

    /// The close frame, once: when nothing is left to write (`drained`).
    pub(crate) fn frame_when_drained(&mut self, drained: bool) -> Option<WsMessage> {
        if self.frame_sent || !drained {
            return None;
        }
        self.frame_sent = true;
        Some(WsMessage::Close(Some(CloseFrame {
            code: CloseCode::from(self.code),
            reason: self.reason.clone().into(),
        })))
    }

    /// The link ends as the application's close.
    pub(crate) fn ended(self) -> LinkEnd {
        LinkEnd::UserClosed {
            code: self.code,
            reason: self.reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn closing() -> Closing {
        Closing::new(4001, "bye".into(), Instant::now() + Duration::from_secs(3))
    }

    #[test]
    fn the_frame_waits_for_the_drain_and_goes_once() {
        let mut c = closing();
        assert!(c.takes_messages());
        assert_eq!(c.frame_when_drained(false), None);
        assert!(c.takes_messages());
        match c.frame_when_drained(true) {
            Some(WsMessage::Close(Some(frame))) => {
                assert_eq!(u16::from(frame.code), 4001);
                assert_eq!(frame.reason.as_str(), "bye");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            !c.takes_messages(),
            "nothing is written after the close frame"
        );
        assert_eq!(c.frame_when_drained(true), None);
    }

    #[test]
    fn a_close_ends_as_the_application_asked_even_on_timeout() {
        let at = Instant::now() + Duration::from_millis(250);
        let c = Closing::new(1000, String::new(), at);
        assert_eq!(c.deadline(), at);
        assert_eq!(
            c.ended(),
            LinkEnd::UserClosed {
                code: 1000,
                reason: String::new()
            }
        );
    }
}
