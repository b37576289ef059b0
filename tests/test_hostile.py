"""Hostile and damaged files (issue 12, B2 and B3): memory stays bounded, non-regular files are refused at once,
and every malformed file gives one lamina error naming the file, never a raw AttributeError or RecursionError."""

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

import lamina
import lamina.nn as nn
from lamina import io, optim
from lamina.audio import AudioError, read_wav
from lamina.datasets.idx import IDXError, read_idx, write_idx

ROOT = Path(__file__).resolve().parent.parent


def _model():
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.1), nn.Sequential(nn.Linear(8, 3), nn.LayerNorm(3)))


def _rewrite(path, change, source=None):
    """Write `path` as `source` (default: itself) with its JSON document changed by change(document)."""
    arrays = dict(np.load(source or path, allow_pickle=False))
    document = json.loads(arrays["__lamina__"].tobytes())
    document = change(document) or document
    text = document if isinstance(document, str) else json.dumps(document)  # a str: JSON too deep for json.dumps
    arrays["__lamina__"] = np.frombuffer(text.encode(), np.uint8)
    io._write_atomically(path, arrays)


def _in_limited_memory(code, limit_bytes=1536 << 20):
    """Run `code` in a fresh process whose address space is capped (RLIMIT_AS); returns what it printed."""
    program = textwrap.dedent(f"""
        import resource, sys
        sys.path.insert(0, {str(ROOT)!r})
        resource.setrlimit(resource.RLIMIT_AS, ({limit_bytes}, {limit_bytes}))
        import lamina
    """) + textwrap.dedent(code)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120, env=env)
    return result.stdout + result.stderr


# --- B2: bounded memory ------------------------------------------------------------------------------------------
def test_a_huge_declared_layer_is_refused_before_it_is_built(tmp_path):
    path = tmp_path / "huge.npz"
    lamina.save(nn.Linear(3, 3), path)
    _rewrite(path, lambda d: d["architecture"].update(args=[15000, 15000]))
    assert path.stat().st_size < 2000
    with pytest.raises(io.ModelFileError, match=r"huge.npz: Linear\(15000, 15000\) would hold more than the weights"):
        lamina.load(path)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS as Linux applies it")
def test_loading_crafted_files_stays_within_a_memory_limit(tmp_path):
    """Under a 1.5 GB address-space limit, files declaring a 900 MB layer, a 40 GB layer or a 1.8 GB archive
    inside 10 KB are refused with ModelFileError; before the fix each raised MemoryError (or used gigabytes)."""
    lamina.save(nn.Linear(3, 3), tmp_path / "small.npz")
    for name, size in (("a.npz", 15000), ("b.npz", 100_000)):
        _rewrite(tmp_path / name, lambda d, size=size: d["architecture"].update(args=[size, size]),
                 tmp_path / "small.npz")
    arrays = dict(np.load(tmp_path / "small.npz"))
    np.savez_compressed(tmp_path / "c.npz", **arrays, **{f"junk{i}": np.zeros(450_000, np.float32) for i in range(3)})
    printed = _in_limited_memory(f"""
        for name in ("a.npz", "b.npz", "c.npz"):
            try:
                lamina.load({str(tmp_path)!r} + "/" + name)
                print(name, "loaded")
            except Exception as e:
                print(name, type(e).__name__)
    """)
    assert printed.split() == ["a.npz", "ModelFileError", "b.npz", "ModelFileError", "c.npz", "ModelFileError"], \
        printed


def test_an_archive_that_unpacks_beyond_its_size_is_refused(tmp_path):
    arrays = {"model/weight": np.ones((2, 2), np.float32), "__lamina__": io._json_array(
        {"format": "lamina", "architecture": None})}
    np.savez_compressed(tmp_path / "bomb.npz", **arrays, **{f"junk{i}": np.zeros(100_000) for i in range(10)})
    with pytest.raises(io.ModelFileError, match="bomb.npz: corrupted or crafted: its entries unpack to 8,00"):
        lamina.load(tmp_path / "bomb.npz")


@pytest.fixture
def timeout():
    """Fail instead of hanging if a reader blocks (on a FIFO, say)."""
    def expire(signum, frame):
        raise TimeoutError("blocked")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs and /dev/zero")
