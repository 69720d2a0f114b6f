#!/usr/bin/env bash
# Prepare the Python interop peer: a venv with grpcio, and Python stubs for
# proto/grpc/testing/*.proto. Idempotent; safe to run from any directory.
#
#   tests/interop/setup.sh            # from the repo root
#   PYTHON=python3.11 tests/interop/setup.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="${PYTHON:-python3}"
venv="$here/.venv"
gen="$here/gen"

# 1. The venv. Recreate it if it is broken (e.g. its base Python went away).
if ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
    rm -rf "$venv"
    "$python" -m venv "$venv"
fi

# 2. The pinned packages, reinstalled only when requirements.txt changed.
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    "$venv/bin/python" -m pip install --disable-pip-version-check --quiet \
        --only-binary=:all: -r "$here/requirements.txt"
    echo "$want" >"$stamp"
fi

# 3. The stubs, always regenerated (cheap) so they never go stale. Written to
#    a scratch directory first so an interrupted run leaves no half of gen/.
rm -rf "$gen.tmp"
mkdir -p "$gen.tmp"
"$venv/bin/python" -m grpc_tools.protoc -I "$root/proto" \
    --python_out="$gen.tmp" --grpc_python_out="$gen.tmp" \
    "$root/proto/grpc/testing/empty.proto" \
    "$root/proto/grpc/testing/messages.proto" \
    "$root/proto/grpc/testing/test.proto"
rm -rf "$gen"
mv "$gen.tmp" "$gen"

echo "interop: $("$venv/bin/python" -c 'import grpc; print("grpcio", grpc.__version__)') ready in $venv; stubs in $gen"
