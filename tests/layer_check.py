"""One call per layer: weights, first and second derivatives, state dict, a training step (Keras's run_layer_test)."""

import numpy as np

import lamina
import lamina.nn.functional as F


def check_layer(make, shape, second_order=True, train_step=True):
    layer = make().double()
    layer.eval()  # deterministic: dropout off, batch norm on running statistics
    x = lamina.randn(*shape, dtype=lamina.float64, requires_grad=True)
    params = list(layer.parameters())
    assert lamina.gradcheck(lambda x, *ps: layer(x), [x, *params])
    if second_order:
        assert lamina.gradgradcheck(lambda x, *ps: layer(x), [x, *params])

    clone = make().double()
    clone.eval()
    clone.load_state_dict(layer.state_dict())
    np.testing.assert_array_equal(clone(x).detach().numpy(), layer(x).detach().numpy())

    layer.train()
    if params and train_step:
        target = lamina.randn(*layer(x).shape, dtype=lamina.float64)
        before = F.mse_loss(layer(x), target).item()
        for _ in range(3):
            layer.zero_grad()
            F.mse_loss(layer(x), target).backward()
            for p in params:
                p.data -= 0.02 * p.grad.data
        assert F.mse_loss(layer(x), target).item() < before
