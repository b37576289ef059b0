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
import shutil
import tempfile
import warnings
import zipfile
import zlib
from collections import OrderedDict

import numpy as np

from lamina import backend
from lamina.autograd import Tensor, wrap
from lamina.errors import AllocationLimitError, LaminaError
from lamina.files import regular_file_size, write_atomically
from lamina.nn.module import MODULE_CLASSES, Module

FORMAT = "lamina"


class ModelFileError(LaminaError, ValueError):
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
    if isinstance(value, Tensor):
        value = value._host_array()
    if isinstance(value, np.ndarray) and value.size <= 4096:
        array = value
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


_MAX_NESTING = 200  # levels of lists and modules in an architecture; a crafted file could nest until Python's
# recursion limit, while real models stay far below (each nested module costs about three levels)
_ARRAY_DTYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                 "uint64", "bool")


def _short(value, limit=80):
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _decode(value, depth):
    """A constructor argument from its JSON form, refusing anything `_encode` could not have written."""
    if depth > _MAX_NESTING:
        raise ModelFileError(f"the architecture nests deeper than {_MAX_NESTING} levels")
    if isinstance(value, list):
        return [_decode(v, depth + 1) for v in value]
    if not isinstance(value, dict):
        return value  # None, a bool, a number or a string
    tag = next(iter(value), None) if len(value) == 1 else "array" if set(value) == {"array", "dtype"} else None
    inner = value.get(tag)
    if tag == "module":
        return build(inner, depth + 1)
    if tag == "odict" and isinstance(inner, list) and all(
            isinstance(item, list) and len(item) == 2 and isinstance(item[0], str) for item in inner):
        return OrderedDict((k, _decode(v, depth + 1)) for k, v in inner)
    if tag == "tuple" and isinstance(inner, list):
        return tuple(_decode(v, depth + 1) for v in inner)
    if tag == "dict" and isinstance(inner, dict):
        return {k: _decode(v, depth + 1) for k, v in inner.items()}
    if tag == "dtype" and inner in _ARRAY_DTYPES:
        return np.dtype(inner)
    if tag == "array" and value["dtype"] in _ARRAY_DTYPES and isinstance(inner, list):
        try:
            return wrap(np.asarray(inner, dtype=value["dtype"]))
        except (TypeError, ValueError, OverflowError) as e:
            raise ModelFileError(f"an array in the architecture cannot be read ({e})") from None
    raise ModelFileError(f"unreadable architecture entry {_short(value)}")


def build(config, _depth=0):
    """Construct a module from `architecture(...)` output; only already-defined classes are used.

    Anything else in `config` (a missing field, a wrong type, arguments the class refuses) raises
    ModelFileError naming the class.
    """
    if not isinstance(config, dict) or not isinstance(config.get("class"), str):
        raise ModelFileError(f"an architecture entry is not a module (it needs a class name): {_short(config)}")
    name, args, kwargs = config["class"], config.get("args", []), config.get("kwargs", {})
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise ModelFileError(f"the entry of {name} needs a list 'args' and a table 'kwargs', not "
                             f"{_short(args, 40)} and {_short(kwargs, 40)}")
    cls = MODULE_CLASSES.get(name)
    if cls is None:
        raise ModelFileError(
            f"the file needs class {name}, which is not defined; import the module that defines it "
            "before loading, or build the model in code and load its weights with load_state_dict"
        )
    args = _decode(args, _depth + 1)
    kwargs = {k: _decode(v, _depth + 1) for k, v in kwargs.items()}
    shown = ", ".join([_short(a, 30) for a in args] + [f"{k}={_short(v, 30)}" for k, v in kwargs.items()])
    call = f"{cls.__name__}({shown})"
    try:
        return cls(*args, **kwargs)
    except AllocationLimitError as e:
        raise ModelFileError(f"{call} would hold more than the weights in the file ({e}); the file is corrupted "
                             "or crafted") from None
    except Exception as e:  # whatever the class raises for arguments it refuses: the file is at fault
        raise ModelFileError(f"cannot build {call} as the file describes it ({type(e).__name__}: {e})") from None


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
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
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
        except (ValueError, RecursionError) as e:
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
    """PyTorch's .pt/.pth files are pickles, which can run any code when loaded: say how to convert instead.

    Judged by the content, not the name: `lamina.save(model, "model.pth")`, as PyTorch tutorials write,
    makes a lamina file that loads; a pickle (bare, or in PyTorch's zip archive) is refused whatever its name.
    """
    with open(path, "rb") as f:
        head = f.read(2)
    pickled = head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")
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
    if backend.is_array(data):
        return backend.to_device(data, backend.CPU)
    return np.asarray(data)


