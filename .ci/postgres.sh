#!/usr/bin/env bash
# Start a throwaway PostgreSQL on loopback for the test suite, and print how to reach it:
#
#     eval "$(bash .ci/postgres.sh)"    # sets MOTIF_TEST_POSTGRES_URL
#
# Idempotent: installs Debian's postgresql only if missing, and reuses the cluster a previous
# run started. The cluster lives in $MOTIF_PG_DIR (default: a directory under $TMPDIR); it
# trades durability for speed (fsync off) and trusts local connections, so it is for tests
# only. `bash .ci/postgres.sh stop` stops it.
#
# stdout carries only the export line. If PostgreSQL cannot start, a loud warning goes to
# stderr, nothing to stdout, and the exit status is 1: the PostgreSQL tests then skip and
# say why.
set -euo pipefail
PATH="$PATH:/usr/sbin:/sbin"  # runuser, for callers whose PATH lacks the sbin directories

PG_DIR="$(realpath -m "${MOTIF_PG_DIR:-${TMPDIR:-/tmp}/motif-ci-postgres}")"
DATA="$PG_DIR/data"
PORT_FILE="$PG_DIR/port"
DB_NAME="motif_test"

log() { echo "postgres.sh: $*" >&2; }

WARNED=""
warn_loudly() {
    WARNED=1
    {
        echo "######################################################################"
        echo "# WARNING: could not start PostgreSQL: $*"
        echo "# The PostgreSQL tests will be SKIPPED. Log: $PG_DIR/server.log"
        echo "######################################################################"
    } >&2
}

# initdb and postgres refuse to run as root; run them as the postgres user then.
as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

find_bindir() {
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [ -n "$dir" ] && [ -x "$dir/pg_ctl" ]; then
        echo "$dir"
    fi
}

install_postgres() {
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || return 1
        sudo="sudo -n"
    fi
    log "installing Debian's postgresql (apt-get)..."
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        postgresql >&2
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

server_up() {
    [ -d "$DATA" ] && as_owner "$BINDIR/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

answers() {
    [ -f "$PORT_FILE" ] && as_owner "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$(cat "$PORT_FILE")"
}

wipe() {
    case "$PG_DIR" in
        / | "" | "$HOME") return 1 ;;  # never, whatever MOTIF_PG_DIR says
    esac
    # Never under a live server, whatever pg_ctl said.
    if [ -f "$DATA/postmaster.pid" ] && kill -0 "$(head -n 1 "$DATA/postmaster.pid")" 2>/dev/null
    then
        return 1
    fi
    rm -rf "$PG_DIR"
}

start_cluster() {
    if [ ! -f "$DATA/PG_VERSION" ]; then
        wipe || return 1
        mkdir -p "$PG_DIR" || return 1
        if [ "$(id -u)" = 0 ]; then chown postgres: "$PG_DIR" || return 1; fi
        as_owner "$BINDIR/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --no-locale \
            >"$PG_DIR/initdb.log" 2>&1 || {
            cat "$PG_DIR/initdb.log" >&2
            return 1
        }
    fi
    local port
    port="$(free_port)"
    # fsync and friends off: a test cluster loses nothing worth keeping in a crash.
    as_owner "$BINDIR/pg_ctl" -D "$DATA" -l "$PG_DIR/server.log" -w -t 30 start -o \
        "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$PG_DIR \
         -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
         -c max_connections=200" >&2 || return 1
    as_owner sh -c "echo $port > '$PORT_FILE'"
}

main() {
    if [ "${1:-}" = "stop" ]; then
        BINDIR="$(find_bindir)"
        [ -n "$BINDIR" ] && [ -d "$DATA" ] && as_owner "$BINDIR/pg_ctl" -D "$DATA" -m fast stop >&2
        return 0
    fi

    BINDIR="$(find_bindir)"
    if [ -z "$BINDIR" ]; then
        install_postgres || {
            warn_loudly "installing the postgresql package failed"
            return 1
        }
        BINDIR="$(find_bindir)"
        [ -n "$BINDIR" ] || {
            warn_loudly "postgresql is installed but pg_ctl was not found"
            return 1
        }
    fi

    if server_up && ! answers; then
        # Up but unreachable (its port file lost): restart it on a known port.
        as_owner "$BINDIR/pg_ctl" -D "$DATA" -m immediate stop >&2 || true
    fi
    if ! server_up; then
        # A stopped cluster is started again; a broken one is rebuilt from scratch.
        start_cluster || { wipe && start_cluster; } || {
            warn_loudly "the server did not start"
            return 1
        }
    fi

    local port
    port="$(cat "$PORT_FILE")"
    if ! as_owner "$BINDIR/psql" -h 127.0.0.1 -p "$port" -U postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'" | grep -q 1; then
        as_owner "$BINDIR/createdb" -h 127.0.0.1 -p "$port" -U postgres "$DB_NAME" || {
            warn_loudly "creating the database $DB_NAME failed"
            return 1
        }
    fi
    log "PostgreSQL $("$BINDIR/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
    echo "export MOTIF_TEST_POSTGRES_URL=postgresql+asyncpg://postgres@127.0.0.1:$port/$DB_NAME"
}

cd /  # the postgres user may not be allowed into the caller's directory
trap '[ -n "$WARNED" ] || warn_loudly "unexpected failure (line $LINENO)"' ERR
main "$@"
