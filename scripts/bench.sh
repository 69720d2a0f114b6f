#!/usr/bin/env bash
# rgrpc vs tonic 0.14, side by side in one run: `scripts/bench.sh` (from any directory).
#
# The server is pinned to one core and the load (our load generators, h2load) to the
# other with taskset; everything talks over 127.0.0.1. Prints a markdown table of
# rgrpc/tonic ratios at the end and keeps every raw line in $OUT.
#
# Scenarios: unary 10 B and 1 KiB (each stack's client against its own server); one
# channel with round_robin over a pool of 4 connections against 4 channels, one channel
# and tonic's channel;
# server-streaming 64 KiB and 1 MiB messages (MB/s); unary and bidi ping-pong latency at
# concurrency 1 (and plain TCP ping-pong as the floor under it); client side (both load
# generators against the same server); h2load against both servers with a fixed gRPC
# request body (server only; req/s and calls per second of server CPU), and against h2
# alone (h2-floor) as the ceiling; idle RSS per server and per idle connection; overload
# (open-loop client against a slow handler and against MAX_CONCURRENT_STREAMS=1, RSS of
# both processes sampled over time).
#
# Environment (defaults give a full run of about 6-8 minutes on 2 cores, builds aside):
#   DURATION=8 WARMUP=2     seconds measured / warmed up per load-generator run
#   H2LOAD_SECS=8           seconds per h2load run
#   H2LOAD_ROUNDS=3         10 B h2load rounds alternating the stacks (median in the table)
#   CONNS=8 STREAMS=50      connections x concurrent calls per connection
#   STREAM_CONNS=1 STREAM_CALLS=4   server-streaming connections x calls
#   LATENCY_ROUNDS=5 LATENCY_SECS=2 c=1 latency: rounds alternating the stacks, seconds each
#   OVERLOAD_SECS=10 OVERLOAD_RATE=20000 OVERLOAD_DELAY_MS=100 OVERLOAD_OUTSTANDING=50000
#   IDLE_CONNS=400          idle HTTP/2 connections held for the per-connection RSS
#   SERVER_CPU=0 LOAD_CPU=1 cores for taskset
#   JOBS=1                  cargo build jobs (the machine may be shared)
#   SKIP_BUILD=1            reuse the release binaries already built
#   OUT=target/bench        where results.txt, rss-*.txt and the table go
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-8}
WARMUP=${WARMUP:-2}
H2LOAD_SECS=${H2LOAD_SECS:-8}
H2LOAD_ROUNDS=${H2LOAD_ROUNDS:-3}
CONNS=${CONNS:-8}
STREAMS=${STREAMS:-50}
STREAM_CONNS=${STREAM_CONNS:-1}
STREAM_CALLS=${STREAM_CALLS:-4}
LATENCY_ROUNDS=${LATENCY_ROUNDS:-5}
LATENCY_SECS=${LATENCY_SECS:-2}
OVERLOAD_SECS=${OVERLOAD_SECS:-10}
OVERLOAD_RATE=${OVERLOAD_RATE:-20000}
OVERLOAD_DELAY_MS=${OVERLOAD_DELAY_MS:-100}
OVERLOAD_OUTSTANDING=${OVERLOAD_OUTSTANDING:-50000}
IDLE_CONNS=${IDLE_CONNS:-400}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
JOBS=${JOBS:-1}
OUT=${OUT:-$ROOT/target/bench}
RGRPC_TARGET=${RGRPC_TARGET:-$ROOT/target}
TONIC_TARGET=${TONIC_TARGET:-$ROOT/bench-tonic/target}

mkdir -p "$OUT"
RESULTS=$OUT/results.txt
: >"$RESULTS"
log() { echo "== $*" >&2; }

# --- build (release) ----------------------------------------------------------------
if [[ -z "${SKIP_BUILD:-}" ]]; then
    log "building rgrpc-bench (release, -j $JOBS)"
    (cd "$ROOT" && CARGO_TARGET_DIR=$RGRPC_TARGET cargo build --release -j "$JOBS" -p rgrpc-bench)
    log "building bench-tonic (release, -j $JOBS)"
    (cd "$ROOT" && CARGO_TARGET_DIR=$TONIC_TARGET cargo build --release -j "$JOBS" \
        --manifest-path bench-tonic/Cargo.toml)
fi
declare -A SERVER_BIN=([rgrpc]=$RGRPC_TARGET/release/rgrpc-bench-server
    [tonic]=$TONIC_TARGET/release/bench-tonic-server
    [h2floor]=$RGRPC_TARGET/release/h2-floor)
