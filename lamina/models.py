"""Ready-made networks for the essay's tasks, built from lamina.nn layers, and what reads their outputs.

- `mlp` and `cnn`: handwritten digits (and the 2-D toy sets), one image in, ten class scores out.
- `speech_cnn`: spoken digits. A log-mel spectrogram (frames, bands) goes in; each band is a channel
  and the convolutions slide along time, so the network hears a word wherever it starts.
- `LineReader`: a line of handwritten digits. Convolutions turn each column into features, a
  bidirectional GRU reads the columns left to right and right to left, and every frame (4 columns)
  gets scores for blank and the ten digits; CTC (`line_ctc_loss`) trains it without ever being told
  where a digit is, and `ctc_greedy_decode` reads the scores back as digits.
- `CharTransformer` and `CharGRU`: names, one character at a time. Each position predicts the next
  character from the ones before it; `sample_names` draws new names from either.
"""

import numpy as np

from lamina import backend, ops
from lamina.autograd import Tensor, no_grad
from lamina.creation import arange, tensor
from lamina.datasets.lines import PAD
from lamina.datasets.text import VOCABULARY, decode
from lamina.nn import functional as F
from lamina.nn.attention import TransformerEncoder, TransformerEncoderLayer, generate_square_subsequent_mask
from lamina.nn.conv import AdaptiveAvgPool2d, Conv2d, MaxPool2d
from lamina.nn.layers import Dropout, Embedding, Flatten, Linear, ReLU
from lamina.nn.module import Module, Sequential
from lamina.nn.normalization import BatchNorm2d, LayerNorm
from lamina.nn.recurrent import GRU


# --- digits ---------------------------------------------------------------------------------------
def mlp(input_shape, hidden, classes, dropout=0.0):
    """Flatten, then Linear + ReLU (+ Dropout) per hidden width, then a Linear to the class scores."""
    layers = [Flatten()] if len(input_shape) > 1 else []
    width = int(np.prod(input_shape))
    for size in hidden:
        layers += [Linear(width, size), ReLU()]
        if dropout:
            layers.append(Dropout(dropout))
        width = size
    layers.append(Linear(width, classes))
    return Sequential(*layers)


def cnn(in_channels, classes, dropout=0.0):
    """Conv 32 3x3, ReLU, MaxPool 2, Conv 64 3x3, ReLU, MaxPool 2, Flatten, Linear 128, ReLU, Linear, for 28x28."""
    layers = [Conv2d(in_channels, 32, 3), ReLU(), MaxPool2d(2), Conv2d(32, 64, 3), ReLU(),
              MaxPool2d(2), Flatten(), Linear(64 * 5 * 5, 128), ReLU()]
    if dropout:
        layers.append(Dropout(dropout))
    return Sequential(*layers, Linear(128, classes))


# --- speech ---------------------------------------------------------------------------------------
class BandsAsChannels(Module):
    """(N, frames, bands) spectrograms -> (N, bands, frames, 1): each band a channel, time the height."""

    def forward(self, x):
        if x.ndim != 3:
            raise ValueError(f"BandsAsChannels: expected spectrograms (N, frames, bands), got shape {x.shape}")
        return ops.unsqueeze(ops.permute(x, (0, 2, 1)), 3)


