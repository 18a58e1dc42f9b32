# `make drill` and `make test` are the two commands README.md opens with.
.PHONY: setup drill test bench lint

setup:
	bash scripts/setup.sh

drill: setup
	.venv/bin/standby drill

test: setup
	.venv/bin/pytest -q

bench: setup
	.venv/bin/standby bench store
	.venv/bin/standby bench replay --ops 100000

lint: setup
	.venv/bin/pip install -q ruff mypy
	.venv/bin/ruff check standby tests
	.venv/bin/mypy standby
