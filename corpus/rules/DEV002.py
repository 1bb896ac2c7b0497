import unittest

import pytest
import torch

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def flagged(x, model):
    a = x.cuda()
    b = x.cuda(1)
    c = x.cuda(non_blocking=True)
    model.cuda()
    return a, b, c


def not_flagged(x):
    torch.cuda.synchronize()
    n = torch.cuda.device_count()
    if torch.cuda.is_available():
        x = x.cuda()
    y = x.cuda() if torch.cuda.is_available() else x
    return n, y


def flagged_constant_guard(model):
    use_gpu = True
    if use_gpu:
        model.cuda()
    return model


@pytest.mark.skipif(torch.cuda.is_available(), reason="runs where there is no CUDA")
def flagged_inverted_skipif(model):
    model.cuda()


def not_flagged_flag_parameter(model, use_gpu=False):
    if use_gpu:
        model.cuda()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def not_flagged_pytest_skipif(model):
    model.cuda()


@pytest.mark.skipif("not torch.cuda.is_available()")
def not_flagged_pytest_skipif_string(model):
    model.cuda()


@unittest.skipUnless(torch.cuda.is_available(), "needs CUDA")
def not_flagged_skip_unless(model):
    model.cuda()


@requires_cuda
def not_flagged_marker_bound_to_a_name(model):
    model.cuda()


@unittest.skipIf(not torch.cuda.is_available(), "needs CUDA")
class TestOnGPU(unittest.TestCase):
    def not_flagged_class_decorator(self):
        torch.nn.Linear(2, 2).cuda()


class TestSkips(unittest.TestCase):
    def not_flagged_skip_test(self):
        if not torch.cuda.is_available():
            self.skipTest("needs CUDA")
        torch.nn.Linear(2, 2).cuda()


def not_flagged_label_test(args, x):
    if args.device == "gpu":
        x = x.cuda()
    return x


def flagged_no_cuda_flag(args, x):
    if args.no_cuda:
        x = x.cuda()
    return x


def not_flagged_after_a_cpu_return(device, x):
    if device == "cpu":
        return x
    return x.cuda()
