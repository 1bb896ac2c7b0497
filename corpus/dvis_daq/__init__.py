"""A small DVIS-DAQ-style video instance segmentation model on detectron2.

Its tracker and inference code hardcode the "cuda" device in the same shapes
as the DVIS-DAQ project does; it is the model the project's fixer rewrites and
the harness checks. Only relative imports are used, so the package also works
when copied elsewhere under another name.
"""
from .api import build, get_cfg_for_model, input_frames, make_inputs, scalar_objective  # noqa: F401
from .config import add_dvis_daq_config  # noqa: F401
from .meta_architecture import DVISDAQToy  # noqa: F401
