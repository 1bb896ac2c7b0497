import numpy as np
import torch


class Tracker(torch.nn.Module):
    def readout(self, frame_embeds: torch.Tensor, n):
        empty = torch.empty(size=(0, 1, 8), dtype=torch.float32, device=frame_embeds.device)
        logits = torch.ones(n, 4, dtype=torch.float32, device=frame_embeds.device) * -1e4
        ids = torch.full(size=(n, ),
                         fill_value=-1).to(frame_embeds)
        order = torch.arange(n, device=frame_embeds.device)
        a = torch.zeros(n, device=frame_embeds.device)
        b = torch.as_tensor(np.arange(n), device=frame_embeds.device)
        noise = torch.randn(n).to("cuda")
        return empty, logits, ids, order, a, b, noise

    def assign(self, i, v):
        out = torch.zeros(3, 4)
        out[i] = torch.as_tensor(v, device=out.device)
        return out
