"""Query time and memory of exact search over a large index of synthetic vectors.

Writes an index of ``--clips`` random unit vectors (one chunk per clip; 1,000,000 by default: 4.6 GB of
clip vectors and as much of chunk vectors) through ``coala.search.index.write_index`` into ``--folder``
(kept, so that a rerun only queries), then, in a child process, opens it memory-mapped and times
``--queries`` random tag-like queries for the top 10 with ``SearchIndex.search`` (the exact float32
product, block by block, and the best chunk of each hit). The first query reads the index into the
page cache if it is not there yet; the median is over the others. Last lines: ``median_query_s: X``,
``first_query_s: X`` and ``peak_rss_gb: X`` (the query process's, mapped index pages included), with
its private and file-mapped parts and the index size.

    python bench/search_query.py                          # 1,000,000 clips, the figure in docs/search.md
    python bench/search_query.py --clips 100000 --folder /tmp/small_index
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coala.core.frontend import CHUNK_SAMPLES  # noqa: E402
from coala.core.model import LATENT_DIM  # noqa: E402
from coala.search.index import CHUNKS, CLIPS, MANIFEST, open_index, write_index  # noqa: E402

BUILD_BLOCK = 50_000


def build(folder: Path, n_clips: int, seed: int) -> None:
    rng = np.random.default_rng(seed)

    def blocks():
        for start in range(0, n_clips, BUILD_BLOCK):
            n = min(BUILD_BLOCK, n_clips - start)
            yield rng.standard_normal((n, LATENT_DIM), dtype=np.float32), np.ones(n, dtype=np.int64)

    record = {"folder": "synthetic", "epoch": 0, "audio_encoder_fingerprint": "synthetic",
              "tag_encoder_fingerprint": "synthetic"}
    started = time.perf_counter()
    one_chunk = np.full(n_clips, CHUNK_SAMPLES, dtype=np.int64)  # clips of one chunk's length: one chunk each
    write_index(folder, record, [f"clip_{i:07d}.wav" for i in range(n_clips)], one_chunk, blocks())
    print(f"built {n_clips} clips in {time.perf_counter() - started:.1f} s", flush=True)


def query(folder: Path, n_queries: int, seed: int) -> None:
    index = open_index(folder)
    rng = np.random.default_rng(seed + 1)
    times = []
    for _ in range(n_queries):
        vector = rng.standard_normal(LATENT_DIM).astype(np.float32)
        vector /= np.linalg.norm(vector)
        started = time.perf_counter()
        hits = index.search(vector, 10)
        times.append(time.perf_counter() - started)
    assert len(hits) == 10
    print(f"first_query_s: {times[0]:.3f}")
    print(f"median_query_s: {float(np.median(times[1:])):.3f}  (min {min(times[1:]):.3f}, max {max(times[1:]):.3f}, "
          f"{n_queries - 1} queries)")
    # VmHWM, not ru_maxrss: exec keeps the forking parent's peak in ru_maxrss, here that of the build.
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    peak, anonymous, mapped = (int(status[key].split()[0]) / 2**20 for key in ("VmHWM", "RssAnon", "RssFile"))
    size = sum((folder / name).stat().st_size for name in (CLIPS, CHUNKS)) / 2**30
    print(f"peak_rss_gb: {peak:.2f}  (now: {anonymous:.2f} GB private, {mapped:.2f} GB of mapped files, libraries "
          f"included; index arrays on disk: {size:.2f} GB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=1_000_000)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/coala_search_bench"))
    parser.add_argument("--queries", type=int, default=21)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--query-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.query_only:
        query(args.folder, args.queries, args.seed)
        return
    manifest = args.folder / MANIFEST
    if not manifest.is_file() or f'"n_clips": {args.clips},' not in manifest.read_text():
        build(args.folder, args.clips, args.seed)
    # A fresh process: its memory is the query's alone, not that of the build.
    subprocess.run([sys.executable, __file__, "--query-only", "--folder", str(args.folder), "--queries",
                    str(args.queries), "--seed", str(args.seed)], check=True)


if __name__ == "__main__":
    main()
