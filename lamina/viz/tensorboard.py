"""A TensorBoard callback: scalars, weight and gradient histograms, and representation images.

Writes event files with tensorboardX (pip install 'lamina[tensorboard]'), which
`tensorboard --logdir DIR` displays.
"""

import io

import numpy as np

from lamina.training import Callback


class TensorBoard(Callback):
    """Log every epoch's loss, metrics and learning rate; every `histogram_freq` epochs, a histogram of
    each parameter and its gradient; and, given `sample` (one input), the picture of its representations."""

    main_process_only = True

    def __init__(self, log_dir, histogram_freq=1, sample=None):
        super().__init__()
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise ImportError("the TensorBoard callback needs tensorboardX: "
                              "pip install 'lamina[tensorboard]'") from None
        self.writer = SummaryWriter(str(log_dir))
        self.histogram_freq, self.sample = histogram_freq, sample

    def on_epoch_end(self, epoch, logs=None):
        step = epoch + 1
        for key, value in (logs or {}).items():
            group = "validation" if key.startswith("val_") else "training"
            name = key[4:] if key.startswith("val_") else key
            self.writer.add_scalar(f"{name}/{group}" if key != "lr" else "learning_rate", value, step)
        if self.histogram_freq and step % self.histogram_freq == 0:
            for name, p in self.model.named_parameters():
                self.writer.add_histogram(f"weights/{name}", p.detach()._host_array(), step)
                if p.grad is not None:
                    self.writer.add_histogram(f"gradients/{name}", p.grad._host_array(), step)
        if self.sample is not None:
            self.writer.add_image("representations", self._representations(), step, dataformats="HWC")
        self.writer.flush()

    def _representations(self):
        from PIL import Image

        from lamina.viz.plots import representations

        buffer = io.BytesIO()
        representations(self.model, self.sample, buffer)
        return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))

    def on_train_end(self, logs=None):
        self.writer.close()