# --- writing ----------------------------------------------------------------------------------------
def _write_atomically(path, arrays):
    write_atomically(path, lambda f: np.savez(f, **arrays))


def _json_array(document):
    return np.frombuffer(json.dumps(document).encode(), dtype=np.uint8)


def _through_file(path, write):
    """Write with `write(path)` into a temporary file, then copy it into the open binary file `path`."""
    with tempfile.TemporaryDirectory() as folder:
        temporary = os.path.join(folder, "model.npz")
        write(temporary)
        with open(temporary, "rb") as f:
            shutil.copyfileobj(f, path)


def save(obj, path, optimizer=None, scheduler=None, epoch=None, history=None, metadata=None):
    """Save a model (architecture and weights) or a state dict to one file, .npz or .safetensors.

    With `optimizer` (and optionally `scheduler`, `epoch`, `history`), the file
    is a checkpoint that `load_checkpoint` resumes from; `load` still reads its
    model. A .safetensors file keeps the weights under their state-dict names,
    so PyTorch's `safetensors.torch.load_file` reads them for the equivalent
    PyTorch model. Any other name (model.pth, as PyTorch programs write) gets
    the .npz format; `path` may also be a file opened for binary writing.
    """
    from lamina import __version__

    if hasattr(path, "write"):
        return _through_file(path, lambda p: save(obj, p, optimizer, scheduler, epoch, history, metadata))
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
    elif isinstance(obj, (np.ndarray, Tensor)):  # torch.save(array, f), as data-preparing scripts do
        state = {"value": obj}
        document["architecture"], document["object"] = None, type(obj).__name__
    else:
        raise TypeError(f"save: expected a Module, a state dict, a tensor or an array, got {type(obj).__name__}")
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
def _check_npz_sizes(path, size):
    """Each array's header must fit the bytes its entry holds, and the entries together the file (lamina writes
    them uncompressed), so that reading allocates no more than the file's size: a compressed archive of many
    entries of zeros would otherwise unpack to a thousand times its size."""
    with zipfile.ZipFile(path) as archive:
        total = sum(info.file_size for info in archive.infolist())
        if total > size:
            raise ModelFileError(f"{path}: corrupted or crafted: its entries unpack to {total:,} bytes, more than the "
                                 f"whole file ({size:,}); lamina writes its archives uncompressed")
        for info in archive.infolist():
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
    size = regular_file_size(path, ModelFileError, "models")
    _refuse_pickle(path)
    if _is_safetensors(path):
        return _read_safetensors(path)
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path}: not a lamina model file, or truncated (it is not a complete .npz archive)")
    try:
        _check_npz_sizes(path, size)
        with np.load(path, allow_pickle=False) as archive:
            if "__lamina__" not in archive.files:
                raise ModelFileError(f"{path}: not a lamina file (no __lamina__ entry)")
            document = json.loads(archive["__lamina__"].tobytes().decode())
            arrays = {name: archive[name] for name in archive.files if name.startswith(("model/", "optimizer/"))}
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError, KeyError, UnicodeDecodeError,
            RecursionError) as e:
        raise ModelFileError(f"{path}: the file is truncated or corrupted ({type(e).__name__}: {e})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
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
                                 f"{tuple(expected[key].shape)} in model")
    model.load_state_dict(state)


_BUILD_SLACK = 16 << 20  # bytes a rebuilt model may hold beyond its weights' (buffers that are not saved)


