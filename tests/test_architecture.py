"""The import rules of ARCHITECTURE.md, checked on the source: imports point down, with one named back-edge."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lamina"

# Each room may import only rooms listed before it (ARCHITECTURE.md's table), plus these named exceptions.
ORDER = ["errors", "backend", "cuda", "accelerator", "backends", "files", "kernels", "printing", "autograd", "ops",
         "creation", "gradient_check", "nn", "optim", "data", "utils", "audio", "datasets", "models", "io", "training",
         "tasks", "viz", "onnx", "distributed", "cli"]
ALLOWED_UPWARD = {
    ("autograd", "ops"),  # the one back-edge: Tensor's operators call the ops (bottom of autograd.py)
}


def _room(path):
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def _imported_rooms(path):
    rooms = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lamina"):
            if node.module == "lamina":
                rooms.update(alias.name for alias in node.names)
            else:
                rooms.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            rooms.update(alias.name.split(".")[1] for alias in node.names if alias.name.startswith("lamina."))
    return rooms


def _sources():
    return [p for p in sorted(PACKAGE.rglob("*.py")) if p.name != "__main__.py" and p != PACKAGE / "__init__.py"]


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path):
    room = _room(path)
    if room not in ORDER:
        pytest.skip(f"{room} is not in the table yet")
    for target in _imported_rooms(path) - {room, "__version__"}:
        if target not in ORDER:
            continue
        upward = ORDER.index(target) > ORDER.index(room)
        assert not upward or (room, target) in ALLOWED_UPWARD, \
            f"{path.relative_to(PACKAGE)} ({room}) imports {target}, which sits above it in ARCHITECTURE.md"


def test_the_rules_the_issue_names():
    nn_imports = set().union(*(_imported_rooms(p) for p in (PACKAGE / "nn").glob("*.py")))
    training_imports = set().union(*(_imported_rooms(p) for p in (PACKAGE / "training").glob("*.py")))
    assert "training" not in nn_imports
    assert "distributed" not in training_imports
