#!/usr/bin/env bash
# Makes Prometheus and promtool available to Keel's tests, installing
# Debian's prometheus package first when there is none. The tests start
# their own throwaway `prometheus` (temporary config and storage, a free
# loopback port); the package's system service is never started.
#
#   source scripts/prometheus.sh; keel_prometheus_start
#       # exports KEEL_TEST_PROMETHEUS and KEEL_TEST_PROMTOOL (binary paths)
#   keel_prometheus_stop

keel_prometheus_bin() {
    command -v "$1" 2>/dev/null || { [ -x "/usr/bin/$1" ] && echo "/usr/bin/$1"; }
}

keel_prometheus_start() {
    local prometheus promtool
    prometheus=$(keel_prometheus_bin prometheus || true)
    promtool=$(keel_prometheus_bin promtool || true)
    if [ -z "$prometheus" ] || [ -z "$promtool" ]; then
        echo "Prometheus not found: installing Debian's prometheus package" >&2
        local sudo="" policy=/usr/sbin/policy-rc.d made_policy=""
        [ "$(id -u)" = 0 ] || sudo="sudo"
        # Keep the package's service from starting: invoke-rc.d asks
        # policy-rc.d, and 101 means "not now".
        if [ ! -e "$policy" ]; then
            printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
            $sudo chmod 755 "$policy"
            made_policy=1
        fi
        local status=0
        $sudo apt-get update -qq >&2 \
            && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
                --no-install-recommends prometheus >&2 \
            || status=$?
        [ -z "$made_policy" ] || $sudo rm -f "$policy"
        [ "$status" = 0 ] || { echo "error: prometheus installation failed" >&2; return 1; }
        prometheus=$(keel_prometheus_bin prometheus || true)
        promtool=$(keel_prometheus_bin promtool || true)
        [ -n "$prometheus" ] && [ -n "$promtool" ] \
            || { echo "error: prometheus installation has no prometheus or promtool" >&2; return 1; }
    fi
    export KEEL_TEST_PROMETHEUS="$prometheus"
    export KEEL_TEST_PROMTOOL="$promtool"
    echo "Prometheus $("$prometheus" --version 2>&1 | awk 'NR==1 {print $3}') for tests at $KEEL_TEST_PROMETHEUS" >&2
}

# Nothing runs between tests; kept so scripts/test treats every service alike.
keel_prometheus_stop() {
    unset KEEL_TEST_PROMETHEUS KEEL_TEST_PROMTOOL
}
