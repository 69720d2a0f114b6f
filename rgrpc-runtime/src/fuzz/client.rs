//! The client-connection target: arbitrary bytes as the server's side of an in-memory
//! stream under a real `Channel` (resolver, subchannel, the client connection driver
//! and its frame observer, the writer, response checks, the message reader, status and
//! trailer decoding) while it makes one call of each RPC kind.
//!
//! The channel dials `memory:N`, an address that exists only in fuzzing builds: the
//! stream left under `N` by [`client_connection`] (one per session; a second dial of
//! the same address is refused, as a server that went away would be).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::server::{check_frames, test_server};
use super::{Input, no_panic_inside, paused_runtime};
use crate::call::{CallOptions, Request};
use crate::client::Channel;
use crate::codec::compression::Encoding;
use crate::status::Status;
use crate::transport::io::{BoxIo, PeerAddr};

/// The client connection preface (RFC 9113 section 3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The in-memory stream's buffer in each direction: small, so that both sides' write
/// paths block and resume.
const PIPE: usize = 4096;

/// Each call's deadline (virtual time): a server that never answers still ends it.
const DEADLINE: Duration = Duration::from_secs(5);

/// How long, in paused (virtual) time, the calls may take past their deadline, and the
/// connection may take to close once the channel is gone and the server's side has
/// closed. Nothing legitimate waits on a timer then: anything still open is stuck.
const END_WITHIN: Duration = Duration::from_secs(30);

/// The streams sessions left for their channel to dial, by address number.
static STREAMS: Mutex<Option<HashMap<u64, DuplexStream>>> = Mutex::new(None);
static NEXT: AtomicU64 = AtomicU64::new(0);

/// The stream left under `memory:id`, once.
pub(crate) fn take_stream(id: u64) -> Option<DuplexStream> {
    let mut streams = STREAMS.lock().unwrap_or_else(|e| e.into_inner());
    streams.as_mut()?.remove(&id)
}

fn leave_stream(io: DuplexStream) -> u64 {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut streams = STREAMS.lock().unwrap_or_else(|e| e.into_inner());
    streams.get_or_insert_with(HashMap::new).insert(id, io);
    id
}

/// The client connection. Input: a mode byte (bit 0: the calls wait for ready; bit 1:
/// requests compressed with gzip; bit 2: the server's side stays open 10 s after its
/// bytes, past the calls' deadlines), a split point (two bytes), then the bytes the
/// server sends: those before the split at once, the rest once the client has done
/// all it can with them (its handshake, its four requests).
pub fn client_connection(data: &[u8]) {
    client_connection_output(data);
}

/// [`client_connection`], returning what the client wrote and each call's result
/// (for tests that check a seed gets its answers).
pub fn client_connection_output(data: &[u8]) -> (Vec<u8>, Vec<Result<String, Status>>) {
    let mut input = Input::new(data);
    let mode = input.u8();
    let split = usize::from(input.u16());
    let bytes = input.rest().to_vec();
    let (out, results) = no_panic_inside(|| paused_runtime().block_on(session(mode, split, bytes)));
    let frames = out
        .strip_prefix(PREFACE)
        .unwrap_or_else(|| panic!("the client did not start with the preface: {out:?}"));
    check_frames(frames);
    (out, results)
}

async fn session(mode: u8, split: usize, bytes: Vec<u8>) -> (Vec<u8>, Vec<Result<String, Status>>) {
    let (client_io, server_io) = tokio::io::duplex(PIPE);
    let id = leave_stream(client_io);
    let (mut rd, mut wr) = tokio::io::split(server_io);
    let reader = tokio::spawn(async move {
        let mut out = Vec::new();
        // An error is the client's side closing: what it wrote before is all there is.
        let _ = rd.read_to_end(&mut out).await;
        out
    });
    let linger = mode & 4 != 0;
    let writer = tokio::spawn(async move {
        let (first, rest) = bytes.split_at(split.min(bytes.len()));
        // The client may close before it has read everything: then a write fails.
        let _ = wr.write_all(first).await;
        // Paused clock: this sleep ends only once every task waits, i.e. when the
        // client has done all it can with the first part.
        tokio::time::sleep(Duration::from_millis(1)).await;
        let _ = wr.write_all(rest).await;
        tokio::time::sleep(match linger {
            true => Duration::from_secs(10),
            false => Duration::from_millis(1),
        })
        .await;
        let _ = wr.shutdown().await;
    });
    let channel = Channel::lazy(&format!("memory:{id}")).expect("a memory: target");
    let mut options = CallOptions::new()
        .with_timeout(DEADLINE)
        .with_wait_for_ready(mode & 1 != 0);
    if mode & 2 != 0 {
        options = options.with_compression(Encoding::Gzip);
    }
    let results = tokio::time::timeout(DEADLINE + END_WITHIN, calls(&channel, &options))
        .await
        .expect("a call did not end by its deadline");
    drop(channel);
    let _ = writer.await;
    let out = tokio::time::timeout(END_WITHIN, reader)
        .await
        .expect("the client's side did not close after its channel was dropped")
        .expect("the reader task did not panic");
    (out, results)
}