TCP_BIN=$RGRPC_TARGET/release/tcp-pingpong
declare -A CLIENT_BIN=([rgrpc]=$RGRPC_TARGET/release/rgrpc-bench-client
    [tonic]=$TONIC_TARGET/release/bench-tonic-client)

if ! command -v h2load >/dev/null; then
    log "installing h2load (nghttp2-client)"
    (apt-get update -qq && apt-get install -y -qq nghttp2-client >/dev/null) ||
        log "h2load unavailable: skipping the h2load rows"
fi

# --- server lifecycle -----------------------------------------------------------------
SPID=""
SPORT=""
# wait_port LOG WHAT: the port from LOG's LISTENING line, waiting up to 10 s for it.
wait_port() {
    local port=""
    for _ in $(seq 100); do
        port=$(sed -n 's/^LISTENING .*port=\([0-9]*\).*/\1/p' "$1")
        [[ -n "$port" ]] && break
        sleep 0.1
    done
    [[ -n "$port" ]] || { log "$2 did not start"; cat "$1" >&2; exit 1; }
    echo "$port"
}
# start_server STACK [server flags...]: starts it pinned to SERVER_CPU; sets SPID/SPORT.
start_server() {
    local stack=$1
    shift
    local log_file=$OUT/server-$stack.log
    taskset -c "$SERVER_CPU" "${SERVER_BIN[$stack]}" --max_seconds 1800 "$@" >"$log_file" 2>&1 &
    SPID=$!
    SPORT=$(wait_port "$log_file" "server $stack")
}
stop_server() {
    if [[ -n "$SPID" ]]; then
        kill "$SPID" 2>/dev/null || true
        wait "$SPID" 2>/dev/null || true
        SPID=""
    fi
}
trap stop_server EXIT

# client CLIENT_STACK LABEL [client flags...]: one load-generator run against the
# running server; its RESULT line goes to $RESULTS.
client() {
    local stack=$1 label=$2
    shift 2
    log "$label"
    taskset -c "$LOAD_CPU" "${CLIENT_BIN[$stack]}" --target "127.0.0.1:$SPORT" \
        --server_pid "$SPID" --warmup "$WARMUP" --duration "$DURATION" --label "$label" "$@" \
        | tee -a "$RESULTS" >"$OUT/last-client.txt"
}

# get LABEL KEY: a field of a RESULT line.
get() {
    grep -F "label=$1 " "$RESULTS" | head -1 | tr ' ' '\n' | sed -n "s/^$2=//p"
}
# median_of PATTERN KEY: the median of KEY over the result lines matching PATTERN.
median_of() {
    grep -E "$1" "$RESULTS" | tr ' ' '\n' | sed -n "s/^$2=//p" | sort -n |
        awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'
}
# median PREFIX STACK KEY: the median of KEY over the RESULT lines labelled PREFIX-r*/STACK.
median() { median_of "label=$1-r[0-9]+/$2 " "$3"; }

# --- load-generator scenarios, each stack end to end ---------------------------------
for stack in rgrpc tonic; do
    start_server "$stack"
    client "$stack" "unary10/$stack" --mode unary --connections "$CONNS" --concurrency "$STREAMS" --payload 10
    client "$stack" "unary1k/$stack" --mode unary --connections "$CONNS" --concurrency "$STREAMS" --payload 1024
    client "$stack" "stream64k/$stack" --mode server-stream --connections "$STREAM_CONNS" --concurrency "$STREAM_CALLS" --payload 65536
    client "$stack" "stream1m/$stack" --mode server-stream --connections "$STREAM_CONNS" --concurrency "$STREAM_CALLS" --payload 1048576
    other=$([[ $stack == rgrpc ]] && echo tonic || echo rgrpc)
    # Client side: the other stack's load generator against this server.
    client "$other" "unary10-client/$other-vs-$stack" --mode unary --connections "$CONNS" --concurrency "$STREAMS" --payload 10
    stop_server
done

# --- one channel over a pool of connections (rgrpc server) ---------------------------------
# rgrpc: 4 channels of one connection each, one channel with round_robin over 4
# connections (--pool 4), one channel of one connection; tonic: one channel (its
# Channel is one connection). 200 calls in flight each.
start_server rgrpc
client rgrpc "pool-4ch/rgrpc" --mode unary --connections 4 --concurrency 50 --payload 10
client rgrpc "pool-rr4/rgrpc" --mode unary --pool 4 --concurrency 50 --payload 10
client rgrpc "pool-1ch/rgrpc" --mode unary --connections 1 --concurrency 200 --payload 10
client tonic "pool-1ch/tonic" --mode unary --connections 1 --concurrency 200 --payload 10
stop_server

