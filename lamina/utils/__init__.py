"""PyTorch's `torch.utils` names, so that code written for `torch.utils.data` finds lamina's.

`lamina.utils.data` is `lamina.data` (the same module, also under this name for `import lamina.utils.data`);
`lamina.utils.tensorboard` holds a SummaryWriter.
"""

import sys

from lamina import data

sys.modules[f"{__name__}.data"] = data

__all__ = ["data"]
