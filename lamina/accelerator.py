"""torch.accelerator's questions: lamina has no accelerator yet, so programs that ask fall back to the CPU."""


def is_available():
    return False


def current_accelerator(check_available=False):
    return None


def device_count():
    return 0


__all__ = ["current_accelerator", "device_count", "is_available"]
