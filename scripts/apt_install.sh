#!/usr/bin/env bash
# Install Debian packages with apt-get, as root or through sudo; apt's output goes to stderr.
#
#   scripts/apt_install.sh PACKAGE...
#
# Used by the ensure_* scripts when a server binary is missing.
set -euo pipefail

log() { printf 'apt_install: %s\n' "$*" >&2; }

if [[ "$(id -u)" -eq 0 ]]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -n)
else
    log "error: $* not installed and we are neither root nor have sudo"
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    log "error: $* not installed and apt-get is not available"
    exit 1
fi

log "installing $* with apt-get..."
{
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
} >&2
