//! Fuzz-target bodies, behind the off-by-default `fuzzing` feature. Not an API: the
//! cargo-fuzz package in `fuzz/` calls one function per target, and the smoke test in
//! `tests/tests/fuzz_smoke.rs` runs the same functions over the committed corpus and a
//! few thousand generated inputs on every `cargo test`.
//!
//! Each body takes arbitrary bytes, drives one decoder (or the whole server connection)
//! and checks invariants that could fail: round trips where a round trip is defined,
//! limits, agreement with a small independent model of the decoder, and an end (no
//! hang) where I/O is involved. A failed check panics, which is what a fuzzer reports.
//!
//! | target | drives | checks |
//! |---|---|---|
//! | [`frame`] | `codec::frame::decode` over a chunked byte stream | same frames and end as a whole-buffer model; re-framing gives back the bytes; no frame over the limit; a declared length reserves at most `RESERVE_AHEAD` |
//! | [`message_reader`] | `codec::reader::MessageReader` over a real h2 stream in memory, small windows | same messages and end as the model; never stalls (flow control released) |
//! | [`timeout`] | `codec::timeout::parse` and `format` | accepts exactly 1-8 digits and a unit, with the right value; `format` rounds up and parses back |
//! | [`metadata`] | `metadata::decode_bin`, `Metadata::from_received` / `from_headers`, the setters | base64 round trips both ways; no reserved header reaches user metadata; setters accept exactly the valid keys and values |
//! | [`status`] | `Code::from_header`, `decode_message`, `Status::from_trailers` | code parsing matches a model; message and trailers round trip |
//! | [`compression`] | `codec::compression::decompress` with a limit | never more than the limit; the limit is exact; every gzip member is read; gzip round trips |
//! | [`frame_scanner`] | `transport::frames::Scanner` (the frame observer on every connection's read path), chunked | same frames and details as a whole-buffer model of RFC 9113 section 4.1; broken exactly on a bad preface; every frame prints |
//! | [`client_connection`] | a `Channel` (resolver, subchannel, `transport::client`, response checks, message reader, status decoding) making one call of each kind, the bytes as the server's side of an in-memory stream | no panic in any task, every call ends by its deadline, the connection closes once the channel is gone, the client writes the preface and whole HTTP/2 frames starting with SETTINGS |
//! | [`server_connection`] | `transport::server::serve_connection` for a `Server` with a test service, the bytes as the client's side of an in-memory stream | no panic in any task, the connection ends once the client's side closes, the server writes whole HTTP/2 frames starting with SETTINGS |

mod client;
mod codec;
mod frames;
mod headers;
mod server;

pub(crate) use client::take_stream;
pub use client::{client_connection, client_connection_output, record_server_session};
pub use codec::{compression, frame, message_reader, timeout};
pub use frames::frame_scanner;
pub use headers::{metadata, status};
pub use server::{SESSIONS, record_client_session, server_connection, server_connection_output};

use std::cell::Cell;
use std::sync::Once;

/// Reads fixed-size parameters off the front of an input; missing bytes read as zero,
/// so every input, even an empty one, is a valid case.
pub(crate) struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Input<'a> {
        Input { data }
    }

    pub(crate) fn u8(&mut self) -> u8 {
        let (&first, rest) = self.data.split_first().unwrap_or((&0, &[]));
        self.data = rest;
        first
    }

    pub(crate) fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    pub(crate) fn u24(&mut self) -> u32 {
        u32::from_be_bytes([0, self.u8(), self.u8(), self.u8()])
    }

    pub(crate) fn rest(self) -> &'a [u8] {
        self.data
    }
}

/// Splits a byte string into chunks whose sizes come from `seed`: all at once, one byte
/// at a time, or pseudo-random sizes up to 1, 7, 64 or 4096 bytes.
pub(crate) struct Chunker<'a> {
    rest: &'a [u8],
    state: u64,
    max: usize,
}

impl<'a> Chunker<'a> {
    pub(crate) fn new(seed: u16, data: &'a [u8]) -> Chunker<'a> {
        let max = match seed & 7 {
            0 => usize::MAX,
            1 => 1,
            2 | 3 => 7,
            4 | 5 => 64,
            _ => 4096,
        };
        Chunker {
            rest: data,
            state: u64::from(seed) << 16 | 0x9e37,
            max,
        }
    }
}

impl<'a> Iterator for Chunker<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        // xorshift64: deterministic and dependency-free.
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let size = if self.max == usize::MAX {
            self.rest.len()
        } else {
            1 + (self.state as usize) % self.max
        };
        let (chunk, rest) = self.rest.split_at(size.min(self.rest.len()));
        self.rest = rest;
        Some(chunk)
    }
}

/// How a byte stream of length-prefixed messages ends, by the model below.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum End {
    /// On a message boundary.
    Clean,
    /// Inside a message (header or payload): this many bytes left over.
    Partial(usize),
    /// A compressed flag other than 0 or 1.
    BadFlag,
    /// A declared length over the limit.
    TooLarge,
}

/// The model of gRPC message framing (PROTOCOL-HTTP2.md, "Length-Prefixed-Message"),
/// written straight from the spec over the whole buffer, to compare the incremental
/// decoder with: every frame it takes, and how the bytes end.
pub(crate) fn model_frames(mut wire: &[u8], max: usize) -> (Vec<(bool, &[u8])>, End) {
    let mut frames = Vec::new();
    loop {
        if wire.is_empty() {
            return (frames, End::Clean);
        }
        if wire.len() < 5 {
            return (frames, End::Partial(wire.len()));
        }
        let compressed = match wire[0] {
            0 => false,
            1 => true,
            _ => return (frames, End::BadFlag),
        };
        let len = u32::from_be_bytes([wire[1], wire[2], wire[3], wire[4]]) as u64;
        if len > max as u64 {
            return (frames, End::TooLarge);
        }
        let len = len as usize;
        if wire.len() - 5 < len {
            return (frames, End::Partial(wire.len()));
        }
        frames.push((compressed, &wire[5..5 + len]));
        wire = &wire[5 + len..];
    }
}

thread_local! {
    /// Panics seen on this thread since the hook was installed.
    static PANICS: Cell<u64> = const { Cell::new(0) };
}

/// Runs `f` and fails if anything panicked on this thread meanwhile, including tasks
/// of a current-thread runtime, whose panics tokio would otherwise catch and hide.
/// The hook chains to the one before it (libFuzzer's, which aborts).
pub(crate) fn no_panic_inside<T>(f: impl FnOnce() -> T) -> T {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.with(|p| p.set(p.get() + 1));
            previous(info);
        }));
    });
    let before = PANICS.with(Cell::get);
    let out = f();
    let after = PANICS.with(Cell::get);
    assert_eq!(before, after, "a task panicked while serving the input");
    out
}

/// A current-thread runtime with the clock paused: a wait that nothing but a timer
/// can end makes the clock jump to that timer at once, so the hang checks cost no
/// real time and do not depend on the machine's load.
pub(crate) fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime builds")
}
