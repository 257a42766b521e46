"""Synthetic training examples with exact targets, for smoke runs and tests.

Each chroma example is a random sequence of note events (1-3 simultaneous
pitches, a few frames each, sometimes silence). Its spectral features put
energy on the first partials of every sounding pitch on a log-frequency
axis, plus noise, so a network can learn chroma from them as from real
audio, only far more easily. The targets come in the three forms the
training variants need: strongly aligned frames, the weakly aligned event
sequence (no timing), and CTC labels. Shingle examples are noisy, time-warped
copies of a few random CENS-like "themes", labelled by theme.

All generators are pure functions of their `seed`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

NUM_CHROMA = 12
PARTIALS = 5                       # harmonics rendered per note, amplitude 1/k
HCQT_HARMONICS = (0.5, 1.0, 2.0, 3.0, 4.0, 5.0)


@dataclasses.dataclass
class SyntheticConfig:
    """Synthetic data (``conf/data/synthetic.yaml``).

    Attributes:
      name: always ``synthetic`` (the training app picks these examples by it).
      num_train: training examples.
      num_val: validation examples.
      num_frames: frames T of a chroma example.
      num_classes: themes of the shingle examples.
      seed: seed of the examples (independent of the initialisation and batch order).
    """

    name: str = "synthetic"
    num_train: int = 256
    num_val: int = 32
    num_frames: int = 64
    num_classes: int = 8
    seed: int = 0


def _events(rng: np.random.Generator, num_frames: int, pitch_range: tuple[int, int],
            event_frames: tuple[int, int]) -> list[tuple[int, int, tuple[int, ...]]]:
    """Random (start, stop, pitches) events tiling `num_frames`; pitches () is silence."""
    events, start = [], 0
    while start < num_frames:
        stop = min(start + int(rng.integers(event_frames[0], event_frames[1] + 1)), num_frames)
        if rng.random() < 0.1:
            pitches: tuple[int, ...] = ()
        else:
            count = int(rng.integers(1, 4))
            pitches = tuple(sorted(rng.choice(np.arange(*pitch_range), size=count, replace=False).tolist()))
        events.append((start, stop, pitches))
        start = stop
    return events


def _chroma_of(pitches: tuple[int, ...]) -> np.ndarray:
    """Binary `(12,)` chroma of MIDI pitches (C = 0)."""
    chroma = np.zeros(NUM_CHROMA, np.float32)
    chroma[[p % NUM_CHROMA for p in pitches]] = 1.0
    return chroma


def partial_spectrum(pitches: tuple[int, ...], *, lowest_midi: float, bins_per_semitone: int,
                     num_bins: int) -> np.ndarray:
    """Magnitudes `(num_bins,)` of the partials of `pitches` on a log-frequency axis.

    Bin b is the frequency of MIDI pitch `lowest_midi + b / bins_per_semitone`;
    partial k of pitch p (amplitude 1/k) lands on the nearest bin.
    """
    spectrum = np.zeros(num_bins, np.float32)
    for pitch in pitches:
        for k in range(1, PARTIALS + 1):
            semitones = pitch + 12.0 * np.log2(k) - lowest_midi
            b = int(round(semitones * bins_per_semitone))
            if 0 <= b < num_bins:
                spectrum[b] += 1.0 / k
    return spectrum


def _frame_spectra(events, num_frames: int, **axis) -> np.ndarray:
    """`(T, num_bins)` spectra: each event's spectrum repeated over its frames."""
    spectra = np.zeros((num_frames, axis["num_bins"]), np.float32)
    for start, stop, pitches in events:
        spectra[start:stop] = partial_spectrum(pitches, **axis)
    return spectra


def logfreq_features(events, num_frames: int, num_bins: int, rng: np.random.Generator) -> np.ndarray:
    """`(T, F)` log-frequency spectrogram, 2 bins per semitone from C2 (MIDI 36), log(1 + x)."""
    spectra = _frame_spectra(events, num_frames, lowest_midi=36.0, bins_per_semitone=2, num_bins=num_bins)
    return np.log1p(spectra + 0.05 * rng.random(spectra.shape, dtype=np.float32))


def hcqt_features(events, num_frames: int, num_harmonics: int, num_bins: int,
                  rng: np.random.Generator) -> np.ndarray:
    """`(T, H, F)` HCQT, 3 bins per semitone; channel h starts at `HCQT_HARMONICS[h]` x C1 (MIDI 24)."""
    channels = []
    for factor in HCQT_HARMONICS[:num_harmonics]:
        lowest = 24.0 + 12.0 * np.log2(factor)
        channels.append(_frame_spectra(events, num_frames, lowest_midi=lowest, bins_per_semitone=3,
                                       num_bins=num_bins))
    spectra = np.stack(channels, axis=1)
    return np.log1p(10.0 * spectra + 0.05 * rng.random(spectra.shape, dtype=np.float32))


