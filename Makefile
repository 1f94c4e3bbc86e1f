# coderm developer entry points. Everything runs from the repo's .venv, which
# deploy/local/up.sh creates (python3 -m venv + pip install -e '.[dev]').
# From a fresh clone as root, `make test` and `make demo` need only python3 and make.

SHELL := /bin/bash
VENV  := .venv
BIN   := $(VENV)/bin
UP    := deploy/local/up.sh

.DEFAULT_GOAL := help
.PHONY: help venv up down stop-all status prometheus demo test test-long test-faults test-faults-all lint format typecheck bench clean reproduce-codet images

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

venv: ## create/refresh .venv (pip install -e '.[dev]' when pyproject.toml changed)
	@bash $(UP) --venv-only

up: ## start infra, sandbox image, migrations and the four services (EXECUTORS=K for K executors)
	bash $(UP)

down: ## stop the four services (infra keeps running)
	bash deploy/local/stop.sh

stop-all: ## stop the services, our Prometheus, RabbitMQ, PostgreSQL and dockerd
	bash deploy/local/stop.sh --all

status: ## infra, services, queue depths, sandbox containers
	@bash deploy/local/status.sh

prometheus: ## start a Prometheus scraping the running services (127.0.0.1:9790, docs/OBSERVABILITY.md)
	bash deploy/local/prometheus.sh start

demo: ## bring the stack up and run the end-to-end demo
	bash $(UP)
	$(BIN)/coderm demo

images: ## container images built offline (service, postgres, rabbitmq, sandbox) + .env for compose (docs/DEPLOY.md)
	bash deploy/images/build.sh

test: ## infra up, then lint, format check, import contracts, type check and the test suite
	bash $(UP) --infra-only
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	@# pytest exits 5 when it collected no test: report it, don't fail the build on it.
	@rc=0; $(BIN)/pytest -m "not long and not faults" --durations=15 || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$rc

test-long: ## infra up, then the long integration tests (marked long: watch, suites, dashboard, probe)
	bash $(UP) --infra-only
	$(BIN)/pytest -m long --durations=10

test-faults: ## infra up, then the fault tests (marked faults) on private servers, but the 11-min frozen sandbox
	bash $(UP) --infra-only
	$(BIN)/pytest -m faults -k "not sandbox-frozen" --durations=10

test-faults-all: ## every fault test, the frozen sandbox too (it waits out the batch's worst case, ~11 min)
	bash $(UP) --infra-only
	$(BIN)/pytest -m faults --durations=10

lint: venv ## ruff check + format check + import-linter contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: venv ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: venv ## mypy --strict over the packages in pyproject.toml
	$(BIN)/mypy

reproduce-codet: ## score the CodeT HumanEval set through the services, check CodeT's figures (PROBLEMS=K: subset)
	bash $(UP)
	$(BIN)/python bench/reproduce_codet.py --skip-up $(if $(PROBLEMS),--problems $(PROBLEMS))

bench: venv ## executor: coderm exec-pairs vs CodeRM's executor model on 12,290 real pairs (needs make up)
	bash $(UP) --infra-only
	$(BIN)/python -m bench.exec_pairs

clean: ## remove var/ (logs, pid files); stop the services first
	rm -rf var/
