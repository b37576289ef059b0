"""The op table on CuPy arrays: the same op code runs on a GPU (skipped without CuPy and a GPU)."""

import numpy as np
import pytest
from op_cases import CASES, make_inputs

import lamina

cupy = pytest.importorskip("cupy")
try:
    cupy.cuda.runtime.getDeviceCount()
except Exception:  # CuPy installed without a usable GPU
    pytest.skip("no CUDA device", allow_module_level=True)


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _gpu_lamina():
    """lamina, except that constants a case builds with L.tensor land on the GPU too."""

    class GPU:
        def __getattr__(self, name):
            return getattr(lamina, name)

        @staticmethod
        def tensor(data, **kwargs):
            return lamina.tensor(cupy.asarray(np.asarray(data)), **kwargs)

    return GPU()


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_op_runs_on_cupy(case):
    arrays = make_inputs(case, np.float32)
    cpu = [lamina.tensor(a, requires_grad=True) for a in arrays]
    gpu = [lamina.tensor(cupy.asarray(a), requires_grad=True) for a in arrays]
    cpu_out = _as_tuple(case.fn(lamina, *cpu))
    gpu_out = _as_tuple(case.fn(_gpu_lamina(), *gpu))
    for c, g in zip(cpu_out, gpu_out):
        assert type(g.array).__module__.startswith("cupy")
        np.testing.assert_allclose(cupy.asnumpy(g.array), c.detach().numpy(), rtol=1e-4, atol=1e-5)
    sum(o.sum() for o in cpu_out).backward()
    sum(o.sum() for o in gpu_out).backward()
    for c, g in zip(cpu, gpu):
        assert type(g.grad.array).__module__.startswith("cupy")
        np.testing.assert_allclose(cupy.asnumpy(g.grad.array), c.grad.detach().numpy(), rtol=1e-4, atol=1e-5)
