#!/usr/bin/env python3
"""The interop client over grpcio (gRPC C-core).

Runs the test cases of grpc/grpc doc/interop-test-descriptions.md that need
no cloud credentials against a grpc.testing.TestService server, in plaintext
or over TLS:

    python client.py --server_host 127.0.0.1 --server_port 10000 \\
        --test_case all [--use_tls=false] [--use_test_ca=false] \\
        [--server_host_override=foo.test.google.fr]

--use_test_ca=true trusts the vendored test CA (interop/testdata/ca.pem);
--server_host_override is the name the server's certificate must match, and
the :authority.

Prints "PASS <case>" or "FAIL <case>: <reason>" per case, then a last line
"N passed, M failed"; exits 1 if any case failed (2 on bad flags). Every RPC
has a deadline (--rpc_timeout) and every wait is bounded, so a hung server
fails a case instead of hanging the run.
"""

import argparse
import contextlib
import inspect
import pathlib
import queue
import sys
import time

import grpc
import grpc._channel  # for the per-message no-compress shim, see below

import wire
from protos import empty_pb2, messages_pb2, test_pb2_grpc

_INITIAL_METADATA_KEY = "x-grpc-test-echo-initial"
_INITIAL_METADATA_VALUE = "test_initial_metadata_value"
_TRAILING_METADATA_KEY = "x-grpc-test-echo-trailing-bin"
_TRAILING_METADATA_VALUE = b"\xab\xab\xab"


class CaseFailed(Exception):
    """A case's assertion did not hold; the message says which."""


def check(condition, message):
    if not condition:
        raise CaseFailed(message)


def _bool_flag(text):
    value = text.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _zeros(size):
    return b"\x00" * size


def _payload(size):
    return messages_pb2.Payload(type=messages_pb2.COMPRESSABLE, body=_zeros(size))


def _check_payload(payload, size, what="response"):
    check(payload.type == messages_pb2.COMPRESSABLE, f"{what} payload type {payload.type}, want COMPRESSABLE")
    check(len(payload.body) == size, f"{what} payload is {len(payload.body)} bytes, want {size}")
    check(payload.body == _zeros(size), f"{what} payload is not all zeros")


def _check_error(error, code, details=None, what="call"):
    check(isinstance(error, grpc.RpcError), f"{what}: expected an RPC error, got {error!r}")
    check(error.code() == code, f"{what}: status {error.code()} ({error.details()!r}), want {code}")
    if details is not None:
        check(error.details() == details, f"{what}: status message {error.details()!r}, want {details!r}")


def _expect_rpc_error(fn, code, details=None, what="call"):
    try:
        fn()
    except grpc.RpcError as error:
        _check_error(error, code, details, what)
    else:
        raise CaseFailed(f"{what}: succeeded, want status {code}")


class RequestPipe:
    """A request iterator the test feeds one message at a time.

    grpcio pulls requests from it on its own thread; `close()` half-closes
    the stream. The queue is bounded (the cases put at most a few messages)
    and a waiting `__next__` gives up after `timeout` so no thread outlives
    the case.
    """

    _CLOSE = object()

    def __init__(self, timeout):
        self._queue = queue.Queue(maxsize=16)
        self._timeout = timeout

    def __iter__(self):
        return self

    def __next__(self):
        try:
            item = self._queue.get(timeout=self._timeout)
        except queue.Empty:
            raise StopIteration from None
        if item is self._CLOSE:
            self._queue.put_nowait(self._CLOSE)  # stay closed
            raise StopIteration
        return item

    def add(self, request):
        self._queue.put(request, timeout=self._timeout)

    def close(self):
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(self._CLOSE)


# --- per-message "no compression" on a compressed client stream ------------
#
# client_compressed_streaming sends, on one call, a compressed message and
# then an uncompressed one. C-core supports that (GRPC_WRITE_NO_COMPRESS on
# one write; gRPC C++ exposes it as WriteOptions::set_no_compression) but
# grpcio's client API has no per-message write flags: its request-sending
# loop (grpc._channel._consume_request_iterator) always passes flags 0.
# grpc's own Python interop client does not implement this case at all.
# We wrap that loop's cygrpc.SendMessageOperation for the duration of the
# case: a request whose serializer returned `_Uncompressed` bytes is sent
# with WriteFlag.no_compress; everything else is untouched. C-core still does
# all the framing, so the bytes on the wire are C-core's. This leans on a
# private grpcio detail, which is why requirements.txt pins grpcio and
# `_no_compress_shim()` checks the detail is still there before using it.


