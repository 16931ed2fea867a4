"""A procedurally synthesized, tagged sound corpus: the demo's stand-in for the Freesound release.

Each clip is drawn from a small set of synthesis parameters (source, pitch register, length, pitch
direction, rhythm, timbre, room, channels) and tagged with words that describe those parameters, with
the noise real user tags have: synonyms, plurals, capitals, missing tags, stop words, typos, tokens the
tag preprocessing rejects (digits, hyphens) and rare unrelated words. The output is ``audio/<id>.wav``
plus ``tags.csv`` (``id,tags``, tags space-separated), the dataset builder's input.

Every clip gets its own random generator seeded by ``(seed, clip index)``: the corpus is identical on
every run and machine, and any subset of clips can be regenerated alone.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import inflect
import numpy as np

from coala.atomic import atomic_write_text
from coala.demo import synth

SOURCES = ("tone", "noise", "chirp", "click", "pluck", "drum")
CORPUS_STREAM = 1  # the generator stream of the corpus; the downstream sets use others
FIRST_ID = 100000  # Freesound-like integer ids
SAMPLE_RATES = (22050, 44100)

# Each synthesis concept and the words users might tag it with, the plain word first (most likely).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "tone": ("tone", "sine", "beep", "oscillator"),
    "noise": ("noise", "hiss", "static", "rumble"),
    "chirp": ("chirp", "sweep", "glide"),
    "click": ("click", "tick", "clicking"),
    "pluck": ("pluck", "string", "plucked", "guitar"),
    "drum": ("drum", "percussion", "hit"),
    "low": ("low", "deep", "bass"),
    "high": ("high", "bright", "treble"),
    "short": ("short", "blip", "quick"),
    "long": ("long", "sustained", "drone"),
    "rising": ("rising", "up", "ascending"),
    "falling": ("falling", "down", "descending"),
    "rhythmic": ("rhythmic", "rhythm", "loop", "beat"),
    "harmonic": ("harmonic", "rich", "overtone"),
    "pure": ("pure", "clean", "simple"),
    "reverb": ("reverb", "echo", "room"),
    "stereo": ("stereo",),
}
NOUNS = {"tone", "sine", "beep", "oscillator", "noise", "chirp", "sweep", "click", "tick", "pluck", "string",
         "guitar", "drum", "hit", "blip", "drone", "loop", "beat", "overtone", "echo", "room"}
# Words on most clips (dropped by the vocabulary's upper frequency bound) or on some.
GENERIC = (("sound", 0.8), ("synth", 0.45), ("electronic", 0.3), ("sfx", 0.2), ("effect", 0.2))
STOP_WORDS = ("the", "a", "of", "with", "and", "in", "for", "this")
RARE_WORDS = ("kitchen", "rain", "door", "piano", "bird", "car", "voice", "water", "footsteps", "wind",
              "glass", "metal", "crowd", "engine", "laser", "robot", "space", "game", "retro", "ambient")
REJECTED_TOKENS = ("440hz", "lo-fi", "8bit", "field-recording", "#synth", "mono/stereo", "24bit", "x2")
P_MISSING = 0.25
P_PLURAL = 0.25
P_TYPO = 0.04


@dataclass(frozen=True)
class ClipSpec:
    """The synthesis parameters of one clip: what its tags describe."""

    id: int
    source: str
    pitch: str  # "low" | "high"
    length: str  # "short" | "long"
    direction: str | None  # "rising" | "falling" | None
    rhythmic: bool
    timbre: str | None  # "harmonic" | "pure" | None (noise, clicks and drums have none)
    reverb: bool
    stereo: bool
    sample_rate: int

    def concepts(self) -> list[str]:
        out = [self.source, self.pitch, self.length]
        out += [c for c in (self.direction, self.timbre) if c]
        out += [name for name, on in (("rhythmic", self.rhythmic), ("reverb", self.reverb), ("stereo", self.stereo)) if on]
        return out


def clip_rng(seed: int, stream: int, index: int) -> np.random.Generator:
    """The generator of one clip of one stream: independent of every other clip."""
    return np.random.default_rng([seed, stream, index])


def draw_spec(index: int, rng: np.random.Generator) -> ClipSpec:
    """Sources cycle so that they are balanced; everything else is drawn."""
    source = SOURCES[index % len(SOURCES)]
    rhythmic = source in ("click",) or (source in ("drum", "pluck", "tone") and rng.random() < 0.4)
    length = "long" if rhythmic else str(rng.choice(["short", "long"]))
    direction = None
    if source == "chirp" or (source in ("tone", "pluck") and rng.random() < 0.35):
        direction = str(rng.choice(["rising", "falling"]))
    timbre = str(rng.choice(["harmonic", "pure"])) if source in ("tone", "chirp", "pluck") else None
    return ClipSpec(id=FIRST_ID + index, source=source, pitch=str(rng.choice(["low", "high"])), length=length,
                    direction=direction, rhythmic=rhythmic, timbre=timbre, reverb=bool(rng.random() < 0.25),
                    stereo=bool(rng.random() < 0.3), sample_rate=int(rng.choice(SAMPLE_RATES)))


def _event(spec: ClipSpec, seconds: float, rng: np.random.Generator, step: int = 0) -> np.ndarray:
    """One sounding event of the clip's source (a rhythmic clip repeats it; ``step`` moves a melody)."""
    sr, low = spec.sample_rate, spec.pitch == "low"
    n = synth.n_samples(seconds, sr)
    rich = spec.timbre == "harmonic"
    amps = synth.harmonic_amplitudes(int(rng.integers(8, 16)), rng.uniform(0.6, 1.2)) if rich else np.array([1.0])
    semis = 0.0 if spec.direction is None else (1.0 if spec.direction == "rising" else -1.0) * 2.0 * step
    if spec.source in ("tone", "chirp"):
        f0 = rng.uniform(80, 250) if low else rng.uniform(700, 2000)
        f0 *= 2.0 ** (semis / 12.0)
        if spec.source == "chirp":
            span = rng.uniform(1.0, 3.0) * (1.0 if spec.direction == "rising" else -1.0)
            freq = synth.glide(n, f0, f0 * 2.0 ** span)
        elif spec.direction and not spec.rhythmic:
            freq = synth.glide(n, f0, f0 * 2.0 ** ((1 if spec.direction == "rising" else -1) * rng.uniform(0.3, 1.0)))
        else:
            freq = np.full(n, f0)
        y = synth.additive(freq, sr, amps, rng=rng)
        return y * synth.adsr(n, sr, rng.uniform(0.005, 0.05), 0.1, rng.uniform(0.6, 1.0), min(0.1, seconds / 4))
    if spec.source == "noise":
        y = synth.colored_noise(n, rng, rng.uniform(0.0, 1.5))
        y = synth.band(y, sr, high=rng.uniform(150, 600)) if low else synth.band(y, sr, low=rng.uniform(3000, 7000))
        return y * synth.adsr(n, sr, rng.uniform(0.01, 0.2), 0.1, 0.8, min(0.2, seconds / 4))
    if spec.source == "click":
        rate = rng.uniform(3, 12)
        y = synth.click_train(seconds, sr, rate, rng, jitter=rng.uniform(0.0, 0.1))
        return synth.band(y, sr, 150, 900) if low else synth.band(y, sr, low=3000)
    if spec.source == "pluck":
        f0 = (rng.uniform(70, 200) if low else rng.uniform(500, 1400)) * 2.0 ** (semis / 12.0)
        return synth.karplus_strong(f0, seconds, sr, rng, damping=rng.uniform(0.990, 0.998),
                                    brightness=1.0 if rich else 0.25)
    kind = "kick" if low else str(rng.choice(["snare", "hihat"]))
    return synth.drum(kind, sr, rng, pitch_scale=rng.uniform(0.8, 1.25))


