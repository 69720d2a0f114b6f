#!/usr/bin/env python3
"""grpc.testing.TestService over grpcio (gRPC C-core): the interop server.

Implements the server features of grpc/grpc doc/interop-test-descriptions.md
("Server" section): EmptyCall, UnaryCall, CacheableUnaryCall,
CompressedResponse, CompressedRequest, StreamingInputCall,
StreamingOutputCall, FullDuplexCall, HalfDuplexCall, Echo Status,
Echo Metadata, and ResponseParameters.interval_us. Every method not listed
(TestService/UnimplementedCall, all of UnimplementedService) answers
UNIMPLEMENTED, as the unimplemented_* cases require.

    python server.py --port 10000 [--use_tls=false] [--host 127.0.0.1]

With --use_tls=true it serves TLS with the vendored test certificate
(interop/testdata/server1.pem and server1.key), as grpc's interop servers do.

Prints one line "... listening on HOST:PORT" once it accepts connections and
stops cleanly on SIGTERM or SIGINT. `--port 0` picks a free port (the line
says which).
"""

import argparse
import os
import pathlib
import signal
import sys
import threading
import time
from concurrent import futures

import grpc

import wire
from protos import empty_pb2, messages_pb2

_INITIAL_METADATA_KEY = "x-grpc-test-echo-initial"
_TRAILING_METADATA_KEY = "x-grpc-test-echo-trailing-bin"
_SERVICE = "grpc.testing.TestService"
# HalfDuplexCall holds every request until half-close; this caps that buffer
# (each message is already capped by gRPC's 4 MiB receive limit) far above
# what any interop case sends.
_HALF_DUPLEX_MAX_REQUESTS = 1000


def _bool_flag(text):
    value = text.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


# --- server features -------------------------------------------------------


def _echo_metadata(context, extra_initial=()):
    """Echo Metadata: copy the two test keys back as initial/trailing metadata.

    Sends the initial metadata (echo plus `extra_initial`) right away, before
    any message, so that clients also see it on calls that end with an
    echoed error status. Returns whether it did: after that, set_compression
    no longer has an effect.
    """
    received = dict(context.invocation_metadata())
    if _TRAILING_METADATA_KEY in received:
        context.set_trailing_metadata(((_TRAILING_METADATA_KEY, received[_TRAILING_METADATA_KEY]),))
    initial = list(extra_initial)
    if _INITIAL_METADATA_KEY in received:
        initial.append((_INITIAL_METADATA_KEY, received[_INITIAL_METADATA_KEY]))
    if initial:
        context.send_initial_metadata(tuple(initial))
        return True
    return False


def _wants_compression(params):
    return params.HasField("compressed") and params.compressed.value


def _status_code(number):
    for code in grpc.StatusCode:
        if code.value[0] == number:
            return code
    return grpc.StatusCode.UNKNOWN


def _maybe_echo_status(request, context):
    """Echo Status: "the server closes the stream with the status code and
    message contained within said response_status. The server will not
    process any further messages on the stream" (as grpc-go's server does, a
    response_status with code 0 is treated as absent)."""
    if request.HasField("response_status") and request.response_status.code != 0:
        context.abort(_status_code(request.response_status.code), request.response_status.message)


def _check_payload_type(response_type, context):
    """UnaryCall: "If the server does not support the response_type, then it
    should fail the RPC with INVALID_ARGUMENT"."""
    if response_type != messages_pb2.COMPRESSABLE:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unsupported response_type {response_type}")


def _check_expected_compression(received, context):
    """CompressedRequest: "When the client sets expect_compressed to true, the
    server expects the client request to be compressed. If it's not, it
    fails the RPC with INVALID_ARGUMENT." Like gRPC C++'s interop server we
    also fail a request that is compressed although expect_compressed is
    false. The flag comes from wire.decode (see wire.py)."""
    request = received.message
    if not request.HasField("expect_compressed"):
        return
    expected = request.expect_compressed.value
    if expected and not received.compressed:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Expected compressed request, got uncompressed")
    if not expected and received.compressed:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Expected uncompressed request, got compressed")


def _zeros(size, context):
    if size < 0:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"negative payload size {size}")
    return b"\x00" * size


