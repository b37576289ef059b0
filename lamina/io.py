"""Saving and loading models and checkpoints: one .npz or .safetensors file, no pickle, written atomically.

An .npz file holds the weights as plain arrays ("model/<name>"), optionally the
optimizer's state ("optimizer/<index>/<name>"), and one JSON document
("__lamina__") with lamina's version, the architecture, and training metadata.
A .safetensors file holds the weights under their bare state-dict names, as
PyTorch's do (so either framework loads the other's), the optimizer's arrays
under "optimizer/<index>/<name>", and the same JSON document in its metadata.
The architecture is the class and constructor arguments of each module,
recorded when the module was built; loading rebuilds only classes that are
already defined (lamina's own, or the user's, imported before loading), so a
file can never make lamina import or run code. PyTorch's pickle files
(.pt, .pth) are refused, never unpickled.
"""

import json
import math
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


# --- safetensors ------------------------------------------------------------------------------------
SAFETENSORS_DTYPES = {  # the dtypes lamina reads, by their safetensors names; BF16 is widened to float32
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16, "I64": np.int64, "I32": np.int32,
    "I16": np.int16, "I8": np.int8, "U64": np.uint64, "U32": np.uint32, "U16": np.uint16, "U8": np.uint8,
    "BOOL": np.bool_,
}
_MAX_HEADER = 100_000_000  # bytes: the safetensors library's own limit on the JSON header
_PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt")


def _is_safetensors(path):
    return os.fspath(path).lower().endswith(".safetensors")


def _safetensors_numpy(path):
    try:
        import safetensors.numpy
    except ImportError:
        raise ModelFileError(f"{path}: .safetensors files need the safetensors package: "
                             "pip install 'lamina[safetensors]'") from None
    return safetensors.numpy


def _write_safetensors(path, arrays, document):
    tensors, optimizer_keys = {}, []
    for name, array in arrays.items():
        key = name[len("model/"):] if name.startswith("model/") else name
        if name.startswith("optimizer/"):
            optimizer_keys.append(key)
        if array.dtype.type not in SAFETENSORS_DTYPES.values():
            raise ModelFileError(f"cannot save {key} to {path}: its dtype {array.dtype} has no safetensors equivalent")
        if key in tensors:
            raise ModelFileError(f"cannot save to {path}: two arrays are named {key}")
        tensors[key] = array if array.flags.c_contiguous else array.copy(order="C")
    document = dict(document, tensors=[k for k in tensors if k not in optimizer_keys])  # the state dict's order
    if "optimizer" in document:
        document["optimizer"] = dict(document["optimizer"], tensors=optimizer_keys)
    # "format": "pt" says the tensors use PyTorch's names and layouts, which tools that load PyTorch weights check
    data = _safetensors_numpy(path).save(tensors, metadata={"format": "pt", "__lamina__": json.dumps(document)})
    write_atomically(path, lambda f: f.write(data))


