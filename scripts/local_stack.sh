#!/usr/bin/env bash
# Start/stop FerretDB (MongoDB wire protocol) over a private PostgreSQL cluster,
# and redis-server, for local runs.
#
#   scripts/local_stack.sh start|stop|status
#
# Environment:
#   MEMOBASE_DATA_DIR       data dir (default .data; relative paths are taken
#                           from the repo root). Holds postgres/, ferretdb/ and
#                           redis/, the pid files and the logs.
#   MEMOBASE_FERRETDB_PORT  default 27017
#   MEMOBASE_POSTGRES_PORT  default 5433 (PostgreSQL, used by FerretDB only)
#   MEMOBASE_REDIS_PORT     default 6379
#
# `start` prints the MongoDB URL and then the Redis URL on stdout (one per
# line); everything else goes to stderr. If a port is already served by a
# matching server that this script did not start, it is used as is and `stop`
# leaves it alone.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPTS="$ROOT/scripts"

DATA_DIR="${MEMOBASE_DATA_DIR:-.data}"
[[ "$DATA_DIR" = /* ]] || DATA_DIR="$ROOT/$DATA_DIR"
FERRETDB_PORT="${MEMOBASE_FERRETDB_PORT:-27017}"
POSTGRES_PORT="${MEMOBASE_POSTGRES_PORT:-5433}"
REDIS_PORT="${MEMOBASE_REDIS_PORT:-6379}"
HOST=127.0.0.1
START_TIMEOUT=20

FERRETDB_DIR="$DATA_DIR/ferretdb"
POSTGRES_DIR="$DATA_DIR/postgres"
REDIS_DIR="$DATA_DIR/redis"
FERRETDB_PID="$DATA_DIR/ferretdb.pid"
POSTGRES_PID="$DATA_DIR/postgres.pid"
REDIS_PID="$DATA_DIR/redis.pid"
FERRETDB_LOG="$DATA_DIR/ferretdb.log"
POSTGRES_LOG="$DATA_DIR/postgres.log"
REDIS_LOG="$DATA_DIR/redis.log"

MONGODB_URL="mongodb://$HOST:$FERRETDB_PORT/"
POSTGRES_URL="postgres://postgres@$HOST:$POSTGRES_PORT/ferretdb"
REDIS_URL="redis://$HOST:$REDIS_PORT/0"

log() { printf 'local_stack: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

for p in "$FERRETDB_PORT" "$POSTGRES_PORT" "$REDIS_PORT"; do
    if ! [[ "$p" =~ ^[1-9][0-9]{0,4}$ ]] || ((p > 65535)); then
        die "invalid port: $p"
    fi
done
[[ "$(printf '%s\n' "$FERRETDB_PORT" "$POSTGRES_PORT" "$REDIS_PORT" | sort -u | wc -l)" -eq 3 ]] ||
    die "the FerretDB, PostgreSQL and Redis ports must differ"

# True if something accepts TCP connections on $HOST:$1.
port_open() {
    (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

# True if $HOST:$2 answers like a server of kind $1 (mongodb|postgres|redis).
probe() {
    python3 - "$1" "$HOST" "$2" <<'PY' 2>/dev/null
import socket, struct, sys

kind, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
with socket.create_connection((host, port), timeout=2) as s:
    s.settimeout(2)
    if kind == "postgres":
        s.sendall(struct.pack("!ii", 8, 80877103))  # SSLRequest
        sys.exit(0 if s.recv(1) in (b"N", b"S") else 1)
    if kind == "redis":
        s.sendall(b"PING\r\n")
        reply = s.recv(64)
        # -NOAUTH etc. still means "a Redis server".
        sys.exit(0 if reply.startswith((b"+PONG", b"-NOAUTH", b"-ERR")) else 1)
    # OP_MSG {ping: 1, $db: "admin"}
    elems = b"\x10ping\x00" + struct.pack("<i", 1)
    elems += b"\x02$db\x00" + struct.pack("<i", 6) + b"admin\x00"
    doc = struct.pack("<i", 4 + len(elems) + 1) + elems + b"\x00"
    body = struct.pack("<I", 0) + b"\x00" + doc
    s.sendall(struct.pack("<iiii", 16 + len(body), 1, 0, 2013) + body)
    header = b""
    while len(header) < 16:
        chunk = s.recv(16 - len(header))
        if not chunk:
            sys.exit(1)
        header += chunk
    _length, _req, response_to, opcode = struct.unpack("<iiii", header)
    sys.exit(0 if opcode in (1, 2013) and response_to == 1 else 1)
PY
}

# Prints the pid from pid file $1 if that process is alive and its command
# line mentions $2; otherwise prints nothing and fails.
live_pid() {
    local pidfile=$1 name=$2 pid
    [[ -s "$pidfile" ]] || return 1
    pid="$(tr -dc '0-9' <"$pidfile")"
    [[ -n "$pid" ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    if [[ -r "/proc/$pid/cmdline" ]]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$name" || return 1
    fi
    printf '%s\n' "$pid"
}

# check_server LABEL PIDFILE NAME PORT KIND ENV_VAR: prints "start" if the
# server has to be started, "skip" if it already runs; dies if the port is
# taken by something else.
check_server() {
    local label=$1 pidfile=$2 name=$3 port=$4 kind=$5 env_var=$6 pid
    if pid="$(live_pid "$pidfile" "$name")"; then
        log "$label already running (pid $pid)"
        echo skip
        return 0
    fi
    rm -f "$pidfile"
    if port_open "$port"; then
        if probe "$kind" "$port"; then
            log "$label: a $kind server already listens on port $port (not started by this script); using it"
            echo skip
            return 0
        fi
        die "port $port is in use by something that is not a $kind server (set $env_var)"
    fi
    echo start
}

start_postgres() {
    "$SCRIPTS/pg_cluster.sh" init "$POSTGRES_DIR"
    log "starting postgres on port $POSTGRES_PORT (log: $POSTGRES_LOG)"
    local -a detach=()
    command -v setsid >/dev/null 2>&1 && detach=(setsid)
    # shellcheck disable=SC2016
    "${detach[@]}" bash -c 'echo $$ >"$0"; exec "$@"' "$POSTGRES_PID" \
        "$SCRIPTS/pg_cluster.sh" exec "$POSTGRES_DIR" "$POSTGRES_PORT" \
        </dev/null >>"$POSTGRES_LOG" 2>&1 &
}

start_ferretdb() {
    local bin=$1
    mkdir -p "$FERRETDB_DIR"
    log "starting ferretdb on port $FERRETDB_PORT (log: $FERRETDB_LOG)"
    # New session so that Ctrl-C in the terminal that ran `make run` does not
    # kill it; the inner shell writes its own pid, then becomes ferretdb.
    local -a detach=()
    command -v setsid >/dev/null 2>&1 && detach=(setsid)
    # ($$ and $@ below belong to the inner shell.)
    # shellcheck disable=SC2016
    "${detach[@]}" bash -c 'echo $$ >"$0"; exec "$@"' "$FERRETDB_PID" \
        "$bin" --handler=postgresql --postgresql-url="$POSTGRES_URL" \
        --listen-addr="$HOST:$FERRETDB_PORT" --state-dir="$FERRETDB_DIR" \
        --debug-addr=- --telemetry=disable --log-level=warn \
        </dev/null >>"$FERRETDB_LOG" 2>&1 &
}

start_redis() {
    local bin=$1
    mkdir -p "$REDIS_DIR"
    log "starting redis-server on port $REDIS_PORT (log: $REDIS_LOG)"
    "$bin" --port "$REDIS_PORT" --bind "$HOST" --save "" --appendonly yes \
        --dir "$REDIS_DIR" --daemonize yes --pidfile "$REDIS_PID" \
        --logfile "$REDIS_LOG" </dev/null >&2
}

# Waits until $HOST:$2 accepts connections; $1 is a label, $3 a log file.
wait_ready() {
    local label=$1 port=$2 logfile=$3 deadline=$((SECONDS + START_TIMEOUT))
    while ! port_open "$port"; do
        if ((SECONDS >= deadline)); then
            log "$label did not accept connections on port $port within ${START_TIMEOUT}s; last log lines:"
            tail -n 20 "$logfile" >&2 2>/dev/null || true
            return 1
        fi
        sleep 0.2
    done
}

# stop_one LABEL PIDFILE NAME PORT KIND [SIGNAL]
stop_one() {
    local label=$1 pidfile=$2 name=$3 port=$4 kind=$5 sig=${6:-TERM} pid i
    if pid="$(live_pid "$pidfile" "$name")"; then
        log "stopping $label (pid $pid)"
        kill -"$sig" "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "$label did not stop within 10s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        rm -f "$pidfile"
    else
        [[ -e "$pidfile" ]] && log "$label: removing stale pid file"
        rm -f "$pidfile"
        if port_open "$port" && probe "$kind" "$port"; then
            log "$label: port $port is served by a server this script did not start; leaving it alone"
        else
            log "$label: not running"
        fi
    fi
}

# status_one LABEL PIDFILE NAME PORT KIND URL; fails if not running.
status_one() {
    local label=$1 pidfile=$2 name=$3 port=$4 kind=$5 url=$6 pid
    if pid="$(live_pid "$pidfile" "$name")"; then
        if port_open "$port"; then
            printf '%-9s running (pid %s) at %s\n' "$label:" "$pid" "$url"
        else
            printf '%-9s starting (pid %s), port %s not open yet\n' "$label:" "$pid" "$port"
            return 1
        fi
    elif port_open "$port" && probe "$kind" "$port"; then
        printf '%-9s running (not started by this script) at %s\n' "$label:" "$url"
    else
        printf '%-9s stopped\n' "$label:"
        return 1
    fi
}

cmd_start() {
    mkdir -p "$DATA_DIR"
    # Check every port and get every binary (a cold FerretDB build takes a
    # minute) before starting anything, so a conflict or a failed build does
    # not leave half a stack behind, and the build does not count against the
    # start timeout.
    local ferretdb_action postgres_action redis_action ferretdb_bin="" redis_bin="" postgres_started=0
    ferretdb_action="$(check_server ferretdb "$FERRETDB_PID" ferretdb "$FERRETDB_PORT" mongodb MEMOBASE_FERRETDB_PORT)"
    postgres_action=skip
    if [[ "$ferretdb_action" == start ]]; then
        postgres_action="$(check_server postgres "$POSTGRES_PID" postgres "$POSTGRES_PORT" postgres MEMOBASE_POSTGRES_PORT)"
    fi
    redis_action="$(check_server redis-server "$REDIS_PID" redis-server "$REDIS_PORT" redis MEMOBASE_REDIS_PORT)"
    [[ "$ferretdb_action" == start ]] && ferretdb_bin="$("$SCRIPTS/ensure_ferretdb.sh")"
    [[ "$redis_action" == start ]] && redis_bin="$("$SCRIPTS/ensure_redis.sh")"

    local ok=1
    if [[ "$postgres_action" == start ]]; then
        start_postgres
        postgres_started=1
        wait_ready postgres "$POSTGRES_PORT" "$POSTGRES_LOG" || ok=0
    fi
    ((ok)) && [[ -n "$ferretdb_bin" ]] && start_ferretdb "$ferretdb_bin"
    [[ -n "$redis_bin" ]] && start_redis "$redis_bin"

    ((ok)) && { wait_ready ferretdb "$FERRETDB_PORT" "$FERRETDB_LOG" || ok=0; }
    wait_ready redis-server "$REDIS_PORT" "$REDIS_LOG" || ok=0
    if ((!ok)); then
        # Undo what this invocation started.
        [[ -n "$ferretdb_bin" ]] && stop_one ferretdb "$FERRETDB_PID" ferretdb "$FERRETDB_PORT" mongodb
        ((postgres_started)) && stop_one postgres "$POSTGRES_PID" postgres "$POSTGRES_PORT" postgres INT
        [[ -n "$redis_bin" ]] && stop_one redis-server "$REDIS_PID" redis-server "$REDIS_PORT" redis
        die "local stack did not come up"
    fi
    log "ready (data in $DATA_DIR)"
    printf '%s\n%s\n' "$MONGODB_URL" "$REDIS_URL"
}

cmd_stop() {
    stop_one ferretdb "$FERRETDB_PID" ferretdb "$FERRETDB_PORT" mongodb
    # SIGINT: PostgreSQL's fast shutdown (SIGTERM would wait for every client).
    stop_one postgres "$POSTGRES_PID" postgres "$POSTGRES_PORT" postgres INT
    stop_one redis-server "$REDIS_PID" redis-server "$REDIS_PORT" redis
}

cmd_status() {
    local rc=0
    status_one ferretdb "$FERRETDB_PID" ferretdb "$FERRETDB_PORT" mongodb "$MONGODB_URL" || rc=3
    status_one postgres "$POSTGRES_PID" postgres "$POSTGRES_PORT" postgres "$POSTGRES_URL" || rc=3
    status_one redis "$REDIS_PID" redis-server "$REDIS_PORT" redis "$REDIS_URL" || rc=3
    return "$rc"
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
*)
    printf 'usage: %s start|stop|status\n' "$0" >&2
    exit 2
    ;;
esac
