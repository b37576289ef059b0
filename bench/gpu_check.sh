#!/usr/bin/env bash
# Everything that needs a GPU, in one call of about two minutes on an H200 (CuPy, PyTorch CUDA and pytest
# installed): the GPU tests, the CPU-vs-GPU sweeps on real CuPy, the command line, then the GPU benchmark.
# Logs and the benchmark's JSON go to $OUT (default ./gpu-check).
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-gpu-check}
mkdir -p "$OUT"
echo "== GPU tests"
timeout 150 python3 -m pytest -p no:cacheprovider -q -rf tests/test_cuda.py tests/test_device_training.py \
    tests/test_cupy.py 2>&1 | tee "$OUT/cuda-tests.log" | tail -5
echo "== op and layer sweep on real CuPy"
LAMINA_DEVICE_TESTS=cuda timeout 90 python3 -m pytest -p no:cacheprovider -q -rf tests/test_device_ops.py 2>&1 \
    | tee "$OUT/device-ops.log" | tail -3
echo "== lamina train --device cuda"
(cd "$OUT" && timeout 60 python3 -m lamina train --device cuda --epochs 2 2>&1 | tail -3)
echo "== python -m bench --device cuda"
timeout 150 python3 -m bench --device cuda --repeats 3 --json "$OUT/bench-gpu.json" 2>&1 | tee "$OUT/bench.log" | tail -8
