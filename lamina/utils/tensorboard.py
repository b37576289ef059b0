"""`torch.utils.tensorboard.SummaryWriter`: tensorboardX's writer (the tensorboard extra), taking lamina tensors."""

from lamina.autograd import Tensor

try:
    from tensorboardX import SummaryWriter as _Writer
except ImportError:  # pragma: no cover - depends on the extra
    _Writer = None


def _plain(value):
    """Tensors become arrays (tensorboardX knows NumPy and PyTorch, not lamina); dicts are converted inside."""
    if isinstance(value, Tensor):
        return value.detach().numpy()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class SummaryWriter(_Writer or object):
    """PyTorch's SummaryWriter: add_scalar, add_scalars, add_histogram, ... accept lamina tensors.

    Needs tensorboardX: pip install 'lamina[tensorboard]'.
    """

    def __init__(self, *args, **kwargs):
        if _Writer is None:
            raise ImportError("lamina.utils.tensorboard.SummaryWriter needs tensorboardX: "
                              "pip install 'lamina[tensorboard]'")
        super().__init__(*args, **kwargs)

    def __getattribute__(self, name):
        attribute = super().__getattribute__(name)
        if not name.startswith("add_") or not callable(attribute):
            return attribute

        def converted(*args, **kwargs):
            return attribute(*map(_plain, args), **{k: _plain(v) for k, v in kwargs.items()})

        return converted


__all__ = ["SummaryWriter"]
