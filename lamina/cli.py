"""The `lamina` command: train, evaluate, predict and inspect models.

`lamina train` with no arguments is the essay in one command: a multilayer
perceptron whose weights start random learns to read handwritten digits that
ship with lamina, epoch by epoch, and is saved with its history. The sequence
datasets (spoken-digits, numbers, names) train the models of lamina.tasks.
"""

import argparse
import functools
import json
import os
import shutil
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

import lamina
from lamina import datasets, io, models, nn, tasks
from lamina.data import DataLoader, RandomShift, TensorDataset
from lamina.training import CSVLogger, History, LearningRateScheduler, ModelCheckpoint

DATASETS = datasets.IMAGE_SETS + tuple(datasets.TOY_SETS) + tuple(tasks.TASKS)
MODELS = ("mlp", "cnn", "crnn", "transformer", "gru")


class CommandError(lamina.LaminaError):
    """A problem to report in one line, with exit status 2 (as every LaminaError is)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise CommandError(message)


class _HelpFormatter(argparse.HelpFormatter):
    """Help that shows each option's default, where it has one that says something."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        unsaid = default is None or default is False or default == argparse.SUPPRESS
        if unsaid or "%(default)" in text or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


# --- data and models -------------------------------------------------------------------------------
# Caps on what lamina train accepts, refused before any work starts (and said in --help).
MAX_WIDTH = 65_536  # per hidden layer
MAX_EPOCHS = 100_000
MAX_BATCH_SIZE = 1_000_000


