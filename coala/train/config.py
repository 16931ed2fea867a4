"""Training configuration: the paper's JSON keys plus optional new ones, validated before any work.

A config written for the paper's ``train_dual_ae.py`` must run unchanged, so its keys are required
with their original names; everything this project added is optional with a default. Validation
happens up front so that a typo costs a one-line error, not an hour of training followed by a crash.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coala.device import AUTO, MAX_WORKERS
from coala.core.errors import ConfigError
from coala.jsonfile import read_json
from coala.core.model import MODEL_KINDS, ModelDims

_DEVICE_PATTERN = re.compile(r"^(cpu|cuda|cuda:\d+|auto)$")


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Field order: the paper's keys (required), then this project's (optional)."""

    experiment_name: str
    train_dataset_file: str
    validation_dataset_file: str
    audio_loss_weight: float
    tag_loss_weight: float
    contrastive_loss_weight: float
    contrastive_temperature: float
    epochs: int
    batch_size: int
    learning_rate: float
    device: str
    id2tag_file: str
    log_interval: int
    save_model_every: int
    seed: int = 0
    num_workers: int = 0
    in_memory: bool = False
    amp: bool | str = "auto"
    compile: bool = False
    model: str = "dual_ae"
    scaler_file: str = ""
    checkpoint_dir: str = "saved_models"
    log_dir: str = "runs"
    word_vectors: str = ""
    word_dim: int = 128
    attention_heads: int = 4

    @property
    def checkpoint_folder(self) -> Path:
        return Path(self.checkpoint_dir) / self.experiment_name

    @property
    def log_folder(self) -> Path:
        return Path(self.log_dir) / self.experiment_name

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def model_dims(self, n_tags: int) -> ModelDims:
        """The model's sizes: the paper's for a vocabulary of ``n_tags``, with the contextual model's word
        width and heads for a kind that reads word vectors (``reads_words``, as the record decides it)."""
        if MODEL_KINDS[self.model].reads_words:
            return ModelDims(n_tags=n_tags, word_dim=self.word_dim, attention_heads=self.attention_heads)
        return ModelDims(n_tags=n_tags)


_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_REQUIRED = [name for name, f in _FIELDS.items() if f.default is dataclasses.MISSING]


def config_defaults() -> dict[str, Any]:
    """The optional keys' defaults: what a config (or a saved state) that does not name a key means by it."""
    return {name: f.default for name, f in _FIELDS.items() if f.default is not dataclasses.MISSING}
# Loss weights scale their gradients as the learning rate does; the paper uses 5 to 10. Above 1000
# (100x the paper's largest) a step is that much larger than the paper's and training diverges.
MAX_LOSS_WEIGHT = 1e3
# Plain SGD without momentum (paper: 5e-3). Above 1 a step exceeds the gradient itself and these
# BatchNorm'd networks diverge within a few steps: such a value is a typo (5 for 5e-3).
MAX_LEARNING_RATE = 1.0
# The temperature divides cosine similarities in [-1, 1], and the loss's gradient grows as 1/t. Far
# below the paper's 0.1 the logits overflow (1e-300 is 0 in float32/bf16: cos/t is inf, the loss NaN),
# and already below 1e-3 a step is over 100x the paper's; above 100 all logits lie within +-0.01 and the
# loss no longer tells pairs apart.
TEMPERATURE_RANGE = (1e-3, 1e2)
# torch seeds its generators with a signed 64-bit integer, and the shuffling seed is seed + epoch:
# a larger seed fails only once training starts.
SEED_LIMIT = 2**62
# The contextual model's sizes: the authors used 128 and 1152-d word vectors, 1 or 4 heads. Each head is as
# wide as the word vectors, so the attention's maps hold 4 x heads x word_dim^2 weights: beyond these
# bounds a typo (1152 heads) would fill the memory before the first step.
MAX_WORD_DIM = 4096
MAX_ATTENTION_HEADS = 64
# Keys that mean something only for the contextual model: given with another, they are a mistake.
CONTEXTUAL_KEYS = ("word_vectors", "word_dim", "attention_heads")


def _weight(v: float) -> bool:
    return 0 <= v <= MAX_LOSS_WEIGHT


def _named(v: str) -> bool:
    """A path key's value: ``""`` would be the working folder (``Path("")`` is ``Path(".")``), silently."""
    return bool(v.strip())


