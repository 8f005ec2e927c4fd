#!/usr/bin/env bash
# Print the path of a working FerretDB binary on stdout (and nothing else).
#
# The binary is cached under ${XDG_CACHE_HOME:-$HOME/.cache}/memobase/ and is
# built from the Go module proxy only when it is not there yet (~60 s cold).
# Progress goes to stderr. Needs Go; no other network than the Go proxy.
set -euo pipefail

FERRETDB_VERSION="v1.24.2"

CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/memobase"
INSTALL_DIR="$CACHE_ROOT/ferretdb-$FERRETDB_VERSION"
BIN="$INSTALL_DIR/ferretdb"

log() { printf 'ensure_ferretdb: %s\n' "$*" >&2; }

if [[ -x "$BIN" ]]; then
    printf '%s\n' "$BIN"
    exit 0
fi

mkdir -p "$INSTALL_DIR"

# Serialize concurrent builds (e.g. parallel test runs) when flock exists.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$INSTALL_DIR/.lock"
    flock 9
    if [[ -x "$BIN" ]]; then # built by whoever held the lock
        printf '%s\n' "$BIN"
        exit 0
    fi
    # Leftovers of a build that was SIGKILLed (no one else builds now).
    rm -rf "$INSTALL_DIR"/.build.*
fi

if ! command -v go >/dev/null 2>&1; then
    if [[ -x /usr/local/go/bin/go ]]; then
        PATH="/usr/local/go/bin:$PATH"
    else
        log "error: 'go' is not on PATH; it is needed to build FerretDB"
        exit 1
    fi
fi

# Temp dir inside the cache dir so the final mv is an atomic rename on the
# same filesystem; a killed build leaves only this dir, which the trap removes.
WORK="$(mktemp -d "$INSTALL_DIR/.build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

export GO111MODULE=on
export GOFLAGS=-mod=mod

log "building FerretDB $FERRETDB_VERSION (takes about a minute)..."
start=$SECONDS

# Must run outside any Go module, hence the cd into the empty temp dir.
if ! MOD_JSON="$(cd "$WORK" && go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION")"; then
    log "error: go mod download failed:"
    printf '%s\n' "$MOD_JSON" >&2
    exit 1
fi
MOD_DIR="$(printf '%s' "$MOD_JSON" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
if [[ ! -d "$MOD_DIR" ]]; then
    log "error: go mod download gave no source dir:"
    printf '%s\n' "$MOD_JSON" >&2
    exit 1
fi

SRC="$WORK/src"
cp -r "$MOD_DIR" "$SRC"
chmod -R u+w "$SRC"
# Without this file the binary panics at start ("Invalid build/version/version.txt").
echo "$FERRETDB_VERSION" >"$SRC/build/version/version.txt"

(cd "$SRC" && CGO_ENABLED=0 go build -trimpath -buildvcs=false -o "$WORK/ferretdb" ./cmd/ferretdb) >&2

# Make sure it starts at all before caching it.
if ! "$WORK/ferretdb" --version >/dev/null 2>&1; then
    log "error: the freshly built binary does not run:"
    "$WORK/ferretdb" --version >&2 || true
    exit 1
fi

chmod 0755 "$WORK/ferretdb"
mv -f "$WORK/ferretdb" "$BIN"
log "built $BIN in $((SECONDS - start)) s"

printf '%s\n' "$BIN"
