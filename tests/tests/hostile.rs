//! Hostile and broken peers, frame by frame (tests/src/h2peer.rs), against a server in
//! its own process (src/bin/hostile-target.rs) so its memory is read from /proc.
//!
//! Every test states the answer the spec gives, checks it, then checks that a normal
//! call still succeeds on a fresh connection and that the server's peak RSS grew by no
//! more than a stated bound.

use std::time::{Duration, Instant};

use bytes::Bytes;
use rgrpc_tests::h2peer::{Frame, RawPeer, ReadEnd, code, kind, setting};
use rgrpc_tests::target::Target;

const SAY_HELLO: &str = "/helloworld.Greeter/SayHello";
/// `HelloRequest { name: "x" }`.
const HELLO: &[u8] = &[0x0a, 0x01, b'x'];
const UNARY_CALL: &str = "/grpc.testing.TestService/UnaryCall";
/// `SimpleRequest { payload: { body: "sleep" } }`: the handler sleeps 10 s.
const SLEEPING: &[u8] = &[0x1a, 0x07, 0x12, 0x05, b's', b'l', b'e', b'e', b'p'];
const SECS: Duration = Duration::from_secs(1);
const BIN: &str = env!("CARGO_BIN_EXE_hostile-target");

/// The connection ends with GOAWAY carrying `want` (or, when the server has already
/// closed the socket, with nothing more to read).
async fn expect_goaway_code(peer: &mut RawPeer, want: u32, within: Duration) -> Bytes {
    let (_, got, debug) = peer.expect_goaway(within).await;
    assert_eq!(got, want, "GOAWAY code (debug {debug:?})");
    debug
}

/// RFC 9113 section 6.9.1: a WINDOW_UPDATE that takes the connection window past
/// 2^31-1 is a connection error FLOW_CONTROL_ERROR; on a stream window it is a stream
/// error FLOW_CONTROL_ERROR, and the connection goes on.
#[tokio::test]
async fn window_update_overflow_is_a_flow_control_error() {
    let target = Target::spawn(BIN, &[]).await;

    let mut peer = RawPeer::handshake(target.addr).await;
    let request = peer.request(1, UNARY_CALL, &[]);
    let sleeping = Frame::data(1, rgrpc_tests::h2peer::grpc_message(0, SLEEPING), true);
    peer.send_all(&[request, sleeping, Frame::window_update(1, 0x7fff_ffff)])
        .await
        .unwrap();
    let answer = peer.exchange(1, 5 * SECS).await.expect("stream answered");
    assert_eq!(answer.reset, Some(code::FLOW_CONTROL_ERROR), "{answer:?}");
    // The connection survives a stream error.
    let answer = peer.unary(3, SAY_HELLO, &[], HELLO).await.unwrap();
    assert_eq!(answer.grpc_status(), Some("0"));

    let mut peer = RawPeer::handshake(target.addr).await;
    peer.send_all(&[
        Frame::window_update(0, 0x7fff_ffff),
        Frame::window_update(0, 0x7fff_ffff),
    ])
    .await
    .unwrap();
    expect_goaway_code(&mut peer, code::FLOW_CONTROL_ERROR, 5 * SECS).await;

    target.healthy().await;
    target.assert_peak_growth_under(8);
}

/// RFC 9113 section 6.9: a WINDOW_UPDATE with an increment of 0 is a stream error
/// PROTOCOL_ERROR on a stream, a connection error PROTOCOL_ERROR on stream 0.
#[tokio::test]
async fn zero_increment_window_update_is_a_protocol_error() {
    let target = Target::spawn(BIN, &[]).await;

    let mut peer = RawPeer::handshake(target.addr).await;
    let request = peer.request(1, UNARY_CALL, &[]);
    let sleeping = Frame::data(1, rgrpc_tests::h2peer::grpc_message(0, SLEEPING), true);
    peer.send_all(&[request, sleeping, Frame::window_update(1, 0)])
        .await
        .unwrap();
    // Section 5.4.1 lets an endpoint treat a stream error as a connection error, and
    // h2 does so here: RST_STREAM or GOAWAY, PROTOCOL_ERROR either way.
    match peer.exchange(1, 5 * SECS).await {
        Ok(answer) => assert_eq!(answer.reset, Some(code::PROTOCOL_ERROR), "{answer:?}"),
        Err(end) => {
            let goaway = peer.seen.iter().find_map(Frame::goaway);
            let (_, got, _) = goaway.unwrap_or_else(|| panic!("{end:?} without GOAWAY"));
            assert_eq!(got, code::PROTOCOL_ERROR);
        }
    }

    let mut peer = RawPeer::handshake(target.addr).await;
    peer.send(&Frame::window_update(0, 0)).await.unwrap();
    expect_goaway_code(&mut peer, code::PROTOCOL_ERROR, 5 * SECS).await;

    target.healthy().await;
    target.assert_peak_growth_under(8);
}

