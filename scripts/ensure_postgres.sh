#!/usr/bin/env bash
# Print the directory holding PostgreSQL's server binaries (initdb, postgres) on
# stdout, and nothing else. Installs Debian's postgresql package when no server
# is found; apt output goes to stderr.
set -euo pipefail

log() { printf 'ensure_postgres: %s\n' "$*" >&2; }

find_bindir() {
    local dir
    # Debian keeps the server binaries off PATH, one directory per major version;
    # take the newest.
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -rn); do
        if [[ -x "$dir/initdb" && -x "$dir/postgres" ]]; then
            printf '%s\n' "$dir"
            return 0
        fi
    done
    if command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1; then
        dirname "$(readlink -f "$(command -v postgres)")"
        return 0
    fi
    return 1
}

if find_bindir; then
    exit 0
fi

"$(dirname "${BASH_SOURCE[0]}")/apt_install.sh" postgresql

if ! find_bindir; then
    log "error: PostgreSQL's server binaries still not found after apt-get install"
    exit 1
fi
