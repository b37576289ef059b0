"""Views of what a network learned: per-layer representations, decision boundaries, curves, reports, live.

Needs the viz extra: pip install 'lamina[viz]' (matplotlib and Pillow).
"""

try:
    import matplotlib  # noqa: F401
    import PIL  # noqa: F401
except ImportError as e:
    raise ImportError(f"lamina.viz needs matplotlib and Pillow ({e.name} is missing): "
                      "pip install 'lamina[viz]'") from None

from lamina.viz.live import LiveView
from lamina.viz.plots import (
    BoundaryRecorder,
    boundary_animation,
    confusion_matrix,
    decision_boundary,
    hidden_units,
    layer_outputs,
    misclassified,
    plot_history,
    representations,
    weights,
)
from lamina.viz.report import write_report
from lamina.viz.tensorboard import TensorBoard

__all__ = [
    "BoundaryRecorder", "LiveView", "TensorBoard", "boundary_animation", "confusion_matrix", "decision_boundary",
    "hidden_units", "layer_outputs", "misclassified", "plot_history", "representations", "weights", "write_report",
]
