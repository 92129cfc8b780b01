//! Retry policy: which disconnects are worth a reconnect, and how long to wait before each
//! attempt (exponential backoff with full jitter).

use std::time::Duration;

use tokio::time::Instant;

use crate::config::ReconnectPolicy;
use crate::error::{ConnectError, Disconnect, ProxyRefusal};

/// The classifier's verdict on one disconnect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryDecision {
    /// Reconnect (subject to the attempt and time limits).
    Retry,
    /// Stop for good: the client goes to `Closed`.
    Stop,
}

/// Tether's default classification, documented in the README's "Reconnect" section:
///
/// * a user close: stop;
/// * server close codes 1002 (protocol error), 1003 (unsupported data), 1007 (invalid
///   payload), 1008 (policy violation), 1010 (extension required), 3500–3999 and 4500–4999
///   (application "final" ranges): stop; every other code (1000, 1001, 1005, 1006, 1011–1014,
///   3000–3499, 4000–4499, ...): retry, because servers close normally when they restart or
///   rotate connections;
/// * HTTP 401 / 403 on the upgrade: stop (credentials will not fix themselves); 408, 429 and
///   5xx: retry; other statuses (redirects, 400, 404, ...): stop;
/// * TLS errors and invalid upgrade responses: stop (retrying cannot change a certificate or a
///   server that does not speak WebSocket);
/// * envelope mode: a `reject` marked final and a server that does not speak the protocol:
///   stop; a transient `reject` and a handshake timeout: retry;
/// * a proxy's refusal: as the same answer from the server (407 stops, 502/503 retry; SOCKS5
///   refusals of the request or the credentials stop, its network failures retry), and a
///   proxy that does not speak its protocol stops;
/// * network errors (to the server or the proxy), timeouts, resolve failures, a failing
///   credentials provider, heartbeat timeouts, oversized inbound messages and protocol errors
///   from the server: retry.
pub fn default_retry_decision(reason: &Disconnect) -> RetryDecision {
    use RetryDecision::{Retry, Stop};
    match reason {
        Disconnect::UserClose { .. } | Disconnect::RetriesExhausted { .. } => Stop,
        Disconnect::ServerClosed { code, .. } => match code {
            1002 | 1003 | 1007 | 1008 | 1010 | 3500..=3999 | 4500..=4999 => Stop,
            _ => Retry,
        },
        Disconnect::ConnectFailed(e) => match e {
            ConnectError::HttpStatus { status, .. } => match status {
                408 | 429 | 500..=599 => Retry,
                _ => Stop,
            },
            ConnectError::Tls(_) | ConnectError::Handshake(_) => Stop,
            ConnectError::Proxy { refusal, .. } => proxy_decision(*refusal),
            ConnectError::Timeout(_)
            | ConnectError::Resolve(_)
            | ConnectError::Io(_)
            | ConnectError::Credentials(_) => Retry,
        },
        Disconnect::Rejected { is_final, .. } => {
            if *is_final {
                Stop
            } else {
                Retry
            }
        }
        Disconnect::HandshakeFailed(_) => Stop,
        Disconnect::ConnectionLost(_)
        | Disconnect::HandshakeTimeout(_)
        | Disconnect::HeartbeatTimeout(_)
        | Disconnect::InboundTooLarge { .. }
        | Disconnect::ProtocolError { .. } => Retry,
    }
}

/// A proxy's refusal, classified like the server's own answers: an HTTP status as on the
/// upgrade (407, like 401, stops; 502/503/504, an upstream the proxy cannot reach right now,
/// retry); SOCKS5 "not allowed", "command/address type not supported" and refused credentials
/// stop, its network failures (general failure, unreachable, refused, TTL) retry; an answer
/// that is not the proxy protocol stops.
fn proxy_decision(refusal: ProxyRefusal) -> RetryDecision {
    use RetryDecision::{Retry, Stop};
    match refusal {
        ProxyRefusal::HttpStatus(408 | 429 | 500..=599) => Retry,
        ProxyRefusal::SocksReply(1 | 3 | 4 | 5 | 6) => Retry,
        ProxyRefusal::HttpStatus(_)
        | ProxyRefusal::SocksReply(_)
        | ProxyRefusal::SocksNoAcceptableMethod
        | ProxyRefusal::SocksAuthFailed
        | ProxyRefusal::Malformed => Stop,
    }
}

