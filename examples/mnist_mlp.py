"""A multilayer perceptron on the full MNIST set: about 98.9% test accuracy in 10 epochs.

    python examples/mnist_mlp.py [MNIST_DIR]
"""

import sys

import lamina
import lamina.nn as nn
from lamina import datasets, optim
from lamina.data import DataLoader, RandomShift, TensorDataset
from lamina.training import LearningRateScheduler

lamina.manual_seed(0)
try:
    (x_train, y_train), (x_test, y_test) = datasets.mnist(root=sys.argv[1] if len(sys.argv) > 1 else None)
except datasets.DatasetError:  # offline, most likely: say how to get the files, without a traceback
    sys.exit(f"mnist_mlp.py needs the full MNIST set and could not read or download it: put its four files "
             f"({', '.join(datasets.MNIST_FILES.values())}) in a folder and run: python examples/mnist_mlp.py FOLDER")
x_train, x_test = datasets.scale(x_train), datasets.scale(x_test)

model = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Dropout(0.2), nn.Linear(256, 128), nn.ReLU(),
                      nn.Dropout(0.2), nn.Linear(128, 10))
optimizer = optim.Adam(model.parameters())
model.compile(optimizer, loss="cross_entropy", metrics=["accuracy"])
batches = DataLoader(TensorDataset(x_train, y_train), batch_size=128, shuffle=True, transform=RandomShift(1))
schedule = optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, epochs=10, steps_per_epoch=len(batches))
model.fit(batches, epochs=10, validation_data=(x_test, y_test), callbacks=[LearningRateScheduler(schedule)],
          verbose=2)
print(f"test accuracy {model.evaluate(x_test, y_test)['accuracy']:.2%}")
