"""Normalization layers: batch, layer and group statistics, each with an optional affine map."""

import numpy as np

from lamina.autograd import wrap
from lamina.creation import ones, zeros
from lamina.nn import functional as F
from lamina.nn.conv import _tuple
from lamina.nn.module import MODULE_CLASSES, Module, Parameter


class _BatchNorm(Module):
    expected_dims = (2, 3, 4)

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, dtype=None):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = Parameter(ones(num_features, dtype=dtype)) if affine else None
        self.bias = Parameter(zeros(num_features, dtype=dtype)) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", zeros(num_features, dtype=dtype))
            self.register_buffer("running_var", ones(num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", wrap(np.zeros((), "int64")))

    def forward(self, x):
        if x.ndim not in self.expected_dims or x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}): got input of shape {x.shape}")
        use_batch = self.training or not self.track_running_stats
        if self.training and self.track_running_stats:
            self.num_batches_tracked.array += 1
        stats = (self.running_mean, self.running_var) if self.track_running_stats else (None, None)
        return F.batch_norm(x, *stats, self.weight, self.bias, use_batch, self.momentum, self.eps)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    expected_dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """BatchNorm2d, as in PyTorch.

    >>> bn = lamina.nn.BatchNorm2d(3)
    >>> y = bn(lamina.randn(16, 3, 5, 5) * 4 + 2)   # training: normalized with this batch's statistics
    >>> round(y.mean().item(), 4), round(y.var().item(), 1)
    (0.0, 1.0)
    """

    expected_dims = (4,)


class LayerNorm(Module):
    """LayerNorm, as in PyTorch.

    >>> y = lamina.nn.LayerNorm(8)(lamina.randn(4, 8) * 3)
    >>> np.allclose(y.mean(dim=1).detach().numpy(), 0, atol=1e-5)
    True
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, dtype=None):
        super().__init__()
        self.normalized_shape = _tuple(normalized_shape, 1)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        self.weight = Parameter(ones(*self.normalized_shape, dtype=dtype)) if elementwise_affine else None
        self.bias = Parameter(zeros(*self.normalized_shape, dtype=dtype)) if elementwise_affine and bias else None

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")


class GroupNorm(Module):
    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, dtype=None):
        super().__init__()
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: {num_channels} channels do not split into {num_groups} groups")
        self.num_groups, self.num_channels, self.eps = num_groups, num_channels, eps
        self.weight = Parameter(ones(num_channels, dtype=dtype)) if affine else None
        self.bias = Parameter(zeros(num_channels, dtype=dtype)) if affine else None

    def forward(self, x):
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.weight is not None}, "
                f"bias={self.bias is not None}")


# Model files written before these classes moved here name them under lamina.nn.conv; keep those loading.
MODULE_CLASSES.update({f"lamina.nn.conv.{cls.__qualname__}": cls
                       for cls in (BatchNorm1d, BatchNorm2d, LayerNorm, GroupNorm)})
