//! Which of a binding's callbacks an event reaches: the one definition the C and Python
//! layers route by, so that they cannot disagree.
//!
//! * Every event goes to the callback of its own kind ([`Slot::Kind`]).
//! * A state change to `Open` or `Ready` also reaches [`Slot::Open`] / [`Slot::Ready`], after
//!   the state callback.
//! * A failure an event carries is also reported as an error ([`Slot::Error`], before the
//!   event's own callback): an abnormal end of a link (not [`Disconnect::is_normal`]), giving
//!   up reconnecting, a refused inbound frame.
//! * A binding with a catch-all callback ([`Routes`]) hands it every kind that has no callback
//!   of its own, except messages (a message nobody takes is kept for the reader).

use crate::error::Disconnect;
use crate::event::{Event, EventKind, State};
use crate::kind::ErrorKind;

/// A callback slot a binding may fill: what an event is reported as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Slot {
    /// The error report (C's `on_error`) of the failure the event carries ([`error_kind`]).
    Error(ErrorKind),
    /// The callback of the event's own kind (`on_state`, `on_message`, `on_closed`, ...).
    Kind(EventKind),
    /// The link opened: a state change to `Open` (C's `on_open`).
    Open,
    /// The link is ready: a state change to `Ready` (C's `on_ready`).
    Ready,
}

/// The slots `event` reaches, in the order to call them: the error report first (if the event
/// carries a failure), then the event's own kind, then `Open` / `Ready` after a state change to
/// them.
pub fn slots(event: &Event) -> impl Iterator<Item = Slot> {
    let after = match event {
        Event::State {
            to: State::Open, ..
        } => Some(Slot::Open),
        Event::State {
            to: State::Ready, ..
        } => Some(Slot::Ready),
        _ => None,
    };
    let error = error_kind(event).map(Slot::Error);
    [error, Some(Slot::Kind(event.kind())), after]
        .into_iter()
        .flatten()
}

/// The kind of the failure `event` also reports as an error, if any: a link that ended
/// abnormally ([`Disconnect::error_kind`]), the client closed because reconnecting gave up, an
/// inbound frame refused. (A `Closed` for any other reason reports nothing more: its link's
/// end was reported by the `Disconnected` before it.)
pub fn error_kind(event: &Event) -> Option<ErrorKind> {
    match event {
        Event::Disconnected { reason, .. } => reason.error_kind(),
        Event::Closed {
            reason: Disconnect::RetriesExhausted { .. },
            ..
        } => Some(ErrorKind::RetriesExhausted),
        Event::InboundRejected { .. } => Some(ErrorKind::InboundRejected),
        _ => None,
    }
}

/// The text of the error report of `event` ([`Slot::Error`]): the reason it carries, in words.
pub fn error_text(event: &Event) -> String {
    match event {
        Event::Disconnected { reason, .. } | Event::Closed { reason, .. } => reason.to_string(),
        Event::InboundRejected { reason } => reason.clone(),
        _ => String::new(),
    }
}

/// A binding's callbacks by [`Slot`], plus an optional catch-all (Python's `on_event`) that
/// takes every event kind without a callback of its own, except messages.
#[derive(Clone, Debug)]
pub struct Routes<T> {
    own: Vec<(Slot, T)>,
    catch_all: Option<T>,
}

impl<T> Default for Routes<T> {
    fn default() -> Self {
        Routes {
            own: Vec::new(),
            catch_all: None,
        }
    }
}

impl<T> Routes<T> {
    /// Set the callback of `slot` (replacing one set before).
    pub fn set(&mut self, slot: Slot, callback: T) {
        self.own.retain(|(s, _)| *s != slot);
        self.own.push((slot, callback));
    }

    /// Set the catch-all callback.
    pub fn set_catch_all(&mut self, callback: T) {
        self.catch_all = Some(callback);
    }

    /// The callback for `slot`: its own, else the catch-all for an event kind other than
    /// messages (never for the extra reports `Error`, `Open`, `Ready`).
    pub fn get(&self, slot: Slot) -> Option<&T> {
        let own = self.own.iter().find(|(s, _)| *s == slot).map(|(_, c)| c);
        own.or(match slot {
            Slot::Kind(kind) if kind != EventKind::Message => self.catch_all.as_ref(),
            _ => None,
        })
    }

