//! Keepalive: the pings a connection sends to learn that its peer is still there, and
//! the policy a server enforces on the pings it receives. Pure state machines over
//! `Instant`s; the drivers (`transport::server`, `transport::client`) feed them the time
//! of the last read and act on what they answer.
//!
//! Specs: grpc `doc/keepalive.md` and gRFC A8 (client-side keepalive and its server-side
//! enforcement). Defaults follow grpc-go (`internal/transport/defaults.go`).

use std::time::{Duration, Instant};

/// How a side pings its peer (keepalive.md: `KEEPALIVE_TIME`, `KEEPALIVE_TIMEOUT`,
/// `KEEPALIVE_WITHOUT_CALLS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Keepalive {
    /// Read inactivity after which a ping is sent; `None` never pings.
    pub time: Option<Duration>,
    /// How long to wait for any read after a ping before the connection is closed.
    pub timeout: Duration,
    /// Whether to ping while no call is active.
    pub permit_without_stream: bool,
}

/// keepalive.md: `KEEPALIVE_TIMEOUT` defaults to 20 seconds.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
/// grpc-go's server pings after 2 hours of inactivity by default.
pub(crate) const DEFAULT_SERVER_TIME: Duration = Duration::from_secs(2 * 60 * 60);
/// gRFC A8: a client's keepalive time is clamped to at least 10 seconds.
pub(crate) const MIN_CLIENT_TIME: Duration = Duration::from_secs(10);

impl Keepalive {
    /// Clients do not ping unless configured to (grpc-go: infinity).
    pub(crate) fn client_default() -> Keepalive {
        Keepalive {
            time: None,
            timeout: DEFAULT_TIMEOUT,
            permit_without_stream: false,
        }
    }

    /// Servers ping after 2 hours of inactivity, waiting 20 seconds for the ack.
    pub(crate) fn server_default() -> Keepalive {
        Keepalive {
            time: Some(DEFAULT_SERVER_TIME),
            timeout: DEFAULT_TIMEOUT,
            // A server's pings keep idle connections honest too (grpc-go pings idle
            // connections from the server side).
            permit_without_stream: true,
        }
    }
}

/// What a driver does after asking its [`Pinger`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PingAction {
    /// Nothing now; ask again at [`Pinger::deadline`].
    Wait,
    /// Send a PING.
    Ping,
    /// No read within `timeout` of the ping: the peer is gone; close the connection.
    Close,
}

/// The keepalive pinger of one connection.
///
/// ```text
///            time without a read, calls active (or permitted without)
///   Waiting ─────────────────────────────────────────────▶ Outstanding{sent}
///     ▲  │ time without a read, no calls, not permitted        │      │
///     │  ▼                                                     │      │ timeout, no read
///   Dormant ── a call starts (re-checked at once) ──▶ Waiting   │      ▼
///     ▲                                                        │    Close
///     └──────────────── any read after `sent` ◀────────────────┘
/// ```
/// Any read counts as proof of life, the PING ack included (grpc-go checks its
/// `lastRead` the same way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pinger {
    config: Keepalive,
    state: PingState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PingState {
    Waiting,
    Dormant,
    Outstanding { sent: Instant },
}

impl Pinger {
    /// A pinger for a connection that started now.
    pub(crate) fn new(config: Keepalive) -> Pinger {
        Pinger {
            config,
            state: PingState::Waiting,
        }
    }

    /// When to ask again, given the time of the last read; `None` while there is
    /// nothing to wait for (keepalive off, or dormant until a call starts).
    pub(crate) fn deadline(&self, last_read: Instant) -> Option<Instant> {
        let time = self.config.time?;
        match self.state {
            PingState::Waiting => Some(last_read + time),
            PingState::Dormant => None,
            PingState::Outstanding { sent } => Some(sent + self.config.timeout),
        }
    }

    /// Whether keepalive pings are on at all.
    pub(crate) fn is_enabled(&self) -> bool {
        self.config.time.is_some()
    }

    /// Whether a ping is outstanding and a read came after it: the machine should be
    /// stepped now rather than at the ack deadline.
    pub(crate) fn is_answered(&self, last_read: Instant) -> bool {
        matches!(self.state, PingState::Outstanding { sent } if last_read > sent)
    }