/// CVE-2023-44487 (Rapid Reset): HEADERS + RST_STREAM pairs cost the peer nothing and
/// the server a stream each. The server must not hold them (handlers are dropped at
/// the reset, memory stays bounded) and a connection that keeps doing it is told
/// ENHANCE_YOUR_CALM and closed.
#[tokio::test]
async fn rapid_reset_bursts_are_cut_off_with_bounded_memory() {
    let target = Target::spawn(BIN, &[]).await;
    let mut peer = RawPeer::handshake(target.addr).await;
    let mut stream = 1u32;
    let mut cut_off = false;
    'attack: for _ in 0..200 {
        let mut burst = Vec::with_capacity(200);
        for _ in 0..100 {
            burst.push(peer.request(stream, UNARY_CALL, &[]));
            burst.push(Frame::rst(stream, code::CANCEL));
            stream += 2;
        }
        if peer.send_all(&burst).await.is_err() {
            cut_off = true;
            break 'attack;
        }
    }
    if !cut_off {
        // The server may still be reading the burst; it must end the connection.
        let (_, got, debug) = peer.expect_goaway(10 * SECS).await;
        assert_eq!(
            got,
            code::ENHANCE_YOUR_CALM,
            "GOAWAY code (debug {debug:?})"
        );
    }
    target.healthy().await;

    // Paced, so that h2's count of reset streams waiting to be accepted stays low: then
    // each stream's handler must be dropped at its reset, or they pile up.
    let mut peer = RawPeer::handshake(target.addr).await;
    let mut stream = 1u32;
    for round in 0..100u64 {
        let mut burst = Vec::with_capacity(101);
        for _ in 0..50 {
            burst.push(peer.request(stream, UNARY_CALL, &[]));
            burst.push(Frame::data(
                stream,
                rgrpc_tests::h2peer::grpc_message(0, SLEEPING),
                false,
            ));
            burst.push(Frame::rst(stream, code::CANCEL));
            stream += 2;
        }
        burst.push(Frame::ping(round));
        if peer.send_all(&burst).await.is_err() {
            break;
        }
        // The server has read the burst when the ping's ack comes back.
        match peer.recv_kind(kind::PING, 5 * SECS).await {
            Ok(_) => {}
            Err(ReadEnd::Closed) => break,
            Err(ReadEnd::Timeout) => panic!("no PING ack in round {round}"),
        }
    }
    target.healthy().await;
    // 5000 sleeping handlers held would take well over this.
    target.assert_peak_growth_under(32);
}

/// The end of a flood: the connection closed while the peer sent (`closed`), or the
/// server answers with a GOAWAY carrying an error code, or closes, within 5 s.
async fn assert_cut_off(peer: &mut RawPeer, closed: bool, what: &str) {
    if !closed {
        match peer.recv_kind(kind::GOAWAY, 5 * SECS).await {
            Ok(frame) => assert_ne!(frame.goaway().unwrap().1, code::NO_ERROR, "{what}"),
            Err(end) => assert_eq!(end, ReadEnd::Closed, "{what}"),
        }
    }
}

