//! Retries and hedging (gRFC A6): the policies from the service config, the channel's
//! throttle, the replay budget that bounds what calls keep for another attempt, the
//! replay buffer of streamed requests, and the attempts of a hedged call.

pub(crate) mod buffer;
pub(crate) mod hedge;
pub(crate) mod policy;
pub(crate) mod replay;
pub(crate) mod throttle;
