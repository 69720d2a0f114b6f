#!/usr/bin/env python3
"""Runs one interop pairing: a server command against a client command.

    python tests/interop/run.py                                  # Python vs Python
    python tests/interop/run.py --server "target/debug/rgrpc-interop-server"
    python tests/interop/run.py --client "target/debug/rgrpc-interop-client"
    python tests/interop/run.py --test_case large_unary
    python tests/interop/run.py --use_tls                        # the same over TLS

The server command gets `--port N` appended (N is a free port on 127.0.0.1);
the client command gets `--server_host 127.0.0.1 --server_port N
--test_case CASE`. Both default to the Python peer in this directory (run
setup.sh first). The run waits for the server to accept TCP connections,
runs the client, then stops the server with SIGTERM (SIGKILL after
--stop_timeout). With --use_tls the server also gets `--use_tls=true` (it
serves the vendored test certificate) and the client `--use_tls=true
--use_test_ca=true --server_host_override=foo.test.google.fr`, grpc's interop
flags. Every wait is bounded. Exit status: the client's, or 1 if
the server did not come up, or if it had to be killed.
"""

import argparse
import os
import pathlib
import shlex
import socket
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
PYTHON = HERE / ".venv" / "bin" / "python"


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port, process, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return f"server exited with status {process.returncode} before listening"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return None
        except OSError:
            time.sleep(0.1)
    return f"server did not accept connections on 127.0.0.1:{port} within {timeout}s"


def _stop(process, timeout):
    """SIGTERM, then SIGKILL; returns whether the server stopped by itself."""
    if process.poll() is not None:
        return True
    process.terminate()
    try:
        process.wait(timeout)
        return True
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
        return False


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=f"{PYTHON} {HERE / 'server.py'}", help="server command")
    parser.add_argument("--client", default=f"{PYTHON} {HERE / 'client.py'}", help="client command")
    parser.add_argument("--test_case", default="all")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--startup_timeout", type=float, default=60.0)
    parser.add_argument("--client_timeout", type=float, default=600.0)
    parser.add_argument("--stop_timeout", type=float, default=10.0)
    parser.add_argument("--use_tls", action="store_true", help="run the pairing over TLS")
    args = parser.parse_args(argv)

    port = args.port or _free_port()
    server_cmd = shlex.split(args.server) + ["--port", str(port)]
    client_cmd = shlex.split(args.client) + [
        "--server_host", "127.0.0.1", "--server_port", str(port), "--test_case", args.test_case,
    ]
    if args.use_tls:
        server_cmd += ["--use_tls=true"]
        client_cmd += ["--use_tls=true", "--use_test_ca=true", "--server_host_override=foo.test.google.fr"]
    with tempfile.TemporaryFile("w+") as server_log:
        print(f"interop: server: {shlex.join(server_cmd)}", flush=True)
        server = subprocess.Popen(server_cmd, stdout=server_log, stderr=subprocess.STDOUT, cwd=os.getcwd())
        try:
            problem = _wait_listening(port, server, args.startup_timeout)
            if problem:
                print(f"interop: {problem}", flush=True)
                status = 1
            else:
                print(f"interop: client: {shlex.join(client_cmd)}", flush=True)
                try:
                    status = subprocess.run(client_cmd, timeout=args.client_timeout).returncode
                except subprocess.TimeoutExpired:
                    print(f"interop: client did not finish within {args.client_timeout}s", flush=True)
                    status = 1
        finally:
            if not _stop(server, args.stop_timeout):
                print(f"interop: server ignored SIGTERM for {args.stop_timeout}s; killed", flush=True)
                status = 1
        if status != 0:
            server_log.seek(0)
            print("interop: server output:\n" + server_log.read()[-8000:], flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
