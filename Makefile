# Two commands matter: `make run` and `make test`. Both set everything up on a fresh machine.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

UV_VERSION ?= 0.13.9
VENV := .venv
PY := $(VENV)/bin/python
ACCESS_TOKEN ?= memobase-local-root-token

export PATH := $(HOME)/.local/bin:$(PATH)

.PHONY: help setup deps servers client-tools run mcp test lint docker-check proto bench clean-data

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(VENV)/.synced: pyproject.toml uv.lock
	@command -v uv >/dev/null || python3 -m pip install --quiet --user "uv==$(UV_VERSION)" || python3 -m pip install --quiet "uv==$(UV_VERSION)"
	uv sync --frozen --python 3.11
	@touch $@

deps: $(VENV)/.synced  ## Python environment from the lock file (uv)

servers:  ## FerretDB (built once, cached), PostgreSQL and redis-server (apt) binaries
	@scripts/ensure_ferretdb.sh >/dev/null
	@scripts/ensure_postgres.sh >/dev/null
	@scripts/ensure_redis.sh >/dev/null

setup: deps servers  ## everything `run` and `test` need

run: setup  ## local FerretDB (on PostgreSQL) + Redis, then the server (gRPC :50051, REST :8019)
	@scripts/local_stack.sh start >/dev/null
	@echo "memobase-server: root token (ACCESS_TOKEN) = $(ACCESS_TOKEN)"
	@echo "memobase-server: gRPC on :$${MEMOBASE_GRPC_PORT:-50051}, REST on http://127.0.0.1:$${MEMOBASE_HTTP_PORT:-8019}/api/v1"
	ACCESS_TOKEN="$(ACCESS_TOKEN)" \
	MEMOBASE_MONGO_URL="$${MEMOBASE_MONGO_URL:-mongodb://127.0.0.1:$${MEMOBASE_FERRETDB_PORT:-27017}/}" \
	REDIS_URL="$${REDIS_URL:-redis://127.0.0.1:$${MEMOBASE_REDIS_PORT:-6379}/0}" \
	$(PY) -m memobase_server serve

client-tools:  ## pinned Go protoc plugins, the Go client's modules, npm ci (clients/)
	scripts/install_client_tools.sh

mcp: deps  ## the Memobase MCP server for `make run`'s server (http://127.0.0.1:8050/mcp and /sse)
	MEMOBASE_API_KEY="$${MEMOBASE_API_KEY:-$(ACCESS_TOKEN)}" \
	MEMOBASE_GRPC_TARGET="$${MEMOBASE_GRPC_TARGET:-127.0.0.1:$${MEMOBASE_GRPC_PORT:-50051}}" \
	$(VENV)/bin/memobase-mcp

test: setup client-tools  ## the whole test suite against real FerretDB (on PostgreSQL) and redis-server
	$(PY) -m pytest -q

lint: deps client-tools  ## buf lint + format + breaking, ruff, mypy, generated-code staleness
	$(VENV)/bin/buf lint
	$(VENV)/bin/buf format -d --exit-code
	$(VENV)/bin/ruff check server tests scripts bench clients/python
	$(VENV)/bin/ruff format --check server tests scripts bench clients/python
	$(VENV)/bin/mypy
	$(PY) scripts/gen_protos.py --check
	$(PY) clients/python/scripts/sync_stubs.py --check
	scripts/gen_clients.sh --check
	scripts/gen_clients.sh --breaking

docker-check:  ## validate docker/ (compose config + hadolint); no engine needed
	scripts/check_docker.sh

proto: deps client-tools  ## regenerate the contract's code in every language (Python, Go, TypeScript)
	$(PY) scripts/gen_protos.py
	$(PY) clients/python/scripts/sync_stubs.py
	scripts/gen_clients.sh

bench: setup  ## unary-call benchmark (gRPC, REST, no-op ceiling); not part of CI
	$(PY) -m bench.unary

clean-data:  ## stop the local stack and delete its data
	scripts/local_stack.sh stop || true
	rm -rf .data