def _safetensors_header(path):
    """The file's JSON header and where its data starts, checked so that reading allocates no more than
    the file holds: every tensor's bytes lie inside the data area, tiling it exactly."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ModelFileError(f"{path}: not a safetensors file, or truncated ({size} bytes)")
        length = int.from_bytes(head, "little")
        if length > size - 8:
            raise ModelFileError(f"{path}: truncated, or not a safetensors file (its header should be {length:,} "
                                 f"bytes, but {size - 8:,} follow)")
        if length > _MAX_HEADER:
            raise ModelFileError(f"{path}: not a safetensors file (a header of {length:,} bytes)")
        raw = f.read(length)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as e:
        raise ModelFileError(f"{path}: corrupted, or not a safetensors file (its header is not JSON: {e})") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path}: corrupted (its header is not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ModelFileError(f"{path}: corrupted (its __metadata__ is not a table of strings)")
    data_size, spans = size - 8 - length, []
    for key, info in header.items():
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= set(info):
            raise ModelFileError(f"{path}: corrupted: the entry of tensor {key} lacks dtype, shape or data_offsets")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in SAFETENSORS_DTYPES:
            raise ModelFileError(f"{path}: tensor {key} has dtype {dtype}, which lamina does not read (it reads "
                                 f"{', '.join(SAFETENSORS_DTYPES)}); convert it, to float32 say, before saving")
        if (not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape)
                or not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(n, int) and n >= 0 for n in offsets)):
            raise ModelFileError(f"{path}: corrupted: tensor {key} has shape {shape} and data_offsets {offsets}")
        begin, end = offsets
        if not begin <= end <= data_size:
            raise ModelFileError(f"{path}: truncated or corrupted: tensor {key} lies at bytes {begin:,} to {end:,} "
                                 f"of a data area of {data_size:,}")
        needed = math.prod(shape) * np.dtype(SAFETENSORS_DTYPES[dtype]).itemsize
        if end - begin != needed:
            raise ModelFileError(f"{path}: corrupted: tensor {key} ({dtype}, shape {tuple(shape)}) needs {needed:,} "
                                 f"bytes, but the file gives it {end - begin:,}")
        spans.append((begin, end, key))
    position = 0
    for begin, end, key in sorted(spans):
        if begin != position:
            raise ModelFileError(f"{path}: corrupted: tensor {key} starts at byte {begin:,} of the data, not at "
                                 f"{position:,} where the one before it ends")
        position = end
    if position != data_size:
        raise ModelFileError(f"{path}: corrupted: its tensors fill {position:,} bytes, but the data area holds "
                             f"{data_size:,}")
    return header, metadata, 8 + length


def _read_safetensors(path):
    header, metadata, data_start = _safetensors_header(path)
    if "__lamina__" in metadata:
        try:
            document = json.loads(metadata["__lamina__"])
        except ValueError as e:
            raise ModelFileError(f"{path}: corrupted (its lamina metadata is not JSON: {e})") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise ModelFileError(f"{path}: not a lamina file")
    else:  # weights from elsewhere (PyTorch's safetensors.torch.save_file, a model hub): a state dict
        document = {"format": FORMAT, "architecture": None, "metadata": {}}
    optimizer_keys = set((document.get("optimizer") or {}).get("tensors", []))
    order = [k for k in document.get("tensors", []) if k in header]
    order += sorted((k for k in header if k not in set(order)), key=lambda k: header[k]["data_offsets"][0])
    _safetensors_numpy(path)  # a clear error when the package is missing
    from safetensors import SafetensorError, safe_open

    arrays, key = {}, None
    try:
        with safe_open(path, framework="np") as f:
            for key in order:
                info = header[key]
                if info["dtype"] == "BF16":  # NumPy has no bfloat16: its bits are the top half of a float32's
                    bits = np.fromfile(path, dtype="<u2", count=math.prod(info["shape"]),
                                       offset=data_start + info["data_offsets"][0])
                    array = (bits.astype(np.uint32) << 16).view(np.float32).reshape(info["shape"])
                else:
                    array = f.get_tensor(key)
                arrays[key if key in optimizer_keys else f"model/{key}"] = array
    except (SafetensorError, OSError, ValueError) as e:
        where = f" (tensor {key})" if key is not None else ""
        raise ModelFileError(f"{path}: truncated or corrupted{where}: {e}") from None
    return document, arrays


def _refuse_pickle(path):
    """PyTorch's .pt/.pth files are pickles, which can run any code when loaded: say how to convert instead."""
    with open(path, "rb") as f:
        head = f.read(2)
    pickled = os.path.splitext(path)[1].lower() in _PICKLE_SUFFIXES or (head[:1] == b"\x80" and head[1:2] in
                                                                         (b"\x02", b"\x03", b"\x04", b"\x05"))
    if not pickled and head == b"PK" and zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                pickled = any(name.endswith(".pkl") for name in archive.namelist())
        except (zipfile.BadZipFile, OSError):
            pickled = False
    if pickled:
        raise ModelFileError(
            f"{path}: a PyTorch pickle file, which lamina never loads (unpickling can run any code). Convert it to "
            "safetensors where PyTorch is installed: python -c \"import torch; from safetensors.torch import "
            f"save_file; save_file(torch.load('{path}', weights_only=True), 'model.safetensors')\" (for a "
            "checkpoint, save its 'state_dict' entry), then use lamina.load_weights('model.safetensors')")


def _host(value):
    """A NumPy array of a tensor's or an array's values, copied from the GPU when it lives there."""
    data = value.array if isinstance(value, Tensor) else value
    if backend.is_array(data) and not isinstance(data, np.ndarray):
        return data.get()  # CuPy
    return np.asarray(data)


# --- writing ----------------------------------------------------------------------------------------
def _write_atomically(path, arrays):
    write_atomically(path, lambda f: np.savez(f, **arrays))


def _json_array(document):
    return np.frombuffer(json.dumps(document).encode(), dtype=np.uint8)


