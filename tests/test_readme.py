"""The README's Python examples (fenced ```python) run as printed, in order, as one session."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_blocks_run(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the saving example writes model.npz
    live = pytest.importorskip("lamina.viz.live")
    monkeypatch.setattr(live, "_can_open_a_browser", lambda: False)  # the LiveView example: no window
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks
    namespace = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    out = capsys.readouterr().out
    assert "lamina.Size([2, 2]) float32" in out and "[3.0, -6.0]" in out \
        and "matmul: shapes lamina.Size([2, 3]) and lamina.Size([4, 5])" in out
    assert "['0.weight', '0.bias', '2.weight', '2.bias']" in out
    assert "['accuracy', 'loss', 'lr', 'val_accuracy', 'val_loss']" in out and "True" in out
    assert "['loss', 'lr', 'penalty']" in out
    assert (tmp_path / "model.npz").exists()
    assert (tmp_path / "model.onnx").exists() and (tmp_path / "model.safetensors").exists()
    assert "Live view: http://127.0.0.1:" in out
    assert "with 1 process(es)" in out and float(out.split("test accuracy ")[-1].split("%")[0]) > 85
