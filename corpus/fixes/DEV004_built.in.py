import torch


def load(path, gpu=0):
    loc = "cuda:{}".format(gpu)
    return torch.load(path, map_location=loc)


def place(x, rank=0):
    target = "cuda:%d" % rank
    return x.to(target)


def place_concatenated(x, rank=0):
    where = "cuda:" + str(rank)
    return x.to(where) * 2
