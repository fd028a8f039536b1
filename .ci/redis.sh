#!/usr/bin/env bash
# Start a throwaway Redis on loopback for the test suite, and print how to reach it:
#
#     eval "$(bash .ci/redis.sh)"    # sets MOTIF_TEST_REDIS_URL
#
# Idempotent: installs Debian's redis-server only if missing, and reuses the server a previous
# run started. It lives in $MOTIF_REDIS_DIR (default: a directory under $TMPDIR), listens on
# 127.0.0.1 only, on a free port, and keeps nothing on disk (no snapshots, no append-only
# file): it is for tests only. `bash .ci/redis.sh stop` stops it.
#
# stdout carries only the export line. If Redis cannot start, a loud warning goes to stderr,
# nothing to stdout, and the exit status is 1: the queue tests then start their own server
# (they need redis-server installed).
set -euo pipefail

REDIS_DIR="$(realpath -m "${MOTIF_REDIS_DIR:-${TMPDIR:-/tmp}/motif-ci-redis}")"
PORT_FILE="$REDIS_DIR/port"
PID_FILE="$REDIS_DIR/redis.pid"

log() { echo "redis.sh: $*" >&2; }

WARNED=""
warn_loudly() {
    WARNED=1
    {
        echo "######################################################################"
        echo "# WARNING: could not start Redis: $*"
        echo "# The queue tests start their own redis-server. Log: $REDIS_DIR/server.log"
        echo "######################################################################"
    } >&2
}

find_server() {
    command -v redis-server 2>/dev/null || { [ -x /usr/bin/redis-server ] && echo /usr/bin/redis-server; } || true
}

install_redis() {
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || return 1
        sudo="sudo -n"
    fi
    log "installing Debian's redis-server (apt-get)..."
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        redis-server >&2
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

running() {
    [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null
}

answers() {
    [ -f "$PORT_FILE" ] && [ "$(redis-cli -h 127.0.0.1 -p "$(cat "$PORT_FILE")" ping 2>/dev/null)" = "PONG" ]
}

start_server() {
    mkdir -p "$REDIS_DIR" || return 1
    local port
    port="$(free_port)"
    "$SERVER" --bind 127.0.0.1 --port "$port" --daemonize yes --dir "$REDIS_DIR" \
        --pidfile "$PID_FILE" --logfile "$REDIS_DIR/server.log" \
        --save "" --appendonly no --protected-mode yes >&2 || return 1
    echo "$port" > "$PORT_FILE"
    for _ in $(seq 50); do
        answers && return 0
        sleep 0.1
    done
    return 1
}

stop_server() {
    if running; then
        kill "$(cat "$PID_FILE")" 2>/dev/null || true
        for _ in $(seq 50); do
            running || break
            sleep 0.1
        done
    fi
    rm -f "$PID_FILE"
}

main() {
    if [ "${1:-}" = "stop" ]; then
        stop_server
        return 0
    fi

    SERVER="$(find_server)"
    if [ -z "$SERVER" ]; then
        install_redis || {
            warn_loudly "installing the redis-server package failed"
            return 1
        }
        SERVER="$(find_server)"
        [ -n "$SERVER" ] || {
            warn_loudly "redis-server is installed but was not found"
            return 1
        }
    fi

    if running && ! answers; then
        stop_server  # up but unreachable (its port file lost): start it again on a known port
    fi
    if ! running; then
        start_server || {
            warn_loudly "the server did not start"
            return 1
        }
    fi
    local port
    port="$(cat "$PORT_FILE")"
    log "Redis $("$SERVER" --version | awk '{print $3}' | sed 's/v=//') on 127.0.0.1:$port"
    echo "export MOTIF_TEST_REDIS_URL=redis://127.0.0.1:$port/0"
}

trap '[ -n "$WARNED" ] || warn_loudly "unexpected failure (line $LINENO)"' ERR
main "$@"
