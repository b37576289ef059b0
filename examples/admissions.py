"""The essay's college-admissions classifier, with layers, a loss and an optimizer.

Each student has a grade and a test score (fractions of the maximum); the college
admits those with both at least one half, and a few labels are noisy. A 2-16-1
network with a sigmoid output starts from random weights and learns, epoch by
epoch, a change of coordinates under which admitted and rejected students fall
apart: watch the loss fall.

    python examples/admissions.py
"""

import numpy as np

import lamina
import lamina.nn as nn
from lamina import datasets, optim

lamina.manual_seed(0)
X, y = datasets.admissions(n=400, noise=0.05, seed=0)
X_test, y_test = datasets.admissions(n=400, noise=0.0, seed=1)  # the rule itself, to measure against

model = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 1), nn.Sigmoid())
model.compile(optim.Adam(model.parameters(), lr=0.02), loss="binary_cross_entropy", metrics=["accuracy"])

# Centering the inputs lets the tanh units start in their responsive range. verbose=2: one line per epoch.
model.fit(X - 0.5, y.astype(np.float32), epochs=40, batch_size=16, verbose=2)

results = model.evaluate(X_test - 0.5, y_test.astype(np.float32))
print(f"accuracy on 400 new students: {results['accuracy']:.1%}")
