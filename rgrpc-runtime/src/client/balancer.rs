//! Load balancing: which of a channel's Ready connections a call goes to.
//!
//! pick_first and round_robin are built in (`LbPolicy`); anything else (least
//! request, weighted, zone-aware) is a [`LoadBalancer`]: the channel keeps every
//! address connected, as round_robin does, and asks the balancer to choose among the
//! Ready ones for each call.

/// A user's load-balancing policy (grpc-go's `balancer.Picker`, without the
/// connection management, which the channel does).
pub trait LoadBalancer: Send + Sync + 'static {
    /// Chooses the index in `ready` (never empty) the call to `full_method` goes to;
    /// an index out of range picks the first.
    fn pick(&self, full_method: &str, ready: &[Endpoint<'_>]) -> usize;
}

/// One Ready connection, as a [`LoadBalancer`] sees it.
#[derive(Clone, Copy, Debug)]
pub struct Endpoint<'a> {
    address: &'a str,
    active_calls: usize,
}

impl<'a> Endpoint<'a> {
    pub(crate) fn new(address: &'a str, active_calls: usize) -> Endpoint<'a> {
        Endpoint {
            address,
            active_calls,
        }
    }

    /// The address: `host:port` or `unix:path`.
    pub fn address(&self) -> &str {
        self.address
    }

    /// Calls in flight on this connection now (least_request's input).
    pub fn active_calls(&self) -> usize {
        self.active_calls
    }
}

/// least_request over two random choices would be written like this; used by the
/// tests of the interface.
#[cfg(test)]
pub(crate) struct LeastActive;

#[cfg(test)]
impl LoadBalancer for LeastActive {
    fn pick(&self, _full_method: &str, ready: &[Endpoint<'_>]) -> usize {
        (0..ready.len())
            .min_by_key(|&i| ready[i].active_calls())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_balancer_sees_addresses_and_load() {
        let ready = [
            Endpoint::new("10.0.0.1:1", 3),
            Endpoint::new("10.0.0.2:1", 1),
        ];
        assert_eq!(LeastActive.pick("/a.B/C", &ready), 1);
        assert_eq!(ready[1].address(), "10.0.0.2:1");
    }
}
