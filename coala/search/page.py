"""A query's results as one HTML page to listen to: a researcher judges a ranking by ear, not by ids.

The page is self-contained (its style inline, no script, nothing fetched), so it opens offline. Each
ranked clip gets a player whose source is the clip's audio file linked relative to the page's folder, so
the page keeps working when it moves together with the audio; the player starts at the best-matching
chunk (a media fragment, ``#t=``).
"""
from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from coala.atomic import atomic_write_text
from coala.core.frontend import CHUNK_SECONDS
from coala.search.index import Hit
from coala.search.query import TagScore

_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; }
th, td { text-align: left; padding: 0.4em 0.8em; border-bottom: 1px solid #ddd; vertical-align: top; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
.path { color: #666; font-size: 0.85em; }
.tags { font-size: 0.9em; }
"""


def audio_link(audio: str | Path, page: Path) -> str:
    """The audio file as a URL relative to the page's folder (percent-encoded: spaces, #, ? in names)."""
    relative = os.path.relpath(Path(audio).absolute(), page.absolute().parent)
    return quote(Path(relative).as_posix())


def _row(rank: int, hit: Hit, tags: Sequence[TagScore], page: Path) -> str:
    name = Path(hit.path).name
    tag_text = ", ".join(f"{html.escape(t.tag)} <small>{t.score:.2f}</small>" for t in tags)
    link = html.escape(f"{audio_link(hit.path, page)}#t={hit.best_seconds:.2f}", quote=True)
    return (f"<tr><td class=number>{rank}</td>"
            f"<td><b>{html.escape(name)}</b><br><span class=path>{html.escape(hit.path)}</span></td>"
            f"<td class=number>{hit.best_seconds:.2f} s<br><small>of {hit.duration:.2f} s</small></td>"
            f"<td class=number>{hit.score:.4f}</td><td class=tags>{tag_text}</td>"
            f"<td><audio controls preload=none src=\"{link}\"></audio></td></tr>")


def write_results_page(page: Path, query: str, model: str, hits: Sequence[Hit], tags: Sequence[Sequence[TagScore]]) -> None:
    """Write the ranked ``hits`` of ``query`` (with each clip's top ``tags``) as one HTML file at ``page``."""
    title = f"COALA search: {query}"
    rows = "\n".join(_row(rank, hit, hit_tags, page) for rank, (hit, hit_tags) in enumerate(zip(hits, tags), 1))
    text = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{_STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p>Model {html.escape(model)}; {len(hits)} clips, best first. <i>at</i>: the start of the clip's best-matching
chunk ({CHUNK_SECONDS:.2f} s long), where its player starts; the tags are the model's top tags for the clip.</p>
<table>
<tr><th>rank</th><th>clip</th><th>at</th><th>score</th><th>top tags</th><th>listen</th></tr>
{rows}
</table>
</body></html>
"""
    atomic_write_text(page, text)
