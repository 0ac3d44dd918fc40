#!/usr/bin/env bash
# Regenerates crates/cogbroker/symbol-order.txt: the functions `cogbroker` runs on its hot paths,
# which the release build asks the linker to place first in .text (crates/cogbroker/build.rs).
# Laid out together, a helper process faults in a few pages of code instead of pages spread
# over the whole binary, and the daemon keeps fewer pages of text resident
# (docs/benchmarks.md, "Symbol order").
#
#   scripts/symbol-order.sh [BIN_DIR] [OUT]     (defaults: target/release, the file above)
#
# BIN_DIR holds a release `cogbroker` and `cognito-emulator`. Every run below is traced by
# callgrind (`--demangle=no`, so the names are the linker's): the helper processes first
# (`cogbroker token` and each helper mode, as their consumers run them), then a daemon (file
# store) through start-up, an SRP and a USER_PASSWORD_AUTH login, cache hits on the Unix socket
# and on TCP, a refresh, the profile list and the metrics. The functions of the binary they ran, helpers' first, are written in order of
# first appearance; the rest of the binary keeps the linker's order. Names carry a hash that
# changes with the toolchain or the crate's dependencies: a listed name the binary lacks is
# skipped at link time, and make bench reports how many still match. Needs valgrind, curl,
# python3 and nm.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/target/release}
out=${2:-$root/crates/cogbroker/symbol-order.txt}
# shellcheck source=scripts/bench-daemon.sh
. "$root/scripts/bench-daemon.sh"
bench_daemon_setup "$bin" cogbroker-order
# The daemon as most run it: the file store (what `auto` picks without a keyring), and a second
# profile signing in with USER_PASSWORD_AUTH (the bench's 1,000-profile daemon does both).
sed -i 's/^store = "memory"/store = "file"/' "$config"
sed -n '/^\[profiles.bench\]/,$p' "$config" |
    sed 's/^\[profiles.bench\]/[profiles.pw]/; s/^auth_flow = .*/auth_flow = "USER_PASSWORD_AUTH"/' >>"$config"
mkdir -p "$dir/traces"
callgrind=(valgrind --tool=callgrind --demangle=no --log-file=/dev/null)
trace() { "${callgrind[@]}" --callgrind-out-file="$dir/traces/$1" "${@:2}"; }

"${callgrind[@]}" --callgrind-out-file="$dir/traces/9-daemon" \
    "$bin/cogbroker" --config "$config" serve >"$dir/daemon.log" 2>&1 &
daemon=$!
pids+=("$daemon")
wait_for_daemon
echo "$password" | "$bin/cogbroker" --config "$config" login bench --password-stdin >/dev/null
curl -sf --unix-socket "$socket" -H 'X-Cogbroker-Request: 1' -H 'Content-Type: application/json' \
    -d "{\"password\":\"$password\"}" http://localhost/v1/profiles/pw/login >/dev/null

request() { curl -sf -H 'X-Cogbroker-Request: 1' "$@" >/dev/null; }
for _ in $(seq 1 50); do
    request --unix-socket "$socket" http://localhost/v1/profiles/bench/token
    request "http://127.0.0.1:$port/v1/profiles/bench/token"
done
request --unix-socket "$socket" -X POST http://localhost/v1/profiles/bench/refresh
request --unix-socket "$socket" http://localhost/v1/profiles
request --unix-socket "$socket" http://localhost/metrics

# The helper processes, each with the input its consumer sends (as cogbroker-bench runs them).
expect() {
    local name=$1 want=$2
    grep -q -- "$want" "$dir/$name.out" || {
        echo "symbol-order: $name did not answer (${want}): $(cat "$dir/$name.out")" >&2
        exit 1
    }
}
trace 1-token "$bin/cogbroker" token bench >"$dir/token.out"
expect token eyJ
printf 'protocol=https\nhost=git.example.com\n\n' |
    trace 2-git "$bin/cogbroker" git-credential --profile bench get >"$dir/git.out"
expect git password=
echo https://registry.example.com |
    trace 3-docker "$bin/cogbroker" docker-credential --profile bench get >"$dir/docker.out"
expect docker Secret
KUBERNETES_EXEC_INFO='{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"interactive":false}}' \
    trace 4-kube "$bin/cogbroker" kube-credential bench >"$dir/kube.out"
expect kube token
echo '{"v":1,"registry":{"index-url":"sparse+https://registry.example.com/index/","name":"bench"},"kind":"get","operation":"read","args":["cargo-credential","--profile","bench"]}' |
    trace 5-cargo "$bin/cogbroker" --cargo-plugin >"$dir/cargo.out"
expect cargo eyJ
trace 6-env "$bin/cogbroker" env bench >"$dir/env.out"
expect env COGBROKER_TOKEN

kill -TERM "$daemon"
wait "$daemon" || true
pids=("${pids[@]:0:1}")

python3 - "$bin/cogbroker" "$out" "$dir"/traces/* <<'EOF'
import re, subprocess, sys

binary, out, traces = sys.argv[1], sys.argv[2], sys.argv[3:]
nm = subprocess.run(["nm", "--defined-only", binary], capture_output=True, text=True, check=True)
functions = {p[2] for p in (l.split() for l in nm.stdout.splitlines()) if len(p) == 3 and p[1] in "tTwW"}
order, seen = [], set()
for path in sorted(traces):
    for line in open(path):
        m = re.match(r"^c?fn=\(\d+\) (.+)$", line.rstrip("\n"))
        if m and m.group(1) in functions and m.group(1) not in seen:
            seen.add(m.group(1))
            order.append(m.group(1))
if len(order) < 500:
    sys.exit(f"symbol-order: only {len(order)} functions of {binary} traced; is it a release build with symbols?")
with open(out, "w") as f:
    f.write("\n".join(order) + "\n")
print(f"symbol-order: {len(order)} functions of {len(functions)} written to {out}")
EOF
