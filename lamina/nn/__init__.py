"""Layers, losses and the Module machinery: the networks of the essay, with PyTorch's names."""

from lamina.nn import functional, init, parallel, utils
from lamina.nn.activations import (
    CELU,
    GLU,
    SELU,
    Hardsigmoid,
    Hardswish,
    Hardtanh,
    LogSigmoid,
    Mish,
    PReLU,
    ReLU6,
    Softmin,
    Softplus,
    Softsign,
    Tanhshrink,
    Threshold,
)
from lamina.nn.attention import MultiheadAttention, Transformer, TransformerEncoder, TransformerEncoderLayer
from lamina.nn.conv import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AdaptiveMaxPool2d,
    AvgPool1d,
    AvgPool2d,
    Conv1d,
    Conv2d,
    ConvTranspose1d,
    ConvTranspose2d,
    Dropout2d,
    MaxPool1d,
    MaxPool2d,
    MaxUnpool2d,
    PixelShuffle,
    PixelUnshuffle,
    Upsample,
)
from lamina.nn.distance import CosineSimilarity, PairwiseDistance
from lamina.nn.instancenorm import InstanceNorm1d, InstanceNorm2d
from lamina.nn.layers import (
    ELU,
    GELU,
    Dropout,
    Embedding,
    Flatten,
    Identity,
    LeakyReLU,
    Linear,
    LogSoftmax,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Tanh,
    Unflatten,
)
from lamina.nn.losses import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    CTCLoss,
    HuberLoss,
    KLDivLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    SmoothL1Loss,
)
from lamina.nn.module import Module, ModuleDict, ModuleList, Parameter, ParameterDict, ParameterList, Sequential
from lamina.nn.normalization import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm
from lamina.nn.padding import (
    ConstantPad1d,
    ConstantPad2d,
    ReflectionPad1d,
    ReflectionPad2d,
    ReplicationPad1d,
    ReplicationPad2d,
    ZeroPad1d,
    ZeroPad2d,
)
from lamina.nn.recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell

__all__ = [
    "AdaptiveAvgPool2d", "AvgPool1d", "AvgPool2d", "BCELoss", "BCEWithLogitsLoss", "BatchNorm1d", "BatchNorm2d",
    "Conv1d", "Conv2d", "ConvTranspose2d", "CrossEntropyLoss", "Dropout", "Dropout2d", "ELU", "Embedding",
    "Flatten", "GELU", "GroupNorm", "HuberLoss", "Identity", "L1Loss", "LayerNorm", "LeakyReLU", "Linear",
    "LogSoftmax", "MSELoss", "MaxPool1d", "MaxPool2d", "Module", "ModuleDict", "ModuleList", "NLLLoss", "Parameter",
    "ReLU", "Sequential", "SiLU", "Sigmoid", "SmoothL1Loss", "Softmax", "Tanh", "Unflatten", "Upsample",
    "functional", "init", "parallel", "utils",
    "GRU", "GRUCell", "LSTM", "LSTMCell", "RNN", "RNNCell", "MultiheadAttention", "Transformer",
    "TransformerEncoder", "TransformerEncoderLayer", "CTCLoss",
    "CELU", "GLU", "SELU", "Hardsigmoid", "Hardswish", "Hardtanh", "LogSigmoid", "Mish", "PReLU", "ReLU6", "Softmin",
    "Softplus", "Softsign", "Tanhshrink", "Threshold", "AdaptiveAvgPool1d", "AdaptiveMaxPool2d", "ConvTranspose1d",
    "MaxUnpool2d", "PixelShuffle", "PixelUnshuffle", "CosineSimilarity", "PairwiseDistance", "InstanceNorm1d",
    "InstanceNorm2d", "KLDivLoss", "ParameterDict", "ParameterList", "ConstantPad1d", "ConstantPad2d",
    "ReflectionPad1d", "ReflectionPad2d", "ReplicationPad1d", "ReplicationPad2d", "ZeroPad1d", "ZeroPad2d",
]

from lamina.nn import modules  # noqa: E402, F401  (PyTorch's module paths, naming the classes above)
