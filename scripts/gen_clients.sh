#!/usr/bin/env bash
# Generates the Go and TypeScript client code of the contract (buf.gen.yaml):
# clients/go/gen and clients/typescript/src/gen. Python is scripts/gen_protos.py.
#
#   scripts/gen_clients.sh               regenerate (replaces both trees)
#   scripts/gen_clients.sh --check       fail when the committed code is stale
#   scripts/gen_clients.sh --breaking    buf breaking: the contract against the main branch
#
# The pinned plugins come from scripts/install_client_tools.sh --plugins (run here; idempotent).
# --breaking compares proto/ against `main` (the local branch, else origin/main), or against
# the buf input in $MEMOBASE_BREAKING_AGAINST. Without such a ref (a shallow or single-branch
# clone of another branch, no git) it says why and succeeds. On main itself, with a clean work
# tree, the comparison is trivially equal: it guards branches and uncommitted changes.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'gen_clients: %s\n' "$*" >&2; }

mode=generate
case "${1:-}" in
    "") ;;
    --check) mode=check ;;
    --breaking) mode=breaking ;;
    *)
        log "usage: $0 [--check | --breaking]"
        exit 2
        ;;
esac

if [[ -x .venv/bin/buf ]]; then
    BUF=.venv/bin/buf
elif command -v buf >/dev/null 2>&1; then
    BUF=buf
else
    log "error: no buf: run \`make deps\` (buf-bin is in the Python dev environment)"
    exit 1
fi

breaking() {
    local against="${MEMOBASE_BREAKING_AGAINST:-}"
    if [[ -z "$against" ]]; then
        if ! git rev-parse --git-dir >/dev/null 2>&1; then
            log "buf breaking skipped: not a git checkout, so there is no main branch to compare with"
            return 0
        fi
        local gitdir ref head main
        gitdir="$(git rev-parse --path-format=absolute --git-common-dir)"
        if git rev-parse --verify --quiet refs/heads/main >/dev/null; then
            ref=main
            against="$gitdir#format=git,branch=main"
        elif git rev-parse --verify --quiet refs/remotes/origin/main >/dev/null; then
            ref=origin/main
            against="$gitdir#format=git,ref=origin/main"
        else
            log "buf breaking skipped: this clone has no 'main' branch nor 'origin/main'" \
                "(shallow or single-branch clone?); \`git fetch origin main:main\` enables the check"
            return 0
        fi
        main="$(git rev-parse "$ref")"
        head="$(git rev-parse --verify --quiet HEAD || echo none)"
        if [[ "$head" == "$main" ]]; then
            log "buf breaking: HEAD is $ref (${main:0:12}): only uncommitted changes can differ"
        else
            log "buf breaking: against $ref (${main:0:12})"
        fi
    else
        log "buf breaking: against $against"
    fi
    "$BUF" breaking --against "$against"
    log "buf breaking: no breaking change"
}

if [[ "$mode" == breaking ]]; then
    breaking
    exit 0
fi

GOBIN_DIR="$(scripts/install_client_tools.sh --plugins)"
# buf.gen.yaml names the Go plugins by name: the pinned ones come first.
export PATH="$GOBIN_DIR:$PATH"

TREES=(clients/go/gen clients/typescript/src/gen)

if [[ "$mode" == generate ]]; then
    "$BUF" generate # clean: true in buf.gen.yaml replaces both trees
    log "generated ${TREES[*]}"
    exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$BUF" generate --output "$tmp"
stale=0
for tree in "${TREES[@]}"; do
    if ! diff -r -q "$tmp/$tree" "$tree" >&2; then
        stale=1
    fi
done
if [[ "$stale" -ne 0 ]]; then
    log "generated client code is stale: run \`scripts/gen_clients.sh\` (or \`make proto\`) and commit it"
    exit 1
fi
log "client code is up to date (${TREES[*]})"
