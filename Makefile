# The two commands a newcomer needs (see README): `sudo make lab` and `sudo make test`.
# `make image` builds the container image (scripts/image says how it picks the builder,
# the base and the build's CA). `make crds` writes the CRDs (crds/ and the chart's copy)
# from the models in vrrpd/spec.
.PHONY: bootstrap lab test lint unit image crds

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

image:
	scripts/image $(IMAGE)

crds:
	python3 -m vrrpd.spec.crds

test: bootstrap lint
	python3 -m pytest -q -rs
