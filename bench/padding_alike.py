"""How alike an index's clip vectors are when they average every chunk, the padding's included (the
format-1 index), and when they average the chunks holding audio (what ``search.py index`` keeps).

Reads an index built by ``search.py index`` (its ``chunks/`` hold every chunk's z_d) and prints the mean
cosine between two different clips' vectors both ways, and the share of clips shorter than one chunk:

    python bench/padding_alike.py --index demo/index      # the figure in docs/search.md
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coala.core.frontend import audio_chunks  # noqa: E402
from coala.encode.shards import EmbeddingFolder  # noqa: E402
from coala.jsonfile import read_json  # noqa: E402
from coala.search.index import CHUNK_FOLDER, FILES, SAMPLES  # noqa: E402
from coala.search.model import normalise  # noqa: E402


def mean_cosine(vectors: np.ndarray) -> float:
    """The mean cosine between two different rows of unit ``vectors``."""
    n = len(vectors)
    return float(((vectors.sum(axis=0) ** 2).sum() - n) / (n * (n - 1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, required=True, help="an index folder of search.py index --input")
    args = parser.parse_args()
    chunks = EmbeddingFolder(args.index / CHUNK_FOLDER)
    files = [Path(f).with_suffix("").as_posix() for f in read_json(args.index / FILES)]
    length = dict(zip(files, np.load(args.index / SAMPLES).tolist()))
    clips = sorted(chunks)  # clip "sub/a" holds the chunks of the indexed file ".../sub/a.<suffix>"
    samples = np.array([next(n for f, n in length.items() if f.endswith(f"/{c}")) for c in clips])
    every = normalise(np.stack([chunks[c].mean(axis=0) for c in clips]))
    audio = normalise(np.stack([chunks[c][:audio_chunks(int(n))].mean(axis=0) for c, n in zip(clips, samples)]))
    print(f"clips: {len(clips)}, shorter than one chunk: {np.mean(audio_chunks(samples) == 1):.2f}")
    print(f"mean cosine between clips: every chunk {mean_cosine(every):.3f}, audio chunks {mean_cosine(audio):.3f}")


if __name__ == "__main__":
    main()
