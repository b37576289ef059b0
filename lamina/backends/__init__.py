"""torch.backends' switches that programs set or ask about: cudnn's flags (kept, with no effect: lamina has no
cuDNN) and mps.is_available() (False)."""

from lamina.backends import cudnn, mps

__all__ = ["cudnn", "mps"]
