# Prepaid metering: the two commands are `make run` and `make test`. `make help` lists all.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP) ## Create the virtual environment and install pinned dependencies

run: venv ## Run everything on this PC: SQLite, in-process bus, simulator (port $$PREPAID_HTTP_PORT, 8000)
	$(BIN)/python -m standalone

run-cluster: venv ## Run each service as its own process against local PostgreSQL and RabbitMQ
	bash deploy/run-cluster.sh

simulator: venv ## Run the field simulator alone (10 DTUs x 8 meters from port 15020)
	$(BIN)/python -m simulator --dtus 10 --meters 8 --base-port 15020 --speed 60

test: venv ## Run every test tier (unit, integration, e2e, browser) on both backends
	$(BIN)/pytest -q tests/unit tests/integration tests/e2e tests/browser

test-unit: venv ## Run the unit tests only
	$(BIN)/pytest -q tests/unit

bench-loop: venv ## The standalone loop timed: start-up, first trip, reading age, top-up to close (bench-results/loop.json)
	$(BIN)/python benchmarks/bench_loop.py

bench-billing: venv ## Billing throughput and latency on PostgreSQL + RabbitMQ (bench-results/billing.json)
	$(BIN)/python benchmarks/bench_billing.py $(BENCH_ARGS)

bench-payments: venv ## Provider notifications verified and credited by one payments process, duplicates and forgeries mixed in (bench-results/payments.json)
	$(BIN)/python benchmarks/bench_payments.py $(BENCH_ARGS)

bench-control: venv ## Seal and open CPU per command; relays converging with 5% of relay writes ignored (bench-results/control.json; ~3 min)
	$(BIN)/python benchmarks/bench_control.py $(BENCH_ARGS)

bench-relay-latency: venv ## Money to relay reported, on 10,000 polled meters at 9600 baud: trip, top-up, paid notification, a 1,000-account mass event (bench-results/relay-latency.json; ~20 min)
	$(BIN)/python benchmarks/bench_relay_latency.py $(BENCH_ARGS)

bench-city: venv ## A city on one box: 100,000 meters, 2 collector replicas, 60-s cycle; freshness, reading to balance, mass event, CPU/memory/DB growth (bench-results/city.json; ~35 min; on 2 cores billing falls behind at 100,000, 20,000 keeps up: BENCH_ARGS="--dtus 625 --mass 200", ~15 min)
	$(BIN)/python benchmarks/bench_city.py $(BENCH_ARGS)

bench-site: venv ## The standalone product with 2,000 meters: first start, every meter read, memory, restart (bench-results/site.json; ~5 min)
	$(BIN)/python benchmarks/bench_site.py $(BENCH_ARGS)

bench-import: venv ## Bulk import of 10,000 meters with their accounts through the public API (bench-results/import.json; ~1.5 min)
	$(BIN)/python benchmarks/bench_import.py $(BENCH_ARGS)

bench-collector: venv ## Collector vs the simulator: physical limit, city scale, pymodbus, faults (bench-results/collector.json; ~30 min)
	$(BIN)/python benchmarks/bench_collector.py $(BENCH_ARGS)

chaos: venv ## Faults on a private cluster (own PostgreSQL, RabbitMQ), then the invariants (bench-results/chaos.json; 20 min, CHAOS_ARGS=--quick ~3)
	$(BIN)/python benchmarks/chaos.py $(CHAOS_ARGS)

fuzz: venv ## Schemathesis over the whole public API as admin and as tenant on the standalone product (FUZZ_ARGS=--max-examples 100; bench-results/fuzz-*.json)
	PYTHONPATH=tests $(BIN)/python -m testkit.fuzz $(FUZZ_ARGS)

lint: venv ## ruff (lint and format check), mypy strict and the layer contracts (pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy libs services
	$(BIN)/lint-imports --no-cache --no-logo

format: venv ## Format the code
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean: ## Remove the virtual environment, caches and the standalone data directory
	rm -rf $(VENV) .mypy_cache .ruff_cache .hypothesis data

.PHONY: help venv run run-cluster simulator test test-unit bench-loop bench-billing bench-payments bench-control bench-relay-latency bench-city bench-site bench-import bench-collector chaos fuzz lint format clean
