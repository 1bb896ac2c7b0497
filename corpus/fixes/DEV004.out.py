import torch

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


class Model(torch.nn.Module):
    @property
    def device(self):
        return self.pixel_mean.device

    def forward_offline_mode(self, x, to_store=None):
        """Run offline inference."""
        if to_store is None:
            to_store = self.device.type
        return self.common_inference(x, to_store=self.device.type)

    def common_inference(self, x, to_store="cpu"):
        return x.to(to_store)


def load(path):
    return torch.load(path, map_location=DEVICE)
