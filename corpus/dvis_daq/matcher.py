"""Hungarian matching between frame queries and ground-truth instances."""
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn
from torch.cuda.amp import autocast


def batch_dice_cost(inputs, targets):
    inputs = inputs.sigmoid().flatten(1)
    targets = targets.flatten(1)
    numerator = 2 * inputs @ targets.t()
    denominator = inputs.sum(-1)[:, None] + targets.sum(-1)[None, :]
    return 1 - (numerator + 1) / (denominator + 1)


def batch_bce_cost(inputs, targets):
    inputs = inputs.flatten(1)
    targets = targets.flatten(1)
    hw = inputs.shape[1]
    pos = torch.nn.functional.binary_cross_entropy_with_logits(inputs, torch.ones_like(inputs), reduction="none")
    neg = torch.nn.functional.binary_cross_entropy_with_logits(inputs, torch.zeros_like(inputs), reduction="none")
    return (pos @ targets.t() + neg @ (1 - targets).t()) / hw


class FrameMatcher(nn.Module):
    def __init__(self, cost_class=2.0, cost_mask=5.0, cost_dice=5.0):
        super().__init__()
        self.cost_class = cost_class
        self.cost_mask = cost_mask
        self.cost_dice = cost_dice

    @torch.no_grad()
    def forward(self, pred_logits, pred_masks, gt_classes, gt_masks):
        """Match one frame: pred_logits [Q, K+1], pred_masks [Q, h, w],
        gt_classes [G], gt_masks [G, h, w] (float). Returns (query_idx, gt_idx)."""
        if gt_classes.numel() == 0:
            empty = torch.empty(0, dtype=torch.int64)
            return empty, empty
        prob = pred_logits.softmax(-1)
        cost_class = -prob[:, gt_classes]
        with autocast(enabled=False):
            out_mask = pred_masks.float()
            tgt_mask = gt_masks.float()
            cost_mask = batch_bce_cost(out_mask, tgt_mask)
            cost_dice = batch_dice_cost(out_mask, tgt_mask)
        cost = self.cost_class * cost_class + self.cost_mask * cost_mask + self.cost_dice * cost_dice
        rows, cols = linear_sum_assignment(cost.cpu().numpy())
        return torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)
