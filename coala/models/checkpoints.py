"""Loading checkpoints in the paper's format (plain ``state_dict``s, legacy torch < 1.6 or zip): one loader."""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from coala import assets
from coala.core.errors import CheckpointError
from coala.models.registry import Network, detect, network_of

M = TypeVar("M", bound=nn.Module)


# How the two checkpoint formats begin: a zip archive (torch >= 1.6), or the legacy format's pickled
# magic number 0x1950a86a20f9469cfc6c (torch < 1.6, the paper's torch 1.5).
_ZIP_MAGIC = b"PK\x03\x04"
_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
# What a file given by mistake often is, told by its first bytes, for the error message.
_OTHER_FORMATS = ((b"RIFF", "a WAV/RIFF file"), (b"fLaC", "a FLAC file"), (b"OggS", "an Ogg file"),
                  (b"ID3", "an MP3 file"), (b"\x89HDF", "an HDF5 file"), (b"\x1f\x8b", "a gzip file"))


def _describe(head: bytes) -> str:
    """What a file that is no checkpoint looks like, from its first bytes."""
    for magic, kind in _OTHER_FORMATS:
        if head.startswith(magic):
            return kind
    if head.startswith(b"\x80"):
        return "a pickle that is not a torch checkpoint"
    return f"a binary file beginning {head[:8]!r}" if b"\x00" in head else "a text file"


def _first_sentence(exc: BaseException) -> str:
    """torch's messages run to paragraphs of advice; the first sentence says what failed."""
    text = str(exc).strip()
    return text.splitlines()[0].split(". ")[0].rstrip(".") if text else type(exc).__name__


def _check_format(path: Path) -> str:
    """``zip`` or ``legacy``, or a ``CheckpointError`` saying what the file is instead.

    Told before ``torch.load``, whose errors for such files are a ``KeyError``, an ``IndexError`` or an
    ``OSError`` without a file name rather than a message a user can act on.
    """
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    with open(path, "rb") as f:
        head = f.read(512)
    if not head:
        raise CheckpointError(f"{path}: empty file, not a checkpoint")
    if head.startswith(_ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as archive:
                archive.infolist()
        except (zipfile.BadZipFile, OSError) as exc:
            # zipfile's "File is not a zip file" here means the directory a zip ends with is missing.
            cut = "not a zip file" in str(exc)
            reason = "its zip directory is missing: cut short?" if cut else _first_sentence(exc)
            raise CheckpointError(f"{path}: truncated zip checkpoint ({reason})") from None
        return "zip"
    if head.startswith(_LEGACY_MAGIC):
        return "legacy"
    if _LEGACY_MAGIC.startswith(head):
        raise CheckpointError(f"{path}: truncated legacy checkpoint ({len(head)} bytes, shorter than its header)")
    raise CheckpointError(f"{path}: not a zip or legacy torch checkpoint: {_describe(head)}")


def _first_non_finite(state: dict[str, torch.Tensor]) -> str | None:
    """The first floating-point tensor holding NaN or Inf, which would make every embedding NaN."""
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return key
    return None


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """``torch.load(weights_only=True)`` on CPU, with one-line errors for unreadable files.

    Refuses what would otherwise load and then fail later or silently: a file that is no checkpoint,
    one cut short, and weights holding NaN or Inf (a diverged training run), named by the tensor's key.
    """
    path = Path(path)
    kind = _check_format(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, AttributeError,
            KeyError, IndexError, OSError) as exc:
        if isinstance(exc, pickle.UnpicklingError) and "Weights only load failed" in str(exc):
            raise CheckpointError(f"{path}: a {kind} checkpoint holding objects other than tensors (a whole "
                                  "pickled model? save its state_dict() instead)") from None
        cut = isinstance(exc, EOFError) or "unexpected EOF" in str(exc)
        what = f"truncated {kind} checkpoint" if cut else f"damaged {kind} checkpoint"
        raise CheckpointError(f"{path}: {what} ({_first_sentence(exc)})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a state_dict of tensors, found {type(state).__name__}")
    bad = _first_non_finite(state)
    if bad is not None:
        raise CheckpointError(f"{path}: tensor {bad} holds NaN or Inf values (a diverged training run?); "
                              "its embeddings would be NaN")
    return state


def load_into(model: nn.Module, state: dict[str, torch.Tensor], source: str | Path) -> None:
    """``load_state_dict(strict=True)`` with an error that names the mismatching keys, not a traceback."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong_shape = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    problems = []
    for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatch", wrong_shape)):
        if keys:
            shown = ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise CheckpointError(f"{source}: does not fit {type(model).__name__}: " + "; ".join(problems))
    model.load_state_dict(state, strict=True)


def load_checkpoint(path: str | Path | None, network: type[M] | Network | tuple[str, ...] | None = None,
                    device: str | torch.device = "cpu") -> M:
    """The network in a checkpoint, sized from it, strictly loaded, in eval mode on ``device``.

    ``network`` is a class or registry entry to load into, or a tuple of registry names to choose from
    by the checkpoint's keys (None: any network). A relative ``path`` that does not exist from the
    current folder is looked up under the asset root; None means the paper's published checkpoint of
    ``network`` (see ``coala.assets``).
    """
    if isinstance(network, type):
        network = network_of(network)
    if path is None:
        if not isinstance(network, Network):
            raise CheckpointError("no checkpoint named, and no single network to take the default one for")
        path = assets.default_path(assets.pretrained_checkpoint(network.name))
    path = assets.locate(path)
    state = read_state_dict(path)
    if not isinstance(network, Network):
        network = detect(state, path, network)
    model = network.build(state)
    load_into(model, state, path)
    return model.to(device).eval()
