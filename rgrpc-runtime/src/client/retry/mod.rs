//! Retries and hedging (gRFC A6): the policies from the service config, the channel's
//! throttle, and the replay budget that bounds what calls keep for another attempt.

pub(crate) mod buffer;
pub(crate) mod policy;
pub(crate) mod throttle;
