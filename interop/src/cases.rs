//! The interop client's test cases: every case of grpc/grpc
//! `doc/interop-test-descriptions.md` that needs neither TLS nor cloud credentials,
//! the experimental soak cases, and `half_duplex` (ours). Each gives every RPC a
//! deadline and returns why it failed.

use std::time::{Duration, Instant};

use rgrpc_runtime::{
    CallOptions, ClientStreamingCall, Code, Encoding, Metadata, Request, ResponseStream, Status,
};

use crate::client::{Ctx, connect};
use crate::pb::{
    BoolValue, EchoStatus, Empty, Payload, PayloadType, ResponseParameters, SimpleRequest,
    SimpleResponse, StreamingInputCallRequest, StreamingInputCallResponse,
    StreamingOutputCallRequest, StreamingOutputCallResponse,
    TEST_SERVICE_UNARY_CALL_FULL_METHOD_NAME, TestServiceStub, UnimplementedServiceStub,
};
use crate::server::{ECHO_INITIAL_KEY, ECHO_TRAILING_KEY};

/// Fails the case with a formatted reason unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($reason:tt)+) => {
        if !$cond {
            return Err(format!($($reason)+));
        }
    };
}

pub(crate) fn show(status: &Status) -> String {
    format!("{:?}: {:?}", status.code(), status.message())
}

/// For `map_err`: an RPC that should have succeeded.
fn failed(what: &'static str) -> impl Fn(Status) -> String {
    move |status| format!("{what}: unexpected status {}", show(&status))
}

/// Checks that `result` is the error `code` (with `message`, if given).
fn expect_status<T>(
    result: Result<T, Status>,
    code: Code,
    message: Option<&str>,
    what: &str,
) -> Result<(), String> {
    let status = match result {
        Ok(_) => return Err(format!("{what}: succeeded, want status {code:?}")),
        Err(status) => status,
    };
    ensure!(
        status.code() == code,
        "{what}: status {}, want {code:?}",
        show(&status)
    );
    if let Some(message) = message {
        ensure!(
            status.message() == message,
            "{what}: status message {:?}, want {message:?}",
            status.message()
        );
    }
    Ok(())
}

fn zeros(size: usize) -> Option<Payload> {
    Some(Payload {
        r#type: PayloadType::Compressable as i32,
        body: vec![0; size],
    })
}

fn check_payload(payload: Option<&Payload>, size: usize, what: &str) -> Result<(), String> {
    let Some(payload) = payload else {
        return Err(format!("{what}: no payload, want {size} bytes"));
    };
    ensure!(
        payload.r#type == PayloadType::Compressable as i32,
        "{what}: payload type {}, want COMPRESSABLE",
        payload.r#type
    );
    ensure!(
        payload.body.len() == size,
        "{what}: payload is {} bytes, want {size}",
        payload.body.len()
    );
    ensure!(
        payload.body.iter().all(|&b| b == 0),
        "{what}: payload is not all zeros"
    );
    Ok(())
}

fn bool_value(value: bool) -> Option<BoolValue> {
    Some(BoolValue { value })
}

/// `{ response_size: 314159, payload: { body: 271828 bytes of zeros } }`
fn large_request() -> SimpleRequest {
    SimpleRequest {
        response_type: PayloadType::Compressable as i32,
        response_size: 314159,
        payload: zeros(271828),
        ..SimpleRequest::default()
    }
}

/// `{ response_parameters: [{ size }, ...], payload: { body: payload_size zeros } }`
fn output_request(sizes: &[usize], payload_size: Option<usize>) -> StreamingOutputCallRequest {
    StreamingOutputCallRequest {
        response_type: PayloadType::Compressable as i32,
        response_parameters: sizes
            .iter()
            .map(|&size| ResponseParameters {
                size: size as i32,
                ..ResponseParameters::default()
            })
            .collect(),
        payload: payload_size.and_then(zeros),
        ..StreamingOutputCallRequest::default()
    }
}

/// Reads a response stream to its end (at most `limit` + 1 messages, so a server that
/// sends too many fails the check rather than the memory).
async fn drain(
    stream: &mut ResponseStream<StreamingOutputCallResponse>,
    limit: usize,
    what: &'static str,
) -> Result<Vec<StreamingOutputCallResponse>, String> {
    let mut responses = Vec::new();
    while let Some(response) = stream.message().await.map_err(failed(what))? {
        responses.push(response);
        ensure!(
            responses.len() <= limit,
            "{what}: more than {limit} responses"
        );
    }
    Ok(responses)
}

