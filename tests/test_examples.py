"""The example scripts run and do what they say."""

import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_first_network_learns(capsys):
    runpy.run_path(str(EXAMPLES / "first_network.py"), run_name="__main__")
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    losses = [float(line[3]) for line in lines]
    accuracy = float(lines[-1][5].rstrip("%"))
    assert losses[-1] < losses[0] / 5
    assert accuracy >= 95.0


def test_admissions_example_reaches_95_percent(capsys):
    runpy.run_path(str(EXAMPLES / "admissions.py"), run_name="__main__")
    out = capsys.readouterr().out.splitlines()
    losses = [float(line.split("loss ")[1].split()[0]) for line in out if line.startswith("Epoch")]
    assert len(losses) == 40 and losses[-1] < losses[0] / 2
    assert float(out[-1].split(": ")[1].rstrip("%")) >= 95.0


SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _run(monkeypatch, script, *args):
    monkeypatch.setenv("LAMINA_DATA", str(SHARED_DATA))
    monkeypatch.setattr("sys.argv", [script, *args])
    runpy.run_path(str(EXAMPLES / script), run_name="__main__")


def test_handwritten_numbers_example_runs(monkeypatch, capsys):
    _run(monkeypatch, "handwritten_numbers.py", "--epochs", "1", "--lines", "64")
    out = capsys.readouterr().out
    assert "5-digit test lines read entirely right:" in out and out.count("written") == 5


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "names" / "names.txt").exists(), reason="needs ../shared/data/names")
def test_names_example_learns_and_makes_up_names(monkeypatch, capsys):
    _run(monkeypatch, "names.py", "--epochs", "1", "--model", "gru")
    out = capsys.readouterr().out
    test_loss = float(out.split("test loss ")[1].split()[0])
    assert test_loss < 2.4  # well below the 3.30 nats of guessing, after one pass
    assert "Twenty made-up names:" in out


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "fsdd").exists(), reason="needs ../shared/data/fsdd")
def test_spoken_digits_example_hears_digits(monkeypatch, capsys):
    _run(monkeypatch, "spoken_digits.py", "--epochs", "2")
    accuracy = float(capsys.readouterr().out.split("Test accuracy: ")[1].split("%")[0])
    assert accuracy > 60.0
