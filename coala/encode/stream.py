"""Per-file chunk pieces through an encoder in shared forwards, and the outputs gathered back per file.

The pieces of consecutive files are concatenated into batches of about ``batch_size`` chunks, sent
through the model in one forward each (``coala.core.model.embed``), and the outputs are gathered back
per file, in file order. Every file's numbers are those of ``extract_audio_embedding_chunks``; only
the batch a chunk rides in changes, which moves results by float32 rounding at most.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch
from torch import nn

from coala.core.model import CPU_BATCH_SIZE, embed
from coala.encode.files import FileResult
from coala.encode.inference import inference_model


class _Outputs:
    """Model outputs gathered per file from the forwards its pieces rode in, released in file order.

    Finished files wait for the files before them (a few, when workers interleave files), so callers
    get one result per file in the order of the paths.
    """

    def __init__(self) -> None:
        self.parts: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        self.finished: dict[int, FileResult] = {}
        self.next_index = 0

    def add(self, index: int, outputs: tuple[torch.Tensor, torch.Tensor], last: bool) -> None:
        self.parts.setdefault(index, []).append(outputs)
        if last:
            parts = self.parts.pop(index)
            self.finished[index] = FileResult(index, (torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])))

    def fail(self, result: FileResult) -> None:
        self.parts.pop(result.index, None)
        self.finished[result.index] = result

    def release(self) -> Iterator[FileResult]:
        while self.next_index in self.finished:
            yield self.finished.pop(self.next_index)
            self.next_index += 1


def _embed_pending(model: nn.Module, pending: list[FileResult], batch_size: int, outputs: _Outputs) -> None:
    """One forward per ``batch_size`` chunks of the concatenated pieces, split back per piece."""
    chunks = np.concatenate([r.value for r in pending])
    first, second = embed(model, chunks, batch_size)
    splits = [len(r.value) for r in pending]
    for result, a, b in zip(pending, first.split(splits), second.split(splits)):
        outputs.add(result.index, (a, b), result.last)


def embed_stream(model: nn.Module, results: Iterable[FileResult], batch_size: int = CPU_BATCH_SIZE,
                 bf16: bool = False) -> Iterator[FileResult]:
    """Turn per-file chunk pieces into per-file ``(embedding, embedding_d)`` results, in file order.

    Consecutive pieces' chunks are gathered until the next piece would overflow ``batch_size`` chunks;
    a piece longer than that is run in several forwards. A file's outputs are held until its last piece
    is through the model, so a long file never holds more than one batch of chunks. The forwards run on
    ``inference_model(model, bf16)``, BatchNorm folded into the convolutions.
    """
    model = inference_model(model, bf16)
    outputs = _Outputs()
    pending: list[FileResult] = []
    n_pending = 0
    for result in results:
        if result.error is not None:
            pending = [p for p in pending if p.index != result.index]
            n_pending = sum(len(p.value) for p in pending)
            outputs.fail(result)
        else:
            if pending and n_pending + len(result.value) > batch_size:
                _embed_pending(model, pending, batch_size, outputs)
                pending, n_pending = [], 0
            pending.append(result)
            n_pending += len(result.value)
        yield from outputs.release()
    if pending:
        _embed_pending(model, pending, batch_size, outputs)
    yield from outputs.release()
