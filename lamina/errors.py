"""lamina's exceptions share one base, `LaminaError`, so that a program (or the `lamina` command) can catch
every problem lamina reports about a file, an argument or the data with one except clause.

Each subclass also keeps the built-in base it always had (`ModelFileError` is still a `ValueError`, ...),
so code written against those goes on working. The subclasses live beside the code that raises them and are
all exported from `lamina`.
"""


class LaminaError(Exception):
    """A problem lamina explains in one message: a malformed file, a bad argument, unusable data."""


class AllocationLimitError(LaminaError, MemoryError):
    """An allocation beyond the budget that `backend.allocation_budget` set (a model rebuilt from a file
    may hold no more than the file's weights)."""
