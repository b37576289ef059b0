"""Instance normalization: each channel of each sample normalized over its own spatial positions."""

from lamina.creation import ones, zeros
from lamina.nn import functional as F
from lamina.nn.module import Module, Parameter


class _InstanceNorm(Module):
    dims = 1

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False, track_running_stats=False, device=None,
                 dtype=None):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = Parameter(ones(num_features, dtype=dtype)) if affine else None
        self.bias = Parameter(zeros(num_features, dtype=dtype)) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", zeros(num_features, dtype=dtype))
            self.register_buffer("running_var", ones(num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", zeros((), dtype="int64"))

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

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class InstanceNorm1d(_InstanceNorm):
    dims = 1


class InstanceNorm2d(_InstanceNorm):
    dims = 2