/// VU#421644 (CONTINUATION flood): a header block that never ends must not be buffered
/// without bound. RFC 9113 section 10.5.1: past the advertised
/// SETTINGS_MAX_HEADER_LIST_SIZE the server may refuse the request; a block that keeps
/// growing is ended with a connection error.
#[tokio::test]
async fn continuation_flood_is_cut_off_with_bounded_memory() {
    let target = Target::spawn(BIN, &[]).await;
    let mut peer = RawPeer::handshake(target.addr).await;
    let block = peer.encode_headers(&RawPeer::grpc_request_fields(SAY_HELLO, &[]));
    peer.send(&Frame::new(kind::HEADERS, 0, 1, block))
        .await
        .unwrap();
    // 16 KiB of a repeated literal header per frame, 64 MiB in all.
    let mut filler = Vec::new();
    while filler.len() < 16 * 1024 - 64 {
        // Literal without indexing, new name: 0x00, name len, name, value len, value.
        filler.extend_from_slice(&[0x00, 0x01, b'a', 0x7f, 0x00]);
        filler.extend(std::iter::repeat_n(b'v', 127));
    }
    let filler = Bytes::from(filler);
    let mut closed = false;
    for _ in 0..4096 {
        let frame = Frame::new(kind::CONTINUATION, 0, 1, filler.clone());
        if peer.send(&frame).await.is_err() {
            closed = true;
            break;
        }
    }
    assert_cut_off(&mut peer, closed, "a 64 MiB header block accepted").await;
    target.healthy().await;
    target.assert_peak_growth_under(16);
}

/// Empty CONTINUATION frames grow nothing but can be sent forever (VU#421644 counts
/// them as the same attack): the server must end the connection.
#[tokio::test]
async fn empty_continuation_frames_are_cut_off() {
    let target = Target::spawn(BIN, &[]).await;
    let mut peer = RawPeer::handshake(target.addr).await;
    let block = peer.encode_headers(&RawPeer::grpc_request_fields(SAY_HELLO, &[]));
    peer.send(&Frame::new(kind::HEADERS, 0, 1, block))
        .await
        .unwrap();
    let empties = vec![Frame::new(kind::CONTINUATION, 0, 1, Bytes::new()); 1000];
    let mut closed = false;
    for _ in 0..1000 {
        if peer.send_all(&empties).await.is_err() {
            closed = true;
            break;
        }
    }
    assert_cut_off(&mut peer, closed, "1M empty CONTINUATION accepted").await;
    target.healthy().await;
    target.assert_peak_growth_under(8);
}

/// CVE-2019-9512 / 9515: a peer that floods PING or SETTINGS and never reads makes
/// the server queue acknowledgements. gRFC A8: pings beyond the policy earn GOAWAY
/// ENHANCE_YOUR_CALM `too_many_pings`; a SETTINGS flood is cut off likewise. Memory
/// stays bounded either way.
#[tokio::test]
async fn ping_and_settings_floods_from_a_peer_that_does_not_read_are_cut_off() {
    let target = Target::spawn(BIN, &[]).await;
    for (what, frame) in [
        ("ping", Frame::ping(7)),
        (
            "settings",
            Frame::settings(&[(setting::INITIAL_WINDOW_SIZE, 65535)]),
        ),
    ] {
        let mut peer = RawPeer::handshake(target.addr).await;
        let burst = vec![frame; 1000];
        let mut sent = 0;
        for _ in 0..500 {
            match tokio::time::timeout(2 * SECS, peer.send_all(&burst)).await {
                Ok(Ok(())) => sent += burst.len(),
                // Closed by the server, or its socket buffers are full because it
                // stopped reading from us: either way it is not queueing for us.
                Ok(Err(_)) | Err(_) => break,
            }
        }
        match peer.recv_kind(kind::GOAWAY, 5 * SECS).await {
            Ok(goaway) => {
                let (_, got, debug) = goaway.goaway().unwrap();
                assert_eq!(got, code::ENHANCE_YOUR_CALM, "{what} flood: {debug:?}");
            }
            Err(end) => assert_eq!(end, ReadEnd::Closed, "{what} flood: {sent} frames sent"),
        }
        target.healthy().await;
    }
    target.assert_peak_growth_under(16);
}

