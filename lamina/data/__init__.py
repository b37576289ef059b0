"""Datasets and the DataLoader that batches them.

Array-backed datasets (TensorDataset, and Subsets of one) are batched by
indexing whole arrays at once, with no per-sample Python work; any other
Dataset is batched by stacking its samples.
"""

import math

import numpy as np

from lamina.autograd import Tensor, wrap
from lamina.backend import generator


class Dataset:
    """A sized collection: `dataset[i]` is one sample (a tuple of arrays or numbers)."""

    def __getitem__(self, index):
        raise NotImplementedError

    def __len__(self):
        raise NotImplementedError


class TensorDataset(Dataset):
    """Samples are the i-th rows of the given arrays (or tensors), which share their first dim."""

    def __init__(self, *arrays):
        if not arrays:
            raise ValueError("TensorDataset needs at least one array")
        self.arrays = tuple(a.array if isinstance(a, Tensor) else np.asarray(a) for a in arrays)
        lengths = [len(a) for a in self.arrays]
        if len(set(lengths)) != 1:
            shapes = ", ".join(str(a.shape) for a in self.arrays)
            raise ValueError(f"TensorDataset: arrays must share their first dim, got shapes {shapes}")

    def __getitem__(self, index):
        return tuple(wrap(np.asarray(a[index])) for a in self.arrays)  # tensors, as PyTorch's items are

    def __len__(self):
        return len(self.arrays[0])


class ConcatDataset(Dataset):
    """The samples of several datasets, one after another."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset needs at least one dataset")
        self.ends = np.cumsum([len(d) for d in self.datasets])

    def __getitem__(self, index):
        index = int(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"ConcatDataset: index {index} is out of range for {len(self)} samples")
        which = int(np.searchsorted(self.ends, index, side="right"))
        start = self.ends[which - 1] if which else 0
        return self.datasets[which][index - int(start)]

    def __len__(self):
        return int(self.ends[-1])


class SequentialSampler:
    """Indices 0, 1, ..., n-1."""

    def __init__(self, data_source):
        self.n = len(data_source)

    def __iter__(self):
        return iter(range(self.n))

    def __len__(self):
        return self.n


class RandomSampler:
    """A random order each epoch (or `num_samples` draws with replacement), from lamina's generator."""

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        self.n, self.replacement = len(data_source), replacement
        self.num_samples = self.n if num_samples is None else int(num_samples)
        self.generator = generator

    def __iter__(self):
        rng = self.generator if self.generator is not None else np.random.default_rng(generator().integers(2**63))
        if self.replacement:
            return iter(rng.integers(0, self.n, self.num_samples).tolist())
        return iter(rng.permutation(self.n)[:self.num_samples].tolist())

    def __len__(self):
        return self.num_samples


class BatchSampler:
    """Group another sampler's indices into lists of `batch_size` (for DataLoader's batch_sampler)."""

    def __init__(self, sampler, batch_size, drop_last):
        if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"BatchSampler: batch_size must be a positive whole number, not {batch_size!r}")
        self.sampler, self.batch_size, self.drop_last = sampler, int(batch_size), drop_last

    def __iter__(self):
        batch = []
        for index in self.sampler:
            batch.append(int(index))
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self):
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


class Subset(Dataset):
    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, np.asarray(indices, dtype=np.int64)

    def __getitem__(self, index):
        return self.dataset[self.indices[index]]

    def __len__(self):
        return len(self.indices)


def _array_source(dataset):
    """(arrays, index map or None) when the dataset is array-backed, else None."""
    if isinstance(dataset, TensorDataset):
        return dataset.arrays, None
    if isinstance(dataset, Subset):
        source = _array_source(dataset.dataset)
        if source is not None:
            arrays, parent = source
            return arrays, dataset.indices if parent is None else parent[dataset.indices]
    return None


