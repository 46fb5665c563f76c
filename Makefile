# hazmon: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
ENV ?= lab
# Tools (ansible-lint, ansible-playbook) find each other in the venv.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: all bootstrap demo test lint unit e2e bench clean

all: test

bootstrap:
	@scripts/bootstrap

demo: bootstrap
	@scripts/demo $(ENV)

lint: bootstrap
	$(BIN)/ruff check src tests bench plugins playbooks
	$(BIN)/yamllint -s .
	$(BIN)/ansible-lint --profile production

test: lint
	$(BIN)/pytest -q $(PYTEST_ARGS)

unit: bootstrap
	$(BIN)/pytest -q -m "not e2e and not integration" $(PYTEST_ARGS)

e2e: bootstrap
	$(BIN)/pytest -q -m e2e $(PYTEST_ARGS)

bench: bootstrap
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache out
