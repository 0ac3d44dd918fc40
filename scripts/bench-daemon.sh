# Sourced by scripts/hot-path-instructions.sh and scripts/symbol-order.sh: a scratch directory
# with an emulator (one pool, one client with 1 h tokens, one user) and a daemon config for it
# (profile `bench`, USER_SRP_AUTH, store = memory, a free loopback port and a Unix socket).
#
#   bench_daemon_setup BIN_DIR PREFIX   sets dir, socket, port, config, password; starts the
#                                       emulator; exports the XDG and COGBROKER_* variables
#   wait_for_daemon                     until the socket answers /healthz (60 s at most)
#
# The caller runs the daemon itself (each under its own valgrind tool) and adds its pids to
# `pids`, which the EXIT trap set here kills before removing the directory.

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

bench_daemon_setup() {
    local bin=$1 prefix=$2 emulator_port
    password='Bench-Passw0rd!'
    dir=$(mktemp -d "${TMPDIR:-/tmp}/$prefix.XXXXXX")
    pids=()
    trap 'for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
    emulator_port=$(free_port)
    port=$(free_port)
    mkdir -p "$dir/config" "$dir/state" "$dir/run"
    chmod 700 "$dir/run"
    socket="$dir/run/cogbroker/cogbroker.sock"
    config="$dir/config/config.toml"
    cat >"$dir/seed.toml" <<SEED
[[pools]]
id = "us-east-1_Bench"

[[pools.clients]]
id = "bench-long"
access_token_ttl = 3600
id_token_ttl = 3600

[[pools.users]]
username = "u0"
password = "$password"
SEED
    cat >"$config" <<CONFIG
[daemon]
listen = "127.0.0.1:$port"
socket = "$socket"
store = "memory"
state_dir = "$dir/state"
log = "warn"

[profiles.bench]
user_pool_id = "us-east-1_Bench"
client_id = "bench-long"
username = "u0"
auth_flow = "USER_SRP_AUTH"
remember_device = false
endpoint = "http://127.0.0.1:$emulator_port"
CONFIG
    export XDG_RUNTIME_DIR="$dir/run" XDG_CONFIG_HOME="$dir/config" XDG_STATE_HOME="$dir/state"
    export COGBROKER_CONFIG="$config" COGBROKER_NO_AUTOSTART=1
    "$bin/cognito-emulator" --seed "$dir/seed.toml" --listen "127.0.0.1:$emulator_port" \
        >"$dir/emulator.log" 2>&1 &
    pids+=($!)
}

wait_for_daemon() {
    for _ in $(seq 1 300); do
        [ -S "$socket" ] && curl -sf --unix-socket "$socket" http://localhost/healthz >/dev/null && return 0
        sleep 0.2
    done
    echo "the daemon did not answer on $socket; its log: $dir/daemon.log" >&2
    return 1
}