def _memory_bytes():
    """The machine's physical memory (None where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _hidden(text):
    try:
        sizes = [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--hidden takes widths like 256,128, not {text!r}") from None
    if any(s <= 0 for s in sizes):
        raise argparse.ArgumentTypeError(f"--hidden widths must be positive, got {text!r}")
    if max(sizes) > MAX_WIDTH:
        raise argparse.ArgumentTypeError(f"--hidden widths must be at most {MAX_WIDTH:,}, got {text!r}")
    # float32 weights between 28x28 images, the hidden layers and 10 classes, with their gradients and Adam's
    # two moments: four copies
    weights = sum(a * b for a, b in zip([784, *sizes], [*sizes, 10]))
    memory = _memory_bytes()
    if memory and 16 * weights > memory:
        raise argparse.ArgumentTypeError(f"--hidden {text} needs about {16 * weights / 1e9:,.0f} GB for its weights, "
                                         f"their gradients and the optimizer's state; this machine has "
                                         f"{memory / 1e9:,.0f} GB")
    return sizes


def _number(kind, low=None, high=None, low_included=False, at_most=None):
    """An argument type: a number of `kind` in (low, high) (or [low, high) with low_included, or up to at_most
    included), said plainly."""
    what = "a whole number" if kind is int else "a number"

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None
        if low is not None and (value < low or (value == low and not low_included)):
            bound = "positive" if low == 0 and not low_included else f"at least {low}"
            raise argparse.ArgumentTypeError(f"must be {bound}, not {text}")
        if high is not None and value >= high:
            raise argparse.ArgumentTypeError(f"must be below {high}, not {text}")
        if at_most is not None and value > at_most:
            raise argparse.ArgumentTypeError(f"must be at most {at_most:,}, not {text}")
        return value

    return parse


def _positive(kind):
    return _number(kind, low=0)


DEFAULTS = {  # per model and dataset: hidden widths, epochs, dropout, augmentation (pixels of random shift)
    ("mlp", "digits"): dict(hidden=[256, 128], epochs=30, dropout=0.2, augment=1),
    ("mlp", "mnist"): dict(hidden=[256, 128], epochs=10, dropout=0.2, augment=1),
    ("mlp", "toy"): dict(hidden=[16, 16], epochs=100, dropout=0.0, augment=0),
    ("cnn", "digits"): dict(hidden=[], epochs=12, dropout=0.25, augment=1),
    ("cnn", "mnist"): dict(hidden=[], epochs=5, dropout=0.25, augment=1),
}
for _task in tasks.TASKS.values():  # the sequence tasks: fixed architectures, their own epochs, batch, lr, dropout
    for _model in _task.model_kinds:
        DEFAULTS[_model, _task.name] = dict(hidden=[], augment=0, **_task.defaults)


# --- train ------------------------------------------------------------------------------------------
def _latest_run(root=Path("lamina-runs")):
    runs = sorted(p for p in root.glob("*") if (p / "checkpoint.npz").exists()) if root.exists() else []
    if not runs:
        raise CommandError(f"--resume: no run with a checkpoint.npz under {root}/")
    return runs[-1]


def _settings(args):
    if args.resume:
        run = _latest_run() if args.resume == "latest" else Path(args.resume)
        if run.is_file():
            run = run.parent
        try:
            settings = json.loads((run / "settings.json").read_text())
        except OSError as e:
            raise CommandError(f"--resume: cannot read the run's settings.json in {run}: {e.strerror}") from None
        except (ValueError, RecursionError) as e:
            raise CommandError(f"--resume: {run / 'settings.json'} is not valid JSON ({e})") from None
        _check_settings(settings, run / "settings.json")
        if args.epochs is not None:
            settings["epochs"] = args.epochs
        settings["out"] = str(run)
        return settings
    kind = "toy" if args.dataset in datasets.TOY_SETS else args.dataset
    task = tasks.TASKS.get(args.dataset)
    model = args.model or (task.model_kinds[0] if task else "mlp")
    if (model, kind) not in DEFAULTS:
        fits = sorted({d for m, d in DEFAULTS if m == model} - {"toy"})
        raise CommandError(f"--model {model} is for --dataset {' or '.join(fits)}, not {args.dataset}"
                           + (f" (which takes --model {' or '.join(task.model_kinds)})" if task else ""))
    if args.test_speaker and args.dataset != "spoken-digits":
        raise CommandError("--test-speaker is for --dataset spoken-digits")
    if args.hidden and model != "mlp":
        raise CommandError(f"--hidden sets the widths of an MLP; --model {model} has a fixed architecture")
    defaults = DEFAULTS[model, kind]
    settings = {
        "dataset": args.dataset, "model": model, "hidden": args.hidden or defaults["hidden"],
        "epochs": args.epochs or defaults["epochs"], "batch_size": args.batch_size or defaults.get("batch_size", 128),
        "lr": args.lr or defaults.get("lr", 3e-3), "test_speaker": args.test_speaker,
        "optimizer": args.optimizer, "seed": args.seed, "data_dir": args.data_dir,
        "dropout": defaults["dropout"] if args.dropout is None else args.dropout,
        "augment": defaults["augment"] if args.augment is None else args.augment,
        "out": args.out or str(Path("lamina-runs") / time.strftime("%Y%m%d-%H%M%S")),
    }
    return settings


_REQUIRED_SETTINGS = ("dataset", "epochs", "batch_size", "lr", "optimizer", "seed", "dropout", "augment")


def _check_settings(settings, path):
    """A run's settings.json, checked field by field by the very options of lamina train that wrote it (their
    types, choices and caps), so that a damaged or edited file is refused in one line naming the field."""
    if not isinstance(settings, dict):
        raise CommandError(f"--resume: {path} must hold a table of settings, not {type(settings).__name__}")
    required = _REQUIRED_SETTINGS + (("hidden",) if settings.get("model", "mlp") == "mlp" else ())
    missing = [key for key in required if key not in settings]
    if missing:
        raise CommandError(f"--resume: {path} lacks {', '.join(missing)}")
    parser = make_parser()
    for key, value in settings.items():
        flag = f"--{key.replace('_', '-')}"
        if key == "out" or (value in (None, []) and key not in required) or not _train_option(parser, flag):
            continue  # where a run goes is not checked here; fields that are no option are not lamina train's
        if isinstance(value, list) and all(type(v) is int for v in value):
            text = ",".join(map(str, value))  # --hidden 256,128
        elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
            text = str(value)
        else:
            raise CommandError(f"--resume: {path}: {key} is {json.dumps(value)}, which lamina train cannot use")
        try:
            parser.parse_args(["train", f"{flag}={text}"])
        except CommandError as e:
            raise CommandError(f"--resume: {path}: {key} is {json.dumps(value)}, which lamina train refuses "
                               f"({e})") from None


def _train_option(parser, flag):
    """Whether lamina train has the option `flag`."""
    try:
        return not parser.parse_known_args(["train", flag])[1]
    except CommandError:  # known, and wanting a value
        return True


def _device_name(text):
    if text != "auto":
        try:
            lamina.device(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda or cuda:N, not {text!r}") from None
    return text


def _device_option(parser, what):
    parser.add_argument("--device", type=_device_name, default="auto", metavar="DEVICE",
                        help=f"where to {what}: cpu, cuda, cuda:N, or auto (a GPU when CuPy sees one, else the CPU)")


def _device(args):
    """The device --device names, checked usable: one line (exit status 2) when it is not."""
    name = getattr(args, "device", "auto")
    if name == "auto":
        name = "cuda" if lamina.cuda.is_available() else "cpu"
    try:
        return lamina.backend.resolve_device(name, "--device")
    except RuntimeError as e:
        raise CommandError(str(e)) from None


def _start_distributed(args):
    """lamina.distributed, joined, when --distributed asks for it (None otherwise)."""
    if not getattr(args, "distributed", False):
        return None
    from lamina import distributed

    if not distributed.available():
        raise CommandError("--distributed needs mpi4py and an MPI library: pip install 'lamina[mpi]', "
                           "then run it as: mpiexec -n 2 lamina train --distributed")
    distributed.init()
    return distributed


def _model_for(settings, x_train, classes):
    """The network the settings ask for."""
    if settings["dataset"] in tasks.TASKS:
        return tasks.TASKS[settings["dataset"]].build(settings)
    if settings.get("model", "mlp") == "cnn":
        return models.cnn(1, classes, settings["dropout"])
    return models.mlp(x_train.shape[1:], settings["hidden"], classes, settings["dropout"])


def _load_data(settings):
    """((x_train, y_train), (x_test, y_test)) as the settings' model takes them."""
    if settings["dataset"] in tasks.TASKS:
        return tasks.TASKS[settings["dataset"]].load(settings)
    (x_train, y_train), (x_test, y_test) = datasets.load(settings["dataset"], settings.get("data_dir"),
                                                         settings["seed"])
    if settings.get("model") == "cnn":
        x_train, x_test = x_train[:, None], x_test[:, None]  # one channel: (N, 1, 28, 28)
    return (x_train, y_train), (x_test, y_test)


