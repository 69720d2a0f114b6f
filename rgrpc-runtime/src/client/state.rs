//! Connectivity states of a channel and of its subchannels (grpc's
//! `doc/connectivity-semantics-and-api.md`).

use std::fmt;

/// Where a channel (or one of its subchannels) stands.
///
/// ```text
///          first call / connect()          connected
///   Idle ─────────────────────────▶ Connecting ───────▶ Ready
///    ▲                                │   ▲              │ GOAWAY, connection lost
///    │                       failed   ▼   │ backoff over │
///    │                        TransientFailure           │
///    └───────────────────────────────────────────────────┘
///   (any) ── the channel is dropped ──▶ Shutdown
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnectivityState {
    /// No connection and none being made; the next call starts one.
    Idle,
    /// A connection is being made.
    Connecting,
    /// Connected: calls go out now.
    Ready,
    /// The last attempt failed; the next one waits for its backoff. Fail-fast calls
    /// fail UNAVAILABLE at once; wait-for-ready calls wait.
    TransientFailure,
    /// The channel was shut down.
    Shutdown,
}

impl ConnectivityState {
    /// The state of a channel from its subchannels' (grpc's aggregation rule): Ready
    /// if any is, else Connecting if any is (or is idle and about to), else
    /// TransientFailure if all have failed, else Idle.
    pub(crate) fn aggregate(states: impl Iterator<Item = ConnectivityState>) -> ConnectivityState {
        let (mut any, mut connecting, mut idle, mut failed) = (false, false, false, false);
        for state in states {
            any = true;
            match state {
                ConnectivityState::Ready => return ConnectivityState::Ready,
                ConnectivityState::Connecting => connecting = true,
                ConnectivityState::Idle => idle = true,
                ConnectivityState::TransientFailure => failed = true,
                ConnectivityState::Shutdown => {}
            }
        }
        if connecting {
            ConnectivityState::Connecting
        } else if idle || !any {
            ConnectivityState::Idle
        } else if failed {
            ConnectivityState::TransientFailure
        } else {
            ConnectivityState::Shutdown
        }
    }
}

impl fmt::Display for ConnectivityState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConnectivityState::Idle => "IDLE",
            ConnectivityState::Connecting => "CONNECTING",
            ConnectivityState::Ready => "READY",
            ConnectivityState::TransientFailure => "TRANSIENT_FAILURE",
            ConnectivityState::Shutdown => "SHUTDOWN",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ConnectivityState::*;
    use super::*;

    #[test]
    fn the_channel_state_follows_grpcs_aggregation() {
        let agg = |s: &[ConnectivityState]| ConnectivityState::aggregate(s.iter().copied());
        assert_eq!(agg(&[TransientFailure, Ready, Connecting]), Ready);
        assert_eq!(agg(&[TransientFailure, Connecting]), Connecting);
        assert_eq!(agg(&[TransientFailure, TransientFailure]), TransientFailure);
        assert_eq!(agg(&[TransientFailure, Idle]), Idle);
        assert_eq!(agg(&[]), Idle);
        assert_eq!(Ready.to_string(), "READY");
    }
}
