"""The benchmark workloads, each in lamina and in PyTorch, on synthetic data (float32 of MNIST's shape for W1-W3).

Each workload gives a setup for either framework that returns a callable running it once, the training
workloads (W1, W2, W4, W5) continuing the same model from call to call (see FRESH); `flop` is the multiply-add
work counted at 2 FLOP each, for the achieved fraction of the matrix-product ceiling.
"""

from dataclasses import dataclass

import numpy as np

import lamina
import lamina.nn as nn
import lamina.nn.functional as F
from bench.overhead import make_problem
from bench.overhead import train_lamina as w3_lamina
from bench.overhead import train_torch as w3_torch

MLP_MACS = 784 * 256 + 256 * 128 + 128 * 10
# A convolution of C in, O out, k x k, on an H x W output does H W O C k^2 multiply-adds.
CNN_MACS = 26 * 26 * 32 * 1 * 9 + 11 * 11 * 64 * 32 * 9 + 1600 * 128 + 128 * 10
CNN_FIRST_LAYER_MACS = 26 * 26 * 32 * 9  # it needs no input gradient


@dataclass
class Workload:
    name: str
    description: str
    flop: float
    lamina: object  # () -> callable
    torch: object  # (torch) -> callable
    targets: dict  # threads label -> largest acceptable ratio lamina / PyTorch


def _data(samples, image=False, seed=0):
    rng = np.random.default_rng(seed)
    shape = (samples, 1, 28, 28) if image else (samples, 784)
    return rng.random(shape, dtype=np.float32), rng.integers(0, 10, samples)


def mlp(module):
    return module.Sequential(module.Linear(784, 256), module.ReLU(), module.Linear(256, 128), module.ReLU(),
                             module.Linear(128, 10))


def cnn(module):
    return module.Sequential(module.Conv2d(1, 32, 3), module.ReLU(), module.MaxPool2d(2), module.Conv2d(32, 64, 3),
                             module.ReLU(), module.MaxPool2d(2), module.Flatten(), module.Linear(1600, 128),
                             module.ReLU(), module.Linear(128, 10))


def _weights(build):
    lamina.manual_seed(0)
    return {k: v.numpy().copy() for k, v in build(nn).state_dict().items()}


def _lamina_model(build, weights):
    model = build(nn)
    model.load_state_dict(weights)
    return model


def _torch_model(torch, build, weights):
    model = build(torch.nn)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    return model


# Training runs continue one model across calls (the steady state of a real run, where Adam's state has filled
# with tiny values) unless FRESH is set (python -m bench --fresh): then each call starts from the initial weights.
FRESH = False