fn check_sizes(
    responses: &[StreamingOutputCallResponse],
    sizes: &[usize],
    what: &str,
) -> Result<(), String> {
    ensure!(
        responses.len() == sizes.len(),
        "{what}: {} responses, want {}",
        responses.len(),
        sizes.len()
    );
    for (i, (response, &size)) in responses.iter().zip(sizes).enumerate() {
        check_payload(
            response.payload.as_ref(),
            size,
            &format!("{what} response {i}"),
        )?;
    }
    Ok(())
}

// --- the cases, in the order of interop-test-descriptions.md ----------------------

/// empty_unary: EmptyCall with the default Empty succeeds.
pub(crate) async fn empty_unary(ctx: &Ctx<'_>) -> Result<(), String> {
    let response = ctx.stub.empty_call(ctx.request(Empty {})).await;
    response.map_err(failed("EmptyCall"))?;
    Ok(())
}

/// large_unary: a 271828-byte request gets a 314159-byte response.
pub(crate) async fn large_unary(ctx: &Ctx<'_>) -> Result<(), String> {
    let response = ctx.stub.unary_call(ctx.request(large_request())).await;
    let response = response.map_err(failed("UnaryCall"))?.into_inner();
    check_payload(response.payload.as_ref(), 314159, "UnaryCall")
}

/// client_compressed_unary: the probe (uncompressed, `expect_compressed: true`) fails
/// with INVALID_ARGUMENT; a compressed and an uncompressed call then succeed.
pub(crate) async fn client_compressed_unary(ctx: &Ctx<'_>) -> Result<(), String> {
    let request = |expect| SimpleRequest {
        expect_compressed: bool_value(expect),
        ..large_request()
    };
    let probe = ctx.stub.unary_call(ctx.request(request(true))).await;
    expect_status(
        probe,
        Code::InvalidArgument,
        None,
        "probe (uncompressed, expect_compressed=true)",
    )?;
    let gzip = ctx.options().with_compression(Encoding::Gzip);
    let compressed = ctx
        .stub
        .unary_call(Request::with_options(request(true), gzip))
        .await;
    let response = compressed.map_err(failed("compressed call"))?.into_inner();
    check_payload(response.payload.as_ref(), 314159, "compressed call")?;
    let plain = ctx.stub.unary_call(ctx.request(request(false))).await;
    let response = plain.map_err(failed("uncompressed call"))?.into_inner();
    check_payload(response.payload.as_ref(), 314159, "uncompressed call")
}

/// server_compressed_unary: the response's Compressed-Flag follows
/// `response_compressed`.
///
/// The unary API does not show the flag, so this calls UnaryCall through the
/// server-streaming API: on the wire both are one request message and one response
/// message on one stream (PROTOCOL-HTTP2.md), and `ResponseStream` shows the flag.
pub(crate) async fn server_compressed_unary(ctx: &Ctx<'_>) -> Result<(), String> {
    let channel = ctx.channel.clone();
    for compressed in [true, false] {
        let what = if compressed {
            "response_compressed=true call"
        } else {
            "response_compressed=false call"
        };
        let request = SimpleRequest {
            response_compressed: bool_value(compressed),
            ..large_request()
        };
        let mut responses = channel
            .server_streaming::<SimpleRequest, SimpleResponse>(
                TEST_SERVICE_UNARY_CALL_FULL_METHOD_NAME,
                ctx.request(request),
            )
            .await
            .map_err(failed(what))?;
        let response = responses.message().await.map_err(failed(what))?;
        let Some(response) = response else {
            return Err(format!("{what}: no response message"));
        };
        let flag = responses.last_message_compressed();
        ensure!(
            flag == compressed,
            "{what}: the response's Compressed-Flag is {}",
            u8::from(flag)
        );
        check_payload(response.payload.as_ref(), 314159, what)?;
        let end = responses.message().await.map_err(failed(what))?;
        ensure!(end.is_none(), "{what}: more than one response message");
    }
    Ok(())
}