def _compile(model, optimizer, dataset):
    task = tasks.TASKS.get(dataset)
    if task is None:
        model.compile(optimizer, "cross_entropy", ["accuracy"])
    else:
        model.compile(optimizer, task.loss, list(task.metrics))


def _schedule(optimizer, settings, loader, out, resume):
    """A one-cycle schedule; on resume, from the checkpoint (or fresh over the epochs added to the plan).

    Returns (schedule, initial epoch, history so far)."""
    def one_cycle(epochs):
        return lamina.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=settings["lr"], epochs=epochs,
                                                    steps_per_epoch=len(loader))

    if not resume:
        return one_cycle(settings["epochs"]), 0, None
    document = io.read_metadata(out / "checkpoint.npz")
    done = document.get("epoch") or 0
    if done >= settings["epochs"]:
        raise CommandError(f"--resume: the run in {out} already finished its {settings['epochs']} epochs; "
                           "pass --epochs N with a larger N to train further")
    schedule = one_cycle(settings["epochs"])
    saved = document.get("scheduler", {}).get("state", {})
    if saved.get("total_steps") == schedule.total_steps:
        try:
            schedule.load_state_dict(saved)  # the same schedule, continued
        except ValueError as e:
            raise CommandError(f"--resume: {out / 'checkpoint.npz'}: {e}") from None
    else:
        schedule = one_cycle(settings["epochs"] - done)
    return schedule, done, History.from_dict(document.get("history") or {})


def _launched_ranks():
    """How many processes mpiexec started for this job (1 when it was not started by mpiexec)."""
    for name in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 1


def train(args):
    ranks = _launched_ranks()
    if ranks > 1 and not args.distributed:
        raise CommandError(f"started by mpiexec as {ranks} processes without --distributed: that would be {ranks} "
                           "independent trainings writing one folder; add --distributed, or run without mpiexec")
    dist = _start_distributed(args)
    main = dist is None or dist.is_main()
    settings = _settings(args) if main else None
    if dist is not None:
        settings = dist.broadcast_object(settings)  # every rank uses rank 0's run folder and settings
    out = Path(settings["out"])
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {out} is an existing file; give a folder for the run")
    created = main and not out.exists()
    try:
        return _train(args, settings, dist, main, out)
    except BaseException:
        # A run that failed before its first checkpoint leaves nothing behind.
        if created and out.exists() and not (out / "checkpoint.npz").exists():
            shutil.rmtree(out, ignore_errors=True)
        raise


