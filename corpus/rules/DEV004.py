import torch

DEVICE = "cuda"
OTHER = torch.device("cuda")


class Model(torch.nn.Module):
    @property
    def device(self):
        return self.pixel_mean.device

    def forward_offline_mode(self, x, to_store="cuda"):
        return self.common_inference(x, to_store="cuda")

    def common_inference(self, x, to_store="cpu"):
        return x.to(to_store)


def load(path):
    return torch.load(path, map_location="cuda")


def not_flagged(path, x):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    state = torch.load(path, map_location="cpu")
    name = "cuda"
    kind = x.device.type == "cuda"
    return device, state, name, kind


def flagged_built_device_strings(path, gpu, rank):
    loc = "cuda:{}".format(gpu)
    target = "cuda:%d" % rank
    where = "cuda:" + str(rank)
    checkpoint = torch.load(path, map_location=loc)
    return checkpoint, target, where


def not_flagged_labels(gpu):
    label = "cuda"
    message = "running on {}".format(gpu)
    return label, message
