#!/usr/bin/env bash
# h2load-churn.sh ROUNDS CONNS RATE SERVER_BIN...: connection churn, one 10 B unary call
# per connection: h2load opens CONNS connections at RATE per second (rate mode, in
# 100 ms steps), each makes one call and closes. Server pinned to core 0, h2load to
# core 1. The server's CPU is read 3 s after the last call, so work done after a burst
# (the `trim_memory` trim) is counted. Prints CPU ms per 1000 connections and the
# server's RSS at the start, right after the burst and 3 s later.
# Needs h2load and the body of h2load-ab.sh (BODY, default /tmp/body10.bin). A
# SERVER_BIN may carry flags, quoted as one argument, e.g.
# `h2load-churn.sh 3 10000 2000 "target/release/rgrpc-bench-server --trim_memory off"`.
set -euo pipefail
rounds=$1
conns=$2
rate=$3
shift 3
body=${BODY:-/tmp/body10.bin}
. "$(dirname "$0")/h2load-lib.sh"
rss() { awk '/VmRSS/ { print $2 }' "/proc/$1/status"; }
for round in $(seq "$rounds"); do
    for bin in "$@"; do
        start_server "$bin"
        rss0=$(rss "$pid")
        c0=$(cpu_ticks "$pid")
        out=$(taskset -c 1 h2load -n "$conns" -c "$conns" -r $((rate / 10)) --rate-period 100ms \
            -m 1 -d "$body" -H 'content-type: application/grpc' -H 'te: trailers' "$(uri)" 2>&1 || true)
        rss1=$(rss "$pid")
        sleep 3
        c1=$(cpu_ticks "$pid")
        rss2=$(rss "$pid")
        stop_server
        ok=$(echo "$out" | sed -n 's/^requests: .* \([0-9]*\) succeeded.*/\1/p')
        awk -v r="$round" -v b="$bin" -v o="${ok:-0}" -v t=$((c1 - c0)) -v a="$rss0" -v z="$rss1" -v e="$rss2" \
            'BEGIN { printf "round=%s bin=%s calls_ok=%s cpu_ms_per_1k_conns=%.0f rss_kib_start=%d after_burst=%d 3s_later=%d\n",
                     r, b, o, (o > 0 ? t * 10 * 1000 / o : 0), a, z, e }'
    done
done
