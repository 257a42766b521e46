"""A small additive synthesizer for rendering scores to audio (numpy only).

Each note is a sum of partials ``k = 1..K`` at frequency
``k * f0 * sqrt(1 + B k^2)`` (stiff-string inharmonicity, Fletcher 1964) with
an instrument-specific spectrum, an attack/decay/release envelope, optional
vibrato, and per-partial random phases. A room is a synthetic exponentially
decaying noise impulse response (Schroeder's statistical model) whose direct
path is at lag 0, so reverberation never moves an onset.

Timing is sample-exact: a note whose onset is at sample ``n0`` is silent
before ``n0`` and sounding from ``n0`` on; the corpus ground truth relies on it.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import scipy.signal

from experiments import timebase
from experiments.data.types import NoteEvent

__all__ = [
    "INSTRUMENTS",
    "Instrument",
    "add_noise",
    "add_reverb",
    "render_note",
    "render_notes",
    "room_impulse_response",
]


@dataclasses.dataclass(frozen=True)
class Instrument:
    """A synthesizer preset.

    Attributes:
      name: preset name.
      partials: relative amplitude of partials 1..K (normalised at render time).
      attack_s: linear attack time in seconds.
      decay_s: for percussive presets the time constant of the exponential
        decay at MIDI pitch 60 (shorter for higher notes); for sustained
        presets the time of the fall from the attack peak to ``sustain``.
      sustain: sustain level relative to the attack peak (sustained presets).
      release_s: release time after the note's offset in seconds.
      percussive: True for struck/plucked sounds (no sustain, free decay).
      inharmonicity: stiffness coefficient B.
      vibrato_hz, vibrato_cents: vibrato rate in Hz and depth in cents (0 = none).
      brightness_decay: extra decay of higher partials, per partial number
        (percussive presets: partial k decays ``1 + brightness_decay*(k-1)`` times faster).
    """

    name: str
    partials: tuple[float, ...]
    attack_s: float
    decay_s: float
    sustain: float
    release_s: float
    percussive: bool = False
    inharmonicity: float = 0.0
    vibrato_hz: float = 0.0
    vibrato_cents: float = 0.0
    brightness_decay: float = 0.0


def _series(n: int, f) -> tuple[float, ...]:
    return tuple(float(f(k)) for k in range(1, n + 1))


INSTRUMENTS: dict[str, Instrument] = {
    inst.name: inst
    for inst in (
        Instrument("piano", _series(12, lambda k: k ** -1.3), attack_s=0.003, decay_s=1.4,
                   sustain=0.0, release_s=0.08, percussive=True, inharmonicity=4e-4,
                   brightness_decay=0.35),
        Instrument("guitar", _series(10, lambda k: k ** -1.6), attack_s=0.002, decay_s=0.9,
                   sustain=0.0, release_s=0.05, percussive=True, inharmonicity=1.5e-4,
                   brightness_decay=0.5),
        Instrument("strings", _series(14, lambda k: 1.0 / k), attack_s=0.045, decay_s=0.1,
                   sustain=0.85, release_s=0.09, vibrato_hz=5.5, vibrato_cents=12.0),
        Instrument("organ", (1.0, 0.65, 0.45, 0.25, 0.3, 0.1, 0.18, 0.08), attack_s=0.015,
                   decay_s=0.05, sustain=1.0, release_s=0.05),
        Instrument("flute", (1.0, 0.38, 0.16, 0.07, 0.03), attack_s=0.05, decay_s=0.1,
                   sustain=0.9, release_s=0.06, vibrato_hz=4.8, vibrato_cents=8.0),
        Instrument("clarinet", _series(11, lambda k: (1.0 / k) if k % 2 else 0.08 / k),
                   attack_s=0.03, decay_s=0.1, sustain=0.9, release_s=0.06),
        Instrument("brass", _series(12, lambda k: k ** -0.8 * np.exp(-0.12 * k)), attack_s=0.035,
                   decay_s=0.15, sustain=0.8, release_s=0.07, vibrato_hz=5.0, vibrato_cents=5.0),
    )
}


def midi_to_hz(pitch, tuning_cents: float = 0.0):
    """MIDI pitch (A4 = 69 = 440 Hz) and tuning deviation in cents -> frequency in Hz."""
    return 440.0 * 2.0 ** ((np.asarray(pitch, dtype=np.float64) - 69.0 + tuning_cents / 100.0) / 12.0)


def _envelope(inst: Instrument, n_samples: int, n_sounding: int, sr: int, pitch: float,
              partial_numbers: np.ndarray) -> np.ndarray:
    """Amplitude envelope ``(K, n_samples)``; ``n_sounding`` samples before the release."""
    t = np.arange(n_samples) / sr
    n_attack = max(1, int(round(inst.attack_s * sr)))
    # (i + 1) / n_attack: the very first sample of the note is already non-zero.
    attack = np.minimum((np.arange(n_samples) + 1.0) / n_attack, 1.0)
    if inst.percussive:
        tau = inst.decay_s * 2.0 ** (-(pitch - 60.0) / 24.0)
        rates = (1.0 + inst.brightness_decay * (partial_numbers - 1.0))[:, None] / tau
        body = np.exp(-rates * np.maximum(t - inst.attack_s, 0.0)[None, :])
    else:
        fall = np.clip((t - inst.attack_s) / max(inst.decay_s, 1e-3), 0.0, 1.0)
        body = np.broadcast_to(1.0 - (1.0 - inst.sustain) * fall, (len(partial_numbers), n_samples))
    release = np.ones(n_samples)
    tail = n_samples - n_sounding
    if tail > 0:
        release[n_sounding:] = np.linspace(1.0, 0.0, tail + 1)[1:]
    return body * (attack * release)[None, :]


def render_note(inst: Instrument, pitch: float, duration_s: float, sr: int, *,
                velocity: float = 1.0, tuning_cents: float = 0.0,
                rng: np.random.Generator | None = None) -> np.ndarray:
    """Render one note from its onset: ``(n,)`` float64 with ``n`` = duration + release.

    Args:
      inst: preset.
      pitch: MIDI pitch (fractional allowed).
      duration_s: nominal duration in seconds (onset to offset).
      sr: sample rate in Hz.
      velocity: linear amplitude.
      tuning_cents: tuning deviation in cents.
      rng: source of the partial phases and the vibrato phase.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    n_sounding = max(1, int(round(duration_s * sr)))
    n_samples = n_sounding + max(1, int(round(inst.release_s * sr)))
    f0 = float(midi_to_hz(pitch, tuning_cents))
    k = np.arange(1, len(inst.partials) + 1, dtype=np.float64)
    stretch = k * np.sqrt(1.0 + inst.inharmonicity * k**2)
    keep = stretch * f0 < 0.45 * sr  # no partial above ~Nyquist: no aliasing
    if not keep.any():
        return np.zeros(n_samples)
    k, stretch = k[keep], stretch[keep]
    amps = np.asarray(inst.partials, dtype=np.float64)[keep]
    amps = amps / np.sqrt(np.sum(np.asarray(inst.partials) ** 2))
    t = np.arange(n_samples) / sr
    if inst.vibrato_cents > 0:
        # vibrato fades in over 0.3 s, as players do.
        depth = inst.vibrato_cents * np.minimum(t / 0.3, 1.0)
        ratio = 2.0 ** (depth * np.sin(2 * np.pi * inst.vibrato_hz * t + rng.uniform(0, 2 * np.pi)) / 1200.0)
        phase = 2 * np.pi * f0 * np.cumsum(ratio) / sr
    else:
        phase = 2 * np.pi * f0 * t
    phases = rng.uniform(0, 2 * np.pi, size=len(k))
    env = _envelope(inst, n_samples, n_sounding, sr, pitch, k)
    partials = np.sin(stretch[:, None] * phase[None, :] + phases[:, None])
    return velocity * np.einsum("k,kn,kn->n", amps, env, partials)


