"""torch.backends.cudnn's flags. Programs set them for reproducible GPU runs; lamina has no cuDNN, so they are kept
and change nothing (lamina's CPU results are deterministic for a seed)."""

enabled = True
benchmark = False
deterministic = False


def is_available():
    return False