/// RFC 9113 section 5.1.2: streams beyond the advertised SETTINGS_MAX_CONCURRENT_STREAMS
/// are refused (stream error PROTOCOL_ERROR or REFUSED_STREAM). The server advertises a
/// limit by default, so a peer that opens thousands of streams that never finish is
/// refused rather than held.
#[tokio::test]
async fn streams_beyond_max_concurrent_streams_are_refused() {
    let target = Target::spawn(BIN, &[]).await;
    let mut peer = RawPeer::connect(target.addr).await;
    peer.write(rgrpc_tests::h2peer::PREFACE).await.unwrap();
    peer.send(&Frame::settings(&[])).await.unwrap();
    let settings = peer.recv_kind(kind::SETTINGS, 5 * SECS).await.unwrap();
    peer.send(&Frame::settings_ack()).await.unwrap();
    let limit = RawPeer::settings_of(&settings)
        .into_iter()
        .find(|(id, _)| *id == setting::MAX_CONCURRENT_STREAMS)
        .map(|(_, v)| v)
        .expect("the server advertises SETTINGS_MAX_CONCURRENT_STREAMS");
    assert!((100..=10_000).contains(&limit), "limit {limit}");
    let streams = limit + 100;
    let mut frames = Vec::new();
    for i in 0..streams {
        let id = 2 * i + 1;
        frames.push(peer.request(id, UNARY_CALL, &[]));
        frames.push(Frame::data(
            id,
            rgrpc_tests::h2peer::grpc_message(0, SLEEPING),
            true,
        ));
    }
    peer.send_all(&frames).await.unwrap();
    let mut refused = 0;
    let deadline = Instant::now() + 5 * SECS;
    while refused < 100 && Instant::now() < deadline {
        match peer.recv(deadline - Instant::now()).await {
            Ok(frame) if frame.kind == kind::RST_STREAM => {
                let got = frame.rst_code().unwrap();
                assert!(
                    got == code::REFUSED_STREAM || got == code::PROTOCOL_ERROR,
                    "reset {got}"
                );
                assert!(
                    frame.stream > 2 * (limit - 1) + 1,
                    "stream {} reset",
                    frame.stream
                );
                refused += 1;
            }
            Ok(frame) if frame.kind == kind::HEADERS => {
                peer.decode_headers(&frame.payload);
            }
            Ok(_) => {}
            Err(end) => panic!("{end:?} after {refused} refused"),
        }
    }
    assert_eq!(refused, 100, "streams past the limit of {limit} refused");
    target.healthy().await;
    target.assert_peak_growth_under(32);
}

/// Slowloris: a peer that sends its preface a byte at a time is closed once the
/// connection timeout (time for preface + SETTINGS) runs out.
#[tokio::test]
async fn a_slow_preface_is_closed_at_the_connection_timeout() {
    let target = Target::spawn(BIN, &["--connection_timeout_ms", "500"]).await;
    let mut peer = RawPeer::connect(target.addr).await;
    let started = Instant::now();
    let mut closed_at = None;
    for byte in rgrpc_tests::h2peer::PREFACE {
        if peer.write(&[*byte]).await.is_err() {
            closed_at = Some(started.elapsed());
            break;
        }
        if let Err(ReadEnd::Closed) = peer.recv(Duration::from_millis(100)).await {
            closed_at = Some(started.elapsed());
            break;
        }
    }
    let closed_at = closed_at.expect("connection closed before the preface was complete");
    assert!(closed_at < 3 * SECS, "closed after {closed_at:?}");
    target.healthy().await;
    target.assert_peak_growth_under(8);
}

/// Thousands of idle connections cost a bounded amount each and leave when closed.
#[tokio::test]
async fn thousands_of_idle_connections_cost_a_bounded_amount_each() {
    let target = Target::spawn(BIN, &[]).await;
    let mut peers = Vec::new();
    for _ in 0..2000 {
        peers.push(RawPeer::handshake(target.addr).await);
    }
    target.healthy().await;
    let peak = target.status_kib("VmHWM:") - target.baseline_kib;
    // 2000 connections within 64 MiB: 32 KiB each (measured about 17 KiB).
    assert!(peak < 64 * 1024, "2000 idle connections: {peak} KiB");
    drop(peers);
    target.healthy().await;
}

