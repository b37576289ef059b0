"""A training step's forward and backward as a CUDA graph (lamina.cuda.graph), replayed for every batch."""

from lamina import cuda
from lamina.autograd import wrap


class GraphedStep:
    """Forward, loss and backward of a model as one CUDA graph per batch shape; the optimizer steps outside.

    `step = GraphedStep(model, loss_fn)`, then `loss = step(x, y)` in place of `loss = loss_fn(model(x), y);
    loss.backward()`: the first `warmup` calls of a shape run as usual, the next captures, every later one
    copies x and y into the captured inputs and replays. Gradients land in each parameter's `.grad` as after
    `zero_grad(); loss.backward()` (a replay does not add to earlier gradients); `step.output` holds the
    model's output. The loss and output are the captured tensors, overwritten by the next call: read them
    (`.item()`, a metric) before calling again, or clone them. `fit(..., cuda_graph=True)` trains this way.
    """

    def __init__(self, model, loss_fn, warmup=2):
        self.model, self.loss_fn, self.warmup = model, loss_fn, int(warmup)
        self.graphs = {}  # (shapes, dtypes, training) -> (graph, static x, static y, loss, output, gradient arrays)
        self.calls = {}
        self.output = None

    def __call__(self, x, y):
        key = (tuple(x.shape), tuple(y.shape), x.dtype, y.dtype, self._state())
        entry = self.graphs.get(key)
        if entry is None:
            seen = self.calls[key] = self.calls.get(key, 0) + 1
            if seen <= self.warmup:
                return self._run(x, y)
            entry = self.graphs[key] = self._capture(x, y)
        cuda_graph, static_x, static_y, loss, self.output, grads = entry
        static_x.array[...] = x.array
        static_y.array[...] = y.array
        cuda_graph.replay()
        for p, g in zip(self.model.parameters(), grads):
            p.grad = None if g is None else wrap(g)
        return loss

    def _state(self):
        """What a captured graph holds fixed besides the shapes: each module's mode, and each parameter's
        memory and whether it trains. A change (eval() on one layer, p.data = ..., requires_grad_) makes a
        new graph rather than replaying a stale one. Hooks run only while capturing."""
        modes = tuple(m.training for m in self.model.modules())
        return modes, tuple((id(p.array), p.requires_grad) for p in self.model.parameters())

    def _run(self, x, y):
        for p in self.model.parameters():
            p.grad = None
        self.output = self.model(x)
        loss = self.loss_fn(self.output, y)
        loss.backward()
        return loss

    def _capture(self, x, y):
        static_x, static_y = x.detach().clone(), y.detach().clone()
        cuda_graph = cuda.CUDAGraph()
        with cuda.graph(cuda_graph):
            loss = self._run(static_x, static_y)
        grads = [None if p.grad is None else p.grad.array for p in self.model.parameters()]
        return cuda_graph, static_x, static_y, loss.detach(), self.output.detach(), grads
