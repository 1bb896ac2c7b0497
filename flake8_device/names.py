"""Static facts about PyTorch names used by the rules."""

from __future__ import annotations

# torch.<name>(...) factories that accept ``device=``.
FILL_FACTORIES = frozenset({"empty", "zeros", "ones", "full", "eye", "empty_strided"})
RANGE_FACTORIES = frozenset({"arange", "range", "linspace", "logspace", "tril_indices", "triu_indices"})
DATA_FACTORIES = frozenset({"tensor", "as_tensor", "from_numpy", "asarray"})
RANDOM_FACTORIES = frozenset({"rand", "randn", "randint", "randperm", "normal", "bernoulli", "multinomial"})
FACTORIES = FILL_FACTORIES | RANGE_FACTORIES | DATA_FACTORIES | RANDOM_FACTORIES
# Factories whose first argument is an existing tensor (they follow its device).
FACTORIES_WITH_TENSOR_INPUT = frozenset({"bernoulli", "multinomial"})

# Legacy typed constructors: torch.<name>(...) always allocates on the CPU.
LEGACY_CTORS = {
    "Tensor": "torch.float32",
    "FloatTensor": "torch.float32",
    "DoubleTensor": "torch.float64",
    "HalfTensor": "torch.float16",
    "BFloat16Tensor": "torch.bfloat16",
    "ByteTensor": "torch.uint8",
    "CharTensor": "torch.int8",
    "ShortTensor": "torch.int16",
    "IntTensor": "torch.int32",
    "LongTensor": "torch.int64",
    "BoolTensor": "torch.bool",
}

DTYPES = {
    "float32": "torch.float32", "float": "torch.float32",
    "float64": "torch.float64", "double": "torch.float64",
    "float16": "torch.float16", "half": "torch.float16",
    "bfloat16": "torch.bfloat16",
    "uint8": "torch.uint8", "int8": "torch.int8",
    "int16": "torch.int16", "short": "torch.int16",
    "int32": "torch.int32", "int": "torch.int32",
    "int64": "torch.int64", "long": "torch.int64",
    "bool": "torch.bool",
    "complex64": "torch.complex64", "cfloat": "torch.complex64",
    "complex128": "torch.complex128", "cdouble": "torch.complex128",
}

# Tensor methods that convert dtype only: x.float() == x.to(torch.float32).
DTYPE_METHODS = {
    "float": "torch.float32", "double": "torch.float64", "half": "torch.float16",
    "bfloat16": "torch.bfloat16", "int": "torch.int32", "long": "torch.int64",
    "short": "torch.int16", "bool": "torch.bool", "byte": "torch.uint8", "char": "torch.int8",
}

# Calls that answer "is there an accelerator?": code under them is device-aware on purpose.
AVAILABILITY_CALLS = frozenset({
    "torch.cuda.is_available", "torch.cuda.device_count", "torch.cuda.is_initialized",
    "torch.backends.mps.is_available", "torch.backends.mps.is_built",
    "torch.mps.is_available", "torch.xpu.is_available", "torch.xpu.device_count",
    "torch.npu.is_available", "torch.hpu.is_available", "torch.mlu.is_available",
    "torch.accelerator.is_available", "torch.accelerator.current_accelerator",
})
# Attributes of a tensor or device that say which device it is on.
DEVICE_TEST_ATTRS = frozenset({"is_cuda", "is_mps", "is_xpu", "is_hpu", "is_npu", "is_meta"})

# Availability expression that keeps an accelerator literal but falls back to the CPU.
AVAILABILITY_EXPR = {
    "cuda": "{torch}.cuda.is_available()",
    "mps": "{torch}.backends.mps.is_available()",
    "xpu": "{torch}.xpu.is_available()",
}

# Classes from other libraries known to provide a ``device`` attribute on instances.
KNOWN_DEVICE_BASES = frozenset({
    "GeneralizedRCNN", "ProposalNetwork", "SemanticSegmentor", "PanopticFPN", "RetinaNet",
    "DenseDetector", "FCOS", "PreTrainedModel", "LightningModule", "ModelMixin",
    "MaskFormer", "VideoMaskFormer",
})

# Method names in nn.Module subclasses where CPU allocation is expected
# (parameters and buffers are created there and moved later with module.to()).
INIT_METHODS = frozenset({
    "__init__", "reset_parameters", "_reset_parameters", "init_weights", "_init_weights",
    "initialize", "_initialize_weights", "build", "__setstate__", "from_config",
})

# Keyword names that carry a device.
DEVICE_KEYWORDS = frozenset({"device", "map_location", "to_store", "dev", "store_device", "target_device",
                             "output_device", "device_id", "location"})
