"""Optimizers and schedules: they minimize, keep float32, save and restore their state."""

import numpy as np
import pytest

import lamina
import lamina.nn as nn
import lamina.nn.functional as F
from lamina import optim

OPTIMIZERS = [
    lambda ps: optim.SGD(ps, lr=0.1),
    lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    lambda ps: optim.Adam(ps, lr=0.03),
    lambda ps: optim.Adam(ps, lr=0.03, amsgrad=True, weight_decay=1e-3),
    lambda ps: optim.AdamW(ps, lr=0.03),
    lambda ps: optim.RMSprop(ps, lr=0.01),
    lambda ps: optim.RMSprop(ps, lr=0.01, momentum=0.5, centered=True),
    lambda ps: optim.Adagrad(ps, lr=0.1),
]


def _problem():
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal((64, 4))
    x = lamina.tensor(x_np.astype(np.float32))
    y = lamina.tensor(np.tanh(x_np @ rng.standard_normal((4, 1))).astype(np.float32))
    return x, y


@pytest.mark.parametrize("make", OPTIMIZERS)
def test_optimizer_minimizes_and_stays_float32(make):
    x, y = _problem()
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    opt = make(model.parameters())
    first = None
    for _ in range(200):
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.5 * first
    assert all(p.dtype == lamina.float32 for p in model.parameters())
    for state in opt.state.values():
        assert all(v.dtype == np.float32 for v in state.values() if isinstance(v, np.ndarray))


@pytest.mark.parametrize("make", OPTIMIZERS)
def test_state_dict_resumes_exactly(make):
    x, y = _problem()

    def run(model, opt, steps):
        for _ in range(steps):
            opt.zero_grad()
            F.mse_loss(model(x), y).backward()
            opt.step()

    lamina.manual_seed(1)
    a = nn.Linear(4, 1)
    opt_a = make(a.parameters())
    run(a, opt_a, 10)
    b = nn.Linear(4, 1)
    b.load_state_dict(a.state_dict())
    opt_b = make(b.parameters())
    opt_b.load_state_dict(opt_a.state_dict())
    run(a, opt_a, 5)
    run(b, opt_b, 5)
    np.testing.assert_array_equal(a.weight.detach().numpy(), b.weight.detach().numpy())


def test_param_groups_and_zero_grad():
    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    opt = optim.SGD([{"params": a.parameters()}, {"params": b.parameters(), "lr": 0.5}], lr=0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    (a(lamina.ones(1, 2)).sum() + b(lamina.ones(1, 2)).sum()).backward()
    before = b.bias.detach().numpy().copy()
    opt.step()
    np.testing.assert_allclose(b.bias.detach().numpy(), before - 0.5)
    opt.zero_grad()
    assert a.weight.grad is None
    with pytest.raises(ValueError, match="more than one group"):
        opt.add_param_group({"params": a.parameters()})


def test_optimizer_rejects_bad_arguments():
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.Adam([])
    with pytest.raises(ValueError, match="invalid lr"):
        optim.SGD(nn.Linear(1, 1).parameters(), lr=-1)


def _lrs(make_scheduler, steps, optimizer_factory=lambda p: optim.SGD(p, lr=0.1, momentum=0.9)):
    opt = optimizer_factory([lamina.zeros(1, requires_grad=True)])
    sched = make_scheduler(opt)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_schedules_shape():
    assert _lrs(lambda o: optim.lr_scheduler.StepLR(o, 2, 0.5), 5) == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    assert _lrs(lambda o: optim.lr_scheduler.MultiStepLR(o, [1, 3]), 4) == pytest.approx([0.1, 0.01, 0.01, 0.001])
    cosine = _lrs(lambda o: optim.lr_scheduler.CosineAnnealingLR(o, 4), 5)
    assert cosine[0] == pytest.approx(0.1) and cosine[2] == pytest.approx(0.05) and cosine[4] == pytest.approx(0)
    one_cycle = _lrs(lambda o: optim.lr_scheduler.OneCycleLR(o, max_lr=1.0, total_steps=10), 10)
    assert one_cycle[0] == pytest.approx(0.04) and max(one_cycle) == pytest.approx(1.0, rel=0.05)
    assert one_cycle[-1] < 1e-4


def test_reduce_lr_on_plateau():
    opt = optim.SGD([lamina.zeros(1, requires_grad=True)], lr=1.0)
    sched = optim.lr_scheduler.ReduceLROnPlateau(opt, patience=1, factor=0.5)
    for value in [1.0, 0.5, 0.5, 0.5, 0.5]:
        sched.step(value)
    assert opt.param_groups[0]["lr"] == 0.5


def test_lbfgs_minimizes_a_quadratic_and_keeps_its_state():
    target = lamina.tensor([3.0, -2.0, 0.5])
    w = lamina.zeros(3, requires_grad=True)
    opt = lamina.optim.LBFGS([w], line_search_fn="strong_wolfe", history_size=3)

    def closure():
        opt.zero_grad()
        loss = (((w - target) * lamina.tensor([1.0, 10.0, 100.0])) ** 2).sum()
        loss.backward()
        return loss

    first = opt.step(closure)
    assert isinstance(first, lamina.Tensor) and first.item() > 100  # the loss before the step, as the closure gave it
    assert np.allclose(w.detach().numpy(), target.numpy(), atol=1e-4)
    state = opt.state_dict()
    again = lamina.optim.LBFGS([lamina.zeros(3, requires_grad=True)], history_size=3)
    again.load_state_dict(state)
    assert again.state_dict()["state"][0]["n_iter"] == state["state"][0]["n_iter"] > 0
    with pytest.raises(ValueError, match="line_search_fn must be None or 'strong_wolfe'"):
        lamina.optim.LBFGS([w], line_search_fn="wolfe")
    with pytest.raises(RuntimeError, match="LBFGS.step needs a closure"):
        opt.step(None)


def test_scheduler_refuses_a_crafted_state():
    optimizer = lamina.optim.SGD(lamina.nn.Linear(2, 2).parameters(), lr=0.1)
    schedule = lamina.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=10)
    schedule.load_state_dict(schedule.state_dict())  # its own state goes back
    for bad, field in [({"last_epoch": "3"}, "last_epoch"), ({"optimizer": None}, "optimizer"),
                       ({"base_lrs": [0.1, 0.2]}, "base_lrs"), ({"total_steps": float("nan")}, "total_steps")]:
        with pytest.raises(ValueError, match=f"OneCycleLR.load_state_dict: '{field}'"):
            schedule.load_state_dict(bad)
    assert schedule.total_steps == 10 and schedule.last_epoch == 0
