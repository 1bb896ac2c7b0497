"""torchvision's Mask R-CNN with random weights, one small image, in the harness's entry contract."""
import torch
from torchvision.models.detection import maskrcnn_resnet50_fpn

SIZE = 96


def _targets(generator):
    boxes = torch.tensor([[8.0, 10.0, 60.0, 70.0], [30.0, 20.0, 90.0, 88.0]])
    masks = torch.zeros(2, SIZE, SIZE, dtype=torch.uint8)
    for i, (x0, y0, x1, y1) in enumerate(boxes.int().tolist()):
        masks[i, y0:y1, x0:x1] = 1
    labels = torch.randint(1, 91, (2,), generator=generator)
    return [{"boxes": boxes, "labels": labels, "masks": masks}]


def build():
    torch.manual_seed(0)
    # random weights; a score threshold of 0 keeps detections of an untrained head
    model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, min_size=SIZE, max_size=SIZE,
                                  box_score_thresh=0.0, box_detections_per_img=8,
                                  rpn_pre_nms_top_n_test=100, rpn_post_nms_top_n_test=50,
                                  rpn_pre_nms_top_n_train=100, rpn_post_nms_top_n_train=50)
    g = torch.Generator().manual_seed(1)
    images = [torch.rand(3, SIZE, SIZE, generator=g)]
    return {"model": model, "inputs": images, "train_inputs": (images, _targets(g))}
