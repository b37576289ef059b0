"""Docstring examples (run by --doctest-modules) see `lamina` and `np` without importing them."""

import numpy as np
import pytest

import lamina


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    lamina.manual_seed(0)
    doctest_namespace.update(lamina=lamina, np=np)
