"""torch.backends.mps: Apple's GPU is not a device lamina runs on."""


def is_available():
    return False


def is_built():
    return False
