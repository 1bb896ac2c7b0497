import io
import torch


class Net(torch.nn.Module):
    @property
    def device(self):
        return self.w.device

    def load_weights(self, path):
        self.load_state_dict(torch.load(path, map_location=None if torch.cuda.is_available() else "cpu"))


def read(path):
    return torch.load(path, weights_only=True, map_location=None if torch.cuda.is_available() else "cpu")


def gather(tensors):
    # all_gather-style: pickle with torch.save, "send", torch.load each buffer
    buffers = []
    for t in tensors:
        buffer = io.BytesIO()
        torch.save(t, buffer)
        buffers.append(buffer.getvalue())
    return [torch.load(io.BytesIO(b), map_location=None if torch.cuda.is_available() else "cpu") for b in buffers]


def load_on_gpu(path):
    return torch.load(path, map_location=lambda storage, loc: storage.cuda() if torch.cuda.is_available() else storage)


def load_on_gpu0(path):
    return torch.load(path, map_location=lambda storage, loc: storage.cuda(0) if torch.cuda.is_available() else storage)


def load_cuda(path):
    return torch.load(path, map_location="cuda" if torch.cuda.is_available() else "cpu")


def describe(path):
    return f"{torch.load(path, map_location=None if torch.cuda.is_available() else 'cpu')}"


def load_remapped(path):
    return torch.load(path, map_location={"cuda:1": "cuda:0"} if torch.cuda.is_available() else "cpu")
