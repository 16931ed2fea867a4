"""Three small synthetic downstream sets in the exact on-disk layouts of UrbanSound8K, GTZAN and NSynth.

Their classes are recipes that mix the corpus's ingredients (tones, noise, chirps, clicks, plucks,
drums) in class-specific ways: a siren is a harmonic tone whose pitch sweeps up and down, an engine a
low click train in rumble, a genre a tempo, drum pattern, instrument and distortion, an instrument
family an envelope, partial structure and modulation. No class is one corpus tag, and parameters
overlap between classes and are randomized within them, with background noise, so the tasks are
learnable from spectrogram patches but not trivial.

Layouts (those of coala/evaluation/datasets.py), under one data folder:
``UrbanSound8K/metadata/UrbanSound8K.csv`` and ``UrbanSound8K/audio/fold<k>/<fsID>-<classID>-<occ>-<slice>.wav``;
``GTZAN/genres/<genre>/<genre>.<NNNNN>.wav`` with ``GTZAN/{train,test}_filtered.txt``;
``nsynth/nsynth-train/audio_selected/`` and ``nsynth/nsynth-test/audio/`` holding
``<family>_<source>_<NNN>-<pitch>-<velocity>.wav``, with the selection as JSON.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from coala.atomic import atomic_write_text
from coala.demo import synth
from coala.demo.corpus import clip_rng
from coala.evaluation.datasets import (GTZAN_AUDIO, GTZAN_GENRES, GTZAN_LISTS, NSYNTH_FAMILIES, NSYNTH_LEFT_OUT,
                                       NSYNTH_SELECTED_AUDIO, NSYNTH_SOURCES, NSYNTH_TEST_AUDIO, US8K_AUDIO, US8K_CLASSES,
                                       US8K_CSV, US8K_FOLDS)

NSYNTH_VELOCITIES = (25, 50, 75, 100, 127)
NSYNTH_SR = 16000
NSYNTH_SECONDS = 4.0
US8K_STREAM, GTZAN_STREAM, NSYNTH_STREAM = 2, 3, 4
Progress = Callable[[int], object] | None


def _background(n: int, rng: np.random.Generator) -> np.ndarray:
    return synth.colored_noise(n, rng, rng.uniform(0.5, 2.0))


# ---------------------------------------------------------------- UrbanSound8K-like: events in a city
def urban_event(cls: str, seconds: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One clip of an urban sound class, before background noise."""
    n = synth.n_samples(seconds, sr)
    u = rng.uniform
    if cls == "air_conditioner":
        hum = synth.additive(np.full(n, u(50, 120)), sr, synth.harmonic_amplitudes(6, u(1.0, 2.0)), rng=rng)
        return synth.band(synth.colored_noise(n, rng, u(0.5, 1.5)), sr, high=u(300, 1500)) + u(0.1, 0.6) * hum
    if cls == "car_horn":
        f0 = u(300, 500)
        events = []
        for t in np.cumsum(u(0.1, 0.9, int(rng.integers(1, 3)))):
            m = synth.n_samples(u(0.3, 1.2), sr)
            amps = synth.harmonic_amplitudes(10, u(0.4, 0.9))
            tone = synth.additive(np.full(m, f0), sr, amps, rng=rng) + synth.additive(np.full(m, f0 * 1.26), sr, amps, rng=rng)
            events.append((t - 0.1, tone * synth.adsr(m, sr, 0.01, 0.05, 0.9, 0.03)))
        return synth.place(n, sr, events)
    if cls == "children_playing":
        events = []
        for t in u(0, seconds, int(rng.integers(4, 10))):
            m = synth.n_samples(u(0.15, 0.5), sr)
            f0 = u(300, 900)
            freq = synth.glide(m, f0, f0 * 2.0 ** u(-0.7, 0.7)) * synth.vibrato(m, sr, 1.0, u(4, 8), 0.5)
            events.append((t, synth.additive(freq, sr, synth.harmonic_amplitudes(8, u(1.0, 1.8)), rng=rng)
                           * synth.adsr(m, sr, 0.03, 0.05, 0.7, 0.08)))
        return synth.place(n, sr, events) + 0.3 * synth.band(synth.colored_noise(n, rng, 1.0), sr, 300, 3000)
    if cls == "dog_bark":
        events = []
        for t in np.cumsum(u(0.15, 0.6, int(rng.integers(1, 5)))):
            m = synth.n_samples(u(0.1, 0.25), sr)
            f0 = u(300, 700)
            bark = synth.additive(synth.glide(m, f0, f0 * u(0.6, 0.85)), sr, synth.harmonic_amplitudes(12, u(0.6, 1.0)), rng=rng)
            bark += 0.4 * synth.band(rng.standard_normal(m), sr, 500, 4000)
            events.append((t - 0.1, bark * synth.exp_decay(m, sr, u(0.15, 0.3))))
        return synth.place(n, sr, events)
    if cls == "drilling":
        t = np.arange(n) / sr
        whine = synth.additive(np.full(n, u(150, 600)), sr, synth.harmonic_amplitudes(10, u(0.5, 1.0)), rng=rng)
        am = 0.6 + 0.4 * np.sin(2 * np.pi * u(20, 60) * t)
        return whine * am + 0.5 * synth.band(rng.standard_normal(n), sr, low=2000)
    if cls == "engine_idling":
        pulses = synth.band(synth.click_train(seconds, sr, u(15, 40), rng, jitter=0.05, click_ms=8), sr, high=u(200, 600))
        return pulses + u(0.1, 0.5) * synth.band(synth.colored_noise(n, rng, 2.0), sr, high=300)
    if cls == "gun_shot":
        events = []
        for t in np.cumsum(u(0.05, 0.8, int(rng.integers(1, 4)))):
            m = synth.n_samples(0.5, sr)
            events.append((t - 0.05, synth.band(rng.standard_normal(m), sr, high=u(2000, 6000)) * synth.exp_decay(m, sr, u(0.08, 0.3))))
        return synth.reverb(synth.place(n, sr, events), sr, rng, t60=u(0.6, 1.5), wet=u(0.3, 0.5))
    if cls == "jackhammer":
        rate = u(8, 20)
        hit = synth.drum("snare", sr, rng, pitch_scale=u(0.5, 1.0))[: synth.n_samples(0.6 / rate, sr)]
        return synth.place(n, sr, [(t, hit) for t in np.arange(0.0, seconds, 1.0 / rate)])
    if cls == "siren":
        t = np.arange(n) / sr
        centre, rate = u(600, 1100), u(0.3, 3.0)
        freq = centre * 2.0 ** (u(0.3, 0.7) * np.sin(2 * np.pi * rate * t + u(0, 2 * np.pi)))
        return synth.additive(freq, sr, synth.harmonic_amplitudes(6, u(0.8, 1.5)), rng=rng)
    if cls == "street_music":
        root = u(110, 330)
        scale = np.array([0, 2, 4, 5, 7, 9, 11, 12])
        interval = u(0.15, 0.4)
        events = [(t, synth.karplus_strong(root * 2 ** (rng.choice(scale) / 12), interval * 2, sr, rng, 0.995))
                  for t in np.arange(0.0, seconds, interval)]
        return synth.place(n, sr, events)
    raise ValueError(f"unknown UrbanSound8K class {cls!r}")