/// client_streaming: four requests, aggregated_payload_size 74922.
pub(crate) async fn client_streaming(ctx: &Ctx<'_>) -> Result<(), String> {
    let mut call = ctx
        .stub
        .streaming_input_call(ctx.options())
        .await
        .map_err(failed("StreamingInputCall"))?;
    for size in [27182, 8, 1828, 45904] {
        let request = StreamingInputCallRequest {
            payload: zeros(size),
            expect_compressed: None,
        };
        call.send(&request).await.map_err(failed("send"))?;
    }
    close_and_check_total(call, 74922).await
}

/// client_compressed_streaming: the probe (one uncompressed message claiming
/// compression) fails with INVALID_ARGUMENT; then one call sends a compressed and an
/// uncompressed message, aggregated_payload_size 73086.
pub(crate) async fn client_compressed_streaming(ctx: &Ctx<'_>) -> Result<(), String> {
    let request = |expect, size| StreamingInputCallRequest {
        payload: zeros(size),
        expect_compressed: bool_value(expect),
    };
    let mut probe = ctx
        .stub
        .streaming_input_call(ctx.options())
        .await
        .map_err(failed("probe"))?;
    let sent = probe.send(&request(true, 27182)).await;
    let result = match sent {
        Ok(()) => probe.close_and_recv().await.map(drop),
        Err(status) => Err(status),
    };
    expect_status(
        result,
        Code::InvalidArgument,
        None,
        "probe (uncompressed, expect_compressed=true)",
    )?;
    let gzip = ctx.options().with_compression(Encoding::Gzip);
    let mut call = ctx
        .stub
        .streaming_input_call(gzip)
        .await
        .map_err(failed("StreamingInputCall"))?;
    call.send(&request(true, 27182))
        .await
        .map_err(failed("send (compressed)"))?;
    call.set_compress(false);
    call.send(&request(false, 45904))
        .await
        .map_err(failed("send (uncompressed)"))?;
    close_and_check_total(call, 73086).await
}

/// Half-closes a StreamingInputCall; its aggregated_payload_size must be `want`.
async fn close_and_check_total(
    call: ClientStreamingCall<StreamingInputCallRequest, StreamingInputCallResponse>,
    want: i32,
) -> Result<(), String> {
    let response = call
        .close_and_recv()
        .await
        .map_err(failed("close_and_recv"))?;
    let total = response.get_ref().aggregated_payload_size;
    ensure!(
        total == want,
        "aggregated_payload_size {total}, want {want}"
    );
    Ok(())
}

/// server_streaming: four responses sized 31415, 9, 2653, 58979, then OK.
pub(crate) async fn server_streaming(ctx: &Ctx<'_>) -> Result<(), String> {
    let sizes = [31415, 9, 2653, 58979];
    let request = ctx.request(output_request(&sizes, None));
    let mut responses = ctx
        .stub
        .streaming_output_call(request)
        .await
        .map_err(failed("StreamingOutputCall"))?;
    let received = drain(&mut responses, sizes.len(), "StreamingOutputCall").await?;
    check_sizes(&received, &sizes, "StreamingOutputCall")
}

/// server_compressed_streaming: two responses, the first with the Compressed-Flag
/// set and the second without, sized 31415 and 92653.
pub(crate) async fn server_compressed_streaming(ctx: &Ctx<'_>) -> Result<(), String> {
    let plan = [(true, 31415), (false, 92653)];
    let request = StreamingOutputCallRequest {
        response_parameters: plan
            .iter()
            .map(|&(compressed, size)| ResponseParameters {
                size,
                compressed: bool_value(compressed),
                ..ResponseParameters::default()
            })
            .collect(),
        ..output_request(&[], None)
    };
    let mut responses = ctx
        .stub
        .streaming_output_call(ctx.request(request))
        .await
        .map_err(failed("StreamingOutputCall"))?;
    for (i, &(compressed, size)) in plan.iter().enumerate() {
        let response = responses
            .message()
            .await
            .map_err(failed("StreamingOutputCall"))?;
        let Some(response) = response else {
            return Err(format!("{i} responses, want {}", plan.len()));
        };
        let flag = responses.last_message_compressed();
        ensure!(
            flag == compressed,
            "response {i}: compressed={compressed} but its Compressed-Flag is {}",
            u8::from(flag)
        );
        check_payload(
            response.payload.as_ref(),
            size as usize,
            &format!("response {i}"),
        )?;
    }
    let end = responses
        .message()
        .await
        .map_err(failed("StreamingOutputCall"))?;
    ensure!(end.is_none(), "more than {} responses", plan.len());
    Ok(())
}

