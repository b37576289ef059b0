"""The essay's story with nothing but tensors: a network learns to admit students.

Each student has two features, a grade and a test score (both in [0, 1]); the
college admits those with both at least 0.5. A 2-8-1 network starts with random
weights, makes predictions, a loss function scores them, backpropagation turns
the score into gradients, and plain gradient descent moves the weights. Repeat
for epochs and watch the loss fall.

    python examples/first_network.py
"""

import numpy as np

import lamina

lamina.manual_seed(0)
rng = np.random.default_rng(0)

# The data: 400 students, admitted when grade and test score are both at least half the maximum.
features = rng.uniform(0, 1, size=(400, 2)).astype(np.float32)
admitted = ((features[:, :1] >= 0.5) & (features[:, 1:] >= 0.5)).astype(np.float32)
x, y = lamina.tensor(features), lamina.tensor(admitted)

# The layers: weights start random.
w1 = (lamina.randn(2, 8) * 1.0).requires_grad_()
b1 = lamina.zeros(8, requires_grad=True)
w2 = (lamina.randn(8, 1) * 0.5).requires_grad_()
b2 = lamina.zeros(1, requires_grad=True)
params = [w1, b1, w2, b2]

learning_rate = 1.0
for epoch in range(1, 401):
    logits = ((x - 0.5) @ w1 + b1).tanh() @ w2 + b2  # predictions (as logits)
    loss = lamina.binary_cross_entropy_with_logits(logits, y)  # how far from the targets
    for p in params:
        p.grad = None
    loss.backward()  # backpropagation
    for p in params:  # the optimizer: plain gradient descent
        p.data -= learning_rate * p.grad.data
    if epoch == 1 or epoch % 50 == 0:
        accuracy = ((logits.detach().numpy() > 0) == (admitted > 0.5)).mean()
        print(f"epoch {epoch:4d}  loss {loss.item():.4f}  accuracy {accuracy:.1%}")
