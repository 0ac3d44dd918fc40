#!/usr/bin/env bash
# Instructions the daemon executes per cache-hit request, counted by callgrind: repeatable for
# the same binary and input whatever else the machine is doing (docs/benchmarks.md).
#
#   scripts/hot-path-instructions.sh BIN_DIR [REQUESTS] [unix|tcp]
#   HELLO=target/release/bench-hello scripts/hot-path-instructions.sh BIN_DIR   (adds the baseline)
#
# BIN_DIR holds `cogbroker` and `cognito-emulator` (e.g. target/release, or an older commit's
# release build). The daemon runs under valgrind with one logged-in profile; after a warm-up,
# the counters are zeroed, curl sends REQUESTS (default 2000) GETs of the token on one
# kept-alive connection, and the counters are dumped. Needs valgrind, curl and python3.
set -euo pipefail

bin=${1:?usage: $0 BIN_DIR [REQUESTS] [unix|tcp]}
requests=${2:-2000}
transport=${3:-unix}
# shellcheck source=scripts/bench-daemon.sh
. "$(dirname "$0")/bench-daemon.sh"
bench_daemon_setup "$bin" cogbroker-instr

valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.%p" \
    "$bin/cogbroker" --config "$dir/config/config.toml" serve >"$dir/daemon.log" 2>&1 &
daemon=$!
pids+=("$daemon")
wait_for_daemon
echo "$password" | "$bin/cogbroker" --config "$dir/config/config.toml" login bench --password-stdin >/dev/null

# per_request PID DUMP_PREFIX UNIX_SOCKET TCP_PORT PATH: curl sends $requests GETs of PATH on
# one kept-alive connection (after 50 for warm-up); prints the instructions PID ran per request.
per_request() {
    local pid=$1 prefix=$2 unix_socket=$3 tcp_port=$4 path=$5 base dump total
    local curl_args=()
    if [ "$transport" = unix ]; then
        base=http://localhost
        curl_args=(--unix-socket "$unix_socket")
    else
        base="http://127.0.0.1:$tcp_port"
    fi
    fetch() {
        for _ in $(seq 1 "$1"); do printf '%s%s\n' "$base" "$path"; done |
            xargs curl -s "${curl_args[@]}" -H 'X-Cogbroker-Request: 1' >/dev/null
    }
    fetch 50
    callgrind_control -z "$pid" >/dev/null 2>&1
    fetch "$requests"
    callgrind_control -d "$pid" >/dev/null 2>&1
    for _ in $(seq 1 50); do
        dump=$(ls "$dir/$prefix.$pid".* 2>/dev/null | head -1 || true)
        [ -n "$dump" ] && grep -q '^totals:\|^summary:' "$dump" && break
        sleep 0.1
    done
    total=$(grep -h '^summary:\|^totals:' "$dump" | head -1 | awk '{print $2}')
    echo $((total / requests))
}

echo "$transport: $(per_request "$daemon" callgrind "$socket" "$port" /v1/profiles/bench/token) instructions per cache-hit request ($requests requests, $bin/cogbroker)"

if [ -n "${HELLO:-}" ]; then
    # The bench's axum hello-world, the same way: `GET /` on one kept-alive connection.
    hello_socket="$dir/hello.sock"
    hello_port=$(free_port)
    valgrind --tool=callgrind --callgrind-out-file="$dir/hello.%p" \
        "$HELLO" "127.0.0.1:$hello_port" "$hello_socket" >/dev/null 2>&1 &
    hello=$!
    pids+=("$hello")
    for _ in $(seq 1 300); do
        curl -sf --unix-socket "$hello_socket" http://localhost/ >/dev/null 2>&1 && break
        sleep 0.2
    done
    echo "$transport: $(per_request "$hello" hello "$hello_socket" "$hello_port" /) instructions per request of the hello-world baseline ($HELLO)"
fi