/// ping_pong: four request/response exchanges on one FullDuplexCall, then
/// half-close and OK.
pub(crate) async fn ping_pong(ctx: &Ctx<'_>) -> Result<(), String> {
    let steps = [(31415, 27182), (9, 8), (2653, 1828), (58979, 45904)];
    let mut call = ctx
        .stub
        .full_duplex_call(ctx.options())
        .await
        .map_err(failed("FullDuplexCall"))?;
    for (i, &(response_size, payload_size)) in steps.iter().enumerate() {
        let request = output_request(&[response_size], Some(payload_size));
        call.send(&request).await.map_err(failed("send"))?;
        let response = call.message().await.map_err(failed("receive"))?;
        let Some(response) = response else {
            return Err(format!(
                "stream ended after {i} responses, want {}",
                steps.len()
            ));
        };
        check_payload(
            response.payload.as_ref(),
            response_size,
            &format!("response {i}"),
        )?;
    }
    call.close_send().await.map_err(failed("close_send"))?;
    let end = call.message().await.map_err(failed("after half-close"))?;
    ensure!(end.is_none(), "a response after the last ping");
    Ok(())
}

/// empty_stream: FullDuplexCall, half-close at once: zero responses, OK.
pub(crate) async fn empty_stream(ctx: &Ctx<'_>) -> Result<(), String> {
    let mut call = ctx
        .stub
        .full_duplex_call(ctx.options())
        .await
        .map_err(failed("FullDuplexCall"))?;
    call.close_send().await.map_err(failed("close_send"))?;
    let (_sink, mut responses) = call.split();
    let received = drain(&mut responses, 0, "FullDuplexCall").await?;
    ensure!(received.is_empty(), "{} responses, want 0", received.len());
    Ok(())
}

/// custom_metadata: the server echoes `x-grpc-test-echo-initial` in the initial
/// metadata and `x-grpc-test-echo-trailing-bin` in the trailing metadata, on
/// UnaryCall and on FullDuplexCall.
pub(crate) async fn custom_metadata(ctx: &Ctx<'_>) -> Result<(), String> {
    const INITIAL_VALUE: &str = "test_initial_metadata_value";
    const TRAILING_VALUE: &[u8] = &[0xab, 0xab, 0xab];
    let mut metadata = Metadata::new();
    let bad = |e: rgrpc_runtime::MetadataError| e.to_string();
    metadata
        .append(ECHO_INITIAL_KEY, INITIAL_VALUE)
        .map_err(bad)?;
    metadata
        .append_bin(ECHO_TRAILING_KEY, TRAILING_VALUE)
        .map_err(bad)?;
    let check = |headers: &Metadata, trailers: &Metadata, what: &str| {
        let initial = headers.get_all(ECHO_INITIAL_KEY);
        ensure!(
            initial == [INITIAL_VALUE],
            "{what}: initial metadata {ECHO_INITIAL_KEY}={initial:?}, want [{INITIAL_VALUE:?}]"
        );
        let trailing = trailers.get_all_bin(ECHO_TRAILING_KEY);
        ensure!(
            trailing == [TRAILING_VALUE],
            "{what}: trailing metadata {ECHO_TRAILING_KEY}={trailing:?}, want [{TRAILING_VALUE:?}]"
        );
        Ok(())
    };

    let options = ctx.options().with_metadata(metadata);
    let response = ctx
        .stub
        .unary_call(Request::with_options(large_request(), options.clone()))
        .await
        .map_err(failed("UnaryCall"))?;
    check_payload(response.get_ref().payload.as_ref(), 314159, "UnaryCall")?;
    check(response.headers(), response.trailers(), "UnaryCall")?;

    let mut call = ctx
        .stub
        .full_duplex_call(options)
        .await
        .map_err(failed("FullDuplexCall"))?;
    let request = output_request(&[314159], Some(271828));
    call.send(&request).await.map_err(failed("send"))?;
    call.close_send().await.map_err(failed("close_send"))?;
    let (_sink, mut responses) = call.split();
    let received = drain(&mut responses, 1, "FullDuplexCall").await?;
    check_sizes(&received, &[314159], "FullDuplexCall")?;
    let headers = responses
        .headers()
        .await
        .map_err(failed("FullDuplexCall headers"))?;
    check(&headers, responses.trailers(), "FullDuplexCall")
}

