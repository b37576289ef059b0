"""Understanding speech: a small convolutional network learns to hear the digits 0-9, spoken by six people.

    python examples/spoken_digits.py [--epochs 10] [--test-speaker theo]

The Free Spoken Digit Dataset (3,000 recordings at 8 kHz, CC BY-SA 4.0) is read from $LAMINA_DATA/fsdd/
(or ~/.cache/lamina/fsdd/, downloaded there once). Each recording becomes a log-mel spectrogram: 80
frames of 10 ms, 40 bands of pitch. The network treats the bands as channels and slides its filters along
time, so it hears a word wherever in the recording it starts. The official split tests on recordings 0-4
of every speaker and digit; --test-speaker holds out one voice entirely, a harder question: can it
understand someone it never heard?
"""

import argparse
import time

import lamina
from lamina import datasets, models, optim
from lamina.training import LearningRateScheduler

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--test-speaker", choices=datasets.SPEAKERS)
args = parser.parse_args()

lamina.manual_seed(0)
(x_train, y_train, _), (x_test, y_test, speakers) = datasets.spoken_digits(args.test_speaker, features="logmel")
print(f"{len(x_train):,} training recordings, {len(x_test):,} test recordings by {', '.join(sorted(set(speakers)))}; "
      f"each a spectrogram of {x_train.shape[1]} frames x {x_train.shape[2]} bands")

model = models.speech_cnn()  # bands as channels, 3 blocks of conv along time + batch norm + ReLU + pooling
print(model)
optimizer = optim.Adam(model.parameters())
model.compile(optimizer, loss="cross_entropy", metrics=["accuracy"])
schedule = optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, epochs=args.epochs,
                                         steps_per_epoch=-(-len(x_train) // 64))
start = time.perf_counter()
model.fit(x_train, y_train, epochs=args.epochs, batch_size=64, validation_data=(x_test, y_test),
          callbacks=[LearningRateScheduler(schedule)], verbose=2)
accuracy = model.evaluate(x_test, y_test)["accuracy"]
print(f"Test accuracy: {accuracy:.2%} after {time.perf_counter() - start:.0f} s")