def speech_cnn(bands=40, classes=10, dropout=0.2):
    """Three blocks of convolution along time (5, 5 and 3 frames wide), batch norm, ReLU and pooling
    that halves the frames, then the average over time and a Linear to the class scores."""
    def block(channels_in, channels_out, width):
        return [Conv2d(channels_in, channels_out, (width, 1), padding=(width // 2, 0)), BatchNorm2d(channels_out),
                ReLU(), MaxPool2d((2, 1))]

    return Sequential(BandsAsChannels(), *block(bands, 64, 5), *block(64, 64, 5), *block(64, 128, 3),
                      AdaptiveAvgPool2d(1), Flatten(), Dropout(dropout), Linear(128, classes))


# --- lines of handwritten digits ----------------------------------------------------------------------
BLANK = 0  # CTC's "no new digit here"; digit d is class d + 1


class LineReader(Module):
    """Reads a line of digits: (N, 1, height, width) or (N, height, width) images in [0, 1] ->
    (N, width // 4, 1 + digits) scores per frame, class 0 the CTC blank.

    >>> reader = lamina.models.LineReader()
    >>> reader(lamina.zeros(2, 1, 28, 112)).shape
    lamina.Size([2, 28, 11])
    """

    def __init__(self, height=28, digits=10, hidden=128, channels=(32, 64, 64)):
        super().__init__()
        if height % 4 or len(channels) < 2:
            raise ValueError(f"LineReader: height must be a multiple of 4 and channels name at least two "
                             f"convolution blocks (each of the first two halves the picture), got height {height}, "
                             f"channels {channels}")
        self.height = height
        blocks, previous = [], 1
        for i, width in enumerate(channels):  # blocks after the second see wider strokes at the same frame rate
            blocks += [Conv2d(previous, width, 3, padding=1), BatchNorm2d(width), ReLU()]
            blocks += [MaxPool2d(2)] if i < 2 else []
            previous = width
        self.features = Sequential(*blocks)
        self.project = Linear(previous * (height // 4), hidden)
        self.rnn = GRU(hidden, hidden, batch_first=True, bidirectional=True)
        self.classify = Linear(2 * hidden, digits + 1)

    def forward(self, x):
        if x.ndim == 3:
            x = ops.unsqueeze(x, 1)
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[2] != self.height or x.shape[3] < 4:
            raise ValueError(f"LineReader: expected lines of shape (N, 1, {self.height}, width >= 4), got {x.shape}")
        columns = self.features(x)  # (N, C, height / 4, width / 4)
        n, c, h, w = columns.shape
        frames = ops.reshape(ops.permute(columns, (0, 3, 1, 2)), (n, w, c * h))
        out, _ = self.rnn(F.relu(self.project(frames)))
        return self.classify(out)


def line_ctc_loss(scores, targets):
    """CTC loss of (N, T, classes) frame scores against (N, most) digit targets padded with PAD (-1)."""
    t = targets._host_array() if isinstance(targets, Tensor) else np.asarray(targets)  # lengths: host work
    log_probs = ops.permute(F.log_softmax(scores, 2), (1, 0, 2))  # (T, N, C), as ctc_loss wants
    lengths = (t != PAD).sum(1)
    labels = backend.to_device(np.where(t != PAD, t + 1, BLANK), scores.device)  # with the scores, on a GPU too
    return F.ctc_loss(log_probs, labels, np.full(len(t), log_probs.shape[0]), lengths, blank=BLANK)


def ctc_greedy_decode(scores):
    """The digits read from (N, T, classes) scores: the best class per frame, repeats merged, blanks dropped."""
    best = (scores._host_array() if isinstance(scores, Tensor) else np.asarray(scores)).argmax(-1)
    changes = np.ones_like(best, dtype=bool)
    changes[:, 1:] = best[:, 1:] != best[:, :-1]
    return [[int(k) - 1 for k in row[keep] if k != BLANK] for row, keep in zip(best, changes)]


# --- names ------------------------------------------------------------------------------------------
VOCAB_SIZE = len(VOCABULARY)  # 27: '.' and a-z

class CharTransformer(Module):
    """A causal character-level Transformer: (N, T) character indices -> (N, T, vocabulary) next-character
    scores, position t seeing characters 0..t only. Token and position embeddings, `num_layers`
    pre-norm encoder layers with a causal mask, a final LayerNorm and a Linear to the vocabulary.

    >>> model = lamina.models.CharTransformer(context=16)
    >>> model(lamina.tensor([[0, 1, 22, 1]])).shape
    lamina.Size([1, 4, 27])
    """

    def __init__(self, vocab_size=VOCAB_SIZE, context=16, d_model=64, nhead=4, num_layers=4,
                 dim_feedforward=256, dropout=0.0):
        super().__init__()
        self.context = context
        self.token = Embedding(vocab_size, d_model)
        self.position = Embedding(context, d_model)
        layer = TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout, batch_first=True, norm_first=True)
        self.encoder = TransformerEncoder(layer, num_layers)
        self.norm = LayerNorm(d_model)
        self.head = Linear(d_model, vocab_size)

    def _embed(self, idx):
        if idx.ndim != 2 or not 1 <= idx.shape[1] <= self.context:
            raise ValueError(f"CharTransformer: expected (N, T) character indices with 1 <= T <= {self.context}, "
                             f"got shape {idx.shape}")
        return self.token(idx) + self.position(arange(idx.shape[1], device=idx.device))

    def forward(self, idx):
        x = self._embed(idx)
        mask = generate_square_subsequent_mask(idx.shape[1], dtype=x.dtype).to(x.device)  # made on the host
        return self.head(self.norm(self.encoder(x, mask=mask, is_causal=True)))

    @no_grad()
    def attention(self, idx):
        """Each layer's attention weights, (N, heads, T, T) per layer: where each position looked."""
        x = self._embed(idx)
        mask = generate_square_subsequent_mask(idx.shape[1], dtype=x.dtype).to(x.device)  # made on the host
        weights = []
        for layer in self.encoder.layers:
            _, w = layer.self_attn(*[layer.norm1(x)] * 3, attn_mask=mask, average_attn_weights=False)
            weights.append(w.detach()._host_array())
            x = layer(x, src_mask=mask, is_causal=True)
        return weights


class CharGRU(Module):
    """The recurrent alternative: embedding, a GRU, a Linear to the vocabulary; (N, T) -> (N, T, vocabulary)."""

    def __init__(self, vocab_size=VOCAB_SIZE, context=16, embedding=64, hidden=256, num_layers=1):
        super().__init__()
        self.context = context
        self.token = Embedding(vocab_size, embedding)
        self.rnn = GRU(embedding, hidden, num_layers=num_layers, batch_first=True)
        self.head = Linear(hidden, vocab_size)

    def forward(self, idx):
        if idx.ndim != 2:
            raise ValueError(f"CharGRU: expected (N, T) character indices, got shape {idx.shape}")
        out, _ = self.rnn(self.token(idx))
        return self.head(out)


def sequence_cross_entropy(scores, targets):
    """Cross-entropy of (N, T, vocabulary) scores against (N, T) targets, ignoring -100 (padding): nats per
    character, averaged over the characters of the batch."""
    return F.cross_entropy(ops.reshape(scores, (-1, scores.shape[-1])), ops.reshape(targets, (-1,)))


@no_grad()
def sample_names(model, n, temperature=1.0, generator=None):
    """`n` new names drawn from a character model, one character at a time, each ending at '.'.

    `temperature` < 1 picks likely characters more often (safer, more common names), > 1 less;
    `generator` (a lamina.Generator) makes the draw repeatable without touching the global one.
    """
    if not temperature > 0:
        raise ValueError(f"sample_names: temperature must be positive, got {temperature}")
    rng = backend.generator(generator)
    was_training = model.training
    where = model.token.weight.device  # the draw runs on the host; the model where it lives
    model.eval()
    idx = np.zeros((n, model.context), np.int64)
    done = np.zeros(n, bool)
    for t in range(model.context - 1):
        scores = model(tensor(idx[:, :t + 1], device=where))._host_array()[:, t].astype(np.float64) / temperature
        probs = np.exp(scores - scores.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        nxt = (probs.cumsum(1) > rng.random((n, 1))).argmax(1)
        idx[:, t + 1] = np.where(done, 0, nxt)
        done |= nxt == 0
        if done.all():
            break
    model.train(was_training)
    return [decode(row[1:]).split(".")[0] for row in idx]


__all__ = ["BLANK", "BandsAsChannels", "CharGRU", "CharTransformer", "LineReader", "cnn", "ctc_greedy_decode",
           "line_ctc_loss", "mlp", "sample_names", "sequence_cross_entropy", "speech_cnn"]
