#!/usr/bin/env bash
# Print the path of redis-server on stdout (and nothing else).
# Installs Debian's redis-server package when it is not on PATH; apt output
# goes to stderr.
set -euo pipefail

log() { printf 'ensure_redis: %s\n' "$*" >&2; }

find_redis() {
    command -v redis-server 2>/dev/null && return 0
    # Not always on a non-root user's PATH.
    local p
    for p in /usr/bin/redis-server /usr/sbin/redis-server /usr/local/bin/redis-server; do
        if [[ -x "$p" ]]; then
            printf '%s\n' "$p"
            return 0
        fi
    done
    return 1
}

if find_redis; then
    exit 0
fi

"$(dirname "${BASH_SOURCE[0]}")/apt_install.sh" redis-server

if ! find_redis; then
    log "error: redis-server still not found after apt-get install"
    exit 1
fi