def _preset_compression(requests, context):
    """Switches gzip on if any response of the known requests wants it."""
    if any(_wants_compression(p) for r in requests for p in r.response_parameters):
        context.set_compression(grpc.Compression.Gzip)
        return True
    return False


def _stream_responses(requests, context, headers_sent, compressing=False):
    """StreamingOutputCall/FullDuplexCall/HalfDuplexCall body: for each request
    and each of its ResponseParameters, sleep interval_us, then send a
    payload of `size` zeros, compressed iff `compressed` asked for it.

    The call's algorithm (grpc-encoding) travels in the response headers, so
    gzip is switched on before the first message when any response of the
    first request wants compression; after the headers are out it is too
    late, and such a request fails loudly rather than go out uncompressed.
    """
    for request in requests:
        _maybe_echo_status(request, context)
        _check_payload_type(request.response_type, context)
        if any(_wants_compression(p) for p in request.response_parameters) and not compressing:
            if headers_sent:
                context.abort(
                    grpc.StatusCode.INTERNAL,
                    "interop server: compressed response asked for after the response headers were sent",
                )
            context.set_compression(grpc.Compression.Gzip)
            compressing = True
        for params in request.response_parameters:
            # Observe ResponseParameters.interval_us: a sleep *before* the
            # response, relative to the last one sent.
            if params.interval_us > 0:
                time.sleep(params.interval_us / 1e6)
            if compressing and not _wants_compression(params):
                # Compressed-Flag 0 for this one message although the call
                # compresses (C-core's GRPC_WRITE_NO_COMPRESS).
                context.disable_next_message_compression()
            yield messages_pb2.StreamingOutputCallResponse(
                payload=messages_pb2.Payload(type=request.response_type, body=_zeros(params.size, context))
            )
            headers_sent = True


class TestService:
    """Handlers take `wire.Received` requests (message + compressed flag)."""

    def __init__(self, server_id):
        self._server_id = server_id

    def EmptyCall(self, received, context):
        _echo_metadata(context)
        return empty_pb2.Empty()

    def UnaryCall(self, received, context):
        request = received.message
        # CompressedResponse: compress only when asked to. Set before any
        # metadata goes out: the algorithm travels in the response headers.
        if request.HasField("response_compressed") and request.response_compressed.value:
            context.set_compression(grpc.Compression.Gzip)
        else:
            context.set_compression(grpc.Compression.NoCompression)
        _echo_metadata(context)
        _check_expected_compression(received, context)
        _maybe_echo_status(request, context)
        _check_payload_type(request.response_type, context)
        response = messages_pb2.SimpleResponse(
            payload=messages_pb2.Payload(type=request.response_type, body=_zeros(request.response_size, context))
        )
        if request.fill_server_id:
            response.server_id = self._server_id
        if request.fill_grpclb_route_type:
            response.grpclb_route_type = messages_pb2.GRPCLB_ROUTE_TYPE_UNKNOWN
        # fill_username / fill_oauth_scope need authentication, which this
        # plaintext server does not do; they stay empty.
        return response

    def CacheableUnaryCall(self, received, context):
        """The request is ignored; the payload is the current time in
        nanoseconds as ASCII decimal, with a cache-control header (max-age 60)
        for a caching proxy in front of the server."""
        _echo_metadata(context, extra_initial=(("cache-control", "max-age=60, public"),))
        return messages_pb2.SimpleResponse(
            payload=messages_pb2.Payload(type=messages_pb2.COMPRESSABLE, body=str(time.time_ns()).encode())
        )

    def StreamingOutputCall(self, received, context):
        requests = (received.message,)
        compressing = _preset_compression(requests, context)
        headers_sent = _echo_metadata(context)
        yield from _stream_responses(requests, context, headers_sent, compressing)

    def StreamingInputCall(self, received_iterator, context):
        """Upon half close, the sum of all request payload body sizes."""
        _echo_metadata(context)
        total = 0
        for received in received_iterator:
            _check_expected_compression(received, context)
            total += len(received.message.payload.body)
        return messages_pb2.StreamingInputCallResponse(aggregated_payload_size=total)

    def FullDuplexCall(self, received_iterator, context):
        """Each request is answered as it arrives."""
        headers_sent = _echo_metadata(context)
        yield from _stream_responses((r.message for r in received_iterator), context, headers_sent)

    def HalfDuplexCall(self, received_iterator, context):
        """All requests are buffered until half-close, then answered in order."""
        requests = []
        for received in received_iterator:
            if len(requests) == _HALF_DUPLEX_MAX_REQUESTS:
                context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"HalfDuplexCall buffers at most {_HALF_DUPLEX_MAX_REQUESTS} requests",
                )
            requests.append(received.message)
        compressing = _preset_compression(requests, context)
        headers_sent = _echo_metadata(context)
        yield from _stream_responses(requests, context, headers_sent, compressing)


