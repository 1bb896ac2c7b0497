import torch


class Head(torch.nn.Module):
    @property
    def device(self):
        return self.w.device

    def forward(self, x):
        pad = torch.zeros(x.shape[0], 1)
        return torch.cat([x, pad], 1)