/// Descriptor exhaustion at accept (EMFILE): the accept loop backs off instead of
/// spinning, and serves again once descriptors free up.
#[tokio::test]
async fn descriptor_exhaustion_backs_off_and_recovers() {
    let target = Target::spawn(BIN, &["--nofile", "64"]).await;
    let mut peers = Vec::new();
    for _ in 0..100 {
        peers.push(RawPeer::connect(target.addr).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let cpu0 = target.cpu_secs();
    tokio::time::sleep(2 * SECS).await;
    let burned = target.cpu_secs() - cpu0;
    assert!(burned < 0.5, "accept loop spun: {burned} CPU s in 2 s");
    drop(peers);
    tokio::time::sleep(Duration::from_millis(300)).await;
    target.healthy().await;
    target.assert_peak_growth_under(8);
}

/// RFC 9113 section 10.5.1: a header list over the advertised
/// SETTINGS_MAX_HEADER_LIST_SIZE may be refused (HTTP 431, or a stream error); the
/// connection itself goes on. HPACK lets a peer make a tiny block decode into a huge
/// list by referencing one large dynamic-table entry again and again (RFC 7541 section
/// 7.3): the decoded size counts against the same limit, so that costs nothing either.
#[tokio::test]
async fn oversized_header_lists_and_hpack_reference_bombs_are_refused() {
    let target = Target::spawn(BIN, &[]).await;
    let mut peer = RawPeer::handshake(target.addr).await;

    let big = "v".repeat(20 * 1024);
    let block = peer.encode_headers(&RawPeer::grpc_request_fields(SAY_HELLO, &[("x-big", &big)]));
    let mut frames = RawPeer::header_frames(1, block, false);
    frames.push(Frame::data(
        1,
        rgrpc_tests::h2peer::grpc_message(0, HELLO),
        true,
    ));
    peer.send_all(&frames).await.unwrap();
    let answer = peer
        .exchange(1, 5 * SECS)
        .await
        .unwrap_or_else(|e| panic!("{e:?}: {:?}", peer.seen));
    assert!(refused(&answer), "20 KiB header accepted: {answer:?}");

    // The bomb: one 4000-byte entry added to the dynamic table (literal with
    // incremental indexing, index 62 after that), then blocks that name it 100 times
    // each: 4 MB of headers per 100-byte block.
    let entry = "b".repeat(4000);
    let mut stream = 3;
    for _ in 0..200 {
        let mut block = peer
            .encode_headers(&RawPeer::grpc_request_fields(SAY_HELLO, &[]))
            .to_vec();
        if stream == 3 {
            // 0x40: literal with incremental indexing, new name.
            block.push(0x40);
            block.extend_from_slice(&hpack_string(b"x-bomb"));
            block.extend_from_slice(&hpack_string(entry.as_bytes()));
        }
        // 0x80 | 62: indexed field, the newest dynamic entry.
        block.extend(std::iter::repeat_n(0x80 | 62, 100));
        let headers = Frame::new(
            kind::HEADERS,
            rgrpc_tests::h2peer::flag::END_HEADERS,
            stream,
            block,
        );
        let data = Frame::data(stream, rgrpc_tests::h2peer::grpc_message(0, HELLO), true);
        if peer.send_all(&[headers, data]).await.is_err() {
            break;
        }
        match peer.exchange(stream, 5 * SECS).await {
            Ok(answer) => assert!(refused(&answer), "bomb accepted: {answer:?}"),
            // A connection error (COMPRESSION_ERROR) is also a spec answer.
            Err(ReadEnd::Closed) => break,
            Err(ReadEnd::Timeout) => panic!("no answer to stream {stream}"),
        }
        stream += 2;
    }
    target.healthy().await;
    target.assert_peak_growth_under(16);
}

/// Refused per RFC 9113 section 10.5.1: HTTP 431 or a reset.
fn refused(answer: &rgrpc_tests::h2peer::Exchange) -> bool {
    answer.reset.is_some() || answer.get(":status") == Some("431")
}

/// An HPACK string literal without Huffman coding (RFC 7541 section 5.2), for lengths
/// under 2^14.
fn hpack_string(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let len = bytes.len();
    if len < 127 {
        out.push(len as u8);
    } else {
        out.push(127);
        let mut rest = len - 127;
        while rest >= 128 {
            out.push((rest % 128) as u8 | 0x80);
            rest /= 128;
        }
        out.push(rest as u8);
    }
    out.extend_from_slice(bytes);
    out
}

/// CVE-2019-9518: empty DATA frames cost the peer 9 bytes each and carry nothing. The
/// server must not spend memory on them, and must end a connection that sends them
/// without end.
#[tokio::test]
async fn an_empty_data_flood_is_cut_off() {
    let target = Target::spawn(BIN, &[]).await;
    let mut peer = RawPeer::handshake(target.addr).await;
    // A client-streaming call the server keeps open while messages may come.
    let request = peer.request(1, "/routeguide.RouteGuide/RecordRoute", &[]);
    peer.send(&request).await.unwrap();
    let empties = vec![Frame::data(1, Bytes::new(), false); 1000];
    let mut sent = 0;
    for _ in 0..1000 {
        match tokio::time::timeout(2 * SECS, peer.send_all(&empties)).await {
            Ok(Ok(())) => sent += empties.len(),
            Ok(Err(_)) | Err(_) => break,
        }
    }
    let end = peer.recv_kind(kind::GOAWAY, 5 * SECS).await;
    match end {
        Ok(goaway) => {
            let (_, got, debug) = goaway.goaway().unwrap();
            assert_eq!(got, code::ENHANCE_YOUR_CALM, "debug {debug:?}");
        }
        Err(end) => assert_eq!(
            end,
            ReadEnd::Closed,
            "{sent} empty DATA frames accepted: {:?}",
            peer.seen
        ),
    }
    target.healthy().await;
    target.assert_peak_growth_under(8);
}

/// RFC 9113 section 8.2.1 and 8.3.1: uppercase field names, CR or LF in a value and a
/// request without `:path` are malformed: a stream error PROTOCOL_ERROR, and the
/// connection goes on.
#[tokio::test]
async fn malformed_header_fields_are_stream_errors() {
    let target = Target::spawn(BIN, &[]).await;
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "uppercase name",
            RawPeer::grpc_request_fields(SAY_HELLO, &[("X-Upper", "1")]),
        ),
        (
            "LF in a value",
            RawPeer::grpc_request_fields(SAY_HELLO, &[("x-v", "a\nb")]),
        ),
        (
            "CR in a value",
            RawPeer::grpc_request_fields(SAY_HELLO, &[("x-v", "a\rb")]),
        ),
        (
            "no :path",
            RawPeer::grpc_request_fields(SAY_HELLO, &[])
                .into_iter()
                .filter(|(n, _)| *n != ":path")
                .collect(),
        ),
    ];
    for (what, fields) in cases {
        let mut peer = RawPeer::handshake(target.addr).await;
        let block = peer.encode_headers(&fields);
        let mut frames = RawPeer::header_frames(1, block, false);
        frames.push(Frame::data(
            1,
            rgrpc_tests::h2peer::grpc_message(0, HELLO),
            true,
        ));
        peer.send_all(&frames).await.unwrap();
        // Section 5.4.1 lets an endpoint treat a stream error as a connection error;
        // h2 does for some of these: RST_STREAM or GOAWAY, PROTOCOL_ERROR either way.
        match peer.exchange(1, 5 * SECS).await {
            Ok(answer) => {
                assert_eq!(
                    answer.reset,
                    Some(code::PROTOCOL_ERROR),
                    "{what}: {answer:?}"
                );
                // A stream error leaves the connection serving.
                let answer = peer.unary(3, SAY_HELLO, &[], HELLO).await.unwrap();
                assert_eq!(answer.grpc_status(), Some("0"), "{what}");
            }
            Err(end) => {
                let goaway = peer.seen.iter().find_map(Frame::goaway);
                let (_, got, _) = goaway.unwrap_or_else(|| panic!("{what}: {end:?}, no GOAWAY"));
                assert_eq!(got, code::PROTOCOL_ERROR, "{what}");
            }
        }
    }
    target.healthy().await;
    target.assert_peak_growth_under(8);
}