def _train(args, settings, dist, main, out):
    device = _device(args)
    lamina.manual_seed(settings["seed"])
    (x_train, y_train), (x_test, y_test) = _load_data(settings)
    task = tasks.TASKS.get(settings["dataset"])
    if main:
        out.mkdir(parents=True, exist_ok=True)
    model = _model_for(settings, x_train, int(max(y_train.max(), y_test.max())) + 1).to(device)
    optimizer = lamina.optim.create(settings["optimizer"], model.parameters(), lr=settings["lr"])
    if args.resume:
        io.load_checkpoint(out / "checkpoint.npz", model, optimizer)
    if dist is not None:  # the optimizer holds the same parameter objects as the wrapped model
        model = dist.DistributedDataParallel(model)
    _compile(model, optimizer, settings["dataset"])
    augment = RandomShift(settings["augment"]) if settings["augment"] and task is None else None
    sampler = dist.DistributedSampler(len(x_train), seed=settings["seed"]) if dist else None
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=settings["batch_size"], shuffle=True,
                        transform=augment, sampler=sampler)
    model.scheduler, initial_epoch, history = _schedule(optimizer, settings, loader, out, args.resume)
    if history is not None:
        model.history = history

    callbacks = [LearningRateScheduler(model.scheduler), ModelCheckpoint(out / "checkpoint.npz"),
                 CSVLogger(out / "history.csv", append=bool(args.resume))]
    viz = _viz() if main else None
    recorder = _boundary_recorder(viz, settings, x_train, y_train, out, args.resume)
    if recorder is not None:
        callbacks.append(recorder)
    if getattr(args, "watch", None) is not None and main:
        if viz is None:
            raise CommandError("--watch needs the viz extra: pip install 'lamina[viz]'")
        title = f"{_what(settings)} on {settings['dataset']}"
        samples = (None, None) if task else (x_test, y_test)  # the sequence tasks show their curves only
        callbacks.append(viz.LiveView(*samples, port=args.watch, title=title))
    if main:
        (out / "settings.json").write_text(json.dumps(settings, indent=2))
        if args.resume:
            print(f"Resuming {out} at epoch {initial_epoch + 1}/{settings['epochs']}")
        ranks = f" on {dist.world_size()} ranks" if dist else ""
        print(f"Training {_what(settings)} on {settings['dataset']} ({len(x_train):,} training samples, "
              f"{len(x_test):,} test) for {settings['epochs']} epochs{ranks}, on {_device_words(device)}")
    start = time.perf_counter()
    history = model.fit(loader, epochs=settings["epochs"], validation_data=(x_test, y_test), callbacks=callbacks,
                        verbose=args.verbose, initial_epoch=initial_epoch)
    seconds = time.perf_counter() - start
    results = model.evaluate(x_test, y_test)
    if not main:
        return None
    summary = {**{f"test_{k}": v for k, v in results.items()}, "seconds": round(seconds, 2),
               "epochs": len(history.epoch), "interrupted": history.interrupted}
    if task is not None:
        summary.update(task.results(model, settings, (x_test, y_test)))
    io.save(model, out / "model.npz", metadata={"settings": settings, "results": summary},
            history=history.to_dict())
    (out / "history.json").write_text(json.dumps(history.to_dict(), indent=2))
    print(f"{_headline(summary, settings)} after {seconds:.1f}s")
    print(f"Saved the model to {out / 'model.npz'} and the history to {out / 'history.json'}")
    if viz:
        if recorder is not None:
            from lamina.viz.report import save_boundary_frames

            save_boundary_frames(recorder, out)
        start = time.perf_counter()
        path = viz.write_report(out)
        print(f"Report: {path} (built in {time.perf_counter() - start:.1f}s)")
    else:
        print("For report.html with pictures of what the network learned: pip install 'lamina[viz]'")
    return summary


def _device_words(device):
    return "the CPU" if device.type == "cpu" else f"GPU {device} (CuPy)"


def _what(settings):
    model = settings.get("model", "mlp")
    names = {"cnn": "a CNN", "crnn": "a CNN + bidirectional GRU read with CTC", "transformer": "a Transformer",
             "gru": "a GRU"}
    return names.get(model, f"a {settings.get('hidden')} MLP")


def _headline(results, settings):
    """The results in one line, the measure that matters for the dataset first."""
    if "test_loss_per_character" in results:
        return f"Test loss: {results['test_loss_per_character']:.4f} nats per character"
    if "test_line_accuracy_5_digits" in results:
        return (f"5-digit test lines read right: {results['test_line_accuracy_5_digits']:.2%} "
                f"(all test lines {results.get('test_line_accuracy', 0):.2%}, CTC loss {results['test_loss']:.4f})")
    held_out = f", speaker {settings['test_speaker']} held out" if settings.get("test_speaker") else ""
    return f"Test accuracy: {results['test_accuracy']:.2%} (loss {results['test_loss']:.4f}{held_out})"