def write_urbansound8k(root: Path, seed: int, per_class: int = 20, progress: Progress = None) -> list[dict]:
    """``root/UrbanSound8K``: clips spread evenly over the 10 folds; the metadata CSV is written last."""
    rows = []
    for class_id, cls in enumerate(US8K_CLASSES):
        for k in range(per_class):
            rng = clip_rng(seed, US8K_STREAM, class_id * 10000 + k)
            sr, seconds = int(rng.choice([22050, 44100, 48000])), float(rng.uniform(1.0, 4.0))
            y = urban_event(cls, seconds, sr, rng)
            y = synth.normalize(synth.mix_at_snr(y, _background(len(y), rng), rng.uniform(3, 20)), rng.uniform(0.3, 0.95))
            fs_id, fold = 200000 + class_id * 1000 + k, k % US8K_FOLDS + 1
            start = round(float(rng.uniform(0, 30)), 6)
            name = f"{fs_id}-{class_id}-0-{k % 3}.wav"
            stereo = rng.random() < 0.5
            synth.write_audio(root / US8K_AUDIO / f"fold{fold}" / name,
                              synth.to_stereo(y, sr, rng) if stereo else y, sr)
            rows.append({"slice_file_name": name, "fsID": fs_id, "start": start, "end": round(start + seconds, 6),
                         "salience": int(rng.integers(1, 3)), "fold": fold, "classID": class_id, "class": cls})
            if progress is not None:
                progress(1)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(root / US8K_CSV, buffer.getvalue())
    return rows


