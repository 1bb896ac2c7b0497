import numpy as np
import torch
from elsewhere import Base


class Tracker(torch.nn.Module):
    def readout(self, frame_embeds: torch.Tensor, n):
        empty = torch.empty(size=(0, 1, 8), dtype=torch.float32, device=frame_embeds.device)
        logits = torch.ones(n, 4, dtype=torch.float32, device=frame_embeds.device) * -1e4
        ids = torch.full(size=(n, ),
                         fill_value=-1).to(frame_embeds)
        order = torch.arange(n, device=frame_embeds.device)
        a = torch.zeros(n, device=frame_embeds.device)
        b = torch.from_numpy(np.arange(n)).to(frame_embeds.device)
        noise = torch.randn(n).to("cuda")
        return empty, logits, ids, order, a, b, noise

    def assign(self, i, v):
        out = torch.zeros(3, 4)
        out[i] = torch.as_tensor(v, device=out.device)
        return out


class Offline(Base):
    # a base from another module provides `device`: the class's own methods read it
    def run(self, frames, num_frames, H, W, to_store="cpu"):
        frames = frames.to(self.device)
        full_masks = torch.ones(num_frames, H, W, dtype=torch.float32, device=to_store) * -1e4
        logits = torch.ones(num_frames, 5, dtype=torch.float32, device=self.device) * -1e4
        return full_masks, logits

    def assign(self, C, indices):
        least_cost, least_cost_indices = torch.min(C, dim=1)
        least_cost_indices[indices[0]] = torch.as_tensor(indices[1], dtype=torch.int64, device=least_cost_indices.device)
        return least_cost
