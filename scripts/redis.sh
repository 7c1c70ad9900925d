#!/usr/bin/env bash
# Starts a throwaway Redis server for Keel's tests, installing Debian's
# redis-server package first when there is none.
#
#   source scripts/redis.sh; keel_redis_start   # exports KEEL_TEST_REDIS_URL
#   keel_redis_stop
#
# The server keeps nothing on disk, listens on a free loopback port and
# lives in a fresh temporary directory, so it never touches a Redis the
# machine already runs.

keel_redis_start() {
    local port dir
    if ! command -v redis-server >/dev/null 2>&1; then
        echo "Redis not found: installing Debian's redis-server package" >&2
        local sudo=""
        [ "$(id -u)" = 0 ] || sudo="sudo"
        $sudo apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >&2
        command -v redis-server >/dev/null 2>&1 \
            || { echo "error: redis-server installation failed" >&2; return 1; }
    fi
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    dir=$(mktemp -d "${TMPDIR:-/tmp}/keel-redis.XXXXXX")
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" --appendonly no \
        --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >/dev/null \
        || { cat "$dir/redis.log" >&2; return 1; }
    local i
    for i in $(seq 1 100); do
        if redis-cli -p "$port" ping >/dev/null 2>&1; then
            export KEEL_TEST_REDIS_URL="redis://127.0.0.1:$port/0"
            export KEEL_REDIS_DIR="$dir"
            echo "Redis $(redis-server --version | awk '{print $3}' | cut -d= -f2) for tests at $KEEL_TEST_REDIS_URL" >&2
            return 0
        fi
        sleep 0.05
    done
    cat "$dir/redis.log" >&2
    return 1
}

keel_redis_stop() {
    [ -n "${KEEL_REDIS_DIR:-}" ] || return 0
    local pid="" i
    [ -f "$KEEL_REDIS_DIR/redis.pid" ] && pid=$(cat "$KEEL_REDIS_DIR/redis.pid")
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        # Wait for it to exit before removing its directory.
        for i in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
    fi
    rm -rf "$KEEL_REDIS_DIR" || true
    unset KEEL_REDIS_DIR
}
