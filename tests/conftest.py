import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # lets tests import the shared op table

import lamina  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    lamina.manual_seed(0)

# Scripts that tests start under mpiexec; importing them (as --doctest-modules would) runs them.
collect_ignore_glob = ["mpi_jobs/*"]