def render(spec: ClipSpec, rng: np.random.Generator) -> np.ndarray:
    """The clip's samples, (n,) or (n, 2) for stereo, peak-normalized."""
    sr = spec.sample_rate
    total = rng.uniform(0.6, 1.2) if spec.length == "short" else rng.uniform(2.0, 3.0)
    n = synth.n_samples(total, sr)
    if spec.rhythmic and spec.source != "click":
        interval = rng.uniform(0.2, 0.5)
        events = [(t, _event(spec, rng.uniform(0.1, interval), rng, step))
                  for step, t in enumerate(np.arange(0.05, total - 0.1, interval))]
        y = synth.place(n, sr, events)
    elif spec.source == "click":
        y = _event(spec, total, rng)
    else:
        seconds = total * rng.uniform(0.6, 0.95) if spec.source != "drum" else total
        y = synth.place(n, sr, [(rng.uniform(0.0, total - seconds + 1e-3), _event(spec, seconds, rng))])
    if spec.reverb:
        y = synth.reverb(y, sr, rng, t60=rng.uniform(0.5, 1.5), wet=rng.uniform(0.2, 0.4))
    y = synth.mix_at_snr(y, synth.colored_noise(n, rng, 1.0), rng.uniform(30, 50))
    y = synth.normalize(y, rng.uniform(0.3, 0.95))
    return synth.to_stereo(y, sr, rng) if spec.stereo else y


