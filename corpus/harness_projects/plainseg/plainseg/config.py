from detectron2.config import CfgNode as CN


def add_plainseg_config(cfg):
    cfg.INPUT.DATASET_MAPPER_NAME = "plainseg_semantic"
    cfg.MODEL.PLAINSEG = CN()
    cfg.MODEL.PLAINSEG.HIDDEN = 8
