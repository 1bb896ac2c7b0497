"""Config keys of the DVIS-DAQ-style model (detectron2 CfgNode)."""
from detectron2.config import CfgNode as CN


def add_dvis_daq_config(cfg):
    """Add the keys read by this package's meta-architecture to ``cfg``."""
    cfg.MODEL.DVIS_DAQ = CN()
    cfg.MODEL.DVIS_DAQ.HIDDEN_DIM = 32
    cfg.MODEL.DVIS_DAQ.NUM_CLASSES = 5
    cfg.MODEL.DVIS_DAQ.NUM_QUERIES = 6
    cfg.MODEL.DVIS_DAQ.NHEADS = 4
    cfg.MODEL.DVIS_DAQ.DIM_FEEDFORWARD = 64
    cfg.MODEL.DVIS_DAQ.DEC_LAYERS = 2
    cfg.MODEL.DVIS_DAQ.BACKBONE_CHANNELS = [16, 24, 32]
    cfg.MODEL.DVIS_DAQ.MASK_STRIDE = 4
    cfg.MODEL.DVIS_DAQ.SIZE_DIVISIBILITY = 32
    # Losses.
    cfg.MODEL.DVIS_DAQ.NO_OBJECT_WEIGHT = 0.1
    cfg.MODEL.DVIS_DAQ.CLASS_WEIGHT = 2.0
    cfg.MODEL.DVIS_DAQ.MASK_WEIGHT = 5.0
    cfg.MODEL.DVIS_DAQ.DICE_WEIGHT = 5.0
    cfg.MODEL.DVIS_DAQ.DISAPPEAR_WEIGHT = 1.0
    # Tracker.
    cfg.MODEL.DVIS_DAQ.TRACKER = CN()
    cfg.MODEL.DVIS_DAQ.TRACKER.MAX_SEQUENCES = 10
    cfg.MODEL.DVIS_DAQ.TRACKER.POS_CHUNK_SIZE = 4
    cfg.MODEL.DVIS_DAQ.TRACKER.DISAPPEAR_THRESH = 0.5
    # Inference.
    cfg.MODEL.DVIS_DAQ.TEST = CN()
    cfg.MODEL.DVIS_DAQ.TEST.MAX_NUM = 20
    cfg.MODEL.DVIS_DAQ.TEST.APPLY_PADDING_MASKS = True
    cfg.MODEL.DVIS_DAQ.SEED = 0
