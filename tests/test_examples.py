"""The example scripts run and do what they say."""

import runpy
from pathlib import Path

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
