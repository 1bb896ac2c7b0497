"""Training script of an image segmentation project."""
from detectron2.config import get_cfg
from detectron2.projects.deeplab import add_deeplab_config

from plainseg import add_plainseg_config


def setup(args):
    cfg = get_cfg()
    add_deeplab_config(cfg)
    add_plainseg_config(cfg)
    cfg.merge_from_file(args.config_file)
    return cfg
