#!/bin/bash
# Entry point of the coderm-postgres image: on first start, initialise $PGDATA with
# the superuser POSTGRES_USER (password POSTGRES_PASSWORD) and create POSTGRES_DB, as
# the official image does; then run the server in the foreground as user postgres.
# Local (socket) connections are trusted, TCP ones need the password (scram-sha-256).
set -euo pipefail

: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}"
user="${POSTGRES_USER:-postgres}"
db="${POSTGRES_DB:-$user}"
export PGDATA="${PGDATA:-/var/lib/postgresql/data}"
bin="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d | sort -V | tail -n 1)"
[[ -x "$bin/postgres" ]] || {
    echo "coderm-postgres: no PostgreSQL server under /usr/lib/postgresql" >&2
    exit 1
}
cd /

as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

mkdir -p "$PGDATA" /var/run/postgresql
chown postgres:postgres "$PGDATA" /var/run/postgresql
chmod 0700 "$PGDATA"
chmod 2775 /var/run/postgresql

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
    echo "coderm-postgres: initialising $PGDATA (user $user, database $db)"
    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    chown postgres "$pwfile"
    as_postgres "$bin/initdb" -D "$PGDATA" --username="$user" --pwfile="$pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    if [[ "$db" != postgres ]]; then
        as_postgres "$bin/pg_ctl" -D "$PGDATA" -o "-c listen_addresses=''" -w -s start
        as_postgres "$bin/psql" -X -q -v ON_ERROR_STOP=1 -U "$user" -d postgres \
            -v db="$db" <<<'CREATE DATABASE :"db";'
        as_postgres "$bin/pg_ctl" -D "$PGDATA" -m fast -w -s stop
    fi
    echo "coderm-postgres: initialised"
fi

exec setpriv --reuid=postgres --regid=postgres --init-groups \
    "$bin/postgres" -D "$PGDATA" -c listen_addresses='*'
