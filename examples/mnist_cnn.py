"""A small convolutional network on the full MNIST set: about 99.4% test accuracy in 5 epochs.

    python examples/mnist_cnn.py [MNIST_DIR]

MNIST_DIR holds the four MNIST .gz files (default: $LAMINA_DATA/mnist or
~/.cache/lamina/mnist, downloaded there if missing).
"""

import sys
import time

import lamina
import lamina.nn as nn
from lamina import datasets, optim
from lamina.data import DataLoader, RandomShift, TensorDataset
from lamina.training import LearningRateScheduler

lamina.manual_seed(0)
try:
    (x_train, y_train), (x_test, y_test) = datasets.mnist(root=sys.argv[1] if len(sys.argv) > 1 else None)
except datasets.DatasetError:  # offline, most likely: say how to get the files, without a traceback
    sys.exit(f"mnist_cnn.py needs the full MNIST set and could not read or download it: put its four files "
             f"({', '.join(datasets.MNIST_FILES.values())}) in a folder and run: python examples/mnist_cnn.py FOLDER")
x_train, x_test = datasets.scale(x_train)[:, None], datasets.scale(x_test)[:, None]  # (N, 1, 28, 28) in [0, 1]

model = nn.Sequential(
    nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),  # 32 feature maps of 13x13
    nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),  # 64 feature maps of 5x5
    nn.Flatten(), nn.Linear(64 * 5 * 5, 128), nn.ReLU(), nn.Dropout(0.25),
    nn.Linear(128, 10),
)
optimizer = optim.Adam(model.parameters())
model.compile(optimizer, loss="cross_entropy", metrics=["accuracy"])

epochs = 5
batches = DataLoader(TensorDataset(x_train, y_train), batch_size=128, shuffle=True, transform=RandomShift(1))
schedule = optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, epochs=epochs, steps_per_epoch=len(batches))
start = time.perf_counter()
model.fit(batches, epochs=epochs, validation_data=(x_test, y_test), callbacks=[LearningRateScheduler(schedule)],
          verbose=2)
results = model.evaluate(x_test, y_test)
print(f"test accuracy {results['accuracy']:.2%} after {time.perf_counter() - start:.0f}s")
