#!/bin/sh
# Runs the given command with a freshly unlocked gnome-keyring on the current D-Bus session bus,
# then stops that gnome-keyring. Meant to run inside `dbus-run-session` (see `make keyring`), so
# the bus, the keyring and everything stored in it are private to one test run.
set -eu

if [ -z "${DBUS_SESSION_BUS_ADDRESS:-}" ]; then
    echo "session.sh: no D-Bus session bus; run it as: dbus-run-session -- sh $0 COMMAND..." >&2
    exit 1
fi

# The keyring files and the control socket go to a fresh directory, never to the user's own
# ~/.local/share/keyrings (whose login keyring has another password, or should not be touched).
keyring_home=$(mktemp -d "${TMPDIR:-/tmp}/cogbroker-keyring.XXXXXX")
keyring_pid=
cleanup() {
    if [ -n "$keyring_pid" ]; then kill "$keyring_pid" 2>/dev/null || true; fi
    rm -rf "$keyring_home"
}
trap cleanup EXIT
mkdir -m 0700 "$keyring_home/data" "$keyring_home/runtime"
export XDG_DATA_HOME="$keyring_home/data" XDG_RUNTIME_DIR="$keyring_home/runtime"

# The password only unlocks this throwaway login keyring. The daemon prints where its control
# socket is; `--start` then brings up the Secret Service on the bus through that socket.
unlocked=$(printf %s "${COGBROKER_KEYRING_PASSWORD:-cogbroker-test}" |
    gnome-keyring-daemon --unlock --components=secrets)
GNOME_KEYRING_CONTROL=$(printf '%s\n' "$unlocked" | sed -n 's/^GNOME_KEYRING_CONTROL=//p')
export GNOME_KEYRING_CONTROL
gnome-keyring-daemon --start --components=secrets >/dev/null 2>&1

# gnome-keyring-daemon detaches and outlives the bus: find it by the name it owns, and stop it.
keyring_pid=$(dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
    org.freedesktop.DBus.GetConnectionUnixProcessID string:org.freedesktop.secrets |
    awk '/uint32/ { print $2 }')
if [ -z "$keyring_pid" ]; then
    echo "session.sh: gnome-keyring-daemon did not claim org.freedesktop.secrets" >&2
    exit 1
fi

"$@"
