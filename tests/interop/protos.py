"""Loads the Python stubs that setup.sh generates from proto/grpc/testing/.

The protos live in package `grpc.testing` under include root `proto/`, so
grpc_tools writes them as module `grpc.testing.*` -- inside the name of the
grpcio package itself. grpcio ships no `grpc.testing`, so we add gen/grpc to
`grpc.__path__` and Python finds `grpc.testing` there (as a namespace
subpackage). The names on the wire come from the proto package, not from
this module path.
"""

import pathlib
import sys

import grpc

GEN = pathlib.Path(__file__).resolve().parent / "gen"

if not (GEN / "grpc" / "testing" / "test_pb2_grpc.py").is_file():
    sys.exit(f"interop: no generated stubs in {GEN}; run tests/interop/setup.sh first")

if str(GEN / "grpc") not in grpc.__path__:
    grpc.__path__.append(str(GEN / "grpc"))

from grpc.testing import empty_pb2  # noqa: E402  (needs the path above)
from grpc.testing import messages_pb2  # noqa: E402
from grpc.testing import test_pb2_grpc  # noqa: E402

__all__ = ["empty_pb2", "messages_pb2", "test_pb2_grpc"]
