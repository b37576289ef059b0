"""Saving and loading models and checkpoints: one .npz file, no pickle, written atomically.

The file holds the weights as plain arrays ("model/<name>"), optionally the
optimizer's state ("optimizer/<index>/<name>"), and one JSON document
("__lamina__") with lamina's version, the architecture, and training metadata.
The architecture is the class and constructor arguments of each module,
recorded when the module was built; loading rebuilds only classes that are
already defined (lamina's own, or the user's, imported before loading), so a
file can never make lamina import or run code.
"""

import json
import os
import zipfile
import zlib
from collections import OrderedDict

import numpy as np

from lamina import backend
from lamina.autograd import Tensor
from lamina.files import write_atomically
from lamina.nn.module import MODULE_CLASSES, Module

FORMAT = "lamina"


class ModelFileError(ValueError):
    """A model or checkpoint file cannot be written or read as asked."""


# --- architecture as JSON ------------------------------------------------------------------------
def _class_key(module):
    return f"{type(module).__module__}.{type(module).__qualname__}"


def _encode(value, owner, where):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, Module):
        return {"module": architecture(value)}
    if isinstance(value, OrderedDict):
        return {"odict": [[k, _encode(v, owner, where)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"tuple": [_encode(v, owner, where) for v in value]}
    if isinstance(value, list):
        return [_encode(v, owner, where) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"dict": {k: _encode(v, owner, where) for k, v in value.items()}}
    if isinstance(value, (np.dtype, type)) and value in (np.float16, np.float32, np.float64):
        return {"dtype": np.dtype(value).name}
    if isinstance(value, (Tensor, np.ndarray)) and np.asarray(value).size <= 4096:
        array = np.asarray(value)
        return {"array": array.tolist(), "dtype": array.dtype.name}
    raise ModelFileError(
        f"cannot record the architecture of {owner}: its constructor argument {where} is a "
        f"{type(value).__name__}, not a plain value; save its weights with lamina.save(model.state_dict(), path) "
        "and rebuild the model in code"
    )


def architecture(module):
    """The module's class and constructor arguments, as JSON-ready data."""
    args, kwargs = module._init_args
    owner = type(module).__name__
    return {
        "class": _class_key(module),
        "args": [_encode(a, owner, f"#{i}") for i, a in enumerate(args)],
        "kwargs": {k: _encode(v, owner, repr(k)) for k, v in kwargs.items()},
    }


def _decode(value):
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "module" in value:
        return build(value["module"])
    if "odict" in value:
        return OrderedDict((k, _decode(v)) for k, v in value["odict"])
    if "tuple" in value:
        return tuple(_decode(v) for v in value["tuple"])
    if "dict" in value:
        return {k: _decode(v) for k, v in value["dict"].items()}
    if "dtype" in value and "array" not in value:
        return np.dtype(value["dtype"])
    if "array" in value:
        return Tensor(np.asarray(value["array"], dtype=value["dtype"]))
    raise ModelFileError(f"unreadable architecture entry {value!r}")


def build(config):
    """Construct a module from `architecture(...)` output; only already-defined classes are used."""
    cls = MODULE_CLASSES.get(config["class"])
    if cls is None:
        raise ModelFileError(
            f"the file needs class {config['class']}, which is not defined; import the module that defines it "
            "before loading, or build the model in code and load its weights with load_state_dict"
        )
    return cls(*_decode(config["args"]), **{k: _decode(v) for k, v in config["kwargs"].items()})


def _preserving_rng(fn):
    """Run fn without disturbing lamina's generator (rebuilding a model draws initial weights)."""
    state = backend.generator().bit_generator.state
    try:
        return fn()
    finally:
        backend.generator().bit_generator.state = state


# --- writing ----------------------------------------------------------------------------------------
def _write_atomically(path, arrays):
    write_atomically(path, lambda f: np.savez(f, **arrays))


def _json_array(document):
    return np.frombuffer(json.dumps(document).encode(), dtype=np.uint8)


def save(obj, path, optimizer=None, scheduler=None, epoch=None, history=None, metadata=None):
    """Save a model (architecture and weights) or a state dict to one file.

    With `optimizer` (and optionally `scheduler`, `epoch`, `history`), the file
    is a checkpoint that `load_checkpoint` resumes from; `load` still reads its
    model.
    """
    from lamina import __version__

    arrays = {}
    document = {"format": FORMAT, "version": __version__, "metadata": metadata or {}}
    while getattr(obj, "wraps_module", False):  # a data-parallel wrapper saves the model it wraps
        obj = obj.module
    if isinstance(obj, Module):
        config = architecture(obj)
        state = obj.state_dict()
        rebuilt = _preserving_rng(lambda: build(config)).state_dict()
        if {k: v.shape for k, v in rebuilt.items()} != {k: v.shape for k, v in state.items()}:
            raise ModelFileError(
                f"{type(obj).__name__} changed after it was built (its constructor arguments no longer describe "
                "its layers); save its weights with lamina.save(model.state_dict(), path) instead"
            )
        document["architecture"] = config
    elif isinstance(obj, dict):
        state = obj
        document["architecture"] = None
    else:
        raise TypeError(f"save: expected a Module or a state dict, got {type(obj).__name__}")
    for name, value in state.items():
        arrays[f"model/{name}"] = np.asarray(value.data if isinstance(value, Tensor) else value)
    if optimizer is not None:
        opt_state = optimizer.state_dict()
        scalars = {}
        for index, values in opt_state["state"].items():
            for key, value in values.items():
                if isinstance(value, np.ndarray):
                    arrays[f"optimizer/{index}/{key}"] = value
                else:
                    scalars.setdefault(str(index), {})[key] = value
        document["optimizer"] = {"class": type(optimizer).__name__, "param_groups": opt_state["param_groups"],
                                 "scalars": scalars}
    if scheduler is not None:
        document["scheduler"] = {"class": type(scheduler).__name__, "state": scheduler.state_dict()}
    if epoch is not None:
        document["epoch"] = int(epoch)
    if history is not None:
        document["history"] = history
    arrays["__lamina__"] = _json_array(document)
    _write_atomically(path, arrays)


# --- reading ----------------------------------------------------------------------------------------
def _read(path):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such model file: {path}")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path}: not a lamina model file, or truncated (it is not a complete .npz archive)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "__lamina__" not in archive.files:
                raise ModelFileError(f"{path}: not a lamina file (no __lamina__ entry)")
            document = json.loads(archive["__lamina__"].tobytes().decode())
            arrays = {name: archive[name] for name in archive.files if name != "__lamina__"}
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError, KeyError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{path}: the file is truncated or corrupted ({type(e).__name__}: {e})") from None
    if document.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a lamina file")
    return document, arrays


def _model_state(arrays):
    return OrderedDict((name[len("model/"):], a) for name, a in arrays.items() if name.startswith("model/"))


def _load_weights(model, state, path):
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = ([f"missing key {', '.join(missing)}"] if missing else []) + \
                ([f"unexpected key {', '.join(unexpected)}"] if unexpected else [])
        raise ModelFileError(f"{path}: {'; '.join(parts)}")
    for key, array in state.items():
        if tuple(array.shape) != expected[key].shape:
            raise ModelFileError(f"{path}: {key} has shape {tuple(array.shape)} in file, "
                                 f"{expected[key].shape} in model")
    model.load_state_dict(state)


def load(path, model=None):
    """Read a model saved by `save`; with `model` given, load the weights into it instead.

    A file holding only a state dict returns that state dict (as arrays).
    """
    document, arrays = _read(path)
    state = _model_state(arrays)
    if model is None:
        if document.get("architecture") is None:
            return state
        model = _preserving_rng(lambda: build(document["architecture"]))
    _load_weights(model, state, path)
    model.eval()
    return model


def load_checkpoint(path, model=None, optimizer=None, scheduler=None):
    """Restore a checkpoint: weights into `model` (built from the file if None), optimizer and scheduler state.

    Returns a dict with the model, the epoch, the history and the metadata.
    """
    document, arrays = _read(path)
    model = load(path, model)
    model.train()
    if optimizer is not None:
        saved = document.get("optimizer")
        if saved is None:
            raise ModelFileError(f"{path}: holds no optimizer state")
        if saved["class"] != type(optimizer).__name__:
            raise ModelFileError(f"{path}: optimizer state is for {saved['class']}, not {type(optimizer).__name__}")
        state = {}
        for name, array in arrays.items():
            if name.startswith("optimizer/"):
                _, index, key = name.split("/", 2)
                state.setdefault(int(index), {})[key] = array
        for index, values in saved["scalars"].items():
            state.setdefault(int(index), {}).update(values)
        optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
    if scheduler is not None and "scheduler" in document:
        scheduler.load_state_dict(document["scheduler"]["state"])
    return {"model": model, "epoch": document.get("epoch"), "history": document.get("history"),
            "metadata": document.get("metadata", {}), "version": document.get("version")}


def read_metadata(path):
    """The JSON document of a file, without building the model."""
    return _read(path)[0]