/// One call of each kind, at once, as the server-connection target's service expects
/// them (`fuzz.Echo`); each result is the text of the responses, or the status.
async fn calls(channel: &Channel, options: &CallOptions) -> Vec<Result<String, Status>> {
    let unary = async {
        let request = Request::with_options("hello".to_owned(), options.clone());
        let response = channel
            .invoke::<String, String>("/fuzz.Echo/Unary", request)
            .await?;
        Ok(response.into_inner())
    };
    let server_stream = async {
        let request = Request::with_options("abc".to_owned(), options.clone());
        let path = "/fuzz.Echo/ServerStream";
        let mut responses = channel
            .server_streaming::<String, String>(path, request)
            .await?;
        let mut all = String::new();
        while let Some(message) = responses.message().await? {
            all.push_str(&message);
        }
        Ok(all)
    };
    let client_stream = async {
        let path = "/fuzz.Echo/ClientStream";
        let mut call = channel
            .client_streaming::<String, String>(path, options.clone())
            .await?;
        for word in ["one", "two"] {
            call.send(&word.to_owned()).await?;
        }
        Ok(call.close_and_recv().await?.into_inner())
    };
    let bidi = async {
        let path = "/fuzz.Echo/Bidi";
        let mut call = channel
            .bidi_streaming::<String, String>(path, options.clone())
            .await?;
        call.send(&"ping".to_owned()).await?;
        call.close_send().await?;
        let mut all = String::new();
        while let Some(message) = call.message().await? {
            all.push_str(&message);
        }
        Ok(all)
    };
    let (a, b, c, d) = tokio::join!(unary, server_stream, client_stream, bidi);
    vec![a, b, c, d]
}

/// What a real server writes to the calls of [`client_connection`], to seed its corpus:
/// the server-connection target's service over an in-memory stream, its writes
/// recorded. Returned as a whole input: a mode byte (`mode`), the split (the end of the
/// server's frames before its first HEADERS: its SETTINGS and acks), the bytes.
pub fn record_server_session(mode: u8) -> Vec<u8> {
    let written = paused_runtime().block_on(async move {
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let (tap, seen) = super::server::tap(server_io);
        let server = test_server(false);
        // Held to the end: a server whose handles are all gone stops serving.
        let handle = server.handle();
        let peer = PeerAddr::Unix(None);
        tokio::spawn(server.serve_connection_for_fuzzing(BoxIo::other(tap), peer));
        let id = leave_stream(client_io);
        let channel = Channel::lazy(&format!("memory:{id}")).expect("a memory: target");
        let mut options = CallOptions::new().with_timeout(DEADLINE);
        if mode & 2 != 0 {
            options = options.with_compression(Encoding::Gzip);
        }
        let results = calls(&channel, &options).await;
        assert!(
            results.iter().all(Result::is_ok),
            "a recorded call failed: {results:?}"
        );
        drop(channel);
        tokio::time::sleep(Duration::from_millis(1)).await;
        drop(handle);
        seen.lock().unwrap().clone()
    });
    // The split: the first HEADERS frame (RFC 9113 section 4.1 frame layout).
    let mut at = 0;
    while at + 9 <= written.len() && written[at + 3] != 0x1 {
        at += 9 + (u32::from_be_bytes([0, written[at], written[at + 1], written[at + 2]]) as usize);
    }
    let split = u16::try_from(at).expect("the server's preface is short");
    let mut input = vec![mode];
    input.extend_from_slice(&split.to_be_bytes());
    input.extend_from_slice(&written);
    input
}
