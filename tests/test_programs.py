"""Idioms of real PyTorch programs (tutorials, pytorch/examples), run with `torch` naming lamina.

Each test is a few lines in the style of a program from the corpus described in the README; the programs
themselves are not kept here. `as_torch` runs a snippet with `import torch` pointed at lamina by a pure
name alias (sys.modules), as a user would.
"""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

ALIAS = """
import importlib, sys
import lamina
for name, target in {"torch": "lamina", "torch.nn": "lamina.nn", "torch.nn.functional": "lamina.nn.functional",
                     "torch.optim": "lamina.optim", "torch.optim.lr_scheduler": "lamina.optim.lr_scheduler",
                     "torch.autograd": "lamina.autograd", "torch.utils": "lamina.utils",
                     "torch.utils.data": "lamina.data", "torch.nn.init": "lamina.nn.init",
                     "torch.nn.parallel": "lamina.nn.parallel"}.items():
    sys.modules[name] = importlib.import_module(target)
"""


def as_torch(source):
    """Run `source` in a fresh interpreter with torch = lamina; return its stdout."""
    done = subprocess.run([sys.executable, "-c", ALIAS + textwrap.dedent(source)], capture_output=True, text=True,
                          cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": ""}, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_manual_gradient_descent_on_a_polynomial():
    # the examples_tensor / examples_autograd tutorials: keyword operands, -= under no_grad, grads set to None
    out = as_torch("""
        import math, torch
        x = torch.linspace(-math.pi, math.pi, 200)
        y = torch.sin(x)
        a, b = torch.zeros((), requires_grad=True), torch.zeros((), requires_grad=True)
        for t in range(50):
            loss = (a + b * x - y).pow(2).sum()
            loss.backward()
            with torch.no_grad():
                a -= 1e-3 * a.grad
                b -= 1e-3 * b.grad
                a.grad, b.grad = None, None
        grad_b = torch.matmul(input=x, other=x).sum()
        print(loss.item(), b.item(), grad_b.item() > 0)
    """)
    loss, b, positive = out.split()
    x = np.linspace(-np.pi, np.pi, 200)  # the same descent in float64 NumPy: the in-place updates must happen
    a_ref = b_ref = 0.0
    for _ in range(50):
        residual = a_ref + b_ref * x - np.sin(x)
        loss_ref = (residual ** 2).sum()
        a_ref, b_ref = a_ref - 1e-3 * 2 * residual.sum(), b_ref - 1e-3 * 2 * (residual * x).sum()
    assert np.isclose(float(loss), loss_ref, rtol=1e-4) and np.isclose(float(b), b_ref, rtol=1e-4)
    assert positive == "True"


def test_legacy_nlp_tutorial_idioms():
    # the NLP tutorials: autograd.Variable, LongTensor, Tensor([0]) accumulating loss.data, log_softmax without dim
    out = as_torch("""
        import warnings; warnings.simplefilter("ignore")
        import torch, torch.autograd as autograd, torch.nn as nn, torch.nn.functional as F, torch.optim as optim
        torch.manual_seed(1)
        emb, lin = nn.Embedding(5, 3), nn.Linear(6, 5)
        opt = optim.SGD(list(emb.parameters()) + list(lin.parameters()), lr=0.1)
        total = torch.Tensor([0])
        for _ in range(20):
            context = autograd.Variable(torch.LongTensor([1, 2]))
            log_probs = F.log_softmax(lin(emb(context).view((1, -1))))
            loss = nn.NLLLoss()(log_probs, autograd.Variable(torch.LongTensor([3])))
            opt.zero_grad(); loss.backward(); opt.step()
            total += loss.data
        print(total.dtype, total.shape, loss.item() < 1.6)
    """)
    assert out.split() == ["float32", "lamina.Size([1])", "True"]


def test_dataset_loader_training_loop_with_numpy_spellings():
    # quickstart / nn_tutorial: TensorDataset, DataLoader(shuffle, num_workers), argmax(1) == y, .type(torch.float)
    out = as_torch("""
        import torch
        from torch import nn
        from torch.utils.data import DataLoader, TensorDataset
        torch.manual_seed(0)
        x = torch.randn(64, 4); y = (x.sum(axis=1) > 0).long()
        loader = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True, num_workers=2)
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        for epoch in range(20):
            for xb, yb in loader:
                loss = nn.CrossEntropyLoss()(model(xb), yb)
                opt.zero_grad(); loss.backward(); opt.step()
        with torch.no_grad():
            correct = (model(x).argmax(1) == y).type(torch.float).sum().item()
        print(correct / 64 > 0.9)
    """)
    assert out.strip() == "True"


def test_lbfgs_with_a_closure_as_time_sequence_prediction_uses_it():
    out = as_torch("""
        import torch, torch.nn as nn, torch.optim as optim
        torch.manual_seed(0)
        model = nn.Linear(3, 1).double()
        x = torch.randn(32, 3, dtype=torch.double); y = x @ torch.tensor([[1.0], [-2.0], [0.5]], dtype=torch.double)
        optimizer = optim.LBFGS(model.parameters(), lr=0.8)
        def closure():
            optimizer.zero_grad()
            loss = nn.MSELoss()(model(x), y)
            loss.backward()
            return loss
        for _ in range(3):
            optimizer.step(closure)
        print(nn.MSELoss()(model(x), y).item() < 1e-8)
    """)
    assert out.strip() == "True"


@pytest.mark.parametrize("call", ["w.numpy()", "torch.add(w, 1, out=torch.zeros(2))"])
def test_what_pytorch_refuses_is_refused(call):
    with pytest.raises(AssertionError, match="requires grad"):
        as_torch(f"""
            import torch
            w = torch.ones(2, requires_grad=True)
            {call}
        """)
