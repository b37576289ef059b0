"""Dataset, DataLoader, random_split, augmentation, and the datasets."""

import gzip
import urllib.error
from pathlib import Path

import numpy as np
import pytest

import lamina
from lamina import datasets
from lamina.data import DataLoader, Dataset, RandomShift, TensorDataset, random_split
from lamina.datasets.idx import IDXError, read_idx, write_idx

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def test_loader_batches_whole_arrays_in_order():
    x, y = np.arange(10 * 3).reshape(10, 3).astype(np.float32), np.arange(10)
    batches = list(DataLoader(TensorDataset(x, y), batch_size=4))
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    assert isinstance(batches[0][0], lamina.Tensor) and batches[0][1].tolist() == [0, 1, 2, 3]
    assert len(DataLoader(TensorDataset(x, y), batch_size=4, drop_last=True)) == 2


def test_loader_shuffles_reproducibly_and_differently_each_epoch():
    y = np.arange(100)
    loader = DataLoader(TensorDataset(y), batch_size=100, shuffle=True, seed=3)
    first, second = next(iter(loader))[0].tolist(), next(iter(loader))[0].tolist()
    assert sorted(first) == list(range(100)) and first != second
    again = DataLoader(TensorDataset(y), batch_size=100, shuffle=True, seed=3)
    assert next(iter(again))[0].tolist() == first


def test_loader_over_a_generic_dataset_stacks_samples():
    class Squares(Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return np.float32(i), i * i

    xb, yb = next(iter(DataLoader(Squares(), batch_size=5)))
    assert xb.tolist() == [0, 1, 2, 3, 4] and yb.tolist() == [0, 1, 4, 9, 16]


def test_tensor_dataset_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match=r"first dim.*\(3, 2\), \(4,\)"):
        TensorDataset(np.zeros((3, 2)), np.zeros(4))


def test_random_split_covers_everything_once():
    data = TensorDataset(np.arange(10))
    a, b = random_split(data, [0.7, 0.3], seed=0)
    values = [int(v) for batch in DataLoader(a, 10) for v in batch[0].tolist()]
    values += [int(v) for batch in DataLoader(b, 10) for v in batch[0].tolist()]
    assert len(a) == 7 and sorted(values) == list(range(10))
    with pytest.raises(ValueError, match="do not add up"):
        random_split(data, [3, 3])


def test_random_shift_moves_pixels_and_keeps_shape():
    images = np.zeros((50, 5, 5), np.float32)
    images[:, 2, 2] = 1
    shifted = RandomShift(1)(images)
    assert shifted.shape == images.shape and (shifted.sum(axis=(1, 2)) == 1).all()
    assert len({tuple(np.argwhere(s)[0]) for s in shifted}) > 1
    channels = RandomShift(2)(np.ones((3, 2, 6, 6), np.float32))
    assert channels.shape == (3, 2, 6, 6)


def test_bundled_digits():
    (x_train, y_train), (x_test, y_test) = datasets.digits()
    assert x_train.shape == (10_000, 28, 28) and x_train.dtype == np.uint8 and y_train.dtype == np.int64
    assert x_test.shape == (10_000, 28, 28) and set(np.unique(y_test)) == set(range(10))
    scaled = datasets.scale(x_train[:2])
    assert scaled.dtype == np.float32 and 0 <= scaled.min() and scaled.max() <= 1
    if SHARED_MNIST.exists():  # the first 10,000 MNIST training images, exactly
        np.testing.assert_array_equal(read_idx(SHARED_MNIST / "train-labels-idx1-ubyte.gz")[:10_000], y_train)


