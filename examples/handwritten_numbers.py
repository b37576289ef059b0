"""Reading handwritten notes: a network learns to read whole lines of 3 to 8 handwritten digits.

    python examples/handwritten_numbers.py [--epochs 6] [--lines 10000]

The lines are made from lamina's bundled MNIST digits (test lines from test digits only), side by side
with random gaps. Nobody tells the network where one digit ends and the next begins: convolutions turn
each column of the line into features, a bidirectional GRU reads them left to right and right to left,
and every frame (4 columns) says which digit it sees, or "blank". CTC, the loss, adds up every way of
placing the right digits in the frames, so the network learns where the digits are by itself. Greedy
decoding reads the best class per frame, merges repeats and drops blanks. The measure: the fraction of
5-digit test lines read entirely right. Written as a PyTorch user would write the loop.
"""

import argparse

import numpy as np

import lamina
import lamina.nn.functional as F
from lamina import datasets, models, optim

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=6)
parser.add_argument("--lines", type=int, default=10_000, help="training lines")
args = parser.parse_args()

lamina.manual_seed(0)
(x_train, y_train, _), (x_test, y_test, _) = datasets.number_lines(n_train=args.lines, n_test=1000)
x_train, x_test = datasets.scale(x_train)[:, None], datasets.scale(x_test)[:, None]  # (N, 1, 28, 224) in [0, 1]
reader = models.LineReader()
optimizer = optim.Adam(reader.parameters())
batches = lamina.data.DataLoader(lamina.data.TensorDataset(x_train, y_train), batch_size=32, shuffle=True)
schedule = optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, epochs=args.epochs, steps_per_epoch=len(batches))


def read(lines):
    with lamina.no_grad():
        reader.eval()
        return [d for i in range(0, len(lines), 250)
                for d in models.ctc_greedy_decode(reader(lamina.tensor(lines[i:i + 250])))]


def right(lines, targets):
    return np.mean([digits == t[t != datasets.PAD].tolist() for digits, t in zip(read(lines), targets)])


for epoch in range(args.epochs):
    reader.train()
    for x, y in batches:
        scores = reader(x)  # (batch, frames, 11): blank, then the digits 0-9
        log_probs = F.log_softmax(scores, 2).permute(1, 0, 2)  # (frames, batch, 11), as ctc_loss takes it
        lengths = (y != datasets.PAD).sum(1)
        loss = F.ctc_loss(log_probs, lamina.where(y != datasets.PAD, y + 1, 0), [log_probs.shape[0]] * len(y), lengths)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    print(f"epoch {epoch + 1}: CTC loss {loss.item():.4f}, test lines read right {right(x_test, y_test):.1%}")

_, (x5, y5, _) = datasets.number_lines(n_train=1, n_test=1000, digits_per_line=5)
print(f"5-digit test lines read entirely right: {right(datasets.scale(x5)[:, None], y5):.1%}")
for digits, truth in list(zip(read(x_test[:5]), y_test[:5])):
    print("read", "".join(map(str, digits)), "  written", "".join(str(d) for d in truth if d >= 0))