def _rebuild(config, state, path):
    """The model the file's architecture describes, refused before it allocates more than the file justifies:
    twice its weights (a float16 file may build float32 layers) plus a little for buffers never saved."""
    budget = 2 * sum(a.nbytes for a in state.values()) + _BUILD_SLACK
    try:
        with backend.allocation_budget(budget):
            return _preserving_rng(lambda: build(config))
    except ModelFileError as e:
        raise ModelFileError(f"{path}: {e}") from None


def _warn_if_not_finite(state, path):
    for key, array in state.items():
        if array.dtype.kind in "fc" and not np.isfinite(array).all():
            bad = int(array.size - np.isfinite(array).sum())
            warnings.warn(f"{path}: {key} holds {bad:,} non-finite values (NaN or infinity); the model was saved "
                          "after its training diverged, and its outputs will be NaN", RuntimeWarning, stacklevel=3)


def _from_file(source, read):
    """`read(path)` of a temporary copy of the open binary file `source`, copied with a size limit."""
    with tempfile.TemporaryDirectory() as folder:
        temporary = os.path.join(folder, "model.npz")
        with open(temporary, "wb") as f:
            copied = 0
            while block := source.read(1 << 20):
                copied += len(block)
                if copied > MAX_FILE_OBJECT_BYTES:
                    raise ModelFileError(f"load: the file object holds more than {MAX_FILE_OBJECT_BYTES:,} bytes; "
                                         "load large models from a path")
                f.write(block)
        return read(temporary)


MAX_FILE_OBJECT_BYTES = 16 << 30


def _placement(map_location, device):
    """Where `load` puts what it reads: a device, or a callable given each tensor, from PyTorch's map_location
    (a device or its name, a dict, a callable) or lamina's device=. A lamina file records no device (a GPU
    model's file is the same as a CPU one's), so a dict is read for the file's location, "cpu"."""
    if device is not None and map_location is not None:
        raise ValueError("load: give map_location or device, not both")
    where = device if device is not None else map_location
    if isinstance(where, dict):
        where = where.get("cpu", where.get(backend.CPU))
    if where is None or callable(where) and not isinstance(where, backend.device):
        return where
    return backend.resolve_device(where, "load")


def _placed(value, where):
    """An array or tensor (kind kept) put where `_placement` said: on a device, or through a callable."""
    if where is None:
        return value
    if callable(where) and not isinstance(where, backend.device):
        placed = where(value if isinstance(value, Tensor) else wrap(value), "cpu")
        return placed if isinstance(value, Tensor) or not isinstance(placed, Tensor) else placed.array
    return value.to(where) if isinstance(value, Tensor) else backend.to_device(value, where)


def load(path, model=None, map_location=None, weights_only=None, mmap=None, device=None):
    """Read a model saved by `save`; with `model` given, load the weights into it instead.

    A file holding only a state dict returns that state dict (as arrays); so
    does a .safetensors file from elsewhere (PyTorch's, say), whose weights load
    into the equivalent lamina model with `load(path, model=model)`. Weights that
    are NaN or infinite load, with a warning. `path` may be an open binary file.
    `map_location` (as PyTorch's: "cpu", "cuda", "cuda:1", a lamina.device, a
    dict, or a callable given each tensor and "cpu") or `device` says where the
    model or arrays go; without either, a new model loads on the CPU and a
    given `model` keeps its device. PyTorch's `weights_only` and `mmap` are
    accepted: a lamina file never holds code, so loading is always as safe as
    weights_only=True asks.
    """
    where = _placement(map_location, device)
    if hasattr(path, "read"):
        return _from_file(path, lambda p: load(p, model, device=where))
    document, arrays = _read(path)
    state = _model_state(arrays)
    _warn_if_not_finite(state, path)
    if document.get("object") in ("ndarray", "Tensor") and "value" in state:  # a saved array or tensor, as saved
        value = state["value"] if document["object"] == "ndarray" else wrap(state["value"])
        return _placed(value, where)
    if model is None:
        if document.get("architecture") is None:
            return OrderedDict((k, _placed(v, where)) for k, v in state.items())
        model = _rebuild(document["architecture"], state, path)
    _load_weights(model, state, path)
    if isinstance(where, backend.device):
        model.to(where)
    elif where is not None:  # a callable: each parameter and buffer goes where it says
        for t in list(model.parameters()) + list(model.buffers()):
            t.array = _placed(t.array, where)
    model.eval()
    return model