# (check, what the value must be) for keys whose type alone does not make them usable.
_VALUE_RULES = {
    # id2tag_file may be "": the training file's own vocabulary (files of create_dataset.py record theirs).
    **{key: (_named, "a non-empty path") for key in
       ("train_dataset_file", "validation_dataset_file", "checkpoint_dir", "log_dir")},
    "experiment_name": (lambda v: bool(v) and "/" not in v and v not in (".", ".."), "a non-empty folder name"),
    "audio_loss_weight": (_weight, f"between 0 and {MAX_LOSS_WEIGHT:g}"),
    "tag_loss_weight": (_weight, f"between 0 and {MAX_LOSS_WEIGHT:g}"),
    "contrastive_loss_weight": (_weight, f"between 0 and {MAX_LOSS_WEIGHT:g}"),
    "contrastive_temperature": (lambda v: TEMPERATURE_RANGE[0] <= v <= TEMPERATURE_RANGE[1],
                                f"between {TEMPERATURE_RANGE[0]:g} and {TEMPERATURE_RANGE[1]:g}"),
    "epochs": (lambda v: v >= 1, ">= 1"),
    "batch_size": (lambda v: v >= 2, ">= 2 (the contrastive loss needs negatives, BatchNorm needs statistics)"),
    "learning_rate": (lambda v: 0 < v <= MAX_LEARNING_RATE, f"> 0 and <= {MAX_LEARNING_RATE:g}"),
    "device": (lambda v: bool(_DEVICE_PATTERN.match(v)), 'one of "cpu", "cuda", "cuda:N", "auto"'),
    "log_interval": (lambda v: v >= 1, ">= 1"),
    "save_model_every": (lambda v: v >= 1, ">= 1"),
    "num_workers": (lambda v: 0 <= v <= MAX_WORKERS, f"between 0 and {MAX_WORKERS}"),
    "seed": (lambda v: 0 <= v < SEED_LIMIT, f"between 0 and {SEED_LIMIT - 1}"),
    "word_vectors": (lambda v: not v or Path(v).is_file(),
                     '"" (FastText trained on the training tags) or a word-vector file that exists'),
    "word_dim": (lambda v: 1 <= v <= MAX_WORD_DIM, f"between 1 and {MAX_WORD_DIM}"),
    "attention_heads": (lambda v: 1 <= v <= MAX_ATTENTION_HEADS, f"between 1 and {MAX_ATTENTION_HEADS}"),
    "model": (lambda v: v in MODEL_KINDS, " or ".join(f'"{m}"' for m in MODEL_KINDS)),
}


def _type_ok(value: Any, annotation: str) -> bool:
    # bool is an int subclass in Python: `"epochs": true` must not pass as 1. Python's json reads
    # NaN and Infinity as floats; no setting is usable with them.
    # An integer of 400 digits is a JSON number but overflows a float.
    if annotation == "float":
        return (isinstance(value, (int, float)) and not isinstance(value, bool)
                and abs(value) <= sys.float_info.max and math.isfinite(value))
    if annotation == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation == "str":
        return isinstance(value, str) and _path_safe(value)
    if annotation == "bool | str":  # true, false or "auto" (amp)
        return isinstance(value, bool) or value == AUTO
    return isinstance(value, bool)


def _path_safe(value: str) -> bool:
    """Strings name files and folders: a NUL, or an unpaired surrogate (which JSON's ``\\u`` escapes
    allow), can be no file name and would fail in ``os.mkdir`` after the config was accepted."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\0" not in value


def parse_config(raw: Any, source: str = "config") -> TrainConfig:
    """Validate a decoded JSON object; the first problem found raises ``ConfigError`` naming its key."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a JSON object of settings, found {type(raw).__name__}")
    for key in raw:
        if key not in _FIELDS:
            raise ConfigError(f"{source}: unknown key {key!r} (known keys: {', '.join(_FIELDS)})")
    for key in _REQUIRED:
        if key not in raw:
            raise ConfigError(f"{source}: missing required key {key!r}")
    values = {}
    for key, value in raw.items():
        annotation = _FIELDS[key].type
        if not _type_ok(value, annotation):
            expected = {"float": "a finite number", "int": "an integer", "str": "a string without NUL or unpaired surrogates",
                        "bool": "true or false", "bool | str": f'true, false or "{AUTO}"'}[annotation]
            raise ConfigError(f"{source}: key {key!r} must be {expected}, got {json.dumps(value)}")
        rule = _VALUE_RULES.get(key)
        if rule is not None and not rule[0](value):
            raise ConfigError(f"{source}: key {key!r} must be {rule[1]}, got {json.dumps(value)}")
        values[key] = float(value) if annotation == "float" else value
    cfg = TrainConfig(**values)
    if cfg.model == "dual_ae" and not (cfg.audio_loss_weight or cfg.tag_loss_weight or cfg.contrastive_loss_weight):
        raise ConfigError(f"{source}: audio_loss_weight, tag_loss_weight and contrastive_loss_weight are all 0: "
                          "nothing would be trained")
    _check_contextual(cfg, raw, source)
    return cfg


def _check_contextual(cfg: TrainConfig, raw: dict, source: str) -> None:
    """The contextual model's keys: only with ``"model": "contextual"``, which has no tag decoder (a tag loss
    weight would weigh nothing) and whose tag encoder learns only through the contrastive loss."""
    if cfg.model != "contextual":
        given = next((key for key in CONTEXTUAL_KEYS if key in raw), None)
        if given is not None:
            raise ConfigError(f"{source}: key {given!r} is for \"model\": \"contextual\", not {json.dumps(cfg.model)}")
        return
    if cfg.tag_loss_weight:
        raise ConfigError(f"{source}: key 'tag_loss_weight' must be 0 for the contextual model (it has no tag decoder), "
                          f"got {json.dumps(raw['tag_loss_weight'])}")
    if not cfg.contrastive_loss_weight:
        raise ConfigError(f"{source}: key 'contrastive_loss_weight' must be above 0 for the contextual model: its tag "
                          "encoder learns only through the contrastive loss")


def load_config(path: str | Path) -> TrainConfig:
    """Read and validate a config file (see ``parse_config``)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = read_json(path)
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    return parse_config(raw, str(path))