# --- latency at concurrency 1, the stacks interleaved ------------------------------------
# One idle-to-busy wake-up per message makes c=1 latency follow the host's scheduling of
# this VM's vCPUs, which drifts by tens of percent over a minute; alternating the stacks
# in short rounds and taking the median of the rounds' p50/p99 keeps that drift out of
# the ratio.
for round in $(seq "$LATENCY_ROUNDS"); do
    for stack in rgrpc tonic; do
        start_server "$stack"
        DURATION=$LATENCY_SECS WARMUP=1 client "$stack" "unary-c1-r$round/$stack" \
            --mode unary --connections 1 --concurrency 1 --payload 10
        DURATION=$LATENCY_SECS WARMUP=1 client "$stack" "pingpong-c1-r$round/$stack" \
            --mode ping-pong --connections 1 --concurrency 1 --payload 10
        stop_server
    done
    # The floor under it: plain tokio TCP ping-pong of 30 B, no HTTP/2, no gRPC.
    taskset -c "$SERVER_CPU" "$TCP_BIN" server >"$OUT/server-tcp.log" 2>&1 &
    tcp_pid=$!
    tcp_port=$(wait_port "$OUT/server-tcp.log" "tcp-pingpong server")
    taskset -c "$LOAD_CPU" "$TCP_BIN" client "$tcp_port" "$LATENCY_SECS" | tee -a "$RESULTS"
    kill "$tcp_pid" 2>/dev/null || true
    wait "$tcp_pid" 2>/dev/null || true
done

