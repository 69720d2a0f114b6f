"""grpcio's health client (grpcio-health-checking) against an rgrpc server.

    python health_client.py HOST:PORT

Prints one line per answer; tests/tests/health.rs reads them and changes the
watched service's status after each `watch` line.
"""

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

TIMEOUT = 30


def name(status):
    return health_pb2.HealthCheckResponse.ServingStatus.Name(status)


def say(line):
    print(line, flush=True)


def main():
    target = sys.argv[1]
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ["", "helloworld.Greeter", "nope"]:
            try:
                reply = stub.Check(
                    health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT
                )
                say(f"check {service!r} {name(reply.status)}")
            except grpc.RpcError as e:
                say(f"check {service!r} {e.code().name}")
        watch = stub.Watch(health_pb2.HealthCheckRequest(service="later"), timeout=TIMEOUT)
        for _ in range(3):
            say(f"watch 'later' {name(next(watch).status)}")
        watch.cancel()
    say("done")


if __name__ == "__main__":
    main()