def load_checkpoint(path, model=None, optimizer=None, scheduler=None, restore_rng=True, map_location=None, device=None):
    """Restore a checkpoint: weights into `model` (built from the file if None), optimizer and scheduler state,
    and lamina's random generator as it was when the checkpoint was written, so that a resumed run draws
    the same shuffles, augmentations and dropout masks as one that never stopped (restore_rng=False keeps
    the generator as it is). `map_location` or `device` put the model where training resumes, as in `load`;
    the optimizer's state follows each parameter's device. The generator saved is the CPU's, which draws the
    shuffles and a CPU model's dropout; a GPU's own generator (a GPU model's dropout masks) is not saved, so
    a run resumed on a GPU draws other masks than one that never stopped.

    Returns a dict with the model, the epoch, the history and the metadata.
    """
    document, arrays = _read(path)
    _check_progress(document, path)
    model = load(path, model, map_location, device=device)
    model.train()
    if optimizer is not None:
        saved = document.get("optimizer")
        if saved is None:
            raise ModelFileError(f"{path}: holds no optimizer state")
        optimizer.load_state_dict(_optimizer_state(saved, arrays, optimizer, path))
    if scheduler is not None and "scheduler" in document:
        scheduler.load_state_dict(_scheduler_state(document["scheduler"], scheduler, path))
    if restore_rng and "rng_state" in document:
        _restore_rng(document["rng_state"], path)
    return {"model": model, "epoch": document.get("epoch"), "history": document.get("history"),
            "metadata": document.get("metadata", {}), "version": document.get("version")}


# --- checking a checkpoint's training state: crafted or damaged fields are refused on load, by name ----------------
def _check_progress(document, path):
    epoch, history = document.get("epoch"), document.get("history")
    if epoch is not None and (type(epoch) is not int or epoch < 0):
        raise ModelFileError(f"{path}: epoch must be a whole number, at least 0, not {_short(epoch)}")
    if history is not None and not isinstance(history, dict):
        raise ModelFileError(f"{path}: history must be a table, not {_short(history)}")


def _same_kind(value, like, signed=False):
    """Whether a setting read from a file has the kind of the value it replaces: a finite number for a number
    (at least 0 unless `signed`: every optimizer setting is), a list of as many for a tuple (Adam's betas),
    a bool for a bool, ..."""
    if isinstance(like, bool) or like is None or isinstance(like, str):
        return type(value) is type(like)
    if isinstance(like, (int, float, np.integer, np.floating)):
        return type(value) in (int, float) and math.isfinite(value) and (signed or value >= 0)
    if isinstance(like, (tuple, list)):
        return isinstance(value, list) and len(value) == len(like) and all(
            _same_kind(v, w, signed) for v, w in zip(value, like))
    return True  # a kind lamina's optimizers and schedules do not use: left to them


def _state_keys(optimizer, settings):
    """The state the optimizer keeps per parameter with these settings, learnt from one step on a stand-in
    parameter (None when the optimizer cannot step that way, LBFGS say, which needs a closure)."""
    from lamina.nn.module import Parameter

    stand_in = Parameter(np.zeros(1, np.float32))
    stand_in.grad = wrap(np.zeros(1, np.float32))
    probe = object.__new__(type(optimizer))
    probe.__dict__.update(optimizer.__dict__, state={}, _scratch_buffers={},
                          param_groups=[dict(settings, params=[stand_in])])
    try:
        probe.step()
    except Exception:  # noqa: BLE001 (the probe is a convenience: without it keys are not checked)
        return None
    return set(probe.state.get(stand_in, {}))


