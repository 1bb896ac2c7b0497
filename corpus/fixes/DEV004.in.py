import torch

DEVICE = "cuda"


class Model(torch.nn.Module):
    @property
    def device(self):
        return self.pixel_mean.device

    def forward_offline_mode(self, x, to_store="cuda"):
        """Run offline inference."""
        return self.common_inference(x, to_store="cuda")

    def common_inference(self, x, to_store="cpu"):
        return x.to(to_store)


def load(path):
    return torch.load(path, map_location="cuda")