def lamina_training(build, samples, image, batch=128):
    x, y = _data(samples, image)
    weights = _weights(build)
    model = opt = None

    def run():
        nonlocal model, opt
        if FRESH or model is None:
            model = _lamina_model(build, weights)
            opt = lamina.optim.Adam(model.parameters(), lr=1e-3)
        for start in range(0, samples, batch):
            inputs, labels = lamina.from_numpy(x[start:start + batch]), lamina.from_numpy(y[start:start + batch])
            loss = F.cross_entropy(model(inputs), labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return loss.item()

    return run


def torch_training(torch, build, samples, image, batch=128):
    x, y = _data(samples, image)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    weights = _weights(build)
    model = opt = None

    def run():
        nonlocal model, opt
        if FRESH or model is None:
            model = _torch_model(torch, build, weights)
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for start in range(0, samples, batch):
            loss = torch.nn.functional.cross_entropy(model(x[start:start + batch]), y[start:start + batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
        return loss.item()

    return run


def lamina_fit(samples=60_000, batch=128):
    x, y = _data(samples)
    weights = _weights(mlp)

    def run():
        model = _lamina_model(mlp, weights)
        model.compile(lamina.optim.Adam(model.parameters(), lr=1e-3), "cross_entropy")
        history = model.fit(x, y, epochs=1, batch_size=batch, shuffle=False, verbose=0)
        return history.history["loss"][-1]

    return run


def lamina_inference(samples=10_000, batch=1000):
    x, _ = _data(samples)
    model = _lamina_model(mlp, _weights(mlp)).eval()

    def run():
        with lamina.no_grad():
            return sum(float(model(lamina.from_numpy(x[i:i + batch])).array[0, 0]) for i in range(0, samples, batch))

    return run


def torch_inference(torch, samples=10_000, batch=1000):
    x, _ = _data(samples)
    x = torch.from_numpy(x)
    model = _torch_model(torch, mlp, _weights(mlp)).eval()

    def run():
        with torch.inference_mode():
            return sum(float(model(x[i:i + batch])[0, 0]) for i in range(0, samples, batch))

    return run


def _w3(framework, torch=None):
    x, y, weights = make_problem()
    if framework == "lamina":
        return lambda: w3_lamina(x, y, weights, 1000)
    return lambda: w3_torch(torch, x, y, weights, 1000)


# --- sequences: W4 (LSTM classifier) and W5 (character Transformer) ---------------------------------------------
W4_SEQUENCES, W4_STEPS, W4_FEATURES, W4_HIDDEN, W4_BATCH = 2000, 100, 40, 128, 64
W5_LAYERS, W5_D, W5_HEADS, W5_CONTEXT, W5_VOCAB, W5_BATCH, W5_STEPS = 4, 64, 4, 32, 27, 64, 200
# Per sample and time step, an LSTM layer does 4H (F + H) multiply-adds: its gates' two products.
W4_MACS = W4_STEPS * 4 * W4_HIDDEN * ((W4_FEATURES + W4_HIDDEN) + (2 * W4_HIDDEN)) + W4_HIDDEN * 10
# Per token and layer: q, k, v and out projections, the feed-forward pair (4 d wide), and q k^T, weights v.
W5_MACS = W5_CONTEXT * (W5_LAYERS * (4 * W5_D**2 + 2 * 4 * W5_D**2 + 2 * W5_CONTEXT * W5_D) + W5_D * W5_VOCAB)


def lstm_classifier(m):
    """LSTM(40, 128, num_layers=2, batch_first=True), then Linear(128, 10) on the last step's output."""

    class LSTMClassifier(m.Module):
        def __init__(self):
            super().__init__()
            self.lstm = m.LSTM(W4_FEATURES, W4_HIDDEN, num_layers=2, batch_first=True)
            self.head = m.Linear(W4_HIDDEN, 10)

        def forward(self, x):
            return self.head(self.lstm(x)[0][:, -1])

    return LSTMClassifier()


def char_transformer(m):
    """A GPT-style character model: token and position embeddings, 4 pre-norm causal encoder layers, a head."""

    class CharTransformer(m.Module):
        def __init__(self):
            super().__init__()
            self.tokens, self.positions = m.Embedding(W5_VOCAB, W5_D), m.Embedding(W5_CONTEXT, W5_D)
            layer = m.TransformerEncoderLayer(W5_D, W5_HEADS, 4 * W5_D, dropout=0.0, batch_first=True,
                                              norm_first=True)
            self.encoder = m.TransformerEncoder(layer, W5_LAYERS, norm=m.LayerNorm(W5_D),
                                                **({} if m is nn else {"enable_nested_tensor": False}))
            self.head = m.Linear(W5_D, W5_VOCAB)

        def forward(self, tokens, positions, mask):
            h = self.tokens(tokens) + self.positions(positions)
            return self.head(self.encoder(h, mask=mask, is_causal=True))

    return CharTransformer()


def _sequence_data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((W4_SEQUENCES, W4_STEPS, W4_FEATURES), dtype=np.float32)
    return x, rng.integers(0, 10, W4_SEQUENCES)


def _text_data(seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, W5_VOCAB, (W5_STEPS, W5_BATCH, W5_CONTEXT + 1))


def lamina_w4():
    x, y = _sequence_data()
    weights = _weights(lstm_classifier)

    model = opt = None

    def run():
        nonlocal model, opt
        if FRESH or model is None:
            model = _lamina_model(lstm_classifier, weights)
            opt = lamina.optim.Adam(model.parameters(), lr=1e-3)
        for start in range(0, W4_SEQUENCES, W4_BATCH):
            loss = F.cross_entropy(model(lamina.from_numpy(x[start:start + W4_BATCH])),
                                   lamina.from_numpy(y[start:start + W4_BATCH]))
            opt.zero_grad()
            loss.backward()
            opt.step()
        return loss.item()

    return run


def torch_w4(torch):
    x, y = _sequence_data()
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    weights = _weights(lstm_classifier)

    model = opt = None

    def run():
        nonlocal model, opt
        if FRESH or model is None:
            model = _torch_model(torch, lstm_classifier, weights)
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for start in range(0, W4_SEQUENCES, W4_BATCH):
            loss = torch.nn.functional.cross_entropy(model(x[start:start + W4_BATCH]), y[start:start + W4_BATCH])
            opt.zero_grad()
            loss.backward()
            opt.step()
        return loss.item()

    return run


def lamina_w5():
    text = _text_data()
    weights = _weights(char_transformer)
    positions = lamina.from_numpy(np.arange(W5_CONTEXT))
    mask = nn.Transformer.generate_square_subsequent_mask(W5_CONTEXT)

    model = opt = None

    def run():
        nonlocal model, opt
        if FRESH or model is None:
            model = _lamina_model(char_transformer, weights)
            opt = lamina.optim.AdamW(model.parameters(), lr=1e-3)
        for batch in text:
            logits = model(lamina.from_numpy(batch[:, :-1]), positions, mask)
            loss = F.cross_entropy(logits.reshape(-1, W5_VOCAB), lamina.from_numpy(batch[:, 1:].reshape(-1)))
            opt.zero_grad()
            loss.backward()
            opt.step()
        return loss.item()

    return run


def torch_w5(torch):
    text = torch.from_numpy(_text_data())
    weights = _weights(char_transformer)
    positions = torch.arange(W5_CONTEXT)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(W5_CONTEXT)

    model = opt = None

    def run():
        nonlocal model, opt
        if FRESH or model is None:
            model = _torch_model(torch, char_transformer, weights)
            opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        for batch in text:
            logits = model(batch[:, :-1], positions, mask)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, W5_VOCAB), batch[:, 1:].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
        return loss.item()

    return run


# The targets are the issues': W1-W3 and INF from "use every core" (issue 11), W4 and W5 from "sequences" (issue 9).
WORKLOADS = [
    Workload("W1", "MLP 784-256-128-10, Adam, batch 128, 60,000 samples",
             2 * (3 * MLP_MACS - 784 * 256) * 60_000,
             lambda: lamina_training(mlp, 60_000, False), lambda torch: torch_training(torch, mlp, 60_000, False),
             {"1 thread": 0.6, "default threads": 0.6}),
    Workload("W2", "CNN (conv 32, pool, conv 64, pool, 128, 10), Adam, batch 128, 10,000 samples",
             2 * (3 * CNN_MACS - CNN_FIRST_LAYER_MACS) * 10_000,
             lambda: lamina_training(cnn, 10_000, True), lambda torch: torch_training(torch, cnn, 10_000, True),
             {"1 thread": 0.7, "default threads": 0.9}),
    Workload("W3", "2-16-16-1 tanh, 1,000 full-batch SGD steps on 1,000 points",
             2 * 3 * (2 * 16 + 16 * 16 + 16) * 1000 * 1000,
             lambda: _w3("lamina"), lambda torch: _w3("torch", torch),
             {"1 thread": 0.5, "default threads": 0.5}),
    Workload("INF", "W1's model, inference on 10,000 samples in batches of 1,000",
             2 * MLP_MACS * 10_000, lamina_inference, torch_inference, {"1 thread": 0.8, "default threads": 0.8}),
    Workload("W4", "LSTM(40, 128, 2 layers) + Linear 10, Adam, batch 64, 2,000 sequences of 100 steps",
             2 * 3 * W4_MACS * W4_SEQUENCES, lamina_w4, torch_w4, {"1 thread": 0.9}),
    Workload("W5", "char Transformer (4 layers, d 64, 4 heads, context 32, vocab 27), AdamW, batch 64, 200 steps",
             2 * 3 * W5_MACS * W5_BATCH * W5_STEPS, lamina_w5, torch_w5, {"1 thread": 0.9}),
]
