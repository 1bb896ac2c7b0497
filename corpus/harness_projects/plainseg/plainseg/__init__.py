from .config import add_plainseg_config
from .model import PlainSeg