# ---------------------------------------------------------------- GTZAN-like: genres as arrangements
# tempo range (bpm), kick / snare / hihat steps of a 16-step bar, instrument, distortion, swing, scale
GENRE_STYLE = {
    "blues": dict(bpm=(70, 95), kick=[0, 8], snare=[4, 12], hat=[0, 3, 6, 8, 11, 14], inst="pluck", drive=1.5,
                  scale=[0, 3, 5, 6, 7, 10], notes_per_bar=6),
    "classical": dict(bpm=(60, 100), kick=[], snare=[], hat=[], inst="strings", drive=1.0,
                      scale=[0, 2, 4, 5, 7, 9, 11], notes_per_bar=4),
    "country": dict(bpm=(100, 125), kick=[0, 8], snare=[4, 12], hat=[0, 4, 8, 12], inst="pluck", drive=1.0,
                    scale=[0, 2, 4, 7, 9], notes_per_bar=8),
    "disco": dict(bpm=(115, 130), kick=[0, 4, 8, 12], snare=[4, 12], hat=[2, 6, 10, 14], inst="buzz", drive=1.2,
                  scale=[0, 2, 3, 5, 7, 10], notes_per_bar=8),
    "hiphop": dict(bpm=(80, 98), kick=[0, 7, 10], snare=[4, 12], hat=[0, 2, 4, 6, 8, 10, 12, 14], inst="bass",
                   drive=1.5, scale=[0, 3, 5, 7, 10], notes_per_bar=2),
    "jazz": dict(bpm=(110, 180), kick=[0], snare=[], hat=[0, 6, 8, 14], inst="tone", drive=1.0,
                 scale=[0, 2, 3, 5, 7, 9, 10, 11], notes_per_bar=8),
    "metal": dict(bpm=(150, 200), kick=[0, 2, 4, 6, 8, 10, 12, 14], snare=[4, 12], hat=[0, 4, 8, 12], inst="buzz",
                  drive=8.0, scale=[0, 1, 3, 5, 7, 8], notes_per_bar=16),
    "pop": dict(bpm=(100, 125), kick=[0, 8], snare=[4, 12], hat=[0, 2, 4, 6, 8, 10, 12, 14], inst="tone", drive=1.2,
                scale=[0, 2, 4, 5, 7, 9], notes_per_bar=4),
    "reggae": dict(bpm=(65, 85), kick=[8], snare=[8], hat=[2, 6, 10, 14], inst="offbeat", drive=1.0,
                   scale=[0, 2, 4, 5, 7, 9], notes_per_bar=4),
    "rock": dict(bpm=(110, 145), kick=[0, 6, 8], snare=[4, 12], hat=[0, 2, 4, 6, 8, 10, 12, 14], inst="pluck",
                 drive=4.0, scale=[0, 2, 3, 5, 7, 10], notes_per_bar=8),
}


