# Two entry points (README): `make run` runs the main study, `make test` the test suite.
# Both create ./.venv on first use and install the project into it; the constraints file
# pins torch to the CPU wheel on the reference machine (normal wheel elsewhere).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test smoke clean-ray

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m study.run grid

smoke: $(STAMP)
	$(PY) -m study.run grid --budget smoke

test: $(STAMP)
	$(PY) -m pytest

clean-ray: $(STAMP)
	$(VENV)/bin/ray stop --force