def _chroma_example(rng, num_frames, inputs, num_bins, num_harmonics, max_events, pitch_range):
    """One example: inputs and every target form, padded to fixed sizes."""
    valid = int(rng.integers(num_frames * 3 // 4, num_frames + 1))
    events = _events(rng, valid, pitch_range, (2, 6))[:max_events]
    valid = events[-1][1]
    if inputs == "logfreq":
        features = logfreq_features(events, num_frames, num_bins, rng)
    else:
        features = hcqt_features(events, num_frames, num_harmonics, num_bins, rng)
    features[valid:] = 0.0
    strong = np.zeros((num_frames, NUM_CHROMA), np.float32)
    strong_labels = np.zeros(num_frames, np.int32)
    weak = np.zeros((max_events, NUM_CHROMA), np.float32)
    labels = np.zeros(max_events, np.int32)
    sounding = [e for e in events if e[2]]
    for start, stop, pitches in events:
        strong[start:stop] = _chroma_of(pitches)
        # Label of the highest pitch, blank (0) in silence: chroma c has label c + 1.
        strong_labels[start:stop] = max(pitches) % NUM_CHROMA + 1 if pitches else 0
    for i, (_, _, pitches) in enumerate(events):
        weak[i] = _chroma_of(pitches)
    for i, (_, _, pitches) in enumerate(sounding):
        labels[i] = max(pitches) % NUM_CHROMA + 1
    return {
        "inputs": features,
        "paddings": (np.arange(num_frames) >= valid).astype(np.float32),
        "strong_targets": strong,
        "strong_labels": strong_labels,
        "weak_targets": weak,
        "weak_paddings": (np.arange(max_events) >= len(events)).astype(np.float32),
        "labels": labels,
        "label_paddings": (np.arange(max_events) >= len(sounding)).astype(np.float32),
    }


def chroma_examples(num_examples: int, *, seed: int, num_frames: int = 64, inputs: str = "hcqt",
                    num_bins: int = 216, num_harmonics: int = 6, pitch_range: tuple[int, int] = (48, 72)
                    ) -> dict[str, np.ndarray]:
    """Stacked synthetic chroma examples.

    Args:
      num_examples: N.
      seed: seed of everything random.
      num_frames: T, frames per example (at the end, padded frames are zero).
      inputs: "logfreq" (`(N, T, F)`) or "hcqt" (`(N, T, H, F)`).
      num_bins: F; num_harmonics: H (hcqt only).
      pitch_range: MIDI pitches drawn from, [low, high).

    Returns:
      Dict of arrays with leading axis N: `inputs`, `paddings (N, T)`,
      `strong_targets (N, T, 12)`, `strong_labels (N, T)` (0 = blank, c + 1 =
      chroma c), `weak_targets (N, L, 12)` and `weak_paddings (N, L)` (one
      row per event), `labels (N, L)` and `label_paddings (N, L)` (CTC
      labels of the sounding events), with L = T // 2.
    """
    if inputs not in ("logfreq", "hcqt"):
        raise ValueError(f"`inputs` must be 'logfreq' or 'hcqt' for chroma examples, got {inputs!r}.")
    rng = np.random.default_rng(seed)
    examples = [
        _chroma_example(rng, num_frames, inputs, num_bins, num_harmonics, num_frames // 2, pitch_range)
        for _ in range(num_examples)
    ]
    return {key: np.stack([e[key] for e in examples]) for key in examples[0]}


def _smooth_theme(rng: np.random.Generator, frames: int) -> np.ndarray:
    """A `(frames, 12)` random chroma sequence that changes slowly, like CENS."""
    theme = np.cumsum(rng.normal(size=(frames, NUM_CHROMA)), axis=0)
    return np.maximum(theme - theme.mean(axis=1, keepdims=True), 0.0) + 0.1


def _unit_frames(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def shingle_examples(num_examples: int, *, seed: int, num_classes: int = 8, shingle_frames: int = 20,
                     theme_seed: int = 12345) -> dict[str, np.ndarray]:
    """Synthetic CENS shingles: `shingles (N, 20 * 12)` float32 and `labels (N,)` int32.

    Example i is theme `labels[i]` (drawn from `theme_seed`, so train and
    validation sets share themes) read at a random tempo in [0.8, 1.25],
    with noise, each frame L2-normalised as in CENS.
    """
    themes = [_smooth_theme(np.random.default_rng([theme_seed, c]), 2 * shingle_frames)
              for c in range(num_classes)]
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, num_examples).astype(np.int32)
    shingles = []
    for label in labels:
        tempo = np.exp(rng.uniform(np.log(0.8), np.log(1.25)))
        positions = np.clip(np.arange(shingle_frames) * tempo, 0, 2 * shingle_frames - 1)
        frames = np.stack([np.interp(positions, np.arange(2 * shingle_frames), themes[label][:, c])
                           for c in range(NUM_CHROMA)], axis=1)
        frames = frames + 0.15 * rng.random(frames.shape)
        shingles.append(_unit_frames(frames).reshape(-1))
    return {"inputs": np.asarray(shingles, np.float32), "labels": labels}
