# The two commands a newcomer needs (see README): `sudo make lab` and `sudo make test`.
.PHONY: bootstrap lab test lint unit

bootstrap:
	scripts/bootstrap

lab: bootstrap
	python3 -m vrrpd lab

lint:
	ruff check .
	ruff format --check .
	mypy

unit:
	python3 -m pytest tests/unit tests/component -q

test: bootstrap lint
	python3 -m pytest -q -rs