/// The upper bound of the delay before attempt `attempt` (1-based):
/// `min(max_delay, initial_delay * multiplier^(attempt-1))`.
pub fn backoff_ceiling(policy: &ReconnectPolicy, attempt: u32) -> Duration {
    let exp = attempt.saturating_sub(1).min(1000) as i32;
    let ceiling = policy.initial_delay.as_secs_f64() * policy.multiplier.powi(exp);
    let max = policy.max_delay.as_secs_f64();
    Duration::from_secs_f64(if ceiling.is_finite() {
        ceiling.min(max)
    } else {
        max
    })
}

/// Full jitter: a uniformly random delay in `[0, backoff_ceiling]`, so many clients cut off by
/// the same outage do not reconnect in lockstep.
pub fn backoff_delay(policy: &ReconnectPolicy, attempt: u32) -> Duration {
    backoff_ceiling(policy, attempt).mul_f64(fastrand::f64())
}

/// Where an outage stands: attempts made and when it began. One per client; the session
/// asks it after every disconnect.
#[derive(Debug, Default)]
pub(crate) struct RetryState {
    attempt: u32,
    outage_started: Option<Instant>,
}

/// What to do after a disconnect.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RetryStep {
    /// Reconnect after `delay`; this is attempt `attempt` of the outage (1-based).
    Retry { attempt: u32, delay: Duration },
    /// Stop for good with this reason (the disconnect, or [`Disconnect::RetriesExhausted`]).
    Stop(Disconnect),
}

impl RetryState {
    /// A link was up for `uptime`: if that was long enough, the outage is over and the next
    /// disconnect starts a new one (from attempt 1 and the initial delay).
    pub(crate) fn link_was_up(&mut self, uptime: Duration, policy: &ReconnectPolicy) {
        if uptime >= policy.min_uptime {
            *self = RetryState::default();
        }
    }