/// Malformed gRPC on a well-formed stream, each with the status grpc's documents give
/// (PROTOCOL-HTTP2.md, statuscodes.md); the connection goes on after each.
#[tokio::test]
async fn malformed_grpc_gets_the_documented_status() {
    use rgrpc_tests::h2peer::{grpc_message, grpc_prefix};
    let target = Target::spawn(BIN, &["--max_recv_message_size", "1024"]).await;
    let mut peer = RawPeer::handshake(target.addr).await;
    // HelloRequest { name: 0xff 0xfe } : invalid UTF-8 in a proto3 string.
    let bad_utf8 = [0x0a, 0x02, 0xff, 0xfe];
    // (what, :path, extra headers, request messages, the grpc-status the spec gives)
    type Case<'a> = (
        &'a str,
        &'a str,
        Vec<(&'a str, &'a str)>,
        Vec<Bytes>,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        // A length prefix beyond the body: the stream ends mid-message.
        (
            "prefix past the body",
            SAY_HELLO,
            vec![],
            vec![grpc_prefix(0, 100, HELLO)],
            "13",
        ),
        // 4 GiB declared: over the receive limit before any of it arrives.
        (
            "4 GiB prefix",
            SAY_HELLO,
            vec![],
            vec![grpc_prefix(0, u32::MAX, b"")],
            "8",
        ),
        (
            "oversized message",
            SAY_HELLO,
            vec![],
            vec![grpc_message(0, &[0; 2048])],
            "8",
        ),
        // compression.md: compressed flag without grpc-encoding is INTERNAL.
        (
            "compressed, no encoding",
            SAY_HELLO,
            vec![],
            vec![grpc_message(1, HELLO)],
            "13",
        ),
        // compression.md: an encoding the server does not support is UNIMPLEMENTED.
        (
            "unknown encoding",
            SAY_HELLO,
            vec![("grpc-encoding", "lz4")],
            vec![grpc_message(1, HELLO)],
            "12",
        ),
        // statuscodes.md: error parsing request proto, INTERNAL.
        (
            "invalid protobuf",
            SAY_HELLO,
            vec![],
            vec![grpc_message(0, &[0xff, 0xff])],
            "13",
        ),
        (
            "invalid UTF-8 string",
            SAY_HELLO,
            vec![],
            vec![grpc_message(0, &bad_utf8)],
            "13",
        ),
        // statuscodes.md: request cardinality violation, UNIMPLEMENTED.
        ("no request message", SAY_HELLO, vec![], vec![], "12"),
        (
            "two request messages",
            SAY_HELLO,
            vec![],
            vec![grpc_message(0, HELLO), grpc_message(0, HELLO)],
            "12",
        ),
        // PROTOCOL-HTTP2.md: grpc-timeout is 1-8 digits and a unit.
        (
            "malformed grpc-timeout",
            SAY_HELLO,
            vec![("grpc-timeout", "123456789S")],
            vec![grpc_message(0, HELLO)],
            "13",
        ),
        // A `-bin` value that is not base64.
        (
            "bad -bin base64",
            SAY_HELLO,
            vec![("x-data-bin", "!!not base64!!")],
            vec![grpc_message(0, HELLO)],
            "13",
        ),
        (
            "unknown method",
            "/helloworld.Greeter/Nope",
            vec![],
            vec![grpc_message(0, HELLO)],
            "12",
        ),
        ("odd :path", "*", vec![], vec![grpc_message(0, HELLO)], "12"),
        (
            "path without method",
            "/helloworld.Greeter",
            vec![],
            vec![grpc_message(0, HELLO)],
            "12",
        ),
    ];
    let mut stream = 1;
    for (what, path, extra, messages, want) in cases {
        let mut frames = vec![peer.request(stream, path, &extra)];
        let mut body = Vec::new();
        for m in &messages {
            body.extend_from_slice(m);
        }
        frames.push(Frame::data(stream, body, true));
        peer.send_all(&frames).await.unwrap();
        let answer = peer
            .exchange(stream, 5 * SECS)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e:?}"));
        assert_eq!(answer.grpc_status(), Some(want), "{what}: {answer:?}");
        stream += 2;
    }
    let answer = peer.unary(stream, SAY_HELLO, &[], HELLO).await.unwrap();
    assert_eq!(answer.grpc_status(), Some("0"));
    target.healthy().await;
    target.assert_peak_growth_under(8);
}

