#!/usr/bin/env bash
# h2load-ab.sh ROUNDS SECS SERVER_BIN...: a same-minute A/B of server binaries (e.g. the
# rgrpc-bench-server of two commits and bench-tonic-server). Each round runs every binary
# in turn: server pinned to core 0, `h2load -c 8 -m 50` with a 10 B gRPC request on core 1
# for SECS seconds, and prints req/s and calls per server CPU-second (from /proc/PID/stat).
# Needs h2load (nghttp2-client) and a request body made by
# `rgrpc-bench-client --payload 10 --write_h2load_body /tmp/body10.bin`.
# A SERVER_BIN may carry flags, quoted as one argument:
# `h2load-ab.sh 3 10 target/release/rgrpc-bench-server "target/release/rgrpc-bench-server --observe both"`.
set -euo pipefail
rounds=$1
secs=$2
shift 2
body=${BODY:-/tmp/body10.bin}
. "$(dirname "$0")/h2load-lib.sh"
for round in $(seq "$rounds"); do
    for bin in "$@"; do
        start_server "$bin"
        c0=$(cpu_ticks "$pid")
        out=$(taskset -c 1 h2load -c 8 -m 50 -D "$secs" --warm-up-time=1 -d "$body" \
            -H 'content-type: application/grpc' -H 'te: trailers' "$(uri)" 2>&1 || true)
        c1=$(cpu_ticks "$pid")
        stop_server
        rps=$(echo "$out" | sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p')
        ok=$(echo "$out" | sed -n 's/^requests: .* \([0-9]*\) succeeded.*/\1/p')
        per_cpu=$(awk -v o="${ok:-0}" -v t=$((c1 - c0)) 'BEGIN { printf "%.0f", (t > 0 ? o / (t / 100) : 0) }')
        echo "round=$round bin=$bin rps=${rps:-0} calls_per_cpu_s=$per_cpu"
    done
done
