from detectron2.config import CfgNode as CN


def add_clipnet_config(cfg):
    cfg.MODEL.CLIPNET = CN()
    cfg.MODEL.CLIPNET.HIDDEN = 8
    cfg.MODEL.CLIPNET.NUM_CLASSES = 3


def add_clipnet_video_config(cfg):
    cfg.INPUT.SAMPLING_FRAME_NUM = 2
    cfg.MODEL.CLIPNET.TEMPORAL = True
