#!/usr/bin/env bash
# Installs what the Go and TypeScript clients need, pinned, and nothing else:
#   - protoc-gen-go and protoc-gen-go-grpc (`go install`, into a cache dir used as GOBIN);
#   - the Go client's modules (go.sum), with its packages and test binary pre-built;
#   - the TypeScript client's npm packages (`npm ci` from the committed lockfile; they include
#     protoc-gen-es, Connect, tsx and TypeScript).
# Idempotent; a warm run takes 2-3 s (mostly `go test` relinking). Progress goes to stderr.
# With --plugins it installs only what code generation needs (the Go plugins and the npm
# packages, not the Go client's build) and prints the Go plugins' directory on stdout:
# scripts/gen_clients.sh runs it so.
# Needs Go and Node/npm; reaches only the Go module proxy and the npm registry.
set -euo pipefail
cd "$(dirname "$0")/.."

PROTOC_GEN_GO_VERSION="v1.36.12"     # google.golang.org/protobuf/cmd/protoc-gen-go
PROTOC_GEN_GO_GRPC_VERSION="v1.6.2"  # google.golang.org/grpc/cmd/protoc-gen-go-grpc

GOBIN_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/memobase/go-bin"

log() { printf 'install_client_tools: %s\n' "$*" >&2; }

plugins_only=false
case "${1:-}" in
    "") ;;
    --plugins) plugins_only=true ;;
    *)
        log "usage: $0 [--plugins]"
        exit 2
        ;;
esac

if ! command -v go >/dev/null 2>&1; then
    if [[ -x /usr/local/go/bin/go ]]; then
        PATH="/usr/local/go/bin:$PATH"
    else
        log "error: 'go' is not on PATH"
        exit 1
    fi
fi
for tool in node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        log "error: '$tool' is not on PATH"
        exit 1
    fi
done

started=$SECONDS
mkdir -p "$GOBIN_DIR"
# One install at a time (parallel runs would race in npm ci).
if command -v flock >/dev/null 2>&1; then
    exec 9>"$GOBIN_DIR/.lock"
    flock 9
fi

# $1 binary, $2 expected `--version` output, $3 package@version
ensure_go_tool() {
    local bin="$GOBIN_DIR/$1"
    if [[ -x "$bin" ]] && [[ "$("$bin" --version 2>/dev/null || true)" == "$2" ]]; then
        return 0
    fi
    log "go install $3"
    # Outside any module, so the tool's own go.mod (not ours) decides its dependencies.
    (cd "$GOBIN_DIR" && GOBIN="$GOBIN_DIR" GOFLAGS=-mod=mod go install "$3")
    if [[ "$("$bin" --version 2>/dev/null || true)" != "$2" ]]; then
        log "error: $bin --version does not say '$2'"
        exit 1
    fi
}
ensure_go_tool protoc-gen-go "protoc-gen-go $PROTOC_GEN_GO_VERSION" \
    "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
ensure_go_tool protoc-gen-go-grpc "protoc-gen-go-grpc ${PROTOC_GEN_GO_GRPC_VERSION#v}" \
    "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"

# npm ci wipes and reinstalls node_modules every time (~5 s); skip it while the lockfile and
# Node are the ones the current node_modules came from.
stamp_of() { printf '%s %s\n' "$(node --version)" "$(sha256sum clients/typescript/package-lock.json)"; }
stamp_file=clients/typescript/node_modules/.memobase-installed
if [[ ! -f "$stamp_file" ]] || [[ "$(cat "$stamp_file")" != "$(stamp_of)" ]]; then
    log "npm ci (clients/typescript)"
    (cd clients/typescript && npm ci --no-audit --no-fund --loglevel=error >&2)
    stamp_of >"$stamp_file"
fi

if $plugins_only; then
    printf '%s\n' "$GOBIN_DIR"
    exit 0
fi

# The Go client's modules, verified against go.sum, and a warm build cache, so that
# `go test` only links and runs.
(
    cd clients/go
    go mod download
    go build ./...
    go test -count=1 -run '^$' ./... >/dev/null
)

log "ready in $((SECONDS - started)) s (Go plugins in $GOBIN_DIR)"