    /// The callbacks `event` reaches, in call order, each with its slot.
    pub fn targets<'a>(&'a self, event: &Event) -> impl Iterator<Item = (Slot, &'a T)> + 'a {
        slots(event).filter_map(move |slot| Some((slot, self.get(slot)?)))
    }

    /// True when no callback is set.
    pub fn is_empty(&self) -> bool {
        self.own.is_empty() && self.catch_all.is_none()
    }

    /// Every callback set (the catch-all last).
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.own.iter().map(|(_, c)| c).chain(&self.catch_all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Message, MessageId};

    fn state(to: State) -> Event {
        Event::State {
            from: State::Connecting,
            to,
        }
    }

    fn server_close(code: u16) -> Disconnect {
        Disconnect::ServerClosed {
            code,
            reason: String::new(),
        }
    }

    fn lost(reason: Disconnect) -> Event {
        Event::Disconnected {
            reason,
            will_reconnect: true,
        }
    }

    fn closed(reason: Disconnect) -> Event {
        Event::Closed {
            reason,
            undelivered: 0,
        }
    }

    fn all(event: &Event) -> Vec<Slot> {
        slots(event).collect()
    }

    #[test]
    fn state_changes_to_open_and_ready_also_reach_their_slots_after_the_state() {
        let kind = Slot::Kind(EventKind::State);
        assert_eq!(all(&state(State::Open)), [kind, Slot::Open]);
        assert_eq!(all(&state(State::Ready)), [kind, Slot::Ready]);
        assert_eq!(all(&state(State::Reconnecting)), [kind]);
    }

    #[test]
    fn an_abnormal_end_is_reported_as_an_error_first_and_a_normal_one_is_not() {
        let close = Slot::Kind(EventKind::Disconnected);
        assert_eq!(all(&lost(server_close(1000))), [close]);
        assert_eq!(all(&lost(server_close(1001))), [close]);
        let user = Disconnect::UserClose {
            code: 4000,
            reason: String::new(),
        };
        assert_eq!(all(&lost(user)), [close]);
        let error = Slot::Error(ErrorKind::ConnectionLost);
        assert_eq!(all(&lost(server_close(1011))), [error, close]);
        assert_eq!(all(&lost(server_close(4000))), [error, close]);
        let event = lost(server_close(1011));
        assert_eq!(error_text(&event), server_close(1011).to_string());
    }

    #[test]
    fn closed_reports_an_error_only_when_reconnecting_gave_up() {
        let kind = Slot::Kind(EventKind::Closed);
        assert_eq!(all(&closed(server_close(1011))), [kind]);
        let gave_up = Disconnect::RetriesExhausted {
            reason: "max attempts".into(),
            last: Box::new(server_close(1011)),
        };
        let error = Slot::Error(ErrorKind::RetriesExhausted);
        assert_eq!(all(&closed(gave_up.clone())), [error, kind]);
        assert_eq!(error_text(&closed(gave_up.clone())), gave_up.to_string());
        let rejected = Event::InboundRejected {
            reason: "bad signature".into(),
        };
        let error = Slot::Error(ErrorKind::InboundRejected);
        let kind = Slot::Kind(EventKind::InboundRejected);
        assert_eq!(all(&rejected), [error, kind]);
        assert_eq!(error_text(&rejected), "bad signature");
    }

    #[test]
    fn the_catch_all_takes_kinds_without_their_own_callback_but_never_messages() {
        let mut routes = Routes::default();
        assert!(routes.is_empty());
        routes.set(Slot::Kind(EventKind::Closed), "on_closed");
        routes.set_catch_all("on_event");
        let message = Event::Message(Message::Text("hi".into()));
        assert_eq!(routes.targets(&message).count(), 0, "kept for the reader");
        let end = closed(server_close(1000));
        let got: Vec<_> = routes.targets(&end).collect();
        assert_eq!(got, [(Slot::Kind(EventKind::Closed), &"on_closed")]);
        // The extra reports go only to a callback of their own.
        let got: Vec<_> = routes.targets(&lost(server_close(1011))).collect();
        assert_eq!(got, [(Slot::Kind(EventKind::Disconnected), &"on_event")]);
        routes.set(Slot::Kind(EventKind::Message), "on_message");
        routes.set(Slot::Kind(EventKind::Message), "on_message (again)");
        let got: Vec<_> = routes.targets(&message).map(|(_, c)| *c).collect();
        assert_eq!(got, ["on_message (again)"]);
        let acked = Event::Acked { id: MessageId(1) };
        assert_eq!(routes.targets(&acked).count(), 1);
        assert_eq!(routes.iter().count(), 3);
    }
}