def _handlers(service):
    req = wire.decoder
    ser = lambda message: message.SerializeToString()  # noqa: E731
    m = messages_pb2
    return grpc.method_handlers_generic_handler(
        _SERVICE,
        {
            "EmptyCall": grpc.unary_unary_rpc_method_handler(
                service.EmptyCall, req(empty_pb2.Empty), ser
            ),
            "UnaryCall": grpc.unary_unary_rpc_method_handler(
                service.UnaryCall, req(m.SimpleRequest), ser
            ),
            "CacheableUnaryCall": grpc.unary_unary_rpc_method_handler(
                service.CacheableUnaryCall, req(m.SimpleRequest), ser
            ),
            "StreamingOutputCall": grpc.unary_stream_rpc_method_handler(
                service.StreamingOutputCall, req(m.StreamingOutputCallRequest), ser
            ),
            "StreamingInputCall": grpc.stream_unary_rpc_method_handler(
                service.StreamingInputCall, req(m.StreamingInputCallRequest), ser
            ),
            "FullDuplexCall": grpc.stream_stream_rpc_method_handler(
                service.FullDuplexCall, req(m.StreamingOutputCallRequest), ser
            ),
            "HalfDuplexCall": grpc.stream_stream_rpc_method_handler(
                service.HalfDuplexCall, req(m.StreamingOutputCallRequest), ser
            ),
            # UnimplementedCall is deliberately absent: grpcio answers
            # UNIMPLEMENTED for it and for every UnimplementedService method.
        },
    )


def _check_against_proto(handler_names):
    """Every TestService method but UnimplementedCall must have a handler."""
    from grpc.testing import test_pb2

    methods = {m.name for m in test_pb2.DESCRIPTOR.services_by_name["TestService"].methods}
    missing = methods - set(handler_names) - {"UnimplementedCall"}
    if missing:
        raise RuntimeError(f"server lacks handlers for {sorted(missing)}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="port to listen on; 0 picks one")
    parser.add_argument("--use_tls", type=_bool_flag, default=False, help="serve TLS with the test certificate")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--server_id", default="python-interop-server", help="SimpleResponse.server_id")
    parser.add_argument("--max_workers", type=int, default=32, help="handler threads (each open stream holds one)")
    parser.add_argument("--grace", type=float, default=2.0, help="seconds to finish RPCs on SIGTERM")
    args = parser.parse_args(argv)

    service = TestService(args.server_id)
    names = [name for name in dir(service) if name[0].isupper()]
    _check_against_proto(names)

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=args.max_workers),
        handlers=(_handlers(service),),
        # Messages reach the handlers as on the wire; wire.decode inflates
        # them and records the Compressed-Flag for CompressedRequest.
        options=(wire.NO_DECOMPRESSION,),
    )
    host = f"[{args.host}]" if ":" in args.host else args.host
    if args.use_tls:
        testdata = pathlib.Path(__file__).resolve().parent.parent.parent / "interop" / "testdata"
        credentials = grpc.ssl_server_credentials(
            [((testdata / "server1.key").read_bytes(), (testdata / "server1.pem").read_bytes())]
        )
        port = server.add_secure_port(f"{host}:{args.port}", credentials)
    else:
        port = server.add_insecure_port(f"{host}:{args.port}")
    if port == 0:
        sys.exit(f"interop server: could not bind {host}:{args.port}")

    stop = threading.Event()

    def on_signal(signum, _frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    server.start()
    print(
        f"interop server (grpcio {grpc.__version__}) listening on {host}:{port} pid {os.getpid()}",
        flush=True,
    )
    # Wake up now and then so the signal handler runs promptly.
    while not stop.wait(0.5):
        pass
    server.stop(args.grace).wait(args.grace + 5)
    print("interop server stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