    /// The policy's decision on `reason` at `now`: the classifier first, then the attempt and
    /// time limits (the time cap counts the coming delay, so no attempt starts past it).
    pub(crate) fn next(
        &mut self,
        policy: &ReconnectPolicy,
        reason: &Disconnect,
        now: Instant,
    ) -> RetryStep {
        if !policy.enabled || (policy.classifier)(reason) != RetryDecision::Retry {
            return RetryStep::Stop(reason.clone());
        }
        self.attempt = self.attempt.saturating_add(1);
        let attempt = self.attempt;
        let started = *self.outage_started.get_or_insert(now);
        let delay = backoff_delay(policy, attempt);
        let exhausted = match (policy.max_attempts, policy.max_retry_duration) {
            (Some(max), _) if attempt > max => Some(format!("{max} reconnect attempts used")),
            (_, Some(cap)) if now.saturating_duration_since(started) + delay > cap => {
                Some(format!("retry time cap of {cap:?} reached"))
            }
            _ => None,
        };
        match exhausted {
            Some(why) => RetryStep::Stop(Disconnect::RetriesExhausted {
                reason: why,
                last: Box::new(reason.clone()),
            }),
            None => RetryStep::Retry { attempt, delay },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ReconnectPolicy {
        ReconnectPolicy {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            multiplier: 2.0,
            ..ReconnectPolicy::default()
        }
    }

    #[test]
    fn ceiling_grows_exponentially_and_is_capped() {
        let p = policy();
        assert_eq!(backoff_ceiling(&p, 1), Duration::from_millis(100));
        assert_eq!(backoff_ceiling(&p, 2), Duration::from_millis(200));
        assert_eq!(backoff_ceiling(&p, 4), Duration::from_millis(800));
        assert_eq!(backoff_ceiling(&p, 6), Duration::from_secs(2));
        assert_eq!(backoff_ceiling(&p, u32::MAX), Duration::from_secs(2));
    }

    #[test]
    fn jitter_stays_within_the_ceiling_and_varies() {
        let p = policy();
        let delays: Vec<Duration> = (0..200).map(|_| backoff_delay(&p, 3)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(400)));
        let min = delays.iter().min().copied().unwrap_or_default();
        let max = delays.iter().max().copied().unwrap_or_default();
        assert!(
            max - min > Duration::from_millis(100),
            "full jitter spreads delays: {min:?}..{max:?}"
        );
    }

    #[test]
    fn default_classification_matches_the_documented_table() {
        use RetryDecision::{Retry, Stop};
        let server = |code| Disconnect::ServerClosed {
            code,
            reason: String::new(),
        };
        let proxy = |refusal| {
            Disconnect::ConnectFailed(ConnectError::Proxy {
                proxy: "p:1".into(),
                refusal,
                detail: String::new(),
            })
        };
        let http = |status| {
            Disconnect::ConnectFailed(ConnectError::HttpStatus {
                status,
                location: None,
            })
        };
        let cases = [
            (
                Disconnect::UserClose {
                    code: 1000,
                    reason: String::new(),
                },
                Stop,
            ),
            (server(1000), Retry),
            (server(1001), Retry),
            (server(1006), Retry),
            (server(1008), Stop),
            (server(1011), Retry),
            (server(1012), Retry),
            (server(1013), Retry),
            (server(4000), Retry),
            (server(4500), Stop),
            (server(3600), Stop),
            (http(401), Stop),
            (http(403), Stop),
            (http(404), Stop),
            (http(429), Retry),
            (http(500), Retry),
            (http(503), Retry),
            (
                Disconnect::ConnectFailed(ConnectError::Io("refused".into())),
                Retry,
            ),
            (
                Disconnect::ConnectFailed(ConnectError::Tls("bad cert".into())),
                Stop,
            ),
            (Disconnect::ConnectionLost("eof".into()), Retry),
            (Disconnect::HeartbeatTimeout(Duration::from_secs(1)), Retry),
            (proxy(ProxyRefusal::HttpStatus(407)), Stop),
            (proxy(ProxyRefusal::HttpStatus(403)), Stop),
            (proxy(ProxyRefusal::HttpStatus(502)), Retry),
            (proxy(ProxyRefusal::HttpStatus(503)), Retry),
            (proxy(ProxyRefusal::SocksReply(2)), Stop),
            (proxy(ProxyRefusal::SocksReply(5)), Retry),
            (proxy(ProxyRefusal::SocksAuthFailed), Stop),
            (proxy(ProxyRefusal::Malformed), Stop),
            (
                Disconnect::ConnectFailed(ConnectError::Credentials("down".into())),
                Retry,
            ),
        ];
        for (reason, want) in cases {
            assert_eq!(default_retry_decision(&reason), want, "{reason:?}");
        }
    }

    fn lost() -> Disconnect {
        Disconnect::ConnectionLost("eof".into())
    }

    fn attempt(step: &RetryStep) -> Option<u32> {
        match step {
            RetryStep::Retry { attempt, .. } => Some(*attempt),
            RetryStep::Stop(_) => None,
        }
    }

    #[test]
    fn retry_state_counts_attempts_until_the_limit() {
        let p = ReconnectPolicy {
            max_attempts: Some(2),
            ..policy()
        };
        let mut state = RetryState::default();
        let now = Instant::now();
        for want in 1..=2 {
            let step = state.next(&p, &lost(), now);
            assert_eq!(attempt(&step), Some(want));
            let RetryStep::Retry { delay, .. } = step else {
                unreachable!()
            };
            assert!(delay <= backoff_ceiling(&p, want));
        }
        match state.next(&p, &lost(), now) {
            RetryStep::Stop(Disconnect::RetriesExhausted { reason, last }) => {
                assert_eq!(reason, "2 reconnect attempts used");
                assert_eq!(*last, lost());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_link_up_for_min_uptime_ends_the_outage() {
        let p = policy();
        let mut state = RetryState::default();
        let now = Instant::now();
        assert_eq!(attempt(&state.next(&p, &lost(), now)), Some(1));
        state.link_was_up(p.min_uptime / 2, &p);
        assert_eq!(attempt(&state.next(&p, &lost(), now)), Some(2));
        state.link_was_up(p.min_uptime, &p);
        assert_eq!(attempt(&state.next(&p, &lost(), now)), Some(1));
    }

    #[test]
    fn the_time_cap_counts_from_the_first_disconnect_of_the_outage() {
        let p = ReconnectPolicy {
            max_retry_duration: Some(Duration::from_secs(10)),
            ..policy()
        };
        let mut state = RetryState::default();
        let start = Instant::now();
        assert_eq!(attempt(&state.next(&p, &lost(), start)), Some(1));
        let later = start + Duration::from_secs(11);
        match state.next(&p, &lost(), later) {
            RetryStep::Stop(Disconnect::RetriesExhausted { reason, .. }) => {
                assert!(reason.starts_with("retry time cap of 10s"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn disabled_or_final_disconnects_stop_without_counting() {
        let mut state = RetryState::default();
        let now = Instant::now();
        let off = ReconnectPolicy {
            enabled: false,
            ..policy()
        };
        assert_eq!(state.next(&off, &lost(), now), RetryStep::Stop(lost()));
        let final_close = Disconnect::ServerClosed {
            code: 1008,
            reason: "policy".into(),
        };
        let p = policy();
        assert_eq!(
            state.next(&p, &final_close, now),
            RetryStep::Stop(final_close.clone())
        );
        assert_eq!(attempt(&state.next(&p, &lost(), now)), Some(1));
    }
}