/// Echo Status through UnaryCall: the call fails with `code` and exactly `message`.
pub(crate) async fn unary_echo_status(
    ctx: &Ctx<'_>,
    code: Code,
    message: &str,
) -> Result<(), String> {
    let request = SimpleRequest {
        response_status: Some(EchoStatus {
            code: code as i32,
            message: message.to_owned(),
        }),
        ..SimpleRequest::default()
    };
    let result = ctx.stub.unary_call(ctx.request(request)).await;
    expect_status(result, code, Some(message), "UnaryCall")
}

/// status_code_and_message: code 2 and "test status message" come back from UnaryCall
/// and from FullDuplexCall.
pub(crate) async fn status_code_and_message(ctx: &Ctx<'_>) -> Result<(), String> {
    let (code, message) = (Code::Unknown, "test status message");
    unary_echo_status(ctx, code, message).await?;
    let mut call = ctx
        .stub
        .full_duplex_call(ctx.options())
        .await
        .map_err(failed("FullDuplexCall"))?;
    let request = StreamingOutputCallRequest {
        response_status: Some(EchoStatus {
            code: code as i32,
            message: message.to_owned(),
        }),
        ..StreamingOutputCallRequest::default()
    };
    call.send(&request).await.map_err(failed("send"))?;
    call.close_send().await.map_err(failed("close_send"))?;
    // The server answers with the status alone, before any message.
    let result = call.message().await;
    expect_status(result, code, Some(message), "FullDuplexCall")
}

/// special_status_message: whitespace and non-ASCII in the status message survive
/// (percent-encoding, PROTOCOL-HTTP2.md).
pub(crate) async fn special_status_message(ctx: &Ctx<'_>) -> Result<(), String> {
    let message = "\t\ntest with whitespace\r\nand Unicode BMP \u{263a} and non-BMP \u{1f608}\t\n";
    unary_echo_status(ctx, Code::Unknown, message).await
}

/// unimplemented_method: TestService/UnimplementedCall is UNIMPLEMENTED.
pub(crate) async fn unimplemented_method(ctx: &Ctx<'_>) -> Result<(), String> {
    let result = ctx.stub.unimplemented_call(ctx.request(Empty {})).await;
    expect_status(
        result,
        Code::Unimplemented,
        None,
        "TestService/UnimplementedCall",
    )
}

/// unimplemented_service: UnimplementedService/UnimplementedCall is UNIMPLEMENTED.
pub(crate) async fn unimplemented_service(ctx: &Ctx<'_>) -> Result<(), String> {
    let stub = UnimplementedServiceStub::new(ctx.channel.clone());
    let result = stub.unimplemented_call(ctx.request(Empty {})).await;
    expect_status(
        result,
        Code::Unimplemented,
        None,
        "UnimplementedService/UnimplementedCall",
    )
}

/// cancel_after_begin: start StreamingInputCall, cancel at once; the call ends with
/// CANCELLED, and the cancel reset only that stream (the channel's next call succeeds).
pub(crate) async fn cancel_after_begin(ctx: &Ctx<'_>) -> Result<(), String> {
    let mut call = ctx
        .stub
        .streaming_input_call(ctx.options())
        .await
        .map_err(failed("StreamingInputCall"))?;
    call.cancel();
    expect_status(
        call.close_and_recv().await,
        Code::Cancelled,
        None,
        "cancelled StreamingInputCall",
    )?;
    after_cancel(ctx).await
}

/// cancel_after_first_response: FullDuplexCall, one exchange, then cancel; the call
/// ends with CANCELLED.
pub(crate) async fn cancel_after_first_response(ctx: &Ctx<'_>) -> Result<(), String> {
    let mut call = ctx
        .stub
        .full_duplex_call(ctx.options())
        .await
        .map_err(failed("FullDuplexCall"))?;
    let request = output_request(&[31415], Some(27182));
    call.send(&request).await.map_err(failed("send"))?;
    let response = call.message().await.map_err(failed("receive"))?;
    let Some(response) = response else {
        return Err("stream ended before the first response".to_owned());
    };
    check_payload(response.payload.as_ref(), 31415, "first response")?;
    call.cancel();
    expect_status(
        call.message().await,
        Code::Cancelled,
        None,
        "cancelled FullDuplexCall",
    )?;
    after_cancel(ctx).await
}

