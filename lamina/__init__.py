"""lamina: a deep-learning framework you can read, on NumPy.

Data flows through layers to predictions; a loss scores them; backpropagation
(this package's autograd) turns the score into gradients; an optimizer moves
the weights. `lamina.Tensor` and the ops below are the backpropagation;
`lamina.nn`, `lamina.optim`, `lamina.data` and `lamina.training` build on them.
"""

from lamina.autograd import Size  # noqa: I001
from lamina.autograd import (  # noqa: I001  (grouped by layer of the package, not alphabetically)
    Function, Tensor, detect_anomaly, enable_grad, grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled,
)
from lamina.backend import bool_ as bool
from lamina import backend
from lamina.backend import Generator, device, float32, float64, get_array_module, int64, manual_seed
from lamina.backend import get_default_device, set_default_device
from lamina import accelerator, backends, cuda
from lamina.backend import get_kernels, get_num_threads, set_flush_denormal, set_kernels, set_num_threads
from lamina.backend import float32 as float, float64 as double, int64 as long, int32, int32 as int  # noqa: F401, A001
from lamina.creation import (  # noqa: F401  (the legacy typed constructors stay out of __all__)
    BoolTensor, ByteTensor, DoubleTensor, FloatTensor, IntTensor, LongTensor, arange, as_tensor, empty, eye,
    from_numpy, full, full_like, linspace, multinomial, ones, ones_like, rand, rand_like, randint, randn, randn_like,
    randperm, tensor, zeros, zeros_like,
)
from lamina.errors import LaminaError
from lamina.printing import get_printoptions, set_printoptions
from lamina.gradient_check import GradcheckError, gradcheck, gradgradcheck
from lamina.ops import *  # noqa: F403  (the differentiable functions: add, matmul, softmax, ...)
from lamina.ops import __all__ as _ops_all
from lamina import data, datasets, models, nn, optim, serialization, tasks, training, utils
from lamina.io import ModelFileError, load, load_checkpoint, load_state_dict, load_weights, save
from lamina.audio import AudioError
from lamina.datasets import DatasetError, IDXError
from lamina.training import NonFiniteLossError, TrainingError
# lamina.onnx.export; the onnx package itself is imported on use. Left out of __all__, where a star import
# would shadow the onnx package.
from lamina import onnx as onnx

__version__ = "0.1.0"

backend.cache_freed_memory()  # large NumPy temporaries are reused instead of page-faulted in every step
# Subnormal floats (below 1e-38 in float32) are flushed to zero on this thread and those started later, as
# TensorFlow does on CPU: Adam's state fills with them in a long run, and each pass over them is slow.
backend.set_flush_denormal(True)

__all__ = [
    "Function", "GradcheckError", "Tensor", "arange", "as_tensor", "bool", "detect_anomaly", "empty",
    "enable_grad", "eye", "float32", "float64", "from_numpy", "full", "full_like", "get_array_module", "grad",
    "gradcheck", "gradgradcheck", "int64", "is_grad_enabled", "linspace", "load", "load_checkpoint",
    "load_state_dict", "load_weights", "manual_seed", "nn", "no_grad", "ones", "optim", "data", "datasets", "utils",
    "models", "tasks", "training", "save", "ones_like", "rand", "rand_like", "randint", "randn", "randn_like",
    "randperm", "set_grad_enabled", "device", "cuda", "accelerator", "backends", "Generator", "double",
    "get_default_device", "set_default_device", "serialization",
    "inference_mode", "int32", "long", "multinomial", "tensor", "zeros", "zeros_like", *_ops_all,
    "LaminaError", "AudioError", "DatasetError", "IDXError", "ModelFileError", "NonFiniteLossError", "TrainingError",
    "get_kernels", "get_num_threads", "set_flush_denormal", "set_kernels", "set_num_threads",
    "get_printoptions", "set_printoptions", "Size",
]  # lamina.float and lamina.int exist too, kept out of star imports where they would hide the builtins
