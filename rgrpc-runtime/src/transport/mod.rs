//! One HTTP/2 connection, either side: the byte stream under it, the frame observer,
//! the control buffer and its writer, write coalescing, keepalive, and one named
//! driver per side (`server`, `client`) whose lifecycle is a state enum.
//!
//! This layer imports nothing from `server/` or `client/`: the server driver hands
//! each accepted stream up through [`server::StreamHandler`], and the client driver
//! returns a [`client::Conn`] that the channel opens streams on.

pub(crate) mod authority;
pub(crate) mod client;
pub(crate) mod coalesce;
pub(crate) mod controlbuf;
pub(crate) mod dispatch;
pub(crate) mod frames;
pub(crate) mod gate;
pub(crate) mod h2port;
pub(crate) mod headers;
pub(crate) mod io;
pub(crate) mod keepalive;
pub(crate) mod key_hash;
pub(crate) mod observe;
pub(crate) mod parked_read;
pub(crate) mod queue;
pub(crate) mod resident;
pub(crate) mod server;
pub(crate) mod signal;
pub(crate) mod sniff;
#[cfg(feature = "tls")]
pub(crate) mod tls;

/// How long a closing connection, either side, waits for its last frames (GOAWAY,
/// resets) to be written before it is dropped with them unwritten: a peer that does
/// not read would otherwise hold the connection, its task and its buffers until TCP
/// gives up on the socket (minutes; never, while the peer's host keeps it open).
pub(crate) const CLOSE_LINGER: std::time::Duration = std::time::Duration::from_secs(1);

/// The byte stream h2 runs on, either side: its reads parked while they would block
/// (`parked_read`), its writes coalesced (`coalesce`), its frames observed (`observe`).
pub(crate) type H2Io = parked_read::ParkedRead<coalesce::CoalescingIo<observe::Observed>>;
