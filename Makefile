# Conduit: `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
SUB ?= alice
ROLE ?= USER

.PHONY: help install run token check test test-fast bench clean

help: ## List every target
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

install: ## Install uv, the Python workspace and the system packages the tests use
	@command -v uv >/dev/null 2>&1 || test -x $(UV) || python3 -m pip install --quiet --user uv
	$(UV) sync --all-packages --locked
	@bash deploy/install-system-packages.sh

run: install ## Start Redis, PostgreSQL and the four services in the foreground (Ctrl-C stops all)
	$(UV) run python -m devstack run

token: ## Print a JWT for the running stack: make token SUB=alice ROLE=USER
	@$(UV) run --no-sync python -m devstack token --sub "$(SUB)" --role "$(ROLE)"

check: ## Lint, format check, type check (mypy strict) and import contracts
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy
	$(UV) run lint-imports

test: install check ## Install everything, run the checks and the whole test suite
	$(UV) run pytest

test-fast: ## The tests without the slow (multi-process) ones
	$(UV) run pytest -m "not slow"

bench: install ## Measure throughput, latency and memory into benchmarks/results (minutes)
	$(UV) run python -m benchmarks.run $(BENCH_ARGS)

clean: ## Remove the local run folder (Redis and PostgreSQL data of `make run`)
	rm -rf .run
