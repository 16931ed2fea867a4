"""The documentation stays in step with itself and with the code.

README.md is a newcomer's page (short, linking every page of docs/); links between pages resolve, anchors
included; the config-key table of docs/training.md lists exactly the fields of ``TrainConfig``, with their
defaults.
"""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
TRAINING = DOCS / "training.md"
MAX_README_LINES = 250

# [text](target) with a relative target; external links and bare anchors are not files of this repository.
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _links(path: Path) -> list[tuple[Path, str]]:
    """(resolved file, anchor) for every relative link of a Markdown file, code blocks excluded."""
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    found = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
            continue
        file_part, _, anchor = target.partition("#")
        found.append(((path.parent / file_part).resolve(), anchor))
    return found


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation other than '-' dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return {_slug(m) for m in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, flags=re.M)}


def _doc_pages() -> set[Path]:
    return {p.resolve() for p in DOCS.glob("*.md")}


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines, at most {MAX_README_LINES}"


def test_readme_links_every_docs_page_and_only_existing_ones():
    pages = _doc_pages()
    assert pages, "docs/ holds no .md page"
    linked = {target for target, _ in _links(README) if target.suffix == ".md"}
    linked_docs = {t for t in linked if t.parent == DOCS.resolve()}
    missing = sorted(str(t.relative_to(ROOT)) for t in linked_docs - pages)
    assert not missing, f"README.md links to docs pages that do not exist: {missing}"
    unlinked = sorted(str(p.relative_to(ROOT)) for p in pages - linked_docs)
    assert not unlinked, f"docs pages not linked from README.md: {unlinked}"


@pytest.mark.parametrize("page", [README, *sorted(DOCS.glob("*.md"))], ids=lambda p: p.name)
def test_relative_links_and_anchors_resolve(page: Path):
    broken = []
    for target, anchor in _links(page):
        if not target.exists():
            broken.append(f"{target.relative_to(ROOT)} (missing file)")
        elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
            broken.append(f"{target.relative_to(ROOT)}#{anchor} (no such heading)")
    assert not broken, f"{page.relative_to(ROOT)}: broken links: {broken}"


def _config_table() -> dict[str, dict[str, str]]:
    """Rows of the table in docs/training.md whose header is `| key | type | default | meaning |`."""
    lines = TRAINING.read_text(encoding="utf-8").splitlines()

    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.strip().strip("|").split("|")]

    for i, line in enumerate(lines):
        if line.lstrip().startswith("|") and [c.lower() for c in cells(line)][:3] == ["key", "type", "default"]:
            header = [c.lower() for c in cells(line)]
            break
    else:
        raise AssertionError("docs/training.md has no table with the header | key | type | default | meaning |")
    rows: dict[str, dict[str, str]] = {}
    for line in lines[i + 2:]:
        if not line.lstrip().startswith("|"):
            break
        row = dict(zip(header, cells(line)))
        # A key cell may name several keys (`a`, `b`); each gets the row.
        for key in re.findall(r"`([^`]+)`", row["key"]) or [row["key"]]:
            assert key not in rows, f"docs/training.md: key {key!r} appears twice in the config table"
            rows[key] = row
    return rows


def _shown_default(cell: str) -> str:
    return cell.replace("`", "").strip().strip('"').strip("'").strip()


def _expected_default(value) -> set[str]:
    if isinstance(value, bool):
        return {json.dumps(value)}  # JSON's spelling, as a config file writes it
    return {str(value), json.dumps(value).strip('"')}


# How the table spells the field types (the JSON kinds a config file uses).
TYPE_WORDS = {"str": "str", "int": "int", "float": "number", "bool": "bool"}


def test_config_table_matches_train_config():
    from coala.train.config import TrainConfig

    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    rows = _config_table()
    assert sorted(rows) == sorted(fields), (
        f"docs/training.md config table: missing {sorted(set(fields) - set(rows))}, "
        f"not in TrainConfig {sorted(set(rows) - set(fields))}")
    for name, field in fields.items():
        shown = _shown_default(rows[name]["default"])
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            assert shown.lower() == "required", f"{name}: required in TrainConfig, the table shows {shown!r}"
        else:
            default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
            assert shown.lower() in {d.lower() for d in _expected_default(default)}, (
                f"{name}: TrainConfig's default is {default!r}, the table shows {shown!r}")
        annotation = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
        if annotation in TYPE_WORDS:
            assert rows[name]["type"].replace("`", "") == TYPE_WORDS[annotation], (
                f"{name}: TrainConfig says {annotation}, the table says {rows[name]['type']!r}")