def _note(inst: str, f0: float, seconds: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    n = synth.n_samples(seconds, sr)
    if inst in ("pluck", "offbeat"):
        return synth.karplus_strong(f0, seconds, sr, rng, damping=rng.uniform(0.993, 0.998))
    if inst == "bass":
        return synth.karplus_strong(f0 / 4, seconds, sr, rng, damping=0.998, brightness=0.2)
    if inst == "strings":
        freq = synth.vibrato(n, sr, f0, rng.uniform(4.5, 6.0), 0.15)
        return synth.additive(freq, sr, synth.harmonic_amplitudes(10, 1.0), rng=rng) * synth.adsr(n, sr, seconds * 0.4, 0.1, 0.8, seconds * 0.3)
    if inst == "buzz":
        return synth.additive(np.full(n, f0 / 2), sr, synth.harmonic_amplitudes(20, 0.8), rng=rng) * synth.adsr(n, sr, 0.005, 0.05, 0.7, 0.02)
    return synth.additive(np.full(n, f0), sr, synth.harmonic_amplitudes(5, 2.0), rng=rng) * synth.adsr(n, sr, 0.01, 0.2, 0.4, 0.05)


def genre_clip(genre: str, seconds: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A few bars of a genre's arrangement: drums on its pattern, notes of its instrument and scale."""
    style = GENRE_STYLE[genre]
    n = synth.n_samples(seconds, sr)
    step = 60.0 / rng.uniform(*style["bpm"]) / 4.0
    root = rng.uniform(110, 260)
    drums, notes = [], []
    for bar_start in np.arange(0.0, seconds, 16 * step):
        for kind in ("kick", "snare", "hat"):
            for s in style[kind]:
                drums.append((bar_start + s * step, synth.drum("hihat" if kind == "hat" else kind, sr, rng)))
        offsets = range(2, 16, 4) if style["inst"] == "offbeat" else range(0, 16, 16 // style["notes_per_bar"])
        length = step * 16 / style["notes_per_bar"]
        for s in offsets:
            f0 = root * 2.0 ** (rng.choice(style["scale"]) / 12.0)
            chord = [f0, f0 * 2 ** (4 / 12)] if style["inst"] in ("offbeat", "strings") else [f0]
            notes += [(bar_start + s * step, _note(style["inst"], f, length * 1.5, sr, rng)) for f in chord]
    music = synth.soft_clip(synth.normalize(synth.place(n, sr, notes)), style["drive"])
    y = music + rng.uniform(0.3, 0.8) * synth.normalize(synth.place(n, sr, drums)) if drums else music
    return synth.mix_at_snr(y, _background(n, rng), rng.uniform(15, 35))


def write_gtzan(root: Path, seed: int, per_genre: int = 10, seconds: float = 4.0, progress: Progress = None) -> dict:
    """``root/GTZAN``: the last file of each genre is in neither list (the real lists leave faulty files out)."""
    lists: dict[str, list[str]] = {"train": [], "test": []}
    n_test = max(1, (per_genre - 1) * 3 // 10)
    for g, genre in enumerate(GTZAN_GENRES):
        for k in range(per_genre):
            rng = clip_rng(seed, GTZAN_STREAM, g * 10000 + k)
            rel = f"{genre}/{genre}.{k:05d}.wav"
            synth.write_audio(root / GTZAN_AUDIO / rel, synth.normalize(genre_clip(genre, seconds, 22050, rng)), 22050)
            if k < per_genre - 1:
                lists["test" if k < n_test else "train"].append(rel)
            if progress is not None:
                progress(1)
    for part, names in lists.items():
        atomic_write_text(root / GTZAN_LISTS[part], "".join(f"{r}\n" for r in names))
    return lists


# ---------------------------------------------------------------- NSynth-like: instrument families
FAMILY_MIDI = {"bass": (28, 55), "brass": (45, 75), "flute": (60, 96), "guitar": (40, 84), "keyboard": (36, 96),
               "mallet": (60, 100), "organ": (36, 84), "reed": (50, 84), "string": (40, 90), "synth_lead": (48, 84),
               "vocal": (48, 76)}


def instrument_params(family: str, rng: np.random.Generator) -> dict:
    """The fixed timbre of one instrument: every note it plays shares these."""
    u = rng.uniform
    return {"rolloff": u(0.6, 1.6), "attack": u(0.005, 0.4), "decay": u(0.3, 3.0), "vibrato": u(0.0, 0.3),
            "rate": u(4.0, 7.0), "formants": sorted(u(300, 3000, 3)), "noise": u(0.0, 0.2), "damping": u(0.990, 0.998),
            "detune": u(0.002, 0.01), "inharm": u(0.0, 0.002)}


def nsynth_note(family: str, source: str, p: dict, midi: int, velocity: int, rng: np.random.Generator) -> np.ndarray:
    """A 4-s note at 16 kHz: held 3 s then released, shaped by the family's recipe and the instrument."""
    sr, f0 = NSYNTH_SR, synth.midi_to_hz(midi)
    n = synth.n_samples(NSYNTH_SECONDS, sr)
    held = synth.n_samples(3.0, sr)
    vib = synth.vibrato(n, sr, f0, p["rate"], p["vibrato"])
    loud = velocity / 127.0
    rolloff = p["rolloff"] + (1.0 - loud)  # soft notes are duller
    if family in ("bass", "guitar"):
        y = synth.karplus_strong(f0, NSYNTH_SECONDS, sr, rng, damping=p["damping"], brightness=0.3 + 0.7 * loud)
        if family == "bass" and source != "acoustic":
            y = synth.band(y, sr, high=800)
    elif family == "keyboard":
        h = np.arange(1, 16)
        ratios = h * np.sqrt(1 + p["inharm"] * h ** 2)
        y = sum(a * np.sin(2 * np.pi * f0 * r * np.arange(n) / sr) * synth.exp_decay(n, sr, p["decay"] * 3 / k)
                for k, (a, r) in enumerate(zip(synth.harmonic_amplitudes(15, rolloff), ratios), start=1) if f0 * r < 0.45 * sr)
    elif family == "mallet":
        y = synth.additive(np.full(n, f0), sr, [1.0, 0.5, 0.25, 0.12], ratios=[1.0, 2.76, 5.40, 8.93], rng=rng)
        y = y * synth.exp_decay(n, sr, p["decay"] * 0.5)
    elif family == "vocal":
        y = synth.resonators(synth.additive(vib, sr, synth.harmonic_amplitudes(30, 0.3), rng=rng), sr, p["formants"])
    else:
        odd = family in ("reed", "flute")
        k = {"flute": 4, "organ": 8, "synth_lead": 24}.get(family, 16)
        amps = synth.harmonic_amplitudes(k, rolloff + (1.5 if family == "flute" else 0.0), odd_only=odd)
        freq = vib if family in ("string", "flute", "reed", "brass") else np.full(n, f0)
        y = synth.additive(freq, sr, amps, rng=rng)
        if family == "synth_lead":
            y += synth.additive(freq * (1 + p["detune"]), sr, amps, rng=rng)
        if family == "flute" or source == "acoustic":
            y += p["noise"] * synth.band(rng.standard_normal(n), sr, f0, min(4 * f0, 7000))
    attack = {"string": max(p["attack"], 0.15), "brass": p["attack"] * 0.5 + 0.03, "organ": 0.005,
              "synth_lead": 0.01}.get(family, min(p["attack"], 0.05))
    env = synth.adsr(n, sr, attack, 0.1, 0.8, 0.0)
    env[held:] *= synth.exp_decay(n - held, sr, 0.3)
    y = np.asarray(y) * env * loud
    if source == "electronic":
        y = synth.soft_clip(synth.normalize(y), 1.5)
    return synth.normalize(synth.mix_at_snr(y, rng.standard_normal(n), rng.uniform(35, 60)), 0.9 * loud)


def _nsynth_part(out: Path, seed: int, families: tuple[str, ...], per_family: int, part: int,
                 progress: Progress) -> dict[str, list[str]]:
    """Notes of ``per_family`` per family from 4 instruments each; train and test instruments differ.

    An instrument plays each pitch at each velocity once, as in NSynth, whose names are therefore unique:
    a note drawn again is redrawn (a repeated name would overwrite a file and stand twice in the selection).
    """
    names: dict[str, list[str]] = {}
    for f, family in enumerate(families):
        names[family] = []
        for k in range(per_family):
            instrument = part * 100 + k % 4
            source = NSYNTH_SOURCES[(f + instrument) % 3]
            timbre = instrument_params(family, clip_rng(seed, NSYNTH_STREAM, f * 1000 + instrument))
            rng = clip_rng(seed, NSYNTH_STREAM, 10 ** 6 + part * 10 ** 5 + f * 1000 + k)
            stem = ""
            while not stem or stem in names[family]:
                midi = int(rng.integers(*FAMILY_MIDI[family]))
                velocity = int(rng.choice(NSYNTH_VELOCITIES))
                stem = f"{family}_{source}_{instrument:03d}-{midi:03d}-{velocity:03d}"
            synth.write_audio(out / f"{stem}.wav", nsynth_note(family, source, timbre, midi, velocity, rng), NSYNTH_SR)
            names[family].append(stem)
            if progress is not None:
                progress(1)
    return names


def write_nsynth(root: Path, selection_json: Path, seed: int, train_per_family: int = 20, test_per_family: int = 10,
                 progress: Progress = None) -> dict[str, list[str]]:
    """``root/nsynth``: the selected training notes (no synth_lead, as the paper's selection) and a test
    set with all 11 families; the selection JSON maps each family to its training stems."""
    selected = [f for f in NSYNTH_FAMILIES if f != NSYNTH_LEFT_OUT]
    selection = _nsynth_part(root / NSYNTH_SELECTED_AUDIO, seed, tuple(selected),
                             train_per_family, 0, progress)
    _nsynth_part(root / NSYNTH_TEST_AUDIO, seed, NSYNTH_FAMILIES, test_per_family, 1, progress)
    atomic_write_text(selection_json, json.dumps(selection, indent=1))
    return selection
