//! Envelope mode, revision 2: the stream epochs of one client incarnation and the welcome
//! rules of `docs/PROTOCOL.md` ("Epochs: when a side loses its state"). No I/O: the session
//! asks for the `hello` and hands over each `welcome`; what comes back says whether a side
//! lost its state, so the session never drops the server's new messages as duplicates and
//! the application hears of the loss ([`crate::Event::SessionReset`]).

use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::envelope::{control, Welcome, REVISION};
use crate::event::{IdRange, MessageId, SessionReset};

/// What this client incarnation knows of the server's outbound stream.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ServerStream {
    /// No welcome accepted yet.
    Unknown,
    /// The last welcome was revision 1: no epoch to compare with.
    Revision1,
    /// The epoch of the last revision-2 welcome accepted (`sep`).
    Epoch(String),
}

/// The epochs and the acknowledgement high-water mark of one client incarnation.
#[derive(Debug)]
pub(crate) struct ResumeState {
    /// The epoch of this client's outbound stream, fixed for the client's life.
    epoch: String,
    server: ServerStream,
    /// The highest of our ids the server acknowledged (0: none).
    acked_high: u64,
}

impl ResumeState {
    /// A new incarnation with a fresh random epoch.
    pub(crate) fn new() -> ResumeState {
        ResumeState::with_epoch(new_epoch())
    }

    /// A new incarnation with the given epoch (which must be valid).
    pub(crate) fn with_epoch(epoch: String) -> ResumeState {
        debug_assert!(crate::envelope::valid_epoch(&epoch));
        ResumeState {
            epoch,
            server: ServerStream::Unknown,
            acked_high: 0,
        }
    }

    /// An incarnation restored from a persistent outbox: its epoch, and the server epoch its
    /// last server id counts in (None: no revision-2 welcome accepted yet).
    pub(crate) fn restored(epoch: String, server_epoch: Option<String>) -> ResumeState {
        let mut state = ResumeState::with_epoch(epoch);
        if let Some(sep) = server_epoch {
            state.server = ServerStream::Epoch(sep);
        }
        state
    }

    /// This client's epoch.
    pub(crate) fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The server epoch last accepted (`sep`), if the server speaks revision 2.
    pub(crate) fn server_epoch(&self) -> Option<&str> {
        match &self.server {
            ServerStream::Epoch(ep) => Some(ep),
            _ => None,
        }
    }

    /// The `hello` to open or resume `sid`: revision 2, our epoch, and the server epoch that
    /// `last` counts in.
    pub(crate) fn hello(&self, sid: &str, last: u64, token: Option<&str>) -> WsMessage {
        control::hello_v2(sid, last, &self.epoch, self.server_epoch(), token)
    }

    /// The server acknowledged these ids.
    pub(crate) fn note_acked(&mut self, ids: &[MessageId]) {
        if let Some(high) = ids.iter().map(|id| id.0).max() {
            self.acked_high = self.acked_high.max(high);
        }
    }

    /// Apply a `welcome` (before its `last` is applied to the outbox). `last_server_id` is the
    /// highest server id delivered so far. Returns the reset to report, if a side lost its
    /// state; when it says `server_lost_state`, the caller clears its de-duplication of the
    /// server's messages (`last_server_id = 0`). `resends_may_duplicate` is left for the caller,
    /// which knows what the outbox wrote before.
    pub(crate) fn on_welcome(
        &mut self,
        welcome: &Welcome,
        last_server_id: u64,
    ) -> Option<SessionReset> {
        let (mut server_lost, client_lost) = match (&welcome.ep, welcome.rev >= REVISION) {
            (Some(ep), true) => {
                let lost = match &self.server {
                    ServerStream::Unknown => false,
                    ServerStream::Epoch(sep) => sep != ep,
                    // Nothing says whether the stream we de-duplicated under revision 1 is
                    // this one: count it as new rather than risk dropping its messages.
                    ServerStream::Revision1 => last_server_id > 0,
                };
                self.server = ServerStream::Epoch(ep.clone());
                (lost, welcome.known)
            }
            _ => {
                self.server = ServerStream::Revision1;
                (false, false)
            }
        };
        // A server that no longer has what it acknowledged forgot its state, whatever its
        // revision (the one check revision 1 allows).
        server_lost |= welcome.last < self.acked_high;
        if !(server_lost || client_lost) {
            return None;
        }
        let acked_at_risk = (welcome.last < self.acked_high).then(|| IdRange {
            first: MessageId(welcome.last + 1),
            last: MessageId(self.acked_high),
        });
        Some(SessionReset {
            server_lost_state: server_lost,
            client_state_lost: client_lost,
            acked_at_risk,
            resends_may_duplicate: None,
            inbound_may_repeat: client_lost,
            server_revision: welcome.rev,
        })
    }
}