def test_fifos_devices_and_folders_are_refused_at_once(tmp_path, timeout):
    fifo = tmp_path / "fifo.npz"
    os.mkfifo(fifo)
    cases = [(fifo, r"a FIFO \(named pipe\)"), (Path("/dev/zero"), "a device"), (tmp_path, "a folder")]
    for path, kind in cases:
        message = f"{re.escape(str(path))}: {kind}, not a regular file"
        with pytest.raises(io.ModelFileError, match=message):
            lamina.load(path)
        with pytest.raises(IDXError, match=message):
            read_idx(path)
        with pytest.raises(AudioError, match=message):
            read_wav(path)


def _gzip_bomb(path, header, copies):
    """An IDX file: `header`, then 16 MiB of zeros `copies` times, as concatenated gzip members (a gzip file may
    hold several, and decompressors join them), about 16 KB each: cheap to make, gigabytes to unpack."""
    member = gzip.compress(bytes(16 << 20), compresslevel=9, mtime=0)
    with open(path, "wb") as f:
        f.write(gzip.compress(header, mtime=0))
        for _ in range(copies):
            f.write(member)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS as Linux applies it")
def test_a_gzip_bomb_is_read_only_as_far_as_its_header_declares(tmp_path):
    """2 GiB of zeros in 2 MiB behind a header declaring 1 MB: the reader stops after 1 MB and says so, within a
    1.5 GB address-space limit (before the fix it decompressed the whole stream first)."""
    path = tmp_path / "bomb-idx1-ubyte.gz"
    _gzip_bomb(path, bytes([0, 0, 8, 1]) + (1 << 20).to_bytes(4, "big"), copies=128)
    assert path.stat().st_size < 4 << 20
    printed = _in_limited_memory(f"""
        from lamina.datasets import read_idx
        try:
            read_idx({str(path)!r})
        except Exception as e:
            print(type(e).__name__, e)
    """)
    assert printed.startswith("IDXError") and "longer than its header says" in printed, printed


def test_idx_sizes_are_checked_before_anything_is_decompressed(tmp_path):
    declared = bytes([0, 0, 8, 3]) + b"".join(n.to_bytes(4, "big") for n in (100_000, 1000, 1000))
    (tmp_path / "huge.gz").write_bytes(gzip.compress(declared))
    with pytest.raises(IDXError, match=r"shape \(100000, 1000, 1000\) \(100,000,000,000 bytes\), more than the "
                                       r"1,073,741,824 bytes read_idx allows"):
        read_idx(tmp_path / "huge.gz")
    declared = bytes([0, 0, 8, 1]) + (500 << 20).to_bytes(4, "big")
    (tmp_path / "small.gz").write_bytes(gzip.compress(declared))
    with pytest.raises(IDXError, match="more than a gzip stream of .* bytes can hold"):
        read_idx(tmp_path / "small.gz")
    (tmp_path / "plain").write_bytes(declared)
    with pytest.raises(IDXError, match="truncated"):
        read_idx(tmp_path / "plain")


def test_idx_big_endian_types_and_exact_lengths(tmp_path):
    values = np.arange(-6, 6, dtype=">i4").reshape(3, 4)
    payload = bytes([0, 0, 0x0C, 2]) + np.asarray(values.shape, ">u4").tobytes() + values.tobytes()
    (tmp_path / "ints.gz").write_bytes(gzip.compress(payload))
    read = read_idx(tmp_path / "ints.gz")
    assert read.dtype == np.int32 and read.dtype.isnative
    np.testing.assert_array_equal(read, values)
    (tmp_path / "long.gz").write_bytes(gzip.compress(payload + b"\0"))
    with pytest.raises(IDXError, match="longer than its header says"):
        read_idx(tmp_path / "long.gz")
    write_idx(tmp_path / "u8", np.arange(6, dtype=np.uint8), compress=False)
    np.testing.assert_array_equal(read_idx(tmp_path / "u8"), np.arange(6))


# --- B3: one clear error ------------------------------------------------------------------------------------------
def test_every_lamina_exception_is_a_lamina_error_and_keeps_its_old_base():
    assert issubclass(lamina.ModelFileError, lamina.LaminaError) and issubclass(lamina.ModelFileError, ValueError)
    assert issubclass(lamina.IDXError, lamina.DatasetError) and issubclass(lamina.IDXError, ValueError)
    assert issubclass(lamina.DatasetError, lamina.LaminaError) and issubclass(lamina.DatasetError, RuntimeError)
    assert issubclass(lamina.AudioError, lamina.LaminaError) and issubclass(lamina.AudioError, ValueError)
    assert issubclass(lamina.NonFiniteLossError, lamina.TrainingError)
    assert issubclass(lamina.TrainingError, lamina.LaminaError) and issubclass(lamina.TrainingError, RuntimeError)
    assert issubclass(lamina.onnx.ExportError, lamina.LaminaError)
    assert issubclass(lamina.GradcheckError, lamina.LaminaError) and issubclass(lamina.GradcheckError, AssertionError)


