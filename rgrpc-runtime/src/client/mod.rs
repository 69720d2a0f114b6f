//! The client: [`Channel`] and the handles of streaming calls.

mod call;
mod channel;

pub use call::{BidiStreamingCall, ClientStreamingCall, RequestSink, ResponseStream};
pub use channel::Channel;
