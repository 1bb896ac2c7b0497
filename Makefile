# Set-up and checks of flake8-device. `make bootstrap` is idempotent and fast
# once done (a stamp in .venv records what it was set up from).

VENV := .venv
PY := $(VENV)/bin/python

.PHONY: bootstrap harness harness-daq test lint

bootstrap:
	bash scripts/bootstrap.sh

harness: bootstrap
	$(VENV)/bin/flake8-device-harness

# The real DVIS-DAQ online R50 model from ../shared/realworld (with your own clone
# of DVIS_Plus, give its DVIS_DAQ folder as DAQ=...; docs/harness.md).
DAQ ?= ../shared/realworld/DVIS_DAQ
harness-daq: bootstrap
	$(VENV)/bin/flake8-device-harness --project $(DAQ) --config configs/dvis_daq/ytvis19/DAQ_Online_R50.yaml --out out/daq

test: bootstrap
	$(PY) -m pytest -q

# The project's own code passes its own rules; corpus/ is hardcoded on purpose
# (`$(VENV)/bin/flake8 --select DEV corpus/` shows every rule at work).
lint:
	$(VENV)/bin/flake8 --select DEV flake8_device fixers