def _optimizer_state(saved, arrays, optimizer, path):
    """The optimizer's state dict from a checkpoint, every field checked against the optimizer it goes into, so
    that crafted or damaged state is refused here, by name, rather than failing a step later."""
    name = type(optimizer).__name__
    if not isinstance(saved, dict) or saved.get("class") != name:
        found = saved.get("class") if isinstance(saved, dict) else _short(saved)
        raise ModelFileError(f"{path}: optimizer state is for {found}, not {name}")
    groups, scalars = saved.get("param_groups"), saved.get("scalars", {})
    if not isinstance(groups, list) or len(groups) != len(optimizer.param_groups):
        raise ModelFileError(f"{path}: optimizer param_groups must be a list of {len(optimizer.param_groups)} "
                             f"groups, not {_short(groups)}")
    params, owner = [], {}
    for i, (group, current) in enumerate(zip(groups, optimizer.param_groups)):
        indices = list(range(len(params), len(params) + len(current["params"])))
        if not isinstance(group, dict) or group.get("params") != indices:
            raise ModelFileError(f"{path}: optimizer param_groups[{i}] must list parameters {indices}")
        for key, value in group.items():
            if key != "params" and not _same_kind(value, current.get(key, 0.0)):
                raise ModelFileError(f"{path}: optimizer param_groups[{i}].{key} is {_short(value)}, not a setting "
                                     f"{name} can use (expected something like {_short(current.get(key, 0.0))})")
        owner.update(dict.fromkeys(indices, group))
        params += current["params"]
    state = {}
    for entry, array in arrays.items():
        if entry.startswith("optimizer/"):
            index, key = _state_index(entry[len("optimizer/"):], len(params), path)
            field = f"optimizer/{index}/{key}"
            if array.dtype.kind != "f" or array.shape != params[index].shape:
                raise ModelFileError(f"{path}: {field} has shape {array.shape} and dtype {array.dtype}; parameter "
                                     f"{index} needs floats of shape {params[index].shape}")
            if not np.isfinite(array).all():
                raise ModelFileError(f"{path}: {field} holds NaN or infinite values")
            state.setdefault(index, {})[key] = array
    if not isinstance(scalars, dict) or not all(isinstance(v, dict) for v in scalars.values()):
        raise ModelFileError(f"{path}: optimizer scalars must be a table of tables, not {_short(scalars)}")
    for text, values in scalars.items():
        index = _state_index(f"{text}/", len(params), path)[0]
        for key, value in values.items():
            whole = type(value) is int and value >= 0
            if not (whole if key == "step" else value is None or isinstance(value, bool) or _same_kind(value, 0.0)):
                need = "a whole number, at least 0" if key == "step" else "a finite number"
                raise ModelFileError(f"{path}: optimizer/{index}/{key} is {_short(value)}, not {need}")
            state.setdefault(index, {})[key] = value
    expected_by_group = {}
    for index, values in state.items():
        group = owner[index]
        if id(group) not in expected_by_group:
            expected_by_group[id(group)] = _state_keys(optimizer, {k: v for k, v in group.items() if k != "params"})
        expected = expected_by_group[id(group)]
        if expected is not None and set(values) != expected:
            raise ModelFileError(f"{path}: optimizer state of parameter {index} holds {sorted(values)}; {name} "
                                 f"keeps {sorted(expected)}")
    return {"state": state, "param_groups": groups}


def _state_index(text, count, path):
    index, _, key = text.partition("/")
    if not index.isdigit() or int(index) >= count:
        raise ModelFileError(f"{path}: optimizer state names parameter {index!r}; the optimizer has {count} "
                             f"(0 to {count - 1})")
    return int(index), key


def _scheduler_state(saved, scheduler, path):
    current = scheduler.state_dict()
    state = saved.get("state") if isinstance(saved, dict) else None
    if not isinstance(state, dict):
        raise ModelFileError(f"{path}: scheduler state must be a table, not {_short(state)}")
    for key, value in state.items():
        if key not in current or not _same_kind(value, current[key], signed=True):
            raise ModelFileError(f"{path}: scheduler field {key} is {_short(value)}, not something "
                                 f"{type(scheduler).__name__} has")
    return state


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
    state = _model_state(_read(path)[1])
    _warn_if_not_finite(state, path)
    return state


load_state_dict = load_weights  # the name PyTorch users look for; it reads a file, as torch.load does


def read_metadata(path):
    """The JSON document of a file, without building the model."""
    return _read(path)[0]
