#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server for Keel's tests, installing Debian's
# package first when no PostgreSQL is on the machine.
#
#   source scripts/postgres.sh   # exports KEEL_TEST_POSTGRES_URL, stops it on exit
#
# The cluster lives in a fresh temporary directory on a free loopback port,
# so it never touches a PostgreSQL the machine already runs.

keel_pg_bindir() {
    local d best=""
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/pg_ctl" ] && best="$d"
    done
    echo "$best"
}

keel_pg_start() {
    local bindir port dir as_pg
    bindir=$(keel_pg_bindir)
    if [ -z "$bindir" ]; then
        echo "PostgreSQL not found: installing Debian's postgresql package" >&2
        local sudo=""
        [ "$(id -u)" = 0 ] || sudo="sudo"
        $sudo apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >&2
        bindir=$(keel_pg_bindir)
        [ -n "$bindir" ] || { echo "error: PostgreSQL installation failed" >&2; return 1; }
    fi
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    dir=$(mktemp -d "${TMPDIR:-/tmp}/keel-pg.XXXXXX")
    as_pg=()
    if [ "$(id -u)" = 0 ]; then
        # initdb refuses to run as root; the Debian package made a postgres user.
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
        chown postgres "$dir"
        as_pg=(runuser -u postgres --)
    fi
    "${as_pg[@]}" "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; return 1; }
    "${as_pg[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null \
        || { cat "$dir/server.log" >&2; return 1; }
    export KEEL_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
    export KEEL_PG_DIR="$dir" KEEL_PG_BINDIR="$bindir"
    echo "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') for tests at $KEEL_TEST_POSTGRES_URL" >&2
}

keel_pg_stop() {
    [ -n "${KEEL_PG_DIR:-}" ] || return 0
    local as_pg=()
    [ "$(id -u)" = 0 ] && as_pg=(runuser -u postgres --)
    "${as_pg[@]}" "$KEEL_PG_BINDIR/pg_ctl" -D "$KEEL_PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$KEEL_PG_DIR"
    unset KEEL_PG_DIR
}
