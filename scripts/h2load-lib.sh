# Sourced by h2load-ab.sh and h2load-churn.sh: start and stop one benchmark server.
#
#   start_server "BIN [FLAGS]"   runs it on core 0; sets $pid and $port (its LISTENING line)
#   stop_server                  ends it
#   cpu_ticks PID                its user + system time so far, in clock ticks (1/100 s)
#   uri                          the UnaryCall URI on $port

start_server() {
    server_log=$(mktemp)
    local cmd
    read -r -a cmd <<<"$1"
    taskset -c 0 "${cmd[@]}" --max_seconds 120 >"$server_log" 2>&1 &
    pid=$!
    port=""
    for _ in $(seq 100); do
        port=$(sed -n 's/^LISTENING .*port=\([0-9]*\).*/\1/p' "$server_log")
        [[ -n "$port" ]] && break
        sleep 0.1
    done
}

stop_server() {
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    rm -f "$server_log"
}

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

uri() { echo "http://127.0.0.1:$port/grpc.testing.BenchmarkService/UnaryCall"; }