@pytest.mark.skipif(not SHARED_MNIST.exists(), reason="needs ../shared/data/mnist")
def test_mnist_reads_and_verifies_the_shared_files():
    (x_train, y_train), (x_test, y_test) = datasets.mnist(root=SHARED_MNIST, download=False)
    assert x_train.shape == (60_000, 28, 28) and x_test.shape == (10_000, 28, 28)
    assert np.bincount(y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_mnist_offline_error_names_directory_and_files(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(datasets.urllib.request, "urlopen", offline)
    with pytest.raises(datasets.DatasetError) as info:
        datasets.mnist(root=tmp_path / "m")
    message = str(info.value)
    assert str(tmp_path / "m") in message and "train-images-idx3-ubyte.gz" in message
    assert "t10k-labels-idx1-ubyte.gz" in message
    assert not any((tmp_path / "m").iterdir())  # nothing half-written left behind


def test_mnist_download_rejects_a_bad_checksum(tmp_path, monkeypatch):
    class Response:
        def __init__(self):
            self.sent = False

        def read(self, n):
            if self.sent:
                return b""
            self.sent = True
            return b"not mnist"

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

    monkeypatch.setattr(datasets.urllib.request, "urlopen", lambda url, timeout: Response())
    with pytest.raises(datasets.DatasetError, match="checksum mismatch"):
        datasets.mnist(root=tmp_path)
    assert not list(tmp_path.glob("*.gz"))


def test_mnist_without_download_names_missing_files(tmp_path):
    with pytest.raises(datasets.DatasetError, match="missing from .*t10k-images-idx3-ubyte.gz"):
        datasets.mnist(root=tmp_path, download=False)


def test_mnist_rejects_a_damaged_file(tmp_path):
    for name in datasets.MNIST_FILES.values():
        (tmp_path / name).write_bytes(b"junk")
    with pytest.raises(datasets.DatasetError, match="SHA-256"):
        datasets.mnist(root=tmp_path, download=False)


def test_idx_round_trip_and_corruptions(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "ok.gz", images)
    np.testing.assert_array_equal(read_idx(tmp_path / "ok.gz"), images)
    raw = gzip.decompress((tmp_path / "ok.gz").read_bytes())
    (tmp_path / "short").write_bytes(raw[:-5])
    with pytest.raises(IDXError, match=r"truncated: shape \(2, 3, 4\) needs 24 bytes of data, found 19"):
        read_idx(tmp_path / "short")
    (tmp_path / "magic").write_bytes(b"\x01\x02" + raw[2:])
    with pytest.raises(IDXError, match="not an IDX file"):
        read_idx(tmp_path / "magic")
    (tmp_path / "cut.gz").write_bytes((tmp_path / "ok.gz").read_bytes()[:20])
    with pytest.raises(IDXError, match="gzip stream is truncated or corrupted"):
        read_idx(tmp_path / "cut.gz")
    (tmp_path / "header").write_bytes(raw[:6])
    with pytest.raises(IDXError, match="header declares 3 dims"):
        read_idx(tmp_path / "header")


@pytest.mark.parametrize("name", sorted(datasets.TOY_SETS))
def test_two_d_sets(name):
    X, y = datasets.TOY_SETS[name](n=300, seed=1)
    assert X.shape == (300, 2) and X.dtype == np.float32 and y.dtype == np.int64
    assert set(np.unique(y)) == {0, 1}
    X2, y2 = datasets.TOY_SETS[name](n=300, seed=1)
    np.testing.assert_array_equal(X, X2)


def test_admissions_follows_the_rule():
    X, y = datasets.admissions(n=1000, noise=0.0)
    np.testing.assert_array_equal(y, ((X[:, 0] >= 0.5) & (X[:, 1] >= 0.5)).astype(np.int64))
    _, noisy = datasets.admissions(n=1000, noise=0.1)
    assert 0.05 < (noisy != y).mean() < 0.15


def test_pytorch_style_data_pipeline():
    """Samplers, batch_sampler, ConcatDataset, num_workers/pin_memory accepted, items as tensors."""
    from lamina.data import BatchSampler, ConcatDataset, RandomSampler, SequentialSampler

    x = np.arange(10, dtype=np.float32).reshape(10, 1)
    y = np.arange(10)
    dataset = TensorDataset(x, y)
    item = dataset[3]
    assert all(isinstance(t, lamina.Tensor) for t in item) and item[1].item() == 3
    both = ConcatDataset([dataset, TensorDataset(x + 100, y)])
    assert len(both) == 20 and both[12][0].tolist() == [102.0] and both[-1][0].tolist() == [109.0]
    assert list(SequentialSampler(dataset)) == list(range(10))
    assert sorted(RandomSampler(dataset)) == list(range(10)) and len(list(RandomSampler(dataset, True, 25))) == 25
    batches = list(BatchSampler(SequentialSampler(dataset), 4, drop_last=False))
    assert batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    loader = DataLoader(dataset, batch_sampler=BatchSampler(SequentialSampler(dataset), 4, False))
    assert len(loader) == 3 and [b[1].tolist() for b in loader][-1] == [8, 9]
    loader = DataLoader(dataset, batch_size=5, shuffle=True, num_workers=4, pin_memory=True)
    assert sorted(v for _, yb in loader for v in yb.tolist()) == list(range(10))
    collated = next(iter(DataLoader(dataset, batch_size=3, collate_fn=lambda samples: len(samples))))
    assert collated == 3
    with pytest.raises(TypeError, match="unexpected argument 'workers'"):
        DataLoader(dataset, workers=2)
    with pytest.raises(ValueError, match="batch_size must be a positive whole number"):
        DataLoader(dataset, batch_size=0)
