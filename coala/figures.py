"""Saving matplotlib figures without pyplot, so that importing or running the package never switches
the user's plotting backend (a notebook keeps its inline backend).

Pictures show the user's words (tags, class and file names): every text is drawn literally, never as
mathtext or LaTeX, where a tag with ``$``, ``^`` or ``_`` would fail to parse. And a picture is a view
of results kept elsewhere: one that cannot be drawn or written is logged and skipped, never the end of
a run (a training epoch's state is saved whatever its examples picture does).
"""
from __future__ import annotations

import logging
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

from coala.atomic import atomic_path

log = logging.getLogger(__name__)


def save_figure(fig: Figure, path: Path, dpi: int) -> bool:
    """Lay out ``fig`` and write it as a PNG at ``path``, atomically (a viewer never sees half a file).

    Returns False, with a warning naming ``path`` and the reason, when it cannot be drawn or written.
    """
    for text in fig.findobj(Text):
        text.set_usetex(False)
        text.set_parse_math(False)
    try:
        FigureCanvasAgg(fig)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    except Exception as exc:  # noqa: BLE001 - matplotlib, the font cache and the disk each raise their own
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())  # mathtext's messages span lines
        log.warning(f"{path}: picture not drawn ({reason}); the run goes on without it")
        return False
    return True