def _linear(arch):
    return arch["args"][0]["module"]


def _deeply_nested(opening, closing, inner, levels):
    """A change giving the document whose architecture is `inner` wrapped `levels` times, as JSON text."""
    def change(document):
        whole = json.dumps(dict(document, architecture="ARCHITECTURE"))
        return whole.replace('"ARCHITECTURE"', opening * levels + inner + closing * levels)
    return change


_SEQUENTIAL_OPENS = '{"class": "lamina.nn.module.Sequential", "kwargs": {}, "args": [{"module": '
_SEQUENTIAL_CLOSES = "}]}"
_RELU = '{"class": "lamina.nn.layers.ReLU", "args": [], "kwargs": {}}'


def _drop(container, key):
    container.pop(key)  # and return None: the document was changed in place


def _set(where, key, value):
    def change(document):
        where(document["architecture"])[key] = value
    return change


def _top(key, value):
    return _set(lambda arch: arch, key, value)


def _first(key, value):
    return _set(_linear, key, value)


def _whole(value):
    def change(document):
        document["architecture"] = value
    return change


def _first_arg(value):
    def change(document):
        _linear(document["architecture"])["args"][0] = value
    return change


MUTATIONS = {
    # the architecture as a whole
    "architecture a number": _whole(5),
    "architecture a string": _whole("Sequential"),
    "architecture a list": _whole([1, 2]),
    "architecture empty": _whole({}),
    "lists nested 100,000 deep": _deeply_nested("[", "]", "", 100_000),  # past what the JSON reader takes
    "lists nested 300 deep": _deeply_nested('{"class": "lamina.nn.layers.ReLU", "kwargs": {}, "args": ', "}",
                                            "[" * 300 + "]" * 300, 1),
    "modules nested 200 deep": _deeply_nested(_SEQUENTIAL_OPENS, _SEQUENTIAL_CLOSES, _RELU, 200),  # past lamina's
    "modules nested 100,000 deep": _deeply_nested(_SEQUENTIAL_OPENS, _SEQUENTIAL_CLOSES, _RELU, 100_000),
    "document a list": lambda d: [d],
    "no format": lambda d: _drop(d, "format"),
    # the class
    "class a number": _top("class", 5),
    "class missing": lambda d: _drop(d["architecture"], "class"),
    "class unknown": _top("class", "lamina.nn.Transformer9000"),
    "class outside lamina": _top("class", "builtins.eval"),
    "class os.system": _first("class", "os.system"),
    "class a list": _first("class", ["lamina.nn.layers.Linear"]),
    # args and kwargs
    "args a string": _top("args", "abc"),
    "args a table": _top("args", {"a": 1}),
    "args null": _top("args", None),
    "kwargs a list": _top("kwargs", [1]),
    "kwargs a string": _first("kwargs", "bias"),
    "unknown keyword": _first("kwargs", {"bogus": 1}),
    "keyword self": _first("kwargs", {"self": 1}),
    "too few args": _first("args", [4]),
    "too many args": _first("args", [4, 8, True, None, None, 5, 6]),
    "no args": _first("args", []),
    # sizes
    "string where an int goes": _first_arg("four"),
    "null where an int goes": _first_arg(None),
    "list where an int goes": _first_arg([4]),
    "table where an int goes": _first_arg({"x": 4}),
    "negative size": _first_arg(-4),
    "zero size": _first_arg(0),
    "both sizes negative": _first("args", [-15000, -15000]),
    "wrong size": _first_arg(5),
    "huge size": _first_arg(10**12),
    "astronomical size": _first_arg(10**40),
    "bool where an int goes": _first_arg(True),
    "float infinity": _first_arg(float("inf")),
    "float nan": _first_arg(float("nan")),
    # tagged values
    "module tag holding a number": _first_arg({"module": 5}),
    "module tag holding nothing": _first_arg({"module": {}}),
    "tuple tag holding a number": _first_arg({"tuple": 4}),
    "odict of numbers": _first_arg({"odict": [[1, 2]]}),
    "dict tag holding a list": _first_arg({"dict": [4]}),
    "dtype object": _first("kwargs", {"dtype": {"dtype": "object"}}),
    "dtype nonsense": _first("kwargs", {"dtype": {"dtype": "V1000000000"}}),
    "array of object dtype": _first_arg({"array": [1], "dtype": "object"}),
    "ragged array": _first_arg({"array": [[1], [1, 2]], "dtype": "float32"}),
    "array of strings": _first_arg({"array": ["a"], "dtype": "float32"}),
    "unknown tag": _first_arg({"lambda": "x: x"}),
    "two tags": _first_arg({"tuple": [4], "dict": {}}),
    # children
    "a child that is not a module": _top("args", [4, 8]),
    "a child of the wrong kind": lambda d: d["architecture"]["args"].__setitem__(
        0, {"module": {"class": "lamina.nn.layers.Linear", "args": [3, 8], "kwargs": {}}}),
    "a child missing": lambda d: _drop(d["architecture"]["args"], 0),
}


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "model.npz"
    lamina.save(_model(), path)
    return path


