"""Saving matplotlib figures without pyplot, so that importing or running the package never switches
the user's plotting backend (a notebook keeps its inline backend)."""
from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from coala.atomic import atomic_path


def save_figure(fig: Figure, path: Path, dpi: int) -> None:
    """Lay out ``fig`` and write it as a PNG at ``path``, atomically (a viewer never sees half a file)."""
    FigureCanvasAgg(fig)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
