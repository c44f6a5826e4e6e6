#!/usr/bin/env bash
# A throwaway PostgreSQL server on loopback for the key store's tests.
#
#   .ci/postgres.sh          install PostgreSQL if missing (Debian/apt), initdb a cluster in
#                            $DIQKD_PG_DATA (default /tmp/diqkd-pg-$PORT), start it on
#                            127.0.0.1:$DIQKD_PG_PORT (default 55432), create the database
#                            diqkd_test, and print its SQLAlchemy URL on stdout (only that).
#   .ci/postgres.sh stop     stop that server.
#
# Idempotent: a server already running there is reused. It trusts local connections and runs
# with fsync off: it is for tests only, never for keys that matter.
set -euo pipefail
PORT="${DIQKD_PG_PORT:-55432}"
DATA="${DIQKD_PG_DATA:-${TMPDIR:-/tmp}/diqkd-pg-$PORT}"
DB=diqkd_test
log() { echo "postgres.sh: $*" >&2; }

bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
BIN="$(bindir)"
if [ -z "$BIN" ] || [ ! -x "$BIN/initdb" ]; then
    log "PostgreSQL not found: installing it with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q postgresql >&2
    BIN="$(bindir)"
fi
[ -x "$BIN/pg_ctl" ] || { log "no pg_ctl under /usr/lib/postgresql/*/bin"; exit 1; }

# PostgreSQL refuses to run as root: run the server as the 'postgres' system user then.
as_pg() {
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

if [ "${1:-}" = stop ]; then
    as_pg "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >&2 || true
    exit 0
fi

if ! as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    if [ ! -s "$DATA/PG_VERSION" ]; then
        rm -rf "$DATA"
        mkdir -p "$DATA"
        [ "$(id -u)" = 0 ] && chown postgres: "$DATA"
        chmod 700 "$DATA"
        as_pg "$BIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --no-sync >&2
    fi
    log "starting PostgreSQL ($BIN) on 127.0.0.1:$PORT, data in $DATA"
    as_pg "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 60 \
        -o "-h 127.0.0.1 -p $PORT -k $DATA -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        start >&2
fi
PSQL=("$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -v ON_ERROR_STOP=1 -qtA)
if [ "$("${PSQL[@]}" -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != 1 ]; then
    "${PSQL[@]}" -d postgres -c "CREATE DATABASE $DB" >&2
fi
echo "postgresql+psycopg://postgres@127.0.0.1:$PORT/$DB"