class _Uncompressed(bytes):
    """Serialized request bytes to be sent with Compressed-Flag 0."""


class _CygrpcShim:
    def __init__(self, real):
        self._real = real

    def __getattr__(self, name):
        return getattr(self._real, name)

    def SendMessageOperation(self, message, flags):  # noqa: N802 (cygrpc's name)
        if isinstance(message, _Uncompressed):
            return self._real.SendMessageOperation(bytes(message), flags | self._real.WriteFlag.no_compress)
        return self._real.SendMessageOperation(message, flags)


@contextlib.contextmanager
def _no_compress_shim():
    module = grpc._channel
    source = inspect.getsource(module._consume_request_iterator)
    if "cygrpc.SendMessageOperation(" not in source or not hasattr(module.cygrpc, "WriteFlag"):
        raise CaseFailed(
            f"grpcio {grpc.__version__}: cannot send one uncompressed message on a "
            "compressed stream (private send loop changed); pin grpcio as in requirements.txt"
        )
    real = module.cygrpc
    module.cygrpc = _CygrpcShim(real)
    try:
        yield
    finally:
        module.cygrpc = real


def _serialize_marking_uncompressed(request):
    data = request.SerializeToString()
    if request.HasField("expect_compressed") and not request.expect_compressed.value:
        return _Uncompressed(data)
    return data


# --- the cases -------------------------------------------------------------
#
# Each takes a Context and raises CaseFailed (or lets an unexpected
# grpc.RpcError through) when an assertion of the description fails.


class Context:
    def __init__(self, args, channel, timeout):
        self.args = args
        self.channel = channel
        self.timeout = timeout
        self.stub = test_pb2_grpc.TestServiceStub(channel)

    def open_channel(self, options=()):
        return _open_channel(self.args, options)

    def pipe(self):
        return RequestPipe(self.timeout)


def empty_unary(ctx):
    response = ctx.stub.EmptyCall(empty_pb2.Empty(), timeout=ctx.timeout)
    check(isinstance(response, empty_pb2.Empty), f"response is {type(response)}, not Empty")
    check(response.ByteSize() == 0, "response is not the empty message")


def _large_unary_request(**fields):
    return messages_pb2.SimpleRequest(
        response_type=messages_pb2.COMPRESSABLE, response_size=314159, payload=_payload(271828), **fields
    )


def large_unary(ctx):
    response = ctx.stub.UnaryCall(_large_unary_request(), timeout=ctx.timeout)
    _check_payload(response.payload, 314159)