pub(crate) async fn after_cancel(ctx: &Ctx<'_>) -> Result<(), String> {
    let after = ctx.stub.empty_call(ctx.request(Empty {})).await;
    after.map_err(failed("EmptyCall on the same channel after the cancel"))?;
    Ok(())
}

/// timeout_on_sleeping_server: FullDuplexCall with a 1 ms deadline and one request,
/// never half-closed, ends with DEADLINE_EXCEEDED. Opening the call or sending may
/// already see the deadline pass; that is the same outcome (as grpc-go accepts).
pub(crate) async fn timeout_on_sleeping_server(ctx: &Ctx<'_>) -> Result<(), String> {
    let options = CallOptions::new().with_timeout(Duration::from_millis(1));
    let deadline = |status: &Status| status.code() == Code::DeadlineExceeded;
    let mut call = match ctx.stub.full_duplex_call(options).await {
        Ok(call) => call,
        Err(status) if deadline(&status) => return Ok(()),
        Err(status) => return Err(format!("FullDuplexCall: status {}", show(&status))),
    };
    let request = StreamingOutputCallRequest {
        payload: zeros(27182),
        ..StreamingOutputCallRequest::default()
    };
    match call.send(&request).await {
        Ok(()) => {}
        Err(status) if deadline(&status) => {}
        Err(status) => return Err(format!("send: status {}", show(&status))),
    }
    let result = call.message().await;
    expect_status(result, Code::DeadlineExceeded, None, "FullDuplexCall")
}

/// rpc_soak / channel_soak ("Experimental Tests"): `soak_iterations` large_unary calls
/// in sequence, on the case's channel or each on a new one; one slower than
/// `soak_max_latency` counts as failed; more than `soak_max_failures` failures, or
/// running past `soak_overall_timeout`, fails the case.
pub(crate) async fn soak(ctx: &Ctx<'_>, fresh_channel: bool) -> Result<(), String> {
    let s = ctx.settings;
    let start = Instant::now();
    let mut failures = Vec::new();
    for i in 0..s.soak_iterations {
        ensure!(
            start.elapsed() <= s.soak_overall_timeout,
            "overall timeout {:?} reached after {i} iterations",
            s.soak_overall_timeout
        );
        let began = Instant::now();
        let result = async {
            let stub = if fresh_channel {
                TestServiceStub::new(connect(s).await?)
            } else {
                ctx.stub.clone()
            };
            let response = stub.unary_call(ctx.request(large_request())).await;
            let response = response.map_err(failed("UnaryCall"))?.into_inner();
            check_payload(response.payload.as_ref(), 314159, "UnaryCall")
        }
        .await;
        let took = began.elapsed();
        match result {
            Err(reason) => failures.push(format!("iteration {i}: {reason}")),
            Ok(()) if took > s.soak_max_latency => failures.push(format!(
                "iteration {i} took {took:?} > {:?}",
                s.soak_max_latency
            )),
            Ok(()) => {}
        }
    }
    ensure!(
        failures.len() <= s.soak_max_failures as usize,
        "{} of {} iterations failed (max {}): {}",
        failures.len(),
        s.soak_iterations,
        s.soak_max_failures,
        failures[..failures.len().min(3)].join("; ")
    );
    Ok(())
}

/// half_duplex (ours): four requests on HalfDuplexCall, half-close, then the four
/// responses in order and OK.
pub(crate) async fn half_duplex(ctx: &Ctx<'_>) -> Result<(), String> {
    let sizes = [31415, 9, 2653, 58979];
    let mut call = ctx
        .stub
        .half_duplex_call(ctx.options())
        .await
        .map_err(failed("HalfDuplexCall"))?;
    for &size in &sizes {
        call.send(&output_request(&[size], Some(8)))
            .await
            .map_err(failed("send"))?;
    }
    call.close_send().await.map_err(failed("close_send"))?;
    let (_sink, mut responses) = call.split();
    let received = drain(&mut responses, sizes.len(), "HalfDuplexCall").await?;
    check_sizes(&received, &sizes, "HalfDuplexCall")
}
