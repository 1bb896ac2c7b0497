from dataclasses import dataclass, field

import torch


@dataclass
class Config:
    device: str = "cuda" if torch.cuda.is_available() else "cpu"
    eval_device: str = field(default="cuda:0" if torch.cuda.is_available() else "cpu")
    train_device: str = field(default="cuda" if torch.cuda.is_available() else "cpu")
    store_device: str = field(default="cpu")
    label: str = field(default="cuda")
