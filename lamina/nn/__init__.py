"""Layers, losses and the Module machinery: the networks of the essay, with PyTorch's names."""

from lamina.nn import functional, init, parallel, utils
from lamina.nn.attention import MultiheadAttention, Transformer, TransformerEncoder, TransformerEncoderLayer
from lamina.nn.conv import (
    AdaptiveAvgPool2d,
    AvgPool1d,
    AvgPool2d,
    Conv1d,
    Conv2d,
    ConvTranspose2d,
    Dropout2d,
    MaxPool1d,
    MaxPool2d,
    Upsample,
)
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
    L1Loss,
    MSELoss,
    NLLLoss,
    SmoothL1Loss,
)
from lamina.nn.module import Module, ModuleDict, ModuleList, Parameter, Sequential
from lamina.nn.normalization import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm
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
]

from lamina.nn import modules  # noqa: E402, F401  (PyTorch's module paths, naming the classes above)
