"""The lamina command: the main job, resuming, evaluate / predict / info, and one-line errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lamina import cli, datasets

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


ROOT = Path(__file__).resolve().parent.parent


def run(*args, cwd=None):
    """`lamina ARGS` in a fresh process, importing this checkout's lamina whatever the folder it runs in."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "lamina", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600, env=env)


def test_train_a_toy_set_then_evaluate_info_and_resume(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--dataset", "moons", "--epochs", "4", "--out", str(out), "--verbose", "2"]) == 0
    printed = capsys.readouterr().out
    assert "Epoch 4/4" in printed and "Test accuracy" in printed and "model.npz" in printed
    assert {"model.npz", "checkpoint.npz", "history.json", "history.csv", "settings.json"} <= {
        p.name for p in out.iterdir()}
    assert cli.main(["info", str(out / "model.npz")]) == 0
    assert "parameters" in capsys.readouterr().out
    assert cli.main(["info", str(out)]) == 0  # the run folder will do
    assert "parameters" in capsys.readouterr().out
    assert cli.main(["evaluate", str(out)]) == 0
    assert "moons test set" in capsys.readouterr().out
    frames = out / "boundary_frames.npz"
    broken = frames.exists()  # with the viz extra: a broken animation file costs a warning, never the resume
    if broken:
        frames.write_bytes(frames.read_bytes()[:100])
    assert cli.main(["train", "--resume", str(out), "--epochs", "6", "--verbose", "2"]) == 0
    resumed = capsys.readouterr()
    assert "Resuming" in resumed.out
    assert not broken or "boundary_frames.npz cannot be read" in resumed.err
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
    (["train", "--lr", "abc"], "--lr: not a number: 'abc'"),
    (["train", "--epochs", "ten"], "--epochs: not a whole number"),
    (["train", "--augment", "-1"], "--augment: must be at least 0"),
    (["train", "--dropout", "1.5"], "--dropout: must be below 1"),
    (["train", "--hidden", "256,,128"], "--hidden takes widths like 256,128"),
    (["train", "--watch", "70000"], "--watch: must be below 65536"),
    (["info", "."], "is a folder without a model.npz"),
    (["info", "/dev/zero"], "a device, not a regular file"),
    (["train", "--hidden", "100000000"], "--hidden widths must be at most 65,536"),
    (["train", "--epochs", "1000000000"], "--epochs: must be at most 100,000"),
    (["train", "--batch-size", "10000000000"], "--batch-size: must be at most 1,000,000"),
])
def test_bad_input_gives_one_line_and_status_2(args, message):
    result = run(*args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_main_job_reaches_target_accuracy(tmp_path):
    """`lamina train` with no other arguments: >= 97.5% test accuracy on the bundled digits."""
    result = run("train", cwd=tmp_path)
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
    assert "--model cnn is for --dataset digits or mnist or spoken-digits, not moons" in capsys.readouterr().err


def test_bare_lamina_explains_itself_and_help_shows_defaults(tmp_path):
    result = run(cwd=tmp_path)
    assert result.returncode == 0 and "usage: lamina" in result.stdout and "lamina train" in result.stdout
    assert not (tmp_path / "lamina-runs").exists()  # and trains nothing
    result = run("train", "--help")
    assert "(default: 128;" in result.stdout and "(default: adam)" in result.stdout and "None" not in result.stdout


def test_a_failed_run_leaves_no_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)

    def offline(*args, **kwargs):
        raise datasets.DatasetError("could not download train-images-idx3-ubyte.gz")

    monkeypatch.setattr(cli.datasets, "load", offline)
    assert cli.main(["train", "--dataset", "mnist"]) == 2
    assert "could not download" in capsys.readouterr().err
    assert not any((tmp_path / "lamina-runs").glob("*"))
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)

    class Broken(cli.CSVLogger):  # fails once settings.json and history.csv are written, before any checkpoint
        def on_epoch_begin(self, epoch, logs=None):
            raise RuntimeError("a bug in training")

    monkeypatch.setattr(cli, "CSVLogger", Broken)
    with pytest.raises(RuntimeError, match="a bug in training"):
        cli.main(["train", "--dataset", "xor", "--verbose", "0"])
    assert not any((tmp_path / "lamina-runs").glob("*"))