@pytest.mark.parametrize("mutation", MUTATIONS, ids=list(MUTATIONS))
def test_a_malformed_architecture_gives_one_lamina_error_naming_the_file(mutation, saved_model, tmp_path):
    path = tmp_path / "mutated.npz"
    _rewrite(path, MUTATIONS[mutation], saved_model)
    with pytest.raises(lamina.LaminaError) as raised:
        lamina.load(path)
    assert isinstance(raised.value, io.ModelFileError)
    message = str(raised.value)
    assert str(path) in message and "\n" not in message and len(message) < 600, message


def _checkpoint(path, optimizer_class=optim.Adam, **settings):
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    opt = optimizer_class(model.parameters(), **settings)
    model(lamina.randn(5, 3)).sum().backward()
    opt.step()
    lamina.save(model, path, optimizer=opt, epoch=1, history={"loss": [1.0]})
    return model, opt


def _fresh(optimizer_class=optim.Adam, **settings):
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    return model, optimizer_class(model.parameters(), **settings)


def _rewrite_arrays(path, change):
    arrays = dict(np.load(path, allow_pickle=False))
    change(arrays)
    io._write_atomically(path, arrays)


OPTIMIZER_DAMAGE = {
    "step negative": (lambda d: d["optimizer"]["scalars"]["0"].update(step=-3), None, "optimizer/0/step is -3"),
    "step a string": (lambda d: d["optimizer"]["scalars"]["0"].update(step="1"), None, "optimizer/0/step is '1'"),
    "step a fraction": (lambda d: d["optimizer"]["scalars"]["1"].update(step=1.5), None, "optimizer/1/step is 1.5"),
    "scalars for a parameter that does not exist": (lambda d: d["optimizer"]["scalars"].update({"9": {"step": 1}}),
                                                   None, "names parameter '9'; the optimizer has 4"),
    "scalars not a table": (lambda d: d["optimizer"].update(scalars=[1]), None, "scalars must be a table"),
    "lr negative": (lambda d: d["optimizer"]["param_groups"][0].update(lr=-1.0), None, r"param_groups\[0\].lr is -1"),
    "lr a string": (lambda d: d["optimizer"]["param_groups"][0].update(lr="fast"), None, "lr is 'fast'"),
    "betas too short": (lambda d: d["optimizer"]["param_groups"][0].update(betas=[0.9]), None, "betas is"),
    "amsgrad a number": (lambda d: d["optimizer"]["param_groups"][0].update(amsgrad=1), None, "amsgrad is 1"),
    "params renumbered": (lambda d: d["optimizer"]["param_groups"][0].update(params=[0, 0, 1, 7]), None,
                          r"param_groups\[0\] must list parameters \[0, 1, 2, 3\]"),
    "groups missing": (lambda d: d["optimizer"].update(param_groups=[]), None, "must be a list of 1 groups"),
    "class a list": (lambda d: d["optimizer"].update({"class": ["Adam"]}), None, "state is for"),
    "optimizer a string": (lambda d: d.update(optimizer="Adam"), None, "state is for"),
    "epoch negative": (lambda d: d.update(epoch=-1), None, "epoch must be a whole number"),
    "history a list": (lambda d: d.update(history=[1]), None, "history must be a table"),
    "moment of the wrong shape": (None, lambda a: a.update({"optimizer/0/exp_avg": np.zeros((2, 2), np.float32)}),
                                  r"optimizer/0/exp_avg has shape \(2, 2\)"),
    "moment of integers": (None, lambda a: a.update({"optimizer/1/exp_avg": np.zeros(4, np.int64)}),
                           "optimizer/1/exp_avg has shape .* and dtype int64"),
    "moment with NaN": (None, lambda a: a["optimizer/2/exp_avg_sq"].__setitem__((0, 0), np.nan),
                        "optimizer/2/exp_avg_sq holds NaN"),
    "moment missing": (None, lambda a: a.pop("optimizer/3/exp_avg"), "state of parameter 3 holds"),
    "unknown state": (None, lambda a: a.update({"optimizer/3/velocity": np.zeros(2, np.float32)}),
                      "state of parameter 3 holds"),
    "state for a parameter that does not exist": (None, lambda a: a.update({"optimizer/12/exp_avg": np.zeros(2)}),
                                                  "names parameter '12'"),
    "state for a parameter named by a word": (None, lambda a: a.update({"optimizer/x/exp_avg": np.zeros(2)}),
                                              "names parameter 'x'"),
}


