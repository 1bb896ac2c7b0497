import torch


class Offline(torch.nn.Module):
    @property
    def device(self):
        return self.pixel_mean.device

    def ids(self, seq_id_list):
        if len(seq_id_list) == 0:
            return torch.IntTensor([]).to("cuda")
        return torch.IntTensor(seq_id_list).to("cuda")


def legacy(n):
    a = torch.LongTensor([1, 2, 3])
    b = torch.Tensor(2, n)
    return a, b


def legacy_forms(x):
    empty = torch.LongTensor()
    shaped = torch.Tensor(torch.Size([2, 3]))
    like = torch.IntTensor(x.shape)
    data = torch.Tensor((2, 3))
    alias = torch.Tensor(x)
    return empty, shaped, like, data, alias
