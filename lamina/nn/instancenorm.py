"""Instance normalization: each channel of each sample normalized over its own spatial positions."""

from lamina.nn import functional as F
from lamina.nn.normalization import _BatchNorm


class _InstanceNorm(_BatchNorm):
    """BatchNorm's parameters and buffers (PyTorch's names), with PyTorch's InstanceNorm defaults."""

    dims = 1

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False, track_running_stats=False, device=None,
                 dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype=dtype)

    def forward(self, x):
        if x.ndim not in (self.dims + 1, self.dims + 2):
            raise ValueError(f"{type(self).__name__}: expects a {self.dims + 1}-D or {self.dims + 2}-D input, got "
                             f"shape {x.shape}")
        unbatched = x.ndim == self.dims + 1
        if unbatched:
            x = x.unsqueeze(0)
        if x.shape[1] != self.num_features and (self.affine or self.track_running_stats):
            raise ValueError(f"{type(self).__name__}({self.num_features}): input of shape {x.shape} has "
                             f"{x.shape[1]} channels")
        tracking = self.track_running_stats  # num_batches_tracked stays 0, as in PyTorch: momentum is always used
        out = F.instance_norm(x, self.running_mean if tracking else None, self.running_var if tracking else None,
                              self.weight, self.bias, self.training or not tracking, self.momentum, self.eps)
        return out.squeeze(0) if unbatched else out


class InstanceNorm1d(_InstanceNorm):
    dims = 1


class InstanceNorm2d(_InstanceNorm):
    dims = 2