/// A fresh epoch: 16 random lowercase hex digits, from the operating system's generator where
/// it is available (two processes started at the same moment must not pick the same one).
pub(crate) fn new_epoch() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    let n = match ring::rand::SystemRandom::new().fill(&mut bytes) {
        Ok(()) => u64::from_be_bytes(bytes),
        Err(_) => fastrand::u64(..),
    };
    format!("{n:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{Codec, Hello, Inbound};

    fn v2(last: u64, ep: &str, known: bool) -> Welcome {
        Welcome {
            last,
            rev: 2,
            ep: Some(ep.into()),
            known,
        }
    }

    fn hello_of(state: &ResumeState, last: u64) -> Hello {
        let codec = Codec::new(None, None, 1 << 20);
        match codec.decode(&state.hello("sid", last, Some("tok"))) {
            Ok(Inbound::Hello(hello)) => hello,
            other => panic!("not a hello: {other:?}"),
        }
    }

    #[test]
    fn epochs_are_random_hex_and_per_incarnation() {
        let (a, b) = (ResumeState::new(), ResumeState::new());
        for s in [&a, &b] {
            assert_eq!(s.epoch().len(), 16);
            assert!(s.epoch().bytes().all(|c| c.is_ascii_hexdigit()));
        }
        assert_ne!(a.epoch(), b.epoch());
    }

    #[test]
    fn hello_carries_the_epochs() {
        let mut s = ResumeState::with_epoch("c1".into());
        let first = hello_of(&s, 0);
        assert_eq!(
            (first.rev, first.ep.as_deref(), first.sep),
            (2, Some("c1"), None)
        );
        assert_eq!(first.token.as_deref(), Some("tok"));
        assert_eq!(s.on_welcome(&v2(0, "s1", false), 0), None);
        let again = hello_of(&s, 7);
        assert_eq!((again.last, again.sep.as_deref()), (7, Some("s1")));
        assert_eq!(s.server_epoch(), Some("s1"));
    }

    #[test]
    fn same_server_epoch_is_a_plain_resume() {
        let mut s = ResumeState::with_epoch("c1".into());
        assert_eq!(s.on_welcome(&v2(0, "s1", false), 0), None);
        s.note_acked(&[MessageId(1), MessageId(3), MessageId(2)]);
        assert_eq!(s.on_welcome(&v2(3, "s1", false), 10), None);
        assert_eq!(s.on_welcome(&v2(5, "s1", false), 10), None);
    }

    #[test]
    fn a_new_server_epoch_means_the_server_lost_its_state() {
        let mut s = ResumeState::with_epoch("c1".into());
        s.on_welcome(&v2(0, "s1", false), 0);
        s.note_acked(&[MessageId(4)]);
        let reset = s.on_welcome(&v2(0, "s2", false), 9);
        assert_eq!(
            reset,
            Some(SessionReset {
                server_lost_state: true,
                client_state_lost: false,
                acked_at_risk: Some(IdRange {
                    first: MessageId(1),
                    last: MessageId(4)
                }),
                resends_may_duplicate: None,
                inbound_may_repeat: false,
                server_revision: 2,
            })
        );
        assert_eq!(s.server_epoch(), Some("s2"));
        // Reported once: the next welcome in the new epoch is a plain resume again.
        assert_eq!(s.on_welcome(&v2(4, "s2", false), 0), None);
        // With nothing acked there is nothing at risk, but the stream is still new.
        let mut s = ResumeState::with_epoch("c1".into());
        s.on_welcome(&v2(0, "s1", false), 0);
        let reset = s.on_welcome(&v2(0, "s2", false), 0).expect("a reset");
        assert!(reset.server_lost_state && reset.acked_at_risk.is_none());
    }

    #[test]
    fn known_means_the_client_lost_its_state() {
        let mut s = ResumeState::with_epoch("c2".into());
        let reset = s.on_welcome(&v2(0, "s1", true), 0).expect("a reset");
        assert!(reset.client_state_lost && reset.inbound_may_repeat);
        assert!(!reset.server_lost_state && reset.acked_at_risk.is_none());
        // Both at once: another incarnation took over a server that had lost our state.
        let mut s = ResumeState::with_epoch("c1".into());
        s.on_welcome(&v2(0, "s1", false), 0);
        let reset = s.on_welcome(&v2(0, "s2", true), 0).expect("a reset");
        assert!(reset.client_state_lost && reset.server_lost_state);
    }

    #[test]
    fn revision_1_server_lost_only_when_it_forgot_an_ack() {
        let mut s = ResumeState::with_epoch("c1".into());
        assert_eq!(s.on_welcome(&Welcome::v1(0), 0), None);
        assert_eq!(s.server_epoch(), None);
        let plain = hello_of(&s, 3);
        assert_eq!((plain.rev, plain.sep), (2, None));
        s.note_acked(&[MessageId(5)]);
        assert_eq!(s.on_welcome(&Welcome::v1(5), 3), None);
        let reset = s.on_welcome(&Welcome::v1(2), 3).expect("a reset");
        assert!(reset.server_lost_state && !reset.client_state_lost);
        assert_eq!(reset.server_revision, 1);
        assert_eq!(
            reset.acked_at_risk,
            Some(IdRange {
                first: MessageId(3),
                last: MessageId(5)
            })
        );
        // A revision-1 `known` or `ep` is not looked at.
        let odd = Welcome {
            known: true,
            ..Welcome::v1(5)
        };
        assert_eq!(s.on_welcome(&odd, 3), None);
    }

    #[test]
    fn revision_1_then_revision_2_counts_as_a_new_stream_once_something_arrived() {
        let mut s = ResumeState::with_epoch("c1".into());
        s.on_welcome(&Welcome::v1(0), 0);
        assert_eq!(s.on_welcome(&v2(0, "s1", false), 0), None);
        let mut s = ResumeState::with_epoch("c1".into());
        s.on_welcome(&Welcome::v1(0), 0);
        let reset = s.on_welcome(&v2(0, "s1", false), 4).expect("a reset");
        assert!(reset.server_lost_state);
    }
}
