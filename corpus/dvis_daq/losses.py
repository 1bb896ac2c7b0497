"""Classification and mask losses (cross-entropy, sigmoid BCE, dice)."""
import torch
from torch.nn import functional as F


def dice_loss(inputs, targets, num_masks):
    inputs = inputs.sigmoid().flatten(1)
    targets = targets.flatten(1)
    numerator = 2 * (inputs * targets).sum(-1)
    denominator = inputs.sum(-1) + targets.sum(-1)
    return (1 - (numerator + 1) / (denominator + 1)).sum() / num_masks


def sigmoid_bce_loss(inputs, targets, num_masks):
    loss = F.binary_cross_entropy_with_logits(inputs.flatten(1), targets.flatten(1), reduction="none")
    return loss.mean(1).sum() / num_masks


def classification_loss(logits, target_classes, num_classes, no_object_weight):
    weight = torch.ones(num_classes + 1, dtype=logits.dtype, device=logits.device)
    weight[-1] = no_object_weight
    return F.cross_entropy(logits, target_classes, weight)
