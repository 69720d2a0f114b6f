//! The client: [`Channel`] (resolver -> load-balancing policy -> subchannels ->
//! transport connections) and the handles of streaming calls.

mod backoff;
mod balancer;
mod call;
mod channel;
mod handles;
mod interceptor;
mod resolver;
mod retry;
mod service_config;
mod state;
mod subchannel;

pub use balancer::{Endpoint, LoadBalancer};
pub use channel::{Channel, ChannelBuilder, LbPolicy};
pub use handles::{BidiStreamingCall, ClientStreamingCall, RequestSink, ResponseStream};
pub use interceptor::{ClientCall, ClientInterceptor, ClientNext};
pub use resolver::{AddressSink, ManualResolver, Resolver, ResolverBuilder, register_resolver};
pub use state::ConnectivityState;