def render_notes(notes: Sequence[NoteEvent], instruments: Sequence[str], sr: int, *,
                 duration_s: float | None = None, tuning_cents: float = 0.0,
                 seed: int = 0) -> np.ndarray:
    """Mix notes into one dry signal.

    Args:
      notes: note events in seconds; ``note.part`` selects ``instruments[part]``.
      instruments: preset name per part (see :data:`INSTRUMENTS`).
      sr: sample rate in Hz.
      duration_s: output length in seconds (default: last release + 0.5 s).
      tuning_cents: tuning deviation in cents for every note.
      seed: phases/vibrato seed; the same inputs always give the same samples.

    Returns:
      ``(num_samples,)`` float64 dry mix; note onset ``onset_s`` falls on sample
      ``round(onset_s * sr)``.
    """
    rng = np.random.default_rng(seed)
    end_s = max((n.offset_s for n in notes), default=0.0) + 0.5
    n_total = int(timebase.seconds_to_samples(duration_s if duration_s is not None else end_s, sr))
    out = np.zeros(n_total)
    for note in notes:
        inst = INSTRUMENTS[instruments[note.part % len(instruments)]]
        start = int(timebase.seconds_to_samples(note.onset_s, sr))
        stop = int(timebase.seconds_to_samples(note.offset_s, sr))
        wave = render_note(inst, note.pitch, (stop - start) / sr, sr, velocity=note.velocity,
                           tuning_cents=tuning_cents, rng=rng)
        end = min(n_total, start + len(wave))
        if end > start:
            out[start:end] += wave[: end - start]
    return out


def room_impulse_response(rt60_s: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Synthetic room response: direct path 1 at lag 0, then a decaying noise tail.

    The tail is Gaussian noise under an exponential envelope that falls by
    60 dB in ``rt60_s`` seconds, low-passed because air and walls absorb high
    frequencies more, and starting after a 10 ms pre-delay (first reflections).
    """
    n_tail = max(1, int(rt60_s * sr))
    t = np.arange(n_tail) / sr
    tail = rng.standard_normal(n_tail) * np.exp(-6.908 * t / rt60_s)
    b, a = scipy.signal.butter(2, 4000.0 / (sr / 2))
    tail = scipy.signal.lfilter(b, a, tail)
    pre_delay = int(0.01 * sr)
    ir = np.zeros(pre_delay + n_tail)
    ir[0] = 1.0
    ir[pre_delay:] += 0.35 * tail / np.sqrt(np.sum(tail**2) + 1e-12)
    return ir


def add_reverb(signal: np.ndarray, rt60_s: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Convolve with :func:`room_impulse_response`; same length; identity for ``rt60_s <= 0``."""
    if rt60_s <= 0:
        return signal
    ir = room_impulse_response(rt60_s, sr, rng)
    return scipy.signal.fftconvolve(signal, ir)[: len(signal)]


def add_noise(signal: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Add pink-ish noise (white noise through a one-pole low-pass) at ``snr_db`` dB SNR."""
    if not np.isfinite(snr_db):
        return signal
    noise = scipy.signal.lfilter([1.0], [1.0, -0.9], rng.standard_normal(len(signal)))
    signal_power = np.mean(signal**2) + 1e-20
    noise *= np.sqrt(signal_power / (np.mean(noise**2) + 1e-20) / 10.0 ** (snr_db / 10.0))
    return signal + noise
