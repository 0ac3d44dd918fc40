#!/bin/sh
# The keyring tests (tests/keyring/main.rs) against a real Secret Service: gnome-keyring, unlocked
# with a throwaway password, in a private D-Bus session that lives only as long as the tests.
# Your own keyring and session bus are never touched. The same thing as `make keyring`.
#
# Usage: scripts/keyring-test.sh [ARGS FOR THE TEST BINARY...]
#   e.g. scripts/keyring-test.sh daemon_restart --nocapture
set -eu

cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}

# What the private session needs, and the Debian package that brings it.
missing=
need() {
    if ! command -v "$1" >/dev/null 2>&1; then
        echo "keyring-test: $1 not found (Debian package: $2)" >&2
        case " $missing " in *" $2 "*) ;; *) missing="$missing $2" ;; esac
    fi
}
need dbus-run-session dbus-daemon
need dbus-daemon dbus-daemon
need dbus-send dbus-bin
need gnome-keyring-daemon gnome-keyring
need secret-tool libsecret-tools
if [ -n "$missing" ]; then
    # Older Debian and Ubuntu ship the dbus tools in the `dbus` package itself.
    echo "install them: sudo apt-get install$missing  (or: sudo apt-get install dbus gnome-keyring libsecret-tools)" >&2
    exit 1
fi

# Build first, outside the private session, so it lives only as long as the tests: the daemon
# binary that the restart test runs (target/debug/cogbroker) and the test binary.
echo '==> building cogbroker and the keyring tests'
"$CARGO" build -p cogbroker --bin cogbroker
"$CARGO" test -p cogbroker-e2e --test keyring --no-run

echo '==> keyring tests against gnome-keyring in a private D-Bus session'
# tests/keyring/session.sh unlocks a fresh gnome-keyring (in a temporary XDG_DATA_HOME) with this
# password, which guards nothing, then runs the tests and stops the keyring daemon.
COGBROKER_KEYRING_PASSWORD=${COGBROKER_KEYRING_PASSWORD:-cogbroker-test}
COGBROKER_TEST_KEYRING=1
export COGBROKER_KEYRING_PASSWORD COGBROKER_TEST_KEYRING
exec dbus-run-session -- sh tests/keyring/session.sh \
    "$CARGO" test -p cogbroker-e2e --test keyring -- --test-threads=1 "$@"
