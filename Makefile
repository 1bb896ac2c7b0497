# Set-up and checks of flake8-device. `make bootstrap` is idempotent and fast
# once done (a stamp in .venv records what it was set up from).

VENV := .venv
PY := $(VENV)/bin/python

.PHONY: bootstrap harness harness-daq harness-m2f gpu-wheels gpu-check test lint

bootstrap:
	bash scripts/bootstrap.sh

harness: bootstrap
	$(VENV)/bin/flake8-device-harness

# The real DVIS-DAQ online R50 model from ../shared/realworld (with your own clone
# of DVIS_Plus, give its DVIS_DAQ folder as DAQ=...; docs/harness.md).
DAQ ?= ../shared/realworld/DVIS_DAQ
harness-daq: bootstrap
	$(VENV)/bin/flake8-device-harness --project $(DAQ) --config configs/dvis_daq/ytvis19/DAQ_Online_R50.yaml --out out/daq

# Upstream Mask2Former (a video and an image config, the plain command each;
# with your own clone, give it as M2F=...; docs/harness.md).
M2F ?= ../shared/realworld/Mask2Former
harness-m2f: bootstrap
	$(VENV)/bin/flake8-device-harness --project $(M2F) --config configs/youtubevis_2019/video_maskformer2_R50_bs16_8ep.yaml --out out/m2f-video
	$(VENV)/bin/flake8-device-harness --project $(M2F) --config configs/coco/instance-segmentation/maskformer2_R50_bs16_50ep.yaml --out out/m2f-coco

# The GPU check (docs/harness.md): `make gpu-wheels` where the package index is reachable
# fills wheels/ (gitignored) for CPython 3.12 manylinux x86_64; `make gpu-check` on a bare
# GPU machine without network installs from it into PY and runs check 5 on the bundled
# model and the real DVIS-DAQ, and the tests that need CUDA; reports in out/gpu/.
gpu-wheels:
	bash scripts/gpu_wheels.sh

GPU_PY ?= python3
gpu-check:
	PY=$(GPU_PY) DAQ=$(DAQ) bash scripts/gpu_check.sh

test: bootstrap
	$(PY) -m pytest -q

# The project's own code passes its own rules; corpus/ is hardcoded on purpose
# (`$(VENV)/bin/flake8 --select DEV corpus/` shows every rule at work).
lint:
	$(VENV)/bin/flake8 --select DEV flake8_device fixers