def random_split(dataset, lengths, seed=None):
    """Split into non-overlapping Subsets of the given lengths (or fractions that sum to 1)."""
    n = len(dataset)
    if all(isinstance(x, float) for x in lengths) and math.isclose(sum(lengths), 1.0):
        sizes = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(sizes)):
            sizes[i % len(sizes)] += 1
    else:
        sizes = [int(x) for x in lengths]
    if sum(sizes) != n:
        raise ValueError(f"random_split: lengths {list(lengths)} do not add up to the dataset's {n} samples")
    rng = np.random.default_rng(seed if seed is not None else generator().integers(2**63))
    order = rng.permutation(n)
    bounds = np.cumsum([0] + sizes)
    return [Subset(dataset, order[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


class DataLoader:
    """Iterate over a dataset in batches of tensors, optionally reshuffled every epoch.

    With `seed`, the sequence of shuffles is reproducible; without it, each
    epoch's order is drawn from lamina's generator (see `lamina.manual_seed`).
    `sampler`, if given, yields the indices of each epoch instead (it is how
    distributed training shards the data). `transform`, if given, is applied
    to each batch's inputs (the first array), e.g. RandomShift for augmentation.
    Batches are CPU tensors: `fit` moves each to the model's device (GPU or CPU),
    so PyTorch's `pin_memory=` is accepted and ignored.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, sampler=None, batch_sampler=None, num_workers=0,
                 collate_fn=None, pin_memory=False, drop_last=False, seed=None, transform=None, **ignored):
        # PyTorch's order of arguments. num_workers and pin_memory are accepted and change nothing: batches
        # are made in this process (NumPy slicing is faster than shipping samples between processes), and
        # they are host tensors that fit() moves to the model's device (there is no pinned memory to ask for).
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("DataLoader: batch_sampler excludes batch_size, shuffle, sampler and drop_last")
            batch_size = getattr(batch_sampler, "batch_size", 1)
        if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive whole number, got {batch_size!r}")
        unknown = set(ignored) - {"timeout", "worker_init_fn", "prefetch_factor", "persistent_workers", "generator",
                                  "multiprocessing_context", "pin_memory_device", "in_order"}
        if unknown:
            raise TypeError(f"DataLoader: unexpected argument {sorted(unknown)[0]!r}")
        self.dataset, self.batch_size, self.shuffle, self.drop_last = dataset, int(batch_size), shuffle, drop_last
        self.sampler, self.batch_sampler = sampler, batch_sampler
        self.collate_fn, self.transform = collate_fn, transform
        self._rng = np.random.default_rng(seed) if seed is not None else None

    def _order(self):
        if self.sampler is not None:
            return np.asarray(list(self.sampler), dtype=np.int64)
        if not self.shuffle:
            return None
        rng = self._rng or np.random.default_rng(generator().integers(2**63))
        return rng.permutation(len(self.dataset))

    def _count(self):
        return len(self.sampler) if self.sampler is not None else len(self.dataset)

    def __len__(self):
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        n = self._count()
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        if self.batch_sampler is not None or self.collate_fn is not None:
            yield from self._custom_batches()
            return
        for batch in self._batches():
            if self.transform is not None:
                batch = (self.transform(batch[0]), *batch[1:])
            yield tuple(wrap(a) for a in batch)

    def _custom_batches(self):
        """Batches from a batch_sampler or through a collate_fn: sample by sample, as PyTorch makes them."""
        if self.batch_sampler is not None:
            index_lists = self.batch_sampler
        else:
            order = self._order()
            order = np.arange(self._count()) if order is None else order
            stop = len(order) - len(order) % self.batch_size if self.drop_last else len(order)
            index_lists = (order[i:i + self.batch_size].tolist() for i in range(0, stop, self.batch_size))
        for indices in index_lists:
            samples = [self.dataset[int(i)] for i in indices]
            if self.collate_fn is not None:
                yield self.collate_fn(samples)
                continue
            samples = [s if isinstance(s, tuple) else (s,) for s in samples]
            yield tuple(wrap(np.stack([np.asarray(s[k]) for s in samples])) for k in range(len(samples[0])))

    def _batches(self):
        n, size = self._count(), self.batch_size
        order = self._order()
        stop = n - n % size if self.drop_last else n
        source = _array_source(self.dataset)
        for start in range(0, stop, size):
            index = slice(start, min(start + size, n)) if order is None else order[start:start + size]
            if source is not None:
                arrays, parent = source
                if parent is not None:
                    index = parent[index]
                yield tuple(a[index] for a in arrays)
            else:
                positions = range(n)[index] if isinstance(index, slice) else index
                samples = [self.dataset[int(i)] for i in positions]
                samples = [s if isinstance(s, tuple) else (s,) for s in samples]
                yield tuple(np.stack([np.asarray(s[k]) for s in samples]) for k in range(len(samples[0])))


class RandomShift:
    """Augmentation: move each image of a batch by up to `max_shift` pixels in each direction.

    Works on (N, H, W) and (N, C, H, W) batches; the uncovered border is zero.
    Draws from lamina's generator, so `lamina.manual_seed` makes it repeatable.
    """

    def __init__(self, max_shift=1):
        self.max_shift = int(max_shift)

    def __call__(self, images):
        m = self.max_shift
        if m == 0:
            return images
        n, h, w = images.shape[0], images.shape[-2], images.shape[-1]
        pad = [(0, 0)] * (images.ndim - 2) + [(m, m), (m, m)]
        padded = np.pad(images, pad)
        dy, dx = generator().integers(0, 2 * m + 1, (2, n))
        rows = (dy[:, None] + np.arange(h))[:, :, None]
        cols = (dx[:, None] + np.arange(w))[:, None, :]
        batch = np.arange(n)[:, None, None]
        if images.ndim == 4:
            return padded.transpose(0, 2, 3, 1)[batch, rows, cols].transpose(0, 3, 1, 2)
        return padded[batch, rows, cols]


__all__ = ["BatchSampler", "ConcatDataset", "DataLoader", "Dataset", "RandomSampler", "RandomShift",
           "SequentialSampler", "Subset", "TensorDataset", "random_split"]