def test_an_existing_file_as_out_and_mpiexec_without_distributed(tmp_path, monkeypatch, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert cli.main(["train", "--out", str(tmp_path / "notes.txt")]) == 2
    assert "is an existing file; give a folder" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "mine"
    monkeypatch.setenv("PMI_SIZE", "2")  # what mpiexec -n 2 sets for each process
    assert cli.main(["train", "--dataset", "xor", "--out", str(tmp_path / "run")]) == 2
    assert "2 independent trainings" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_messages_in_the_users_terms(tmp_path, capsys):
    pytest.importorskip("PIL")
    from PIL import Image

    out = tmp_path / "run"
    assert cli.main(["train", "--dataset", "moons", "--epochs", "1", "--out", str(out), "--verbose", "0"]) == 0
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "digit.png")
    capsys.readouterr()
    for command in (["predict", str(out), str(tmp_path / "digit.png")],
                    ["show", str(out), "--image", str(tmp_path / "digit.png")],
                    ["evaluate", str(out), "--dataset", "digits"]):
        assert cli.main(command) == 2
        err = capsys.readouterr().err
        assert "this model expects 2 features per sample;" in err and ("784 pixels" in err or "784 features" in err)
        assert err.count("\n") == 1


def test_mnist_examples_offline_say_how_to_get_the_files(tmp_path, monkeypatch):
    import runpy

    def offline(name, directory, mirrors, timeout):
        raise datasets.DatasetError(f"could not download {name}")

    monkeypatch.setattr(datasets, "_download", offline)
    for example in ("mnist_mlp.py", "mnist_cnn.py"):
        monkeypatch.setattr(sys, "argv", [example, str(tmp_path / "empty")])
        with pytest.raises(SystemExit) as exit_:
            runpy.run_path(str(Path(__file__).resolve().parent.parent / "examples" / example), run_name="__main__")
        message = str(exit_.value.code)
        assert "\n" not in message and f"python examples/{example} FOLDER" in message


def test_ctrl_c_saves_what_was_learned_and_exits_130(tmp_path):
    import signal

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    out = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "lamina", "train", "--dataset", "moons", "--epochs", "100000",
                                "--out", str(out), "--verbose", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env)
    try:
        for line in process.stdout:
            if line.startswith("Epoch 3/"):
                process.send_signal(signal.SIGINT)
                break
        stdout, stderr = process.communicate(timeout=300)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "Saved the model" in stdout and (out / "model.npz").exists()
    assert json.loads((out / "history.json").read_text())["interrupted"] is True


def test_weights_only_files_are_listed_by_info_and_refused_in_one_line_elsewhere(tmp_path, capsys):
    import lamina

    model = lamina.nn.Sequential(lamina.nn.Linear(4, 3), lamina.nn.ReLU(), lamina.nn.Linear(3, 2))
    lamina.save(model.state_dict(), tmp_path / "weights.npz")  # as README recommends for models built in code
    assert cli.main(["info", str(tmp_path / "weights.npz")]) == 0
    printed = capsys.readouterr().out
    assert "weights only" in printed and "no architecture" in printed
    assert "0.weight" in printed and "(3, 4)" in printed and "23 values in 4 tensors" in printed
    for command in (["evaluate", str(tmp_path / "weights.npz")], ["predict", str(tmp_path / "weights.npz"), "x.png"]):
        assert cli.main(command) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and "holds weights only" in error and "lamina.save(model, path)" in error


def test_a_damaged_settings_json_on_resume_names_the_file_and_the_field(tmp_path, capsys):
    good = {"dataset": "moons", "model": "mlp", "hidden": [16, 16], "epochs": 2, "batch_size": 128, "lr": 0.003,
            "optimizer": "adam", "seed": 0, "data_dir": None, "dropout": 0.0, "augment": 0, "out": str(tmp_path)}
    settings = tmp_path / "settings.json"
    cases = [
        ('{"dataset": ', "is not valid JSON"),
        ("[1, 2]", "must hold a table of settings"),
        (json.dumps({k: v for k, v in good.items() if k != "lr"}), "settings.json lacks lr"),
        (json.dumps(dict(good, dataset="cifar")), "dataset is \"cifar\", which lamina train refuses (argument "
                                                  "--dataset: invalid choice: 'cifar'"),
        (json.dumps(dict(good, epochs="ten")), "epochs is \"ten\", which lamina train refuses"),
        (json.dumps(dict(good, epochs=10**9)), "must be at most 100,000"),
        (json.dumps(dict(good, hidden=["a"])), "hidden is [\"a\"], which lamina train cannot use"),
        (json.dumps(dict(good, lr=True)), "lr is true"),
        (json.dumps(dict(good, optimizer={"name": "adam"})), "optimizer is {\"name\": \"adam\"}"),
        (json.dumps(dict(good, dropout=3)), "dropout is 3, which lamina train refuses (argument --dropout: must be "
                                            "below 1"),
    ]
    for text, message in cases:
        settings.write_text(text)
        assert cli.main(["train", "--resume", str(tmp_path), "--verbose", "0"]) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and str(settings) in error and message in error, (text, error)
