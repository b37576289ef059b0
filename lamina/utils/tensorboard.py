"""`torch.utils.tensorboard.SummaryWriter`: tensorboardX's writer, which has PyTorch's methods (the viz extra)."""

try:
    from tensorboardX import SummaryWriter
except ImportError:
    class SummaryWriter:
        def __init__(self, *args, **kwargs):
            raise ImportError("lamina.utils.tensorboard.SummaryWriter needs tensorboardX: "
                              "pip install 'lamina[tensorboard]'")

__all__ = ["SummaryWriter"]
