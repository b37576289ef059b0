"""Docstring examples (run by --doctest-modules) see `lamina` and `np` without importing them."""

import numpy as np
import pytest

import lamina


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    lamina.manual_seed(0)
    doctest_namespace.update(lamina=lamina, np=np)


# lamina.kernels.gpu builds CuPy kernels when imported: only where a GPU is usable.
collect_ignore = [] if lamina.cuda.is_available() else ["lamina/kernels/gpu.py"]
