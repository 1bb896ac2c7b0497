import torch


def timed_forward(model, x):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    y = model(x)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return y


def setup(rank):
    if torch.cuda.is_available():
        torch.cuda.set_device(rank)
    if torch.cuda.is_available():
        print("running on", torch.cuda.get_device_name(rank))
    return rank


class Prefetcher:
    """Copies the next batch while the current one is used (a side stream on CUDA)."""

    def __init__(self, batches):
        self.batches = iter(batches)
        self.stream = torch.cuda.Stream()
        self.preload()

    def preload(self):
        self.batch = next(self.batches, None)
        with torch.cuda.stream(self.stream):
            if self.batch is not None:
                self.batch = self.batch * 2

    def next(self):
        if torch.cuda.is_available():
            torch.cuda.current_stream().wait_stream(self.stream)
        batch = self.batch
        if batch is not None:
            if torch.cuda.is_available():
                batch.record_stream(torch.cuda.current_stream())
        self.preload()
        return batch


def drain(batches):
    p = Prefetcher(batches)
    out = []
    while True:
        b = p.next()
        if b is None:
            return out
        out.append(b)