@pytest.mark.parametrize("damage", OPTIMIZER_DAMAGE, ids=list(OPTIMIZER_DAMAGE))
def test_crafted_optimizer_state_is_refused_on_load_naming_the_field(damage, tmp_path):
    path = tmp_path / "checkpoint.npz"
    _checkpoint(path)
    change_document, change_arrays, message = OPTIMIZER_DAMAGE[damage]
    if change_document:
        _rewrite(path, change_document)
    if change_arrays:
        _rewrite_arrays(path, change_arrays)
    model, opt = _fresh()
    with pytest.raises(io.ModelFileError, match=f"{path}: .*{message}"):
        lamina.load_checkpoint(path, model, opt)


@pytest.mark.parametrize("optimizer_class, settings", [
    (optim.Adam, {"amsgrad": True}), (optim.SGD, {"lr": 0.1, "momentum": 0.9}), (optim.SGD, {"lr": 0.1}),
    (optim.RMSprop, {"centered": True, "momentum": 0.5}), (optim.Adagrad, {}), (optim.Adadelta, {}),
    (optim.AdamW, {}),
])
def test_sound_optimizer_state_still_loads(optimizer_class, settings, tmp_path):
    _, saved = _checkpoint(tmp_path / "c.npz", optimizer_class, **settings)
    model, opt = _fresh(optimizer_class, **settings)
    lamina.load_checkpoint(tmp_path / "c.npz", model, opt)
    assert sum(map(bool, opt.state.values())) == sum(map(bool, saved.state.values()))


def test_crafted_scheduler_state_is_refused(tmp_path):
    model, opt = _fresh()
    schedule = optim.lr_scheduler.StepLR(opt, 2)
    lamina.save(model, tmp_path / "c.npz", optimizer=opt, scheduler=schedule)
    _rewrite(tmp_path / "c.npz", lambda d: d["scheduler"]["state"].update(optimizer="mine"))
    model, opt = _fresh()
    with pytest.raises(io.ModelFileError, match="scheduler field optimizer"):
        lamina.load_checkpoint(tmp_path / "c.npz", model, opt, optim.lr_scheduler.StepLR(opt, 2))


# --- B4: NaN never passes silently --------------------------------------------------------------------------------
def test_a_model_with_non_finite_weights_loads_with_a_warning(tmp_path):
    model = nn.Linear(3, 2)
    with lamina.no_grad():
        model.weight.array[0, 1] = np.nan
        model.bias.array[1] = np.inf
    lamina.save(model, tmp_path / "nan.npz")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lamina.load(tmp_path / "nan.npz")
    path = tmp_path / "nan.npz"
    assert [str(w.message).split(" (")[0] for w in caught] == [
        f"{path}: weight holds 1 non-finite values", f"{path}: bias holds 1 non-finite values"]
    assert all(w.category is RuntimeWarning for w in caught)
    with pytest.warns(RuntimeWarning, match="non-finite"):
        lamina.load_weights(tmp_path / "nan.npz")
    lamina.save(nn.Linear(3, 2), tmp_path / "fine.npz")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lamina.load(tmp_path / "fine.npz")
