#!/usr/bin/env bash
# A private PostgreSQL cluster for FerretDB (local runs, tests, benchmarks).
#
#   scripts/pg_cluster.sh init DIR        create the cluster in DIR unless it exists
#   scripts/pg_cluster.sh exec DIR PORT   become the postmaster on 127.0.0.1:PORT
#
# `init` makes a trust-auth cluster (loopback only) with a `ferretdb` database
# whose new tables get GIN indexes on the document fields our queries select by
# (see INDEXED_FIELDS). FerretDB's PostgreSQL handler turns an equality filter
# into `_jsonb->'field' @> value`, which the btree indexes FerretDB creates cannot
# serve: without these, even an `_id` lookup reads the whole table.
# `exec` replaces this shell by the postmaster (same pid), so a signal sent to the
# pid reaches PostgreSQL: SIGINT for a fast shutdown (SIGTERM waits for clients).
# PostgreSQL refuses to run as root; as root, both run as the `postgres` user.
set -euo pipefail

SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# Fields with an index in every table: `_id` (keyed lookups), `user_id` (one
# user's documents) and `due` (documents a background pass must visit).
INDEXED_FIELDS=(_id user_id due)

log() { printf 'pg_cluster: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

BINDIR="$("$SCRIPTS/ensure_postgres.sh")"

as_owner() {
    if [[ "$(id -u)" -eq 0 ]]; then
        id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql postgres
        setpriv --reuid=postgres --regid="$(id -g postgres)" --init-groups -- "$@"
    else
        "$@"
    fi
}

index_trigger_sql() {
    local fields="" f
    for f in "${INDEXED_FIELDS[@]}"; do fields+="'$f',"; done
    cat <<SQL
CREATE FUNCTION memobase_index_new_table() RETURNS event_trigger
LANGUAGE plpgsql AS \$fn\$
DECLARE
    obj record;
    field text;
BEGIN
    FOR obj IN SELECT * FROM pg_event_trigger_ddl_commands()
               WHERE command_tag = 'CREATE TABLE' AND object_type = 'table'
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_attribute
                       WHERE attrelid = obj.objid AND attname = '_jsonb') THEN
            CONTINUE;
        END IF;
        FOREACH field IN ARRAY ARRAY[${fields%,}] LOOP
            EXECUTE format('CREATE INDEX ON %s USING gin ((_jsonb -> %L) jsonb_path_ops) WITH (fastupdate = off)',
                           obj.object_identity, field);
        END LOOP;
    END LOOP;
END
\$fn\$;
CREATE EVENT TRIGGER memobase_index_new_table ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE') EXECUTE FUNCTION memobase_index_new_table();
SQL
}

cmd_init() {
    local dir=$1
    [[ -s "$dir/PG_VERSION" ]] && return 0
    mkdir -p "$dir"
    [[ "$(id -u)" -eq 0 ]] && { id postgres >/dev/null 2>&1 || useradd --system postgres; chown postgres: "$dir"; }
    chmod 0700 "$dir"
    log "initdb $dir"
    as_owner "$BINDIR/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
        >"$dir.initdb.log" 2>&1 || { cat "$dir.initdb.log" >&2; die "initdb failed"; }
    rm -f "$dir.initdb.log"
    cat >>"$dir/postgresql.conf" <<CONF
# memobase: a private cluster for FerretDB
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 200
shared_buffers = 256MB
# FerretDB's statements name the field as a parameter (_jsonb->\$1): only a custom
# plan sees the constant that matches an expression index.
plan_cache_mode = force_custom_plan
CONF
    printf 'CREATE DATABASE ferretdb;\n' |
        as_owner "$BINDIR/postgres" --single -j -D "$dir" postgres >/dev/null 2>&1
    index_trigger_sql | as_owner "$BINDIR/postgres" --single -j -D "$dir" ferretdb >/dev/null 2>&1
}

cmd_exec() {
    local dir=$1 port=$2
    [[ -s "$dir/PG_VERSION" ]] || die "no cluster in $dir (run init first)"
    exec_as=()
    if [[ "$(id -u)" -eq 0 ]]; then
        exec_as=(setpriv --reuid=postgres --regid="$(id -g postgres)" --init-groups --)
    fi
    exec "${exec_as[@]}" "$BINDIR/postgres" -D "$dir" -p "$port"
}

case "${1:-}" in
init) [[ $# -eq 2 ]] || die "usage: $0 init DIR"; cmd_init "$2" ;;
exec) [[ $# -eq 3 ]] || die "usage: $0 exec DIR PORT"; cmd_exec "$2" "$3" ;;
*) die "usage: $0 init DIR | exec DIR PORT" ;;
esac