def _boundary_recorder(viz, settings, x_train, y_train, out, resume):
    """For 2-D datasets, a recorder of the boundary at each epoch (continuing a resumed run's frames)."""
    if not viz or settings["dataset"] not in datasets.TOY_SETS:
        return None
    recorder = viz.BoundaryRecorder(x_train, y_train)
    frames = out / "boundary_frames.npz"
    if resume and frames.exists():
        try:
            with np.load(frames, allow_pickle=False) as saved:
                recorder.frames, recorder.epochs = list(saved["frames"]), list(saved["epochs"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:  # not worth stopping the run
            print(f"Warning: {frames} cannot be read ({e}); the boundary animation starts again from here",
                  file=sys.stderr)
    return recorder


def _viz():
    """lamina.viz, or None when its extra (matplotlib, Pillow) is not installed."""
    try:
        import lamina.viz
    except ImportError:
        return None
    return lamina.viz


def report(args):
    viz = _viz()
    if viz is None:
        raise CommandError("lamina report needs the viz extra: pip install 'lamina[viz]'")
    run = Path(args.run_dir)
    if not (run / "model.npz").exists():
        raise CommandError(f"{run} is not a run folder of lamina train (no model.npz)")
    print(f"Report: {viz.write_report(run)}")


def show(args):
    viz = _viz()
    if viz is None:
        raise CommandError("lamina show needs the viz extra: pip install 'lamina[viz]'")
    model, _ = _load_model(args.model)
    image = read_digit_image(args.image)
    _check_input(model, image.shape, f"the image {args.image}")
    image = datasets.as_model_input(model, image[None])[0]
    out = args.out or _model_path(args.model).parent / f"{Path(args.image).stem}-representations.png"
    viz.representations(model, image, out)
    print(f"Wrote {out}")


# --- evaluate, predict, info ---------------------------------------------------------------------------
def _model_path(path):
    """A model file, or the model.npz of a run folder."""
    path = Path(path)
    if path.is_dir():
        if not (path / "model.npz").exists():
            raise CommandError(f"{path} is a folder without a model.npz (not a finished run of lamina train)")
        return path / "model.npz"
    return path


def _load_model(path, weights_only_ok=False, device=None):
    """(model, the file's JSON document); a file of weights only gives a state dict where `weights_only_ok`.
    The model goes to `device` (default the CPU)."""
    path = _model_path(path)
    model = io.load(path, map_location=device)
    if isinstance(model, dict) and not weights_only_ok:
        raise CommandError(
            f"{path} holds weights only (a state dict, no architecture), so lamina cannot rebuild the model; "
            "save the model itself with lamina.save(model, path), or load the weights into a model built in code "
            "with model.load_state_dict(lamina.load_weights(path))")
    return model, io.read_metadata(path)


def _first_layer(model):
    """The first module with weights, in the order data flows (None if there is none)."""
    for _, module in model.named_modules():
        if not list(module.children()) and any(True for _ in module.parameters(recurse=False)):
            return module
    return None


def _check_input(model, sample_shape, what):
    """One line in the user's terms when a sample cannot go into the model (2-D points given an image, ...)."""
    first = _first_layer(model)
    size = int(np.prod(sample_shape))
    unit = "pixels" if len(sample_shape) >= 2 else "features"
    if isinstance(first, nn.Linear) and size != first.in_features:
        raise CommandError(f"this model expects {first.in_features} features per sample; {what} has {size:,} {unit}")
    if isinstance(first, nn.Conv2d) and len(sample_shape) < 2:
        raise CommandError(f"this model expects images (it starts with a convolution); {what} has {size} {unit} "
                           "per sample")


def _task_of(model, document):
    """The sequence task a model was trained for (None for digit classifiers): from its settings, else its kind."""
    name = document.get("metadata", {}).get("settings", {}).get("dataset")
    if name in tasks.TASKS:
        return tasks.TASKS[name]
    if isinstance(model, models.LineReader):
        return tasks.TASKS["numbers"]
    if isinstance(model, (models.CharTransformer, models.CharGRU)):
        return tasks.TASKS["names"]
    if isinstance(model, nn.Sequential) and len(model) and isinstance(model[0], models.BandsAsChannels):
        return tasks.TASKS["spoken-digits"]
    return None


def _evaluate_task(model, settings, name, data_dir):
    task = tasks.TASKS[name]
    settings = {"seed": 0, "dropout": 0.0, **settings, "data_dir": data_dir or settings.get("data_dir")}
    _, test = task.load(settings)
    _compile(model, lamina.optim.SGD(model.parameters()), name)
    results = {f"test_{k}": v for k, v in model.evaluate(*test).items()}
    results.update(task.results(model, settings, test))
    print(f"{name} test set ({len(test[0]):,} samples): {_headline(results, settings)}")
    return results


def evaluate(args):
    model, document = _load_model(args.model, device=_device(args))
    settings = document.get("metadata", {}).get("settings", {})
    task = _task_of(model, document)
    name = args.dataset or settings.get("dataset") or (task.name if task else "digits")
    if (name in tasks.TASKS) != (task is not None) or (task is not None and name != task.name):
        raise CommandError(f"this model was made for {task.name if task else 'images of digits'}, "
                           f"not --dataset {name}")
    if task is not None:
        return _evaluate_task(model, settings, name, args.data_dir)
    _, (x_test, y_test) = datasets.load(name, args.data_dir or settings.get("data_dir"), settings.get("seed", 0))
    _check_input(model, x_test.shape[1:], f"the {name} set")
    x_test = datasets.as_model_input(model, x_test)
    model.compile(lamina.optim.SGD(model.parameters()), "cross_entropy", ["accuracy"])
    results = model.evaluate(x_test, y_test)
    print(f"{name} test set ({len(x_test):,} samples): accuracy {results['accuracy']:.2%}, loss {results['loss']:.4f}")
    return results


def read_digit_image(path):
    """A photo or scan of one digit as MNIST sees it: grayscale 28x28 in [0, 1], white digit on black."""
    return datasets.read_handwriting(path)


def predict(args):
    model, document = _load_model(args.model, device=_device(args))
    task = _task_of(model, document)
    if task is not None and task.name == "names":
        raise CommandError("a names model makes up names rather than reading files: lamina sample MODEL -n 20")
    for path in args.images:
        if task is not None or Path(path).suffix.lower() == ".wav":
            _predict_sequence(task, model, path, args.top)
            continue
        image = read_digit_image(path)[None]
        _check_input(model, image.shape[1:], f"the image {path}")
        image = datasets.as_model_input(model, image)
        with lamina.no_grad():
            scores = model(lamina.tensor(image, device=next(model.parameters()).device))
        probs = lamina.softmax(scores, 1)._host_array()[0]
        top = np.argsort(probs)[::-1][: args.top]
        print(f"{path}: " + ", ".join(f"{int(k)} ({probs[k]:.1%})" for k in top))


def _predict_sequence(task, model, path, top):
    """One recording or line, answered by a spoken-digits or numbers model."""
    wav = Path(path).suffix.lower() == ".wav"
    wanted = "spoken-digits" if wav else "numbers"
    if task is None or task.name != wanted:
        made_for = task.name if task else "images of digits"
        given = "a recording" if wav else "an image"
        raise CommandError(f"{path} is {given}, but this model was made for {made_for}")
    if wanted == "numbers":
        print(f"{path}: {task.predict(model, path) or '(no digits found)'}")
        return
    probs = task.predict(model, path)
    best = np.argsort(probs)[::-1][:top]
    print(f"{path}: " + ", ".join(f"{int(k)} ({probs[k]:.1%})" for k in best))


def sample(args):
    model, document = _load_model(args.model, device=_device(args))
    task = _task_of(model, document)
    if task is None or task.name != "names":
        raise CommandError(f"lamina sample needs a model trained on names (lamina train --dataset names); "
                           f"this one was made for {task.name if task else 'images of digits'}")
    settings = document.get("metadata", {}).get("settings", {})
    generator = None if args.seed is None else lamina.Generator().manual_seed(args.seed)
    names, known = task.sample(model, args.n, args.temperature, generator, settings.get("data_dir"))
    for name in names:
        print(name)
    print(f"{len(names) - known} of {len(names)} are new: not in the training set", file=sys.stderr)
    return names


def _weights_info(path, state, document):
    """lamina info of a file of weights only: its tensors, and what it lacks."""
    source = f"lamina {document['version']}" if document.get("version") else "a safetensors file from elsewhere"
    print(f"{path}: weights only ({source}), no architecture")
    total = 0
    for name, array in state.items():
        total += array.size
        print(f"  {name:<24} {str(array.shape):<14} {array.size:>10,}  {array.dtype}")
    print(f"  {'total':<24} {'':<14} {total:>10,} values in {len(state)} tensors")
    print("No architecture: to evaluate or predict, load these weights into a model built in code "
          "(model.load_state_dict(lamina.load_weights(path))) and save that with lamina.save(model, path)")


def info(args):
    model, document = _load_model(args.model, weights_only_ok=True)
    if isinstance(model, dict):
        return _weights_info(_model_path(args.model), model, document)
    print(f"{_model_path(args.model)}: lamina {document.get('version')} model")
    total = 0
    for name, p in model.named_parameters():
        total += p.array.size
        print(f"  {name:<24} {str(p.shape):<14} {p.array.size:>10,}")
    print(f"  {'total':<24} {'':<14} {total:>10,} parameters")
    print(model)
    metadata = document.get("metadata", {})
    if "settings" in metadata:
        s = metadata["settings"]
        print(f"a {s.get('model', 'mlp')} trained on {s['dataset']} for {s['epochs']} epochs, "
              f"{s['optimizer']} lr {s['lr']}, batch {s['batch_size']}, seed {s['seed']}")
    if "results" in metadata:
        r = metadata["results"]
        print(f"{_headline(r, metadata.get('settings', {}))}, trained for {r['seconds']}s")


# --- export ------------------------------------------------------------------------------------------------
def _shape(text):
    try:
        shape = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--input-shape takes sizes like 1,28,28, not {text!r}") from None
    if not shape or any(s <= 0 for s in shape):
        raise argparse.ArgumentTypeError(f"--input-shape sizes must be positive, got {text!r}")
    return shape


def export(args):
    try:
        from lamina import onnx

        onnx._onnx()
    except ImportError as e:
        raise CommandError(f"lamina export: {e}") from None
    opset = args.opset or onnx.DEFAULT_OPSET
    shapes = onnx.export_file(_model_path(args.model), args.out, args.input_shape, opset)
    print(f"Wrote {args.out} (ONNX opset {opset}): input {shapes[0]} -> output {shapes[1]}")


MODEL_HELP = "a model file (model.npz) or the run folder of lamina train that holds it"


# --- the parser ---------------------------------------------------------------------------------------
def make_parser():
    parser = _Parser(prog="lamina", description="Train and inspect neural networks with lamina.",
                     epilog="Start with: lamina train (about 10 seconds; lamina train --watch to see it learn)")
    parser.add_argument("--version", action="version", version=f"lamina {lamina.__version__}")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)
    command = functools.partial(commands.add_parser, formatter_class=_HelpFormatter)

    t = command("train", help="train a network (default: an MLP on the bundled digits)")
    t.add_argument("--dataset", choices=DATASETS, default="digits", help="what to learn")
    t.add_argument("--model", choices=MODELS, help="the kind of network (default: mlp; spoken-digits: cnn; "
                   "numbers: crnn; names: transformer, or gru)")
    t.add_argument("--test-speaker", choices=datasets.SPEAKERS, help="spoken-digits: hold out everything this "
                   "speaker said, to test on a voice never heard (default: the official split)")
    t.add_argument("--hidden", type=_hidden, metavar="WIDTHS",
                   help=f"hidden layer widths, each at most {MAX_WIDTH:,} (default: 256,128; toy sets: 16,16)")
    t.add_argument("--epochs", type=_number(int, 0, at_most=MAX_EPOCHS), metavar="N",
                   help=f"passes over the training set, at most {MAX_EPOCHS:,} (default: digits 30, mnist 10, "
                   "toy sets 100; cnn: 12, 5; spoken-digits 10, numbers and names 6)")
    t.add_argument("--batch-size", type=_number(int, 0, at_most=MAX_BATCH_SIZE), metavar="N",
                   help=f"samples per step, at most {MAX_BATCH_SIZE:,} "
                   "(default: 128; spoken-digits and names 64, numbers 32)")
    t.add_argument("--lr", type=_positive(float), help="peak learning rate of the one-cycle schedule (default: 0.003)")
    t.add_argument("--optimizer", choices=sorted(lamina.optim.OPTIMIZERS), default="adam",
                   help="what moves the weights")
    t.add_argument("--dropout", type=_number(float, 0, 1, low_included=True), metavar="P",
                   help="dropout after each hidden layer (default: images 0.2, cnn 0.25, toy sets 0)")
    t.add_argument("--augment", type=_number(int, 0, low_included=True), metavar="PIXELS",
                   help="random shift of training images, in pixels (default: images 1, toy sets 0)")
    t.add_argument("--seed", type=_number(int), default=0, help="of every random draw: weights, shuffling")
    t.add_argument("--out", metavar="DIR", help="run folder (default: ./lamina-runs/<timestamp>)")
    t.add_argument("--resume", nargs="?", const="latest", metavar="RUN",
                   help="continue the latest run (or the run folder RUN) from its checkpoint")
    t.add_argument("--data-dir", metavar="DIR", help="folder holding the four MNIST files (for --dataset mnist "
                   "and numbers), the FSDD tarball (spoken-digits) or names.txt (names)")
    t.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                   help="0 silent, 1 a progress bar, 2 one line per epoch")
    t.add_argument("--watch", nargs="?", const=0, type=_number(int, 0, 65536, low_included=True), metavar="PORT",
                   help="watch it learn: serve a live page on http://127.0.0.1:PORT/ (default: a free port)")
    t.add_argument("--distributed", action="store_true",
                   help="data-parallel over MPI ranks: run as mpiexec -n N lamina train --distributed")
    _device_option(t, "train")
    t.set_defaults(run=train)

    e = command("evaluate", help="accuracy and loss of a saved model on a test set")
    e.add_argument("model", help=MODEL_HELP)
    e.add_argument("--dataset", choices=DATASETS, help="(default: the one the model was trained on)")
    e.add_argument("--data-dir", metavar="DIR", help="folder holding the four MNIST files")
    _device_option(e, "run the model")
    e.set_defaults(run=evaluate)

    p = command("predict", help="what a model makes of files: images of digits, a recording (.wav) of a spoken "
                "digit, a picture of a line of digits")
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument("images", nargs="+", metavar="files", help="PNG or JPEG files (one digit each, or a line of "
                   "digits for a numbers model), or 16-bit mono WAV recordings for a spoken-digits model")
    p.add_argument("--top", type=_positive(int), default=3, metavar="K", help="how many classes to list")
    _device_option(p, "run the model")
    p.set_defaults(run=predict)

    m = command("sample", help="make up new names with a model trained on names")
    m.add_argument("model", help=MODEL_HELP)
    m.add_argument("-n", type=_number(int, 0, at_most=100_000), default=20, help="how many names")
    m.add_argument("--temperature", type=_positive(float), default=1.0,
                   help="below 1: likelier, more common names; above 1: stranger ones")
    m.add_argument("--seed", type=_number(int), help="of the draw, to get the same names again (default: random)")
    _device_option(m, "run the model")
    m.set_defaults(run=sample)

    r = command("report", help="rebuild report.html of a training run")
    r.add_argument("run_dir", help="the run folder of lamina train")
    r.set_defaults(run=report)

    s = command("show", help="draw how a model's layers represent your own image of a digit")
    s.add_argument("model", help=MODEL_HELP)
    s.add_argument("--image", required=True, help="a PNG or JPEG of one digit")
    s.add_argument("--out", help="where to write the picture (default: <image>-representations.png next to the model)")
    s.set_defaults(run=show)

    i = command("info", help="layers, parameter counts and training summary of a saved model")
    i.add_argument("model", help=MODEL_HELP)
    i.set_defaults(run=info)

    x = command("export", help="write a saved model as ONNX (a dynamic batch axis), for ONNX Runtime")
    x.add_argument("model", help=MODEL_HELP)
    x.add_argument("out", help="the .onnx file to write")
    x.add_argument("--input-shape", type=_shape, help="one sample's shape, without the batch axis, e.g. 1,28,28 "
                   "(default: from the model's training settings or its first Linear layer)")
    x.add_argument("--opset", type=int, help="ONNX opset version (13 or later; default 17)")
    x.set_defaults(run=export)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        parser = make_parser()
        if not argv:  # a bare `lamina` explains itself rather than starting a training
            parser.print_help()
            return 0
        args = parser.parse_args(argv)
        if args.command is None:
            raise CommandError("choose a command: train, evaluate, predict, sample, report, show, info or export "
                               "(lamina --help)")
        result = args.run(args)
    except KeyboardInterrupt:  # Ctrl-C outside training (start-up, evaluation, the report): no traceback
        print("\nlamina: interrupted", file=sys.stderr)
        return 130
    except lamina.LaminaError as e:  # a bad argument or file, bad data: every lamina exception says it in one line
        print(f"lamina: error: {e}", file=sys.stderr)
        return 2
    except (OSError, ValueError, KeyError) as e:  # unreadable files, bad data that NumPy or Python noticed first
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"lamina: error: {message}", file=sys.stderr)
        return 2
    if isinstance(result, dict) and result.get("interrupted"):
        return 130  # as a shell reports a run stopped by Ctrl-C, after what was kept has been saved
    return 0


if __name__ == "__main__":
    sys.exit(main())
