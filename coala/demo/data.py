"""The demo's data folder: the tagged corpus and the three downstream sets, generated once.

Layout under the output folder (``--data-dir`` of the other scripts)::

    corpus/audio/<id>.wav, corpus/tags.csv      input of create_dataset.py
    UrbanSound8K/, GTZAN/, nsynth/              the downstream sets, in the real datasets' layouts
    json/nsynth_selected_sounds_per_class.json  the NSynth training selection
    untrained/audio_encoder_epoch_0.pt          a seeded random-weight AudioEncoder: the demo's
                                                "untrained" row (encode.py names it embeddings_untrained_0)
    untrained/tag_encoder_epoch_0.pt            its random-weight TagEncoder, and the pair's record
    untrained/config.json, model.safetensors    (the training file's scaler and vocabulary), written by
                                                ``make_demo_data.py --untrained-model TRAIN_HDF5`` once the
                                                training file exists: the untrained pair search.py evaluates

``make_demo_data.py --held-out TRAIN_HDF5`` writes ``<TRAIN_HDF5>_heldout`` and ``_heldout_val`` beside
the build: the same clips without the ``HELD_OUT_TAGS`` (what the contextual model trains on).
    demo_data.json                              written last: the parameters; its presence means done

A rerun with the same parameters finds ``demo_data.json`` and does nothing, so ``make demo`` can call
it unconditionally; other parameters on an existing folder are refused rather than mixed in.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from coala import assets
from coala.atomic import atomic_path, atomic_write_text
from coala.cli import progress_bar
from coala.demo import corpus as tagged_corpus, downstream as downstream_sets
from coala.core.errors import DemoDataError
from coala.evaluation.datasets import GTZAN_GENRES, NSYNTH_FAMILIES, US8K_CLASSES
from coala.core.model import AudioEncoder, ModelDims, TagEncoder
from coala.data.builder import VALIDATION_SUFFIX
from coala.data.hdf5 import read_provenance
from coala.data.hold_out import hold_out_tags
from coala.models.checkpoints import read_state_dict
from coala.models.record import ModelRecord, write_model_folder

MANIFEST = "demo_data.json"
# Tags the demo's contextual model is trained without (configs/demo_contextual.json). Each has a word of the
# same concept and stem that stays a tag ("click", "pluck", "rhythmic"): what FastText's character n-grams
# can carry to a word never seen. Retrieval for them is what COALA cannot answer at all (docs/contextual.md).
HELD_OUT_TAGS = ("clicking", "plucked", "rhythm")
HELD_OUT_SUFFIX = "_heldout"
UNTRAINED_ENCODER = Path("untrained") / "audio_encoder_epoch_0.pt"
UNTRAINED_TAG_ENCODER = Path("untrained") / "tag_encoder_epoch_0.pt"
# 2: NSynth note names made unique (version 1 wrote a few twice, the later file over the earlier).
FORMAT_VERSION = 2


@dataclass(frozen=True)
class DemoDataSpec:
    n_clips: int = 800
    seed: int = 0
    us8k_per_class: int = 20
    gtzan_per_genre: int = 10
    gtzan_seconds: float = 4.0
    nsynth_train_per_family: int = 20
    nsynth_test_per_family: int = 10
    version: int = FORMAT_VERSION

    def total_clips(self) -> int:
        n_us8k = self.us8k_per_class * len(US8K_CLASSES)
        n_gtzan = self.gtzan_per_genre * len(GTZAN_GENRES)
        n_nsynth = (self.nsynth_train_per_family * (len(NSYNTH_FAMILIES) - 1)
                    + self.nsynth_test_per_family * len(NSYNTH_FAMILIES))
        return self.n_clips + n_us8k + n_gtzan + n_nsynth


def existing_spec(out: Path) -> DemoDataSpec | None:
    """The parameters of complete demo data in ``out``, or None when there is none (or it is unreadable)."""
    try:
        return DemoDataSpec(**json.loads((out / MANIFEST).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def write_demo_data(out: Path, spec: DemoDataSpec, show_progress: bool = True) -> bool:
    """Generate everything into ``out``; False (nothing done) when it is already there with ``spec``."""
    found = existing_spec(out)
    if found == spec:
        return False
    if found is not None:
        old, new = asdict(found), asdict(spec)
        differing = ", ".join(f"{k} {old[k]} (asked {new[k]})" for k in new if old[k] != new[k])
        raise DemoDataError(f"{out / MANIFEST}: demo data made with other parameters: {differing}; "
                            "remove the folder or choose another --out")
    with progress_bar(None, show_progress, total=spec.total_clips(), desc="synthesizing", unit="clip") as bar:
        tagged_corpus.write_corpus(out / "corpus", spec.n_clips, spec.seed, bar.update)
        downstream_sets.write_urbansound8k(out, spec.seed, spec.us8k_per_class, bar.update)
        downstream_sets.write_gtzan(out, spec.seed, spec.gtzan_per_genre, spec.gtzan_seconds, bar.update)
        downstream_sets.write_nsynth(out, out / assets.NSYNTH_SELECTION, spec.seed,
                                     spec.nsynth_train_per_family, spec.nsynth_test_per_family, bar.update)
    write_untrained_encoder(out / UNTRAINED_ENCODER, spec.seed)
    atomic_write_text(out / MANIFEST, json.dumps(asdict(spec), indent=1))
    return True


def _write_initial_weights(path: Path, build: Callable[[], torch.nn.Module], seed: int) -> None:
    """A network's seeded initial weights, leaving the caller's random generator as it was."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    state = build().state_dict()
    torch.random.set_rng_state(generator_state)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def write_untrained_encoder(path: Path, seed: int) -> None:
    """The baseline a trained encoder must beat: the same network with its initial random weights."""
    _write_initial_weights(path, AudioEncoder, seed)


def write_untrained_model(out: Path, train_file: Path, seed: int) -> Path:
    """The untrained encoder's partner for search (``search.py evaluate``) and the untrained pair's record:
    a tag encoder with its initial random weights, sized by the vocabulary ``train_file`` records (known
    only once ``create_dataset.py`` has run), and ``untrained/config.json`` with that file's scaler and
    vocabulary, so every tool uses the untrained pair as it uses a trained one, without ``--scaler``."""
    scaler, vocabulary = read_provenance(train_file)
    if scaler is None or vocabulary is None:
        raise DemoDataError(f"{train_file}: does not record its scaler and vocabulary (not made by create_dataset.py)")
    path = out / UNTRAINED_TAG_ENCODER
    _write_initial_weights(path, lambda: TagEncoder(len(vocabulary)), seed)
    folder = path.parent
    parts = {name: read_state_dict(folder / assets.checkpoint_name(name, 0)) for name in ("audio_encoder", "tag_encoder")}
    record = ModelRecord(kind="dual_ae", dims=ModelDims(n_tags=len(vocabulary)), parts=list(parts), epoch=0,
                         scaler=scaler, vocabulary=vocabulary, origin="untrained")
    write_model_folder(folder, record, parts)
    return folder


def write_held_out_files(train_file: Path) -> list[Path]:
    """``<train>_heldout`` and ``<train>_heldout_val``: a build's two files without ``HELD_OUT_TAGS``
    (``coala.data.hold_out``), what the demo's contextual model trains on."""
    sources = [train_file, train_file.with_name(train_file.name + VALIDATION_SUFFIX)]
    held_out = train_file.with_name(train_file.name + HELD_OUT_SUFFIX)
    targets = [held_out, held_out.with_name(held_out.name + VALIDATION_SUFFIX)]
    hold_out_tags(sources, targets, HELD_OUT_TAGS)
    return targets
