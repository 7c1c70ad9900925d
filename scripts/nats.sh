#!/usr/bin/env bash
# Starts a throwaway NATS server with JetStream for Keel's tests,
# installing Debian's nats-server package first when there is none.
#
#   source scripts/nats.sh; keel_nats_start   # exports KEEL_TEST_NATS_URL
#   keel_nats_stop

keel_nats_bin() {
    command -v nats-server 2>/dev/null || { [ -x /usr/sbin/nats-server ] && echo /usr/sbin/nats-server; }
}

keel_nats_start() {
    local bin port dir
    bin=$(keel_nats_bin || true)
    if [ -z "$bin" ]; then
        echo "NATS not found: installing Debian's nats-server package" >&2
        local sudo=""
        [ "$(id -u)" = 0 ] || sudo="sudo"
        $sudo apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nats-server >&2
        bin=$(keel_nats_bin || true)
        [ -n "$bin" ] || { echo "error: nats-server installation failed" >&2; return 1; }
    fi
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    dir=$(mktemp -d "${TMPDIR:-/tmp}/keel-nats.XXXXXX")
    "$bin" -js -a 127.0.0.1 -p "$port" -sd "$dir/store" -P "$dir/nats.pid" -l "$dir/nats.log" &
    local i
    for i in $(seq 1 100); do
        if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2).close()" 2>/dev/null; then
            export KEEL_TEST_NATS_URL="nats://127.0.0.1:$port"
            export KEEL_NATS_DIR="$dir"
            echo "NATS $("$bin" --version | awk '{print $2}') with JetStream for tests at $KEEL_TEST_NATS_URL" >&2
            return 0
        fi
        sleep 0.05
    done
    cat "$dir/nats.log" >&2
    return 1
}

keel_nats_stop() {
    [ -n "${KEEL_NATS_DIR:-}" ] || return 0
    local pid="" i
    [ -f "$KEEL_NATS_DIR/nats.pid" ] && pid=$(cat "$KEEL_NATS_DIR/nats.pid")
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        for i in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
    fi
    rm -rf "$KEEL_NATS_DIR" || true
    unset KEEL_NATS_DIR
}