def _typo(word: str, rng: np.random.Generator) -> str:
    """Swap two neighbouring letters or drop one (what a hurried uploader types)."""
    if len(word) < 4:
        return word
    i = int(rng.integers(0, len(word) - 1))
    if rng.random() < 0.5:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    return word[:i] + word[i + 1:]


def noisy_tags(spec: ClipSpec, rng: np.random.Generator, plural: Callable[[str], str]) -> list[str]:
    """User-style tags for a clip: its concepts through synonyms, plurals, typos, omissions and clutter.

    At least one descriptive word always survives, so no clip is left with only clutter.
    """
    words = []
    for concept in spec.concepts():
        if rng.random() < P_MISSING:
            continue
        options = SYNONYMS[concept]
        weights = np.array([2.0] + [1.0] * (len(options) - 1))
        word = str(rng.choice(options, p=weights / weights.sum()))
        if word in NOUNS and rng.random() < P_PLURAL:
            word = plural(word)
        if rng.random() < P_TYPO:
            word = _typo(word, rng)
        words.append(word)
    if not words:
        words.append(spec.source)
    words += [w for w, p in GENERIC if rng.random() < p]
    words += list(rng.choice(STOP_WORDS, size=int(rng.integers(0, 3)), replace=False))
    if rng.random() < 0.3:
        words.append(str(rng.choice(RARE_WORDS)))
    if rng.random() < 0.15:
        words.append(str(rng.choice(REJECTED_TOKENS)))
    words = [w.capitalize() if rng.random() < 0.1 else w for w in words]
    return [words[i] for i in rng.permutation(len(words))]


def write_corpus(out_dir: Path, n_clips: int, seed: int,
                 progress: Callable[[int], object] | None = None) -> list[ClipSpec]:
    """Write ``out_dir/audio/<id>.wav`` and ``out_dir/tags.csv`` (written last: its presence means done)."""
    plural = inflect.engine().plural_noun
    audio_dir = out_dir / "audio"
    rows, specs = [], []
    for i in range(n_clips):
        rng = clip_rng(seed, CORPUS_STREAM, i)
        spec = draw_spec(i, rng)
        tags = noisy_tags(spec, rng, plural)
        synth.write_audio(audio_dir / f"{spec.id}.wav", render(spec, rng), spec.sample_rate,
                          subtype="PCM_24" if i % 7 == 3 else "PCM_16")
        rows.append((spec.id, " ".join(tags)))
        specs.append(spec)
        if progress is not None:
            progress(1)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "tags"])
    writer.writerows(rows)
    atomic_write_text(out_dir / "tags.csv", buffer.getvalue())
    return specs