    /// Whether a call starting now should re-check at once (the pinger is dormant).
    pub(crate) fn is_dormant(&self) -> bool {
        self.state == PingState::Dormant
    }

    /// Steps the machine at `now`.
    pub(crate) fn poll(
        &mut self,
        now: Instant,
        last_read: Instant,
        active_calls: usize,
    ) -> PingAction {
        let Some(time) = self.config.time else {
            return PingAction::Wait;
        };
        loop {
            match self.state {
                PingState::Waiting => {
                    if now < last_read + time {
                        return PingAction::Wait;
                    }
                    if active_calls == 0 && !self.config.permit_without_stream {
                        self.state = PingState::Dormant;
                        return PingAction::Wait;
                    }
                    self.state = PingState::Outstanding { sent: now };
                    return PingAction::Ping;
                }
                PingState::Dormant => {
                    if active_calls == 0 && !self.config.permit_without_stream {
                        return PingAction::Wait;
                    }
                    self.state = PingState::Waiting;
                }
                PingState::Outstanding { sent } => {
                    if last_read > sent {
                        self.state = PingState::Waiting;
                        continue;
                    }
                    if now >= sent + self.config.timeout {
                        return PingAction::Close;
                    }
                    return PingAction::Wait;
                }
            }
        }
    }
}

/// What a server allows of a client's pings (gRFC A8: `PERMIT_KEEPALIVE_TIME`,
/// `PERMIT_KEEPALIVE_WITHOUT_CALLS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EnforcementPolicy {
    /// The shortest interval between two pings the server accepts (default 5 min).
    pub min_time: Duration,
    /// Whether pings while no call is active are accepted (default false).
    pub permit_without_stream: bool,
}

impl Default for EnforcementPolicy {
    fn default() -> EnforcementPolicy {
        EnforcementPolicy {
            min_time: Duration::from_secs(5 * 60),
            permit_without_stream: false,
        }
    }
}

/// Strikes a client may collect before it is cut off: gRFC A8 and grpc-go close the
/// connection on the third offending ping.
pub(crate) const MAX_PING_STRIKES: u32 = 2;
/// With no calls active and none permitted, a ping within this long of the last one is
/// an offence (grpc-go's `defaultPingTimeout`, 2 hours).
const IDLE_PING_INTERVAL: Duration = Duration::from_secs(2 * 60 * 60);

/// The server's count of a client's offending pings (gRFC A8).
///
/// A ping is an offence when it comes sooner than `min_time` after the last one, or,
/// with no calls active and `permit_without_stream` off, sooner than 2 hours after it.
/// Sending HEADERS or DATA resets the count (A8: "ping strikes are reset when the
/// server sends headers or data"), so a client that pings during busy calls is fine.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PingStrikes {
    policy: EnforcementPolicy,
    last_ping: Option<Instant>,
    strikes: u32,
    reset: bool,
}

impl PingStrikes {
    /// A fresh count under `policy`.
    pub(crate) fn new(policy: EnforcementPolicy) -> PingStrikes {
        PingStrikes {
            policy,
            last_ping: None,
            strikes: 0,
            reset: false,
        }
    }

    /// The server sent headers or data: the next ping starts a fresh count.
    pub(crate) fn reset(&mut self) {
        self.reset = true;
    }

