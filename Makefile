# `make drill` and `make test` are the two commands README.md opens with.
.PHONY: setup drill test bench lint soak

setup:
	bash scripts/setup.sh

drill: setup
	.venv/bin/standby drill

test: setup
	.venv/bin/pytest -q --durations=30

bench: setup
	.venv/bin/standby bench store
	.venv/bin/standby bench replay --ops 100000

lint: setup
	.venv/bin/pip install -q ruff mypy
	.venv/bin/ruff check standby tests
	.venv/bin/mypy standby

# The loss window over 10 drills killed at random moments, streaming to moto_server, and the
# replay properties at full strength (CI runs fewer examples of each): about half an hour.
soak: setup
	STANDBY_RPO_KILLS=10 STANDBY_REQUIRE_SERVICES=1 .venv/bin/pytest -q -s tests/test_stream_s3.py -k rpo
	STANDBY_SOAK=1 STANDBY_REQUIRE_SERVICES=1 .venv/bin/pytest -q tests/test_replay_properties.py
