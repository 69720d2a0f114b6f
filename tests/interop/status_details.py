#!/usr/bin/env python3
"""gRPC's rich error model against rgrpc, judged by grpcio's grpc_status package.

Both directions use grpc.testing.TestService/UnaryCall and the same set of
details (`expected_details()`: every standard google.rpc error detail, in
order, plus one detail of another type, a grpc.testing.Payload):

    python status_details.py client --target 127.0.0.1:PORT
        Calls UnaryCall with payload body "details" on an rgrpc server that
        answers NOT_FOUND "rich details from rgrpc" with those details; reads
        them with rpc_status.from_call (which checks that the status proto's
        code and message match the call's) and compares each, unpacked, with
        the expected message. Prints "PASS ..." and exits 0, or "FAIL ..."
        and exits 1.

    python status_details.py server
        Serves UnaryCall on 127.0.0.1 (a free port), printing
        "status_details server listening on 127.0.0.1:PORT". Payload body
        "details": context.abort_with_status(rpc_status.to_status(...)) with
        NOT_FOUND "rich details from grpcio" and the expected details;
        "mismatch": details whose code and message are not the call's;
        "garbage": grpc-status-details-bin that is not a google.rpc.Status.
        Stops when stdin closes (or on SIGTERM).
"""

import argparse
import sys
from concurrent import futures

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from protos import messages_pb2, test_pb2_grpc

_DETAILS_KEY = "grpc-status-details-bin"


def expected_details():
    """The details both directions carry; rgrpc's test builds the same list."""
    ed = error_details_pb2
    return [
        ed.ErrorInfo(reason="STOCKOUT", domain="example.com", metadata={"region": "eu-1"}),
        ed.RetryInfo(retry_delay=duration_pb2.Duration(seconds=3, nanos=5)),
        ed.DebugInfo(stack_entries=["a.rs:1", "b.rs:2"], detail="boom"),
        ed.QuotaFailure(
            violations=[ed.QuotaFailure.Violation(subject="project:1", description="daily limit")]
        ),
        ed.PreconditionFailure(
            violations=[
                ed.PreconditionFailure.Violation(
                    type="TOS", subject="user:1", description="terms not accepted"
                )
            ]
        ),
        ed.BadRequest(
            field_violations=[ed.BadRequest.FieldViolation(field="name", description="empty")]
        ),
        ed.RequestInfo(request_id="req-1", serving_data="shard 7"),
        ed.ResourceInfo(
            resource_type="book",
            resource_name="shelves/1/books/2",
            owner="user:1",
            description="gone",
        ),
        ed.Help(links=[ed.Help.Link(description="docs", url="https://example.com/help")]),
        ed.LocalizedMessage(locale="fr-FR", message="introuvable"),
        messages_pb2.Payload(body=b"custom"),
    ]


def packed(messages):
    out = []
    for message in messages:
        any_message = any_pb2.Any()
        any_message.Pack(message)  # type.googleapis.com/<full name>
        out.append(any_message)
    return out


def run_client(target):
    with grpc.insecure_channel(target) as channel:
        stub = test_pb2_grpc.TestServiceStub(channel)
        request = messages_pb2.SimpleRequest(payload=messages_pb2.Payload(body=b"details"))
        try:
            stub.UnaryCall(request, timeout=10)
        except grpc.RpcError as call:
            error = call
        else:
            return "FAIL UnaryCall succeeded; expected NOT_FOUND with details"
    if error.code() != grpc.StatusCode.NOT_FOUND:
        return f"FAIL code {error.code()} ({error.details()!r}), expected NOT_FOUND"
    try:
        status = rpc_status.from_call(error)  # checks code and message
    except ValueError as e:
        return f"FAIL rpc_status.from_call: {e}"
    if status is None:
        return "FAIL no grpc-status-details-bin in the trailers"
    if status.code != code_pb2.NOT_FOUND or status.message != "rich details from rgrpc":
        return f"FAIL status proto: code {status.code} message {status.message!r}"
    expected = expected_details()
    if len(status.details) != len(expected):
        return f"FAIL {len(status.details)} details, expected {len(expected)}"
    for i, (detail, want) in enumerate(zip(status.details, expected)):
        want_url = "type.googleapis.com/" + want.DESCRIPTOR.full_name
        if detail.type_url != want_url:
            return f"FAIL detail {i}: type_url {detail.type_url!r}, expected {want_url!r}"
        got = type(want)()
        if not detail.Unpack(got):
            return f"FAIL detail {i}: does not unpack as {want.DESCRIPTOR.full_name}"
        if got != want:
            return f"FAIL detail {i} ({want.DESCRIPTOR.full_name}): {got} != {want}"
    names = ", ".join(d.type_url.rsplit("/", 1)[-1] for d in status.details)
    return f"PASS {len(status.details)} details read by grpc_status: {names}"


class _Servicer(test_pb2_grpc.TestServiceServicer):
    def UnaryCall(self, request, context):
        body = request.payload.body
        if body == b"details":
            status = status_pb2.Status(
                code=code_pb2.NOT_FOUND,
                message="rich details from grpcio",
                details=packed(expected_details()),
            )
            context.abort_with_status(rpc_status.to_status(status))
        if body == b"mismatch":
            other = status_pb2.Status(code=code_pb2.INTERNAL, message="not the call's")
            context.set_trailing_metadata(((_DETAILS_KEY, other.SerializeToString()),))
            context.abort(grpc.StatusCode.NOT_FOUND, "the call's message")
        if body == b"garbage":
            context.set_trailing_metadata(((_DETAILS_KEY, b"\xff\xff\xff"),))
            context.abort(grpc.StatusCode.INTERNAL, "garbage details")
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown body {body!r}")


def run_server():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    test_pb2_grpc.add_TestServiceServicer_to_server(_Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"status_details server listening on 127.0.0.1:{port}", flush=True)
    try:
        sys.stdin.read()  # until the test closes our stdin
    except KeyboardInterrupt:
        pass
    server.stop(0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    client = sub.add_parser("client")
    client.add_argument("--target", required=True)
    sub.add_parser("server")
    args = parser.parse_args()
    if args.mode == "client":
        result = run_client(args.target)
        print(result, flush=True)
        sys.exit(0 if result.startswith("PASS") else 1)
    run_server()


if __name__ == "__main__":
    main()
