# Set-up and checks of flake8-device. `make bootstrap` is idempotent and fast
# once done (a stamp in .venv records what it was set up from).

VENV := .venv
PY := $(VENV)/bin/python

.PHONY: bootstrap harness test lint

bootstrap:
	bash scripts/bootstrap.sh

harness: bootstrap
	$(VENV)/bin/flake8-device-harness

test: bootstrap
	$(PY) -m pytest -q

# The project's own code passes its own rules; corpus/ is hardcoded on purpose
# (`$(VENV)/bin/flake8 --select DEV corpus/` shows every rule at work).
lint:
	$(VENV)/bin/flake8 --select DEV flake8_device fixers
