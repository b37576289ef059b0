"""The lamina command: the main job, resuming, evaluate / predict / info, and one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lamina import cli, datasets

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "lamina", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


def test_train_a_toy_set_then_evaluate_info_and_resume(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--dataset", "moons", "--epochs", "4", "--out", str(out), "--verbose", "2"]) == 0
    printed = capsys.readouterr().out
    assert "Epoch 4/4" in printed and "Test accuracy" in printed and "model.npz" in printed
    assert {"model.npz", "checkpoint.npz", "history.json", "history.csv", "settings.json"} <= {
        p.name for p in out.iterdir()}
    assert cli.main(["info", str(out / "model.npz")]) == 0
    assert "parameters" in capsys.readouterr().out
    assert cli.main(["evaluate", str(out / "model.npz")]) == 0
    assert "moons test set" in capsys.readouterr().out
    assert cli.main(["train", "--resume", str(out), "--epochs", "6", "--verbose", "2"]) == 0
    assert "Resuming" in capsys.readouterr().out
    assert json.loads((out / "history.json").read_text())["epoch"] == list(range(6))
    assert cli.main(["train", "--resume", str(out), "--verbose", "0"]) == 2
    assert "already finished" in capsys.readouterr().err


def test_predict_reads_a_digit_photo(tmp_path, capsys):
    pytest.importorskip("PIL")
    from PIL import Image

    out = tmp_path / "run"
    assert cli.main(["train", "--epochs", "3", "--out", str(out), "--verbose", "0"]) == 0
    (_, _), (x_test, y_test) = datasets.digits()
    paper = 255 - np.kron(x_test[0], np.ones((6, 6), np.uint8))  # dark ink on white paper, 168x168
    Image.fromarray(paper).save(tmp_path / "digit.png")
    capsys.readouterr()
    assert cli.main(["predict", str(out / "model.npz"), str(tmp_path / "digit.png")]) == 0
    line = capsys.readouterr().out
    assert line.split(": ")[1].startswith(f"{y_test[0]} (")


@pytest.mark.parametrize("args, message", [
    (["train", "--epochs", "0"], "must be positive"),
    (["train", "--hidden", "a,b"], "--hidden"),
    (["train", "--dataset", "cifar"], "invalid choice"),
    (["info", "/no/such/model.npz"], "no such model file"),
    (["evaluate", __file__], "not a lamina model file"),
    (["predict", "/no/such/model.npz", "x.png"], "no such model file"),
    (["bogus"], "invalid choice"),
])
def test_bad_input_gives_one_line_and_status_2(args, message):
    result = run(*args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_main_job_reaches_target_accuracy(tmp_path):
    """`lamina train` with no arguments: >= 97.5% test accuracy on the bundled digits."""
    result = run(cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run_dir = next((tmp_path / "lamina-runs").iterdir())
    summary = json.loads((run_dir / "history.json").read_text())
    assert len(summary["epoch"]) == 30
    accuracy = float(result.stdout.split("Test accuracy: ")[1].split("%")[0])
    assert accuracy >= 97.5


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_MNIST.exists(), reason="needs ../shared/data/mnist")
def test_full_mnist_mlp_reaches_98_percent(tmp_path, capsys):
    assert cli.main(["train", "--dataset", "mnist", "--data-dir", str(SHARED_MNIST), "--epochs", "10",
                     "--out", str(tmp_path), "--verbose", "0"]) == 0
    accuracy = float(capsys.readouterr().out.split("Test accuracy: ")[1].split("%")[0])
    assert accuracy >= 98.0


@pytest.mark.slow
def test_cnn_on_bundled_digits_reaches_98_5_percent(tmp_path, capsys):
    assert cli.main(["train", "--model", "cnn", "--out", str(tmp_path), "--verbose", "0"]) == 0
    accuracy = float(capsys.readouterr().out.split("Test accuracy: ")[1].split("%")[0])
    assert accuracy >= 98.5


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_MNIST.exists(), reason="needs ../shared/data/mnist")
def test_cnn_example_on_full_mnist_reaches_99_percent(capsys):
    import runpy

    sys.argv = ["mnist_cnn.py", str(SHARED_MNIST)]
    runpy.run_path(str(Path(__file__).resolve().parent.parent / "examples" / "mnist_cnn.py"), run_name="__main__")
    accuracy = float(capsys.readouterr().out.split("test accuracy ")[1].split("%")[0])
    assert accuracy >= 99.0


def test_cnn_model_needs_images(capsys):
    assert cli.main(["train", "--model", "cnn", "--dataset", "moons"]) == 2
    assert "needs an image dataset" in capsys.readouterr().err