def client_compressed_unary(ctx):
    expect_true = messages_pb2.BoolValue(value=True)
    expect_false = messages_pb2.BoolValue(value=False)
    # 1. The feature probe: an *uncompressed* message that says it is
    #    compressed must fail with INVALID_ARGUMENT.
    _expect_rpc_error(
        lambda: ctx.stub.UnaryCall(
            _large_unary_request(expect_compressed=expect_true),
            timeout=ctx.timeout,
            compression=grpc.Compression.NoCompression,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        what="probe (uncompressed, expect_compressed=true)",
    )
    # 2. The compressed message.
    response = ctx.stub.UnaryCall(
        _large_unary_request(expect_compressed=expect_true), timeout=ctx.timeout, compression=grpc.Compression.Gzip
    )
    _check_payload(response.payload, 314159, "compressed call's")
    # 3. The uncompressed message.
    response = ctx.stub.UnaryCall(
        _large_unary_request(expect_compressed=expect_false),
        timeout=ctx.timeout,
        compression=grpc.Compression.NoCompression,
    )
    _check_payload(response.payload, 314159, "uncompressed call's")


def server_compressed_unary(ctx):
    # Decompression off on this channel, so the client sees each response's
    # Compressed-Flag (wire.py).
    with ctx.open_channel(options=(wire.NO_DECOMPRESSION,)) as channel:
        call = channel.unary_unary(
            "/grpc.testing.TestService/UnaryCall",
            request_serializer=messages_pb2.SimpleRequest.SerializeToString,
            response_deserializer=wire.decoder(messages_pb2.SimpleResponse),
        )
        for compressed in (True, False):
            request = _large_unary_request(response_compressed=messages_pb2.BoolValue(value=compressed))
            received = call(request, timeout=ctx.timeout)
            check(
                received.compressed == compressed,
                f"response_compressed={compressed} but the response's Compressed-Flag is {int(received.compressed)}",
            )
            _check_payload(received.message.payload, 314159, f"response_compressed={compressed} call's")


def client_streaming(ctx):
    sizes = (27182, 8, 1828, 45904)
    requests = (messages_pb2.StreamingInputCallRequest(payload=_payload(n)) for n in sizes)
    response = ctx.stub.StreamingInputCall(requests, timeout=ctx.timeout)
    check(
        response.aggregated_payload_size == 74922,
        f"aggregated_payload_size {response.aggregated_payload_size}, want 74922",
    )


def client_compressed_streaming(ctx):
    expect_true = messages_pb2.BoolValue(value=True)
    expect_false = messages_pb2.BoolValue(value=False)
    # 1. The feature probe: one uncompressed message claiming compression.
    probe = messages_pb2.StreamingInputCallRequest(expect_compressed=expect_true, payload=_payload(27182))
    _expect_rpc_error(
        lambda: ctx.stub.StreamingInputCall(
            iter((probe,)), timeout=ctx.timeout, compression=grpc.Compression.NoCompression
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        what="probe (uncompressed, expect_compressed=true)",
    )
    # 2. One call: a compressed message, then an uncompressed one, half-close.
    requests = (
        messages_pb2.StreamingInputCallRequest(expect_compressed=expect_true, payload=_payload(27182)),
        messages_pb2.StreamingInputCallRequest(expect_compressed=expect_false, payload=_payload(45904)),
    )
    call = ctx.channel.stream_unary(
        "/grpc.testing.TestService/StreamingInputCall",
        request_serializer=_serialize_marking_uncompressed,
        response_deserializer=messages_pb2.StreamingInputCallResponse.FromString,
    )
    with _no_compress_shim():
        response = call(iter(requests), timeout=ctx.timeout, compression=grpc.Compression.Gzip)
    check(
        response.aggregated_payload_size == 73086,
        f"aggregated_payload_size {response.aggregated_payload_size}, want 73086",
    )


def server_streaming(ctx):
    sizes = (31415, 9, 2653, 58979)
    request = messages_pb2.StreamingOutputCallRequest(
        response_type=messages_pb2.COMPRESSABLE,
        response_parameters=[messages_pb2.ResponseParameters(size=n) for n in sizes],
    )
    responses = list(ctx.stub.StreamingOutputCall(request, timeout=ctx.timeout))
    check(len(responses) == len(sizes), f"{len(responses)} responses, want {len(sizes)}")
    for i, (response, size) in enumerate(zip(responses, sizes)):
        _check_payload(response.payload, size, f"response {i}")


def server_compressed_streaming(ctx):
    plan = ((True, 31415), (False, 92653))
    request = messages_pb2.StreamingOutputCallRequest(
        response_type=messages_pb2.COMPRESSABLE,
        response_parameters=[
            messages_pb2.ResponseParameters(compressed=messages_pb2.BoolValue(value=c), size=n) for c, n in plan
        ],
    )
    with ctx.open_channel(options=(wire.NO_DECOMPRESSION,)) as channel:
        call = channel.unary_stream(
            "/grpc.testing.TestService/StreamingOutputCall",
            request_serializer=messages_pb2.StreamingOutputCallRequest.SerializeToString,
            response_deserializer=wire.decoder(messages_pb2.StreamingOutputCallResponse),
        )
        responses = list(call(request, timeout=ctx.timeout))
    check(len(responses) == len(plan), f"{len(responses)} responses, want {len(plan)}")
    for i, (received, (compressed, size)) in enumerate(zip(responses, plan)):
        check(
            received.compressed == compressed,
            f"response {i}: compressed={compressed} but its Compressed-Flag is {int(received.compressed)}",
        )
        _check_payload(received.message.payload, size, f"response {i}")


def _ping_pong_request(response_size, payload_size):
    return messages_pb2.StreamingOutputCallRequest(
        response_type=messages_pb2.COMPRESSABLE,
        response_parameters=[messages_pb2.ResponseParameters(size=response_size)],
        payload=_payload(payload_size),
    )


def ping_pong(ctx):
    steps = ((31415, 27182), (9, 8), (2653, 1828), (58979, 45904))
    pipe = ctx.pipe()
    try:
        responses = ctx.stub.FullDuplexCall(pipe, timeout=ctx.timeout)
        for i, (response_size, payload_size) in enumerate(steps):
            pipe.add(_ping_pong_request(response_size, payload_size))
            response = next(responses, None)
            check(response is not None, f"stream ended after {i} responses, want {len(steps)}")
            _check_payload(response.payload, response_size, f"response {i}")
        pipe.close()
        extra = list(responses)
        check(not extra, f"{len(extra)} responses after the last ping, want none")
        check(responses.code() == grpc.StatusCode.OK, f"status {responses.code()}, want OK")
    finally:
        pipe.close()


def empty_stream(ctx):
    responses = list(ctx.stub.FullDuplexCall(iter(()), timeout=ctx.timeout))
    check(not responses, f"{len(responses)} responses, want 0")


def timeout_on_sleeping_server(ctx):
    pipe = ctx.pipe()
    try:
        responses = ctx.stub.FullDuplexCall(pipe, timeout=0.001)
        pipe.add(messages_pb2.StreamingOutputCallRequest(payload=_payload(27182)))
        # The client waits (without half-closing) for the deadline.
        _expect_rpc_error(lambda: list(responses), grpc.StatusCode.DEADLINE_EXCEEDED, what="FullDuplexCall")
    finally:
        pipe.close()


def cancel_after_begin(ctx):
    pipe = ctx.pipe()
    try:
        future = ctx.stub.StreamingInputCall.future(pipe, timeout=ctx.timeout)
        future.cancel()
        check(future.cancelled(), "call not cancelled")
        check(future.code() == grpc.StatusCode.CANCELLED, f"status {future.code()}, want CANCELLED")
    finally:
        pipe.close()


def cancel_after_first_response(ctx):
    pipe = ctx.pipe()
    try:
        responses = ctx.stub.FullDuplexCall(pipe, timeout=ctx.timeout)
        pipe.add(_ping_pong_request(31415, 27182))
        response = next(responses, None)
        check(response is not None, "stream ended before the first response")
        responses.cancel()
        _expect_rpc_error(lambda: next(responses), grpc.StatusCode.CANCELLED, what="FullDuplexCall after cancel")
        check(responses.code() == grpc.StatusCode.CANCELLED, f"status {responses.code()}, want CANCELLED")
    finally:
        pipe.close()


def _check_echoed_metadata(call, what):
    initial = [v for k, v in call.initial_metadata() or () if k == _INITIAL_METADATA_KEY]
    check(
        initial == [_INITIAL_METADATA_VALUE],
        f"{what}: initial metadata {_INITIAL_METADATA_KEY}={initial}, want [{_INITIAL_METADATA_VALUE!r}]",
    )
    trailing = [v for k, v in call.trailing_metadata() or () if k == _TRAILING_METADATA_KEY]
    check(
        trailing == [_TRAILING_METADATA_VALUE],
        f"{what}: trailing metadata {_TRAILING_METADATA_KEY}={trailing}, want [{_TRAILING_METADATA_VALUE!r}]",
    )


def custom_metadata(ctx):
    metadata = ((_INITIAL_METADATA_KEY, _INITIAL_METADATA_VALUE), (_TRAILING_METADATA_KEY, _TRAILING_METADATA_VALUE))
    # 1. UnaryCall.
    response, call = ctx.stub.UnaryCall.with_call(_large_unary_request(), metadata=metadata, timeout=ctx.timeout)
    _check_payload(response.payload, 314159, "UnaryCall")
    _check_echoed_metadata(call, "UnaryCall")
    # 2. FullDuplexCall, then half-close.
    request = _ping_pong_request(314159, 271828)
    responses = ctx.stub.FullDuplexCall(iter((request,)), metadata=metadata, timeout=ctx.timeout)
    received = list(responses)
    check(len(received) == 1, f"FullDuplexCall: {len(received)} responses, want 1")
    _check_payload(received[0].payload, 314159, "FullDuplexCall")
    check(responses.code() == grpc.StatusCode.OK, f"FullDuplexCall: status {responses.code()}, want OK")
    _check_echoed_metadata(responses, "FullDuplexCall")


def _echo_status_cases(ctx, code, message):
    status = messages_pb2.EchoStatus(code=code.value[0], message=message)
    # 1. UnaryCall.
    _expect_rpc_error(
        lambda: ctx.stub.UnaryCall(messages_pb2.SimpleRequest(response_status=status), timeout=ctx.timeout),
        code,
        message,
        what="UnaryCall",
    )
    return status


def status_code_and_message(ctx):
    code, message = grpc.StatusCode.UNKNOWN, "test status message"  # code 2
    status = _echo_status_cases(ctx, code, message)
    # 2. FullDuplexCall, then half-close.
    request = messages_pb2.StreamingOutputCallRequest(response_status=status)
    responses = ctx.stub.FullDuplexCall(iter((request,)), timeout=ctx.timeout)
    _expect_rpc_error(lambda: list(responses), code, message, what="FullDuplexCall")


def special_status_message(ctx):
    message = "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n"
    _echo_status_cases(ctx, grpc.StatusCode.UNKNOWN, message)


def unimplemented_method(ctx):
    _expect_rpc_error(
        lambda: ctx.stub.UnimplementedCall(empty_pb2.Empty(), timeout=ctx.timeout),
        grpc.StatusCode.UNIMPLEMENTED,
        what="TestService/UnimplementedCall",
    )


def unimplemented_service(ctx):
    stub = test_pb2_grpc.UnimplementedServiceStub(ctx.channel)
    _expect_rpc_error(
        lambda: stub.UnimplementedCall(empty_pb2.Empty(), timeout=ctx.timeout),
        grpc.StatusCode.UNIMPLEMENTED,
        what="UnimplementedService/UnimplementedCall",
    )


def _soak(ctx, fresh_channel):
    """rpc_soak / channel_soak ("Experimental Tests"): soak_iterations
    large_unary calls in sequence; one slower than the per-iteration latency
    bound counts as failed; more than soak_max_failures failures, or running
    past soak_overall_timeout_seconds, fails the case."""
    args = ctx.args
    bound = args.soak_per_iteration_max_acceptable_latency_ms / 1000
    overall = args.soak_overall_timeout_seconds or 10 * args.soak_iterations
    start = time.monotonic()
    failures = []
    for i in range(args.soak_iterations):
        if time.monotonic() - start > overall:
            raise CaseFailed(f"overall timeout {overall}s reached after {i} iterations")
        began = time.monotonic()
        try:
            if fresh_channel:
                with ctx.open_channel() as channel:
                    stub = test_pb2_grpc.TestServiceStub(channel)
                    response = stub.UnaryCall(_large_unary_request(), timeout=ctx.timeout, wait_for_ready=True)
            else:
                response = ctx.stub.UnaryCall(_large_unary_request(), timeout=ctx.timeout)
            _check_payload(response.payload, 314159, f"iteration {i}")
            took = time.monotonic() - began
            if took > bound:
                failures.append(f"iteration {i} took {took * 1000:.0f} ms > {bound * 1000:.0f} ms")
        except (grpc.RpcError, CaseFailed) as error:
            failures.append(f"iteration {i}: {_reason(error)}")
    check(
        len(failures) <= args.soak_max_failures,
        f"{len(failures)} of {args.soak_iterations} iterations failed "
        f"(max {args.soak_max_failures}): {'; '.join(failures[:3])}",
    )


def rpc_soak(ctx):
    _soak(ctx, fresh_channel=False)


def channel_soak(ctx):
    _soak(ctx, fresh_channel=True)


# What `--test_case all` runs, in order. Every case of
# interop-test-descriptions.md that needs no TLS, credentials, caching
# proxy or special server setup, plus the experimental soak cases.
CASES = {
    case.__name__: case
    for case in (
        empty_unary,
        large_unary,
        client_compressed_unary,
        server_compressed_unary,
        client_streaming,
        client_compressed_streaming,
        server_streaming,
        server_compressed_streaming,
        ping_pong,
        empty_stream,
        custom_metadata,
        status_code_and_message,
        special_status_message,
        unimplemented_method,
        unimplemented_service,
        cancel_after_begin,
        cancel_after_first_response,
        timeout_on_sleeping_server,
        rpc_soak,
        channel_soak,
    )
}

# Described cases left out, and why (printed by --help).
NOT_IMPLEMENTED = {
    "cacheable_unary": "needs a caching proxy in front of the server and GET requests, which grpcio cannot send",
    "compute_engine_creds": "needs TLS and GCE credentials",
    "jwt_token_creds": "needs TLS and a service account key",
    "oauth2_auth_token": "needs TLS and OAuth credentials",
    "per_rpc_creds": "needs TLS and a service account key",
    "google_default_credentials": "needs TLS and Google credentials",
    "compute_engine_channel_credentials": "needs GCE",
    "long_lived_channel": "experimental; runs for a long wall-clock time by design",
}


# --- driver ----------------------------------------------------------------


def _open_channel(args, options=()):
    opts = list(options)
    if args.server_host_override:
        opts.append(("grpc.default_authority", args.server_host_override))
    host = f"[{args.server_host}]" if ":" in args.server_host else args.server_host
    if not args.use_tls:
        return grpc.insecure_channel(f"{host}:{args.server_port}", options=opts)
    if args.server_host_override:
        # The name server1's certificate is checked against (grpc's interop flag).
        opts.append(("grpc.ssl_target_name_override", args.server_host_override))
    roots = None
    if args.use_test_ca:
        testdata = pathlib.Path(__file__).resolve().parent.parent.parent / "interop" / "testdata"
        roots = (testdata / "ca.pem").read_bytes()
    credentials = grpc.ssl_channel_credentials(root_certificates=roots)
    return grpc.secure_channel(f"{host}:{args.server_port}", credentials, options=opts)


def _reason(error):
    if isinstance(error, grpc.RpcError) and hasattr(error, "code"):
        return f"unexpected RPC error {error.code()}: {error.details()!r}"
    if isinstance(error, CaseFailed):
        return str(error)
    return f"{type(error).__name__}: {error}"


def run_case(args, name):
    """Runs one case on its own channel; returns None or the failure reason."""
    with _open_channel(args) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=args.connect_timeout)
        except grpc.FutureTimeoutError:
            return f"could not connect to {args.server_host}:{args.server_port} in {args.connect_timeout}s"
        try:
            CASES[name](Context(args, channel, args.rpc_timeout))
        except Exception as error:  # noqa: BLE001 -- any error fails the case, and says why
            return _reason(error)
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="not implemented: " + "; ".join(f"{k} ({v})" for k, v in NOT_IMPLEMENTED.items()),
    )
    parser.add_argument("--server_host", default="127.0.0.1")
    parser.add_argument("--server_host_override", default="", help="name the certificate must match; :authority")
    parser.add_argument("--server_port", type=int, required=True)
    parser.add_argument("--test_case", default="all", help="one of: all, " + ", ".join(CASES))
    parser.add_argument("--use_tls", type=_bool_flag, default=False, help="dial TLS")
    parser.add_argument("--use_test_ca", type=_bool_flag, default=False, help="trust the test CA (with TLS)")
    parser.add_argument("--rpc_timeout", type=float, default=30.0, help="deadline of each RPC, seconds")
    parser.add_argument("--connect_timeout", type=float, default=10.0, help="wait for the server, seconds")
    parser.add_argument("--soak_iterations", type=int, default=10)
    parser.add_argument("--soak_max_failures", type=int, default=0)
    parser.add_argument("--soak_per_iteration_max_acceptable_latency_ms", type=int, default=1000)
    parser.add_argument("--soak_overall_timeout_seconds", type=int, default=0, help="0: 10 s per iteration")
    args = parser.parse_args(argv)
    if args.use_test_ca and not args.use_tls:
        parser.error("--use_test_ca=true needs --use_tls=true")
    if args.test_case == "all":
        names = list(CASES)
    elif args.test_case in CASES:
        names = [args.test_case]
    elif args.test_case in NOT_IMPLEMENTED:
        parser.error(f"{args.test_case} is not implemented: {NOT_IMPLEMENTED[args.test_case]}")
    else:
        parser.error(f"unknown --test_case {args.test_case!r}; one of: all, {', '.join(CASES)}")

    passed = failed = 0
    for name in names:
        reason = run_case(args, name)
        if reason is None:
            passed += 1
            print(f"PASS {name}", flush=True)
        else:
            failed += 1
            print(f"FAIL {name}: {reason}", flush=True)
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
