import torch
from torch.cuda.amp import autocast


class Matcher(torch.nn.Module):
    @torch.no_grad()
    def forward(self, outputs: torch.Tensor, targets: torch.Tensor):
        with autocast(enabled=False):
            cost = outputs.float() @ targets.float().T
        with torch.autocast("cuda", dtype=torch.bfloat16):
            cost = cost * 1
        return cost


def train(model, x):
    scaler = torch.cuda.amp.GradScaler()
    with torch.cuda.amp.autocast():
        loss = model(x)
    return scaler, loss
