import time

import torch


class DataPrefetcher:
    def __init__(self, loader):
        self.loader = iter(loader)
        self.stream = torch.cuda.Stream()
        self.preload()

    def preload(self):
        self.batch = next(self.loader, None)
        with torch.cuda.stream(self.stream):
            if self.batch is not None:
                self.batch = self.batch.to("cpu", non_blocking=True)

    def next(self):
        torch.cuda.current_stream().wait_stream(self.stream)
        batch = self.batch
        if batch is not None:
            batch.record_stream(torch.cuda.current_stream())
        self.preload()
        return batch


def setup(rank):
    torch.cuda.set_device(rank)
    print(torch.cuda.get_device_name(rank))


def timed(model, x):
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    start.record()
    y = model(x)
    end.record()
    torch.cuda.synchronize()
    torch.cuda.synchronize(
        0
    )  # trailing comment
    return y, start.elapsed_time(end)


def not_flagged(model, x):
    torch.cuda.empty_cache()
    n = torch.cuda.device_count()
    m = torch.cuda.memory_allocated() + torch.cuda.max_memory_allocated()
    torch.cuda.manual_seed_all(0)
    torch.backends.cudnn.benchmark = True
    loader = torch.utils.data.DataLoader([1, 2], pin_memory=True)
    y = x.to("cpu", non_blocking=True)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    return n, m, loader, y, t0


def not_flagged_under_nccl(dist):
    if dist.get_backend() == dist.Backend.NCCL:
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def not_flagged_short_circuit():
    modern = torch.cuda.is_available() and torch.cuda.get_device_capability() >= (8, 0)
    name = not torch.cuda.is_available() or torch.cuda.get_device_name()
    return modern, name