def save(obj, path, optimizer=None, scheduler=None, epoch=None, history=None, metadata=None):
    """Save a model (architecture and weights) or a state dict to one file, .npz or .safetensors.

    With `optimizer` (and optionally `scheduler`, `epoch`, `history`), the file
    is a checkpoint that `load_checkpoint` resumes from; `load` still reads its
    model. A .safetensors file keeps the weights under their state-dict names,
    so PyTorch's `safetensors.torch.load_file` reads them for the equivalent
    PyTorch model.
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
        arrays[f"model/{name}"] = _host(value)
    if optimizer is not None:
        opt_state = optimizer.state_dict()
        scalars = {}
        for index, values in opt_state["state"].items():
            for key, value in values.items():
                if backend.is_array(value):
                    arrays[f"optimizer/{index}/{key}"] = _host(value)
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
    if optimizer is not None:  # a checkpoint: resuming continues the same random draws (shuffling, dropout)
        document["rng_state"] = backend.generator().bit_generator.state
    if _is_safetensors(path):
        _write_safetensors(path, arrays, document)
        return
    arrays["__lamina__"] = _json_array(document)
    _write_atomically(path, arrays)


# --- reading ----------------------------------------------------------------------------------------
def _check_npz_sizes(path):
    """Each array's header must fit the bytes its entry holds, so that reading allocates no more than the file."""
    size = os.path.getsize(path)
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.file_size > size:
                raise ModelFileError(f"{path}: corrupted: entry {info.filename} claims {info.file_size:,} bytes, more "
                                     f"than the whole file ({size:,})")
            if not info.filename.endswith(".npy"):
                continue
            with archive.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version not in ((1, 0), (2, 0)):
                    continue  # version 3 only differs for structured dtypes' names, which lamina never writes
                read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                shape, _, dtype = read_header(f)
                if math.prod(shape) * dtype.itemsize > info.file_size:
                    raise ModelFileError(f"{path}: corrupted: array {info.filename[:-4]} claims shape {shape} of "
                                         f"{dtype}, more than its {info.file_size:,} bytes")


def _read(path):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such model file: {path}")
    _refuse_pickle(path)
    if _is_safetensors(path):
        return _read_safetensors(path)
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path}: not a lamina model file, or truncated (it is not a complete .npz archive)")
    try:
        _check_npz_sizes(path)
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
    for key in expected:  # in the model's order: the first layer that does not fit is the one named
        if tuple(state[key].shape) != expected[key].shape:
            raise ModelFileError(f"{path}: {key} has shape {tuple(state[key].shape)} in file, "
                                 f"{expected[key].shape} in model")
    model.load_state_dict(state)


def load(path, model=None):
    """Read a model saved by `save`; with `model` given, load the weights into it instead.

    A file holding only a state dict returns that state dict (as arrays); so
    does a .safetensors file from elsewhere (PyTorch's, say), whose weights load
    into the equivalent lamina model with `load(path, model=model)`.
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


def load_checkpoint(path, model=None, optimizer=None, scheduler=None, restore_rng=True):
    """Restore a checkpoint: weights into `model` (built from the file if None), optimizer and scheduler state,
    and lamina's random generator as it was when the checkpoint was written, so that a resumed run draws
    the same shuffles, augmentations and dropout masks as one that never stopped (restore_rng=False keeps
    the generator as it is).

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
    if restore_rng and "rng_state" in document:
        _restore_rng(document["rng_state"], path)
    return {"model": model, "epoch": document.get("epoch"), "history": document.get("history"),
            "metadata": document.get("metadata", {}), "version": document.get("version")}


def _restore_rng(state, path):
    generator = backend.generator().bit_generator
    if not isinstance(state, dict) or state.get("bit_generator") != type(generator).__name__:
        raise ModelFileError(f"{path}: rng_state is not a {type(generator).__name__} generator's state")
    try:
        generator.state = state
    except (TypeError, ValueError, KeyError) as e:
        raise ModelFileError(f"{path}: rng_state cannot be restored ({e})") from None


def load_weights(path):
    """The weights in a file as a state dict of NumPy arrays, by name: from a lamina .npz or .safetensors file,
    or a .safetensors file PyTorch wrote (`safetensors.torch.save_file(model.state_dict(), path)`).

    `model.load_state_dict(lamina.load_weights(path))` loads them into the equivalent lamina model.
    """
    return _model_state(_read(path)[1])


load_state_dict = load_weights  # the name PyTorch users look for; it reads a file, as torch.load does


def read_metadata(path):
    """The JSON document of a file, without building the model."""
    return _read(path)[0]
