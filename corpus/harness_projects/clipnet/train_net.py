"""Image training script: its setup() knows nothing of the video keys."""
from detectron2.config import get_cfg
from detectron2.projects.deeplab import add_deeplab_config

from clipnet import add_clipnet_config


def setup(args):
    cfg = get_cfg()
    add_deeplab_config(cfg)
    add_clipnet_config(cfg)
    cfg.merge_from_file(args.config_file)
    return cfg
