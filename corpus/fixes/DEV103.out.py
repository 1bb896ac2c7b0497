import torch


class Offline(torch.nn.Module):
    @property
    def device(self):
        return self.pixel_mean.device

    def ids(self, seq_id_list):
        if len(seq_id_list) == 0:
            return torch.tensor([], dtype=torch.int32, device=self.device)
        return torch.tensor(seq_id_list, dtype=torch.int32, device=self.device)


def legacy(n):
    a = torch.tensor([1, 2, 3], dtype=torch.int64)
    b = torch.Tensor(2, n)
    return a, b


def legacy_forms(x):
    empty = torch.empty(0, dtype=torch.int64)
    shaped = torch.empty(torch.Size([2, 3]))
    like = torch.empty(x.shape, dtype=torch.int32)
    data = torch.tensor((2, 3), dtype=torch.get_default_dtype())
    alias = torch.Tensor(x)
    return empty, shaped, like, data, alias
