//! The client: [`Channel`] and the handles of streaming calls.

mod call;
mod channel;
mod handles;

pub use channel::Channel;
pub use handles::{BidiStreamingCall, ClientStreamingCall, RequestSink, ResponseStream};