# --- h2load: the servers alone ----------------------------------------------------------
# h2load_run STACK SIZE ROUND: one h2load run against the running server; its H2LOAD line
# goes to $RESULTS.
h2load_run() {
    local stack=$1 size=$2 round=$3
    log "h2load $stack $size B (round $round)"
    local out=$OUT/h2load-$stack-$size-r$round.txt cpu0 cpu1 rps ok
    cpu0=$(awk '{print $14+$15}' "/proc/$SPID/stat")
    taskset -c "$LOAD_CPU" h2load -c "$CONNS" -m "$STREAMS" -D "$H2LOAD_SECS" \
        --warm-up-time=1 -d "$OUT/body-$size.bin" \
        -H 'content-type: application/grpc' -H 'te: trailers' \
        "http://127.0.0.1:$SPORT/grpc.testing.BenchmarkService/UnaryCall" >"$out" 2>&1 || true
    cpu1=$(awk '{print $14+$15}' "/proc/$SPID/stat")
    rps=$(sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p' "$out")
    ok=$(sed -n 's/^requests: .* \([0-9]*\) succeeded.*/\1/p' "$out")
    echo "H2LOAD stack=$stack payload=$size round=$round rps=${rps:-0} succeeded=${ok:-0} server_cpu_ticks=$((cpu1 - cpu0))" | tee -a "$RESULTS"
}
H2=()
if command -v h2load >/dev/null; then
    for size in 10 1024 65536; do
        "${CLIENT_BIN[rgrpc]}" --payload "$size" --write_h2load_body "$OUT/body-$size.bin"
    done
    # 10 B, the small-call rate: rounds alternating the stacks, medians in the table. A
    # single run each swung the rgrpc/tonic ratio from 1.79x to 2.22x within an hour on
    # the same code (tonic's rate moved by 45%, the host's drift), as the c=1 rows do.
    # h2floor: h2 alone with a fixed 10 B reply (bench/src/bin/h2-floor.rs), the floor
    # under any server on h2; only the 10 B row.
    for round in $(seq "$H2LOAD_ROUNDS"); do
        for stack in rgrpc tonic h2floor; do
            start_server "$stack"
            h2load_run "$stack" 10 "$round"
            stop_server
        done
    done
    for stack in rgrpc tonic; do
        start_server "$stack"
        for size in 1024 65536; do
            h2load_run "$stack" "$size" 1
        done
        stop_server
    done
    H2=(10 1024 65536)
fi

# --- idle RSS --------------------------------------------------------------------------
# hold_conns PORT N SECS: N idle HTTP/2 connections (preface + empty SETTINGS), held.
hold_conns() {
    python3 - "$@" <<'EOF'
import socket, sys, time
port, n, secs = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
    socks.append(s)
time.sleep(secs)
EOF
}
for stack in rgrpc tonic; do
    start_server "$stack"
    sleep 1
    idle=$(awk '/^VmRSS/{print $2}' "/proc/$SPID/status")
    hold_conns "$SPORT" "$IDLE_CONNS" 3 &
    holder=$!
    sleep 2
    with=$(awk '/^VmRSS/{print $2}' "/proc/$SPID/status")
    wait "$holder" || true
    per_conn=$(awk -v w="$with" -v i="$idle" -v n="$IDLE_CONNS" 'BEGIN { printf "%.1f", (w - i) / n }')
    echo "IDLE stack=$stack idle_rss_kib=$idle rss_with_${IDLE_CONNS}_conns_kib=$with per_conn_kib=$per_conn" | tee -a "$RESULTS"
    stop_server
done

# --- overload ----------------------------------------------------------------------------
for stack in rgrpc tonic; do
    for variant in slow mcs1; do
        if [[ $variant == slow ]]; then
            start_server "$stack" --handler_delay_ms "$OVERLOAD_DELAY_MS"
        else
            start_server "$stack" --handler_delay_ms 1 --max_concurrent_streams 1
        fi
        DURATION=$OVERLOAD_SECS WARMUP=0 client "$stack" "overload-$variant/$stack" \
            --mode unary --connections 1 --rate "$OVERLOAD_RATE" \
            --max_outstanding "$OVERLOAD_OUTSTANDING" --call_timeout 5 --rss_sample_ms 500
        grep '^RSS ' "$OUT/last-client.txt" >"$OUT/rss-overload-$variant-$stack.txt" || true
        stop_server
    done
done

# --- the table -----------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }
row() { # row SCENARIO METRIC RGRPC TONIC GOAL
    printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4" "$(ratio "$3" "$4")" "$5"
}
{
    echo "| scenario | metric | rgrpc | tonic | rgrpc/tonic | goal |"
    echo "|---|---|---|---|---|---|"
    row "unary 10 B, ${CONNS}x${STREAMS}" "QPS" "$(get unary10/rgrpc qps)" "$(get unary10/tonic qps)" ">= 2.0"
    row "unary 10 B, ${CONNS}x${STREAMS}" "p99 us" "$(get unary10/rgrpc p99_us)" "$(get unary10/tonic p99_us)" ""
    row "unary 10 B" "server CPU ms / 1k RPCs" "$(get unary10/rgrpc server_cpu_ms_per_1k)" "$(get unary10/tonic server_cpu_ms_per_1k)" "lower"
    row "unary 10 B" "client CPU ms / 1k RPCs" "$(get unary10/rgrpc client_cpu_ms_per_1k)" "$(get unary10/tonic client_cpu_ms_per_1k)" "lower"
    row "unary 1 KiB, ${CONNS}x${STREAMS}" "QPS" "$(get unary1k/rgrpc qps)" "$(get unary1k/tonic qps)" ">= 1.5"
    row "unary 1 KiB" "server CPU ms / 1k RPCs" "$(get unary1k/rgrpc server_cpu_ms_per_1k)" "$(get unary1k/tonic server_cpu_ms_per_1k)" "lower"
    row "server-stream 64 KiB" "MB/s" "$(get stream64k/rgrpc mbps)" "$(get stream64k/tonic mbps)" ">= 1.2"
    row "server-stream 1 MiB" "MB/s" "$(get stream1m/rgrpc mbps)" "$(get stream1m/tonic mbps)" ""
    for key in p50_us p99_us; do
        row "unary c=1 (median of $LATENCY_ROUNDS rounds)" "${key%_us} us" "$(median unary-c1 rgrpc $key)" "$(median unary-c1 tonic $key)" "<= 0.7"
    done
    for key in p50_us p99_us; do
        row "ping-pong c=1 (median of $LATENCY_ROUNDS rounds)" "${key%_us} us" "$(median pingpong-c1 rgrpc $key)" "$(median pingpong-c1 tonic $key)" "<= 0.7"
    done
    row "client side vs rgrpc server" "QPS" "$(get unary10/rgrpc qps)" "$(get unary10-client/tonic-vs-rgrpc qps)" ">= 1.3"
    row "client side vs tonic server" "QPS" "$(get unary10-client/rgrpc-vs-tonic qps)" "$(get unary10/tonic qps)" ">= 1.3"
    row "client side vs rgrpc server" "client CPU ms / 1k" "$(get unary10/rgrpc client_cpu_ms_per_1k)" "$(get unary10-client/tonic-vs-rgrpc client_cpu_ms_per_1k)" "lower"
    row "client side vs tonic server" "client CPU ms / 1k" "$(get unary10-client/rgrpc-vs-tonic client_cpu_ms_per_1k)" "$(get unary10/tonic client_cpu_ms_per_1k)" "lower"
    row "one channel, round_robin over 4 conns vs tonic channel" "QPS" "$(get pool-rr4/rgrpc qps)" "$(get pool-1ch/tonic qps)" ">= 1.3"
    row "one channel, 1 conn vs tonic channel" "QPS" "$(get pool-1ch/rgrpc qps)" "$(get pool-1ch/tonic qps)" ""
    row "one channel, round_robin over 4 conns vs 4 channels" "QPS" "$(get pool-rr4/rgrpc qps)" "$(get pool-4ch/rgrpc qps)" ""
    row "one channel, round_robin over 4 conns vs tonic channel" "client CPU ms / 1k" "$(get pool-rr4/rgrpc client_cpu_ms_per_1k)" "$(get pool-1ch/tonic client_cpu_ms_per_1k)" "lower"
    # h2load_of STACK SIZE KEY: the median over the rounds of KEY, where KEY is rps or
    # cps: req/s over the server's core use during the run (its CPU ticks cover the
    # warm-up second too, as its requests do not: the same for both stacks).
    h2load_of() {
        { grep "^H2LOAD stack=$1 payload=$2 " "$RESULTS" || true; } |
            awk -v key="$3" -v secs="$((H2LOAD_SECS + 1))" '{
                    for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
                    t = f["server_cpu_ticks"]
                    printf "%.2f\n", (key == "rps" ? f["rps"] : (t > 0 ? f["rps"] * secs * 100 / t : 0))
                }' | sort -n |
            awk '{ v[NR] = $1 } END { if (NR) printf "%.0f", v[int((NR + 1) / 2)] }'
    }
    for size in "${H2[@]}"; do
        goal=$(case $size in 10) echo ">= 2.0" ;; 1024) echo ">= 1.5" ;; *) echo ">= 1.2" ;; esac)
        label="h2load unary $size B, ${CONNS}x${STREAMS}"
        [[ $size == 10 ]] && label="$label (median of $H2LOAD_ROUNDS rounds)"
        row "$label" "req/s" "$(h2load_of rgrpc "$size" rps)" "$(h2load_of tonic "$size" rps)" "$goal"
        row "$label" "calls per server CPU-second" \
            "$(h2load_of rgrpc "$size" cps)" "$(h2load_of tonic "$size" cps)" "$goal"
    done
    f=$(h2load_of h2floor 10 rps)
    if [[ -n "$f" ]]; then
        r=$(h2load_of rgrpc 10 rps)
        t=$(h2load_of tonic 10 rps)
        row "h2load unary 10 B: h2 alone (h2-floor) in the rgrpc column" "req/s" "$f" "$t" "the ceiling"
        row "h2load unary 10 B: rgrpc against h2 alone in the tonic column" "req/s" "$r" "$f" ""
    fi
    idle() { grep "^IDLE stack=$1 " "$RESULTS" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
    row "idle server" "RSS KiB" "$(idle rgrpc idle_rss_kib)" "$(idle tonic idle_rss_kib)" "<= 1.0"
    row "idle, per connection" "RSS KiB" "$(idle rgrpc per_conn_kib)" "$(idle tonic per_conn_kib)" "<= 1.0"
    for v in slow mcs1; do
        row "overload $v" "server peak RSS KiB" "$(get overload-$v/rgrpc server_rss_peak_kib)" "$(get overload-$v/tonic server_rss_peak_kib)" "flat"
        row "overload $v" "client peak RSS KiB" "$(get overload-$v/rgrpc client_rss_peak_kib)" "$(get overload-$v/tonic client_rss_peak_kib)" ""
        row "overload $v" "completed QPS" "$(get overload-$v/rgrpc qps)" "$(get overload-$v/tonic qps)" ""
    done
    tcp=$(median_of '^TCP_PINGPONG ' p50_us)
    echo
    echo "Floor: plain tokio TCP ping-pong (30 B, same cores), median p50 of the rounds ${tcp:-n/a} us; no stack's c=1 latency can go below it."
} | tee "$OUT/table.md"
echo
echo "raw results: $RESULTS; RSS over time: $OUT/rss-overload-*.txt"