/// Not HTTP/2 at all: garbage, an HTTP/1.1 request, or a TLS ClientHello where the
/// preface should be (RFC 9113 section 3.4: a preface that does not match is a
/// connection error). The server closes the connection at once, not at the connection
/// timeout, and serves others as before.
#[tokio::test]
async fn not_http2_where_the_preface_belongs_is_closed_at_once() {
    let target = Target::spawn(BIN, &[]).await;
    // A TLS 1.2 record header (handshake, version 3.1) and the start of a ClientHello.
    let client_hello: &[u8] = &[
        0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00, 0xc4, 0x03, 0x03, 0x5a, 0x5a, 0x5a, 0x5a,
        0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
    ];
    for (what, bytes) in [
        ("garbage", &b"\x00\x01\x02 this is not a preface at all"[..]),
        (
            "HTTP/1.1",
            &b"POST /helloworld.Greeter/SayHello HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        ),
        ("TLS ClientHello", client_hello),
    ] {
        let mut peer = RawPeer::connect(target.addr).await;
        let started = Instant::now();
        peer.write(bytes).await.unwrap();
        let closed = peer.closed_within(3 * SECS).await;
        assert_eq!(closed, Ok(()), "{what}: still open after 3 s");
        assert!(started.elapsed() < 3 * SECS, "{what}");
    }
    target.healthy().await;
    target.assert_peak_growth_under(8);
}

/// Memory comes back: after 2000 connections and 5000 abandoned streams (opened, a
/// partial message sent, never finished) have come and gone, the server's RSS returns
/// to within 8 MiB of where it started (server/trim.rs; with `Server::trim_memory(false)`
/// about 49 MiB stay behind under glibc).
#[tokio::test]
async fn memory_comes_back_after_connections_and_abandoned_streams_close() {
    let target = Target::spawn(BIN, &[]).await;
    let before = target.status_kib("VmRSS:");
    let mut peers = Vec::new();
    for _ in 0..2000 {
        peers.push(RawPeer::handshake(target.addr).await);
    }
    // 5 of them carry 1000 abandoned streams each (under the 1024 stream limit).
    for peer in peers.iter_mut().take(5) {
        let mut frames = Vec::new();
        for i in 0..1000u32 {
            let id = 2 * i + 1;
            frames.push(peer.request(id, UNARY_CALL, &[]));
            // A message prefix that promises 100 bytes and delivers 10.
            frames.push(Frame::data(
                id,
                rgrpc_tests::h2peer::grpc_prefix(0, 100, &[0; 10]),
                false,
            ));
        }
        peer.send_all(&frames).await.unwrap();
    }
    // The last streams have reached their handlers when a call behind them is answered.
    for peer in peers.iter_mut().take(5) {
        let answer = peer.unary(2001, SAY_HELLO, &[], HELLO).await.unwrap();
        assert_eq!(answer.grpc_status(), Some("0"));
    }
    let loaded = target.status_kib("VmRSS:");
    drop(peers);
    // The server notices the closed sockets and frees what they held; the trim follows
    // 1 s after the last close, later on a loaded machine (a full CI run): poll 10 s.
    let mut after = u64::MAX;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = target.status_kib("VmRSS:");
        if after < before + 8 * 1024 {
            break;
        }
    }
    target.healthy().await;
    assert!(
        after < before + 8 * 1024,
        "RSS {before} KiB before, {loaded} KiB with 2000 connections and 5000 streams, \
         {after} KiB up to 10 s after they closed (bound: 8 MiB above the start)"
    );
}