    /// Records a PING (not an ack) received at `now`; true once the client has
    /// earned a GOAWAY `too_many_pings`.
    pub(crate) fn on_ping(&mut self, now: Instant, active_calls: usize) -> bool {
        let last = self.last_ping.replace(now);
        if std::mem::take(&mut self.reset) {
            self.strikes = 0;
            return false;
        }
        let Some(last) = last else {
            return false;
        };
        let allowed = if active_calls == 0 && !self.policy.permit_without_stream {
            IDLE_PING_INTERVAL
        } else {
            self.policy.min_time
        };
        if now < last + allowed {
            self.strikes += 1;
        }
        self.strikes > MAX_PING_STRIKES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    fn client(time: u64, timeout: u64, without: bool) -> Pinger {
        Pinger::new(Keepalive {
            time: Some(s(time)),
            timeout: s(timeout),
            permit_without_stream: without,
        })
    }

    #[test]
    fn pings_only_after_time_without_a_read_and_closes_without_an_ack() {
        let t0 = Instant::now();
        let mut p = client(10, 2, false);
        assert_eq!(p.deadline(t0), Some(t0 + s(10)));
        assert_eq!(p.poll(t0 + s(9), t0, 1), PingAction::Wait);
        // A read at t0+5 moves the ping out.
        assert_eq!(p.poll(t0 + s(10), t0 + s(5), 1), PingAction::Wait);
        assert_eq!(p.poll(t0 + s(15), t0 + s(5), 1), PingAction::Ping);
        assert_eq!(p.deadline(t0 + s(5)), Some(t0 + s(17)));
        assert_eq!(p.poll(t0 + s(16), t0 + s(5), 1), PingAction::Wait);
        assert_eq!(p.poll(t0 + s(17), t0 + s(5), 1), PingAction::Close);
    }

    #[test]
    fn any_read_after_the_ping_is_proof_of_life() {
        let t0 = Instant::now();
        let mut p = client(10, 2, false);
        assert_eq!(p.poll(t0 + s(10), t0, 1), PingAction::Ping);
        let ack = t0 + s(10) + Duration::from_millis(1);
        assert!(!p.is_answered(t0 + s(10)));
        assert!(p.is_answered(ack));
        assert_eq!(p.poll(t0 + s(12), ack, 1), PingAction::Wait);
        assert!(!p.is_answered(ack));
        assert_eq!(p.deadline(ack), Some(ack + s(10)));
    }

    #[test]
    fn without_calls_it_sleeps_unless_permitted() {
        let t0 = Instant::now();
        let mut p = client(10, 2, false);
        assert_eq!(p.poll(t0 + s(10), t0, 0), PingAction::Wait);
        assert!(p.is_dormant());
        assert_eq!(p.deadline(t0), None);
        // A call starts long after the last read: ping at once.
        assert_eq!(p.poll(t0 + s(30), t0, 1), PingAction::Ping);
        let mut permitted = client(10, 2, true);
        assert_eq!(permitted.poll(t0 + s(10), t0, 0), PingAction::Ping);
    }

    #[test]
    fn keepalive_off_never_pings() {
        let t0 = Instant::now();
        let mut p = Pinger::new(Keepalive::client_default());
        assert_eq!(p.deadline(t0), None);
        assert_eq!(p.poll(t0 + s(1_000_000), t0, 5), PingAction::Wait);
    }

    #[test]
    fn the_third_early_ping_is_too_many() {
        let t0 = Instant::now();
        let mut strikes = PingStrikes::new(EnforcementPolicy {
            min_time: s(10),
            permit_without_stream: false,
        });
        assert!(!strikes.on_ping(t0, 1));
        assert!(!strikes.on_ping(t0 + s(1), 1)); // strike 1
        assert!(!strikes.on_ping(t0 + s(2), 1)); // strike 2
        assert!(strikes.on_ping(t0 + s(3), 1)); // strike 3: cut off
    }

    #[test]
    fn pings_at_the_permitted_rate_and_resets_earn_no_strikes() {
        let t0 = Instant::now();
        let mut strikes = PingStrikes::new(EnforcementPolicy {
            min_time: s(10),
            permit_without_stream: false,
        });
        for i in 0..10 {
            assert!(!strikes.on_ping(t0 + s(10 * i), 1));
        }
        // Early pings, each after the server sent data: no offence.
        for i in 0..10 {
            strikes.reset();
            assert!(!strikes.on_ping(t0 + s(100) + Duration::from_millis(i), 1));
        }
    }

    #[test]
    fn idle_pings_need_permission_or_two_hours() {
        let t0 = Instant::now();
        let policy = EnforcementPolicy {
            min_time: s(10),
            permit_without_stream: false,
        };
        let mut strikes = PingStrikes::new(policy);
        assert!(!strikes.on_ping(t0, 0));
        // 60 s apart is fine with calls, an offence without them.
        assert!(!strikes.on_ping(t0 + s(60), 0));
        assert!(!strikes.on_ping(t0 + s(120), 0));
        assert!(strikes.on_ping(t0 + s(180), 0));
        let mut permitted = PingStrikes::new(EnforcementPolicy {
            permit_without_stream: true,
            ..policy
        });
        for i in 0..5 {
            assert!(!permitted.on_ping(t0 + s(60 * i), 0));
        }
    }
}
