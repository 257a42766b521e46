"""Performances: how one version of a piece differs from another, and its rendering.

A version is fully determined by a :class:`Piece`, a :class:`PerformanceRanges`
(the config) and an integer seed. Everything random is drawn from
``numpy.random.default_rng([seed, stream])`` with a fixed stream per purpose,
so changing one aspect (say, the noise) never reshuffles another.
"""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np

from experiments.data import synth
from experiments.data.types import NoteEvent, Performance, Piece, TimeMap, Version

__all__ = [
    "PerformanceRanges",
    "make_time_map",
    "perform",
    "render_version",
    "sample_performance",
    "version_seed",
]

# Independent random streams of one version.
_TEMPO, _TUNING, _TIMBRE, _DYNAMICS, _SYNTH, _ROOM, _NOISE = range(7)
# Resolution of the time map: knots every 1/48 quarter note (exact for 16th triplets).
_KNOTS_PER_QUARTER = 48


@dataclasses.dataclass
class PerformanceRanges:
    """Ranges from which the parameters of each version are drawn.

    Attributes:
      tempo_factor: (low, high) global tempo factor, log-uniform.
      local_tempo_depth: (low, high) std of the smooth log-tempo curve.
      local_tempo_period_q: (low, high) periods in quarter notes of its components.
      final_ritardando: largest slowing (fraction) over the last 4 quarters.
      tuning_cents: largest absolute tuning deviation in cents (uniform).
      transpose_semitones: choices of transposition in semitones.
      instruments: preset names; each part draws one.
      dynamics_db: depth in dB of the smooth dynamics curve (and per-note jitter / 4).
      gain_db: (low, high) overall level in dB.
      snr_db: (low, high) SNR of the added noise in dB.
      rt60_s: (low, high) reverberation time in seconds.
      lead_in_s: (low, high) silence before the first beat in seconds.
    """

    tempo_factor: tuple[float, float] = (0.6, 1.5)
    local_tempo_depth: tuple[float, float] = (0.02, 0.1)
    local_tempo_period_q: tuple[float, float] = (6.0, 32.0)
    final_ritardando: float = 0.25
    tuning_cents: float = 40.0
    transpose_semitones: tuple[int, ...] = (0,)
    instruments: tuple[str, ...] = ("piano", "strings", "organ", "flute", "clarinet", "brass", "guitar")
    dynamics_db: float = 6.0
    gain_db: tuple[float, float] = (-12.0, -3.0)
    snr_db: tuple[float, float] = (25.0, 60.0)
    rt60_s: tuple[float, float] = (0.0, 0.8)
    lead_in_s: tuple[float, float] = (0.2, 1.0)


def version_seed(base_seed: int, piece_id: str, index: int) -> int:
    """Seed of one version: depends on the corpus seed, the piece and the index only.

    Uses CRC32 (not Python's salted ``hash``) so it is the same in every process.
    """
    return (int(base_seed) * 1_000_003 + zlib.crc32(f"{piece_id}#{index}".encode())) % (2**31)


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream])


def sample_performance(ranges: PerformanceRanges, n_parts: int, seed: int) -> Performance:
    """Draw the parameters of one version."""
    def uniform(stream, bounds):
        return float(_rng(seed, stream).uniform(bounds[0], bounds[1]))

    lo, hi = ranges.tempo_factor
    tempo_factor = float(np.exp(_rng(seed, _TEMPO).uniform(np.log(lo), np.log(hi))))
    tuning_rng = _rng(seed, _TUNING)
    tuning = float(tuning_rng.uniform(-ranges.tuning_cents, ranges.tuning_cents))
    transpose = int(tuning_rng.choice(np.asarray(ranges.transpose_semitones)))
    timbre_rng = _rng(seed, _TIMBRE)
    if timbre_rng.uniform() < 0.5:  # one instrument plays all parts (piano, organ, ...)
        instruments = (str(timbre_rng.choice(ranges.instruments)),) * n_parts
    else:  # an ensemble: one instrument per part
        instruments = tuple(str(timbre_rng.choice(ranges.instruments)) for _ in range(n_parts))
    return Performance(
        tempo_factor=tempo_factor,
        local_tempo_depth=uniform(_TEMPO + 100, ranges.local_tempo_depth),
        tuning_cents=tuning,
        transpose=transpose,
        instruments=instruments,
        gain_db=uniform(_DYNAMICS + 100, ranges.gain_db),
        snr_db=uniform(_NOISE, ranges.snr_db),
        rt60_s=uniform(_ROOM, ranges.rt60_s),
        lead_in_s=uniform(_TEMPO + 200, ranges.lead_in_s),
        seed=int(seed),
    )


def _smooth_curve(grid_q: np.ndarray, periods_q: tuple[float, float], rng: np.random.Generator,
                  n_components: int = 4) -> np.ndarray:
    """Zero-mean, unit-std sum of sinusoids with random periods and phases, on ``grid_q``."""
    periods = rng.uniform(periods_q[0], periods_q[1], size=n_components)
    phases = rng.uniform(0, 2 * np.pi, size=n_components)
    curve = np.sum(np.sin(2 * np.pi * grid_q[:, None] / periods[None, :] + phases[None, :]), axis=1)
    return curve / np.sqrt(n_components / 2.0)


def make_time_map(piece: Piece, performance: Performance, ranges: PerformanceRanges) -> TimeMap:
    """Score time -> audio time of a version.

    The tempo (quarters per second) is ``qpm/60 * tempo_factor *
    exp(depth * curve(q)) * ritardando(q)``; audio time is its reciprocal
    integrated with the trapezoid rule on a grid of 1/48 quarter, plus the lead-in.
    """
    rng = _rng(performance.seed, _TEMPO + 300)
    n_knots = int(np.ceil(piece.end_q * _KNOTS_PER_QUARTER)) + 1
    grid_q = np.linspace(0.0, n_knots / _KNOTS_PER_QUARTER, n_knots + 1)
    log_tempo = performance.local_tempo_depth * _smooth_curve(grid_q, ranges.local_tempo_period_q, rng)
    # Ritardando: smooth slowing over the last 4 quarters (players end broadly).
    closing = np.clip((grid_q - (piece.end_q - 4.0)) / 4.0, 0.0, 1.0)
    slowing = 1.0 - ranges.final_ritardando * rng.uniform(0.3, 1.0) * closing**2
    quarters_per_s = piece.qpm / 60.0 * performance.tempo_factor * np.exp(log_tempo) * slowing
    seconds_per_q = 1.0 / quarters_per_s
    steps = 0.5 * (seconds_per_q[1:] + seconds_per_q[:-1]) * np.diff(grid_q)
    audio_s = performance.lead_in_s + np.concatenate([[0.0], np.cumsum(steps)])
    return TimeMap(score_q=grid_q, audio_s=audio_s)


def _velocities(piece: Piece, performance: Performance, ranges: PerformanceRanges) -> np.ndarray:
    rng = _rng(performance.seed, _DYNAMICS)
    onsets = np.asarray([n.onset_q for n in piece.notes])
    curve_db = 0.5 * ranges.dynamics_db * _smooth_curve(onsets, (8.0, 48.0), rng)
    jitter_db = rng.normal(0.0, ranges.dynamics_db / 4.0, size=len(onsets))
    # The principal voice sings out a little, as in performance practice.
    lead_db = np.asarray([2.0 if n.part == piece.theme.part else 0.0 for n in piece.notes])
    return np.clip(10.0 ** ((curve_db + jitter_db + lead_db - 6.0) / 20.0), 0.05, 1.0)


def perform(piece: Piece, performance: Performance, ranges: PerformanceRanges, *,
            sample_rate: int, index: int = 0) -> Version:
    """Ground truth of a version (everything except the audio itself)."""
    time_map = make_time_map(piece, performance, ranges)
    onsets = time_map.to_seconds([n.onset_q for n in piece.notes])
    offsets = time_map.to_seconds([n.offset_q for n in piece.notes])
    velocities = _velocities(piece, performance, ranges)
    notes = tuple(
        NoteEvent(float(on), float(off), int(n.pitch + performance.transpose), n.part, float(v))
        for n, on, off, v in zip(piece.notes, onsets, offsets, velocities)
    )
    release = max(synth.INSTRUMENTS[name].release_s for name in performance.instruments)
    end_s = float(time_map.to_seconds(piece.end_q)) + release + performance.rt60_s + 0.5
    return Version(
        version_id=f"{piece.piece_id}__v{index}",
        piece_id=piece.piece_id,
        index=index,
        performance=performance,
        sample_rate=int(sample_rate),
        duration_s=float(int(round(end_s * sample_rate)) / sample_rate),
        time_map=time_map,
        notes=notes,
        beats_s=time_map.to_seconds(piece.beats_q),
        measures_s=time_map.to_seconds(piece.measures_q),
        theme_start_s=float(time_map.to_seconds(piece.theme.start_q)),
        theme_end_s=float(time_map.to_seconds(piece.theme.end_q)),
    )


def render_version(version: Version) -> np.ndarray:
    """Audio of a version: ``(round(duration_s * sample_rate),)`` float32 in [-1, 1].

    Dry additive synthesis, then room reverb, level, then noise; the peak of
    the result is at most 0.99.
    """
    perf = version.performance
    sr = version.sample_rate
    dry = synth.render_notes(version.notes, perf.instruments, sr, duration_s=version.duration_s,
                             tuning_cents=perf.tuning_cents, seed=perf.seed * 7 + _SYNTH)
    wet = synth.add_reverb(dry, perf.rt60_s, sr, _rng(perf.seed, _ROOM))
    peak = np.max(np.abs(wet)) + 1e-12
    leveled = wet * (10.0 ** (perf.gain_db / 20.0) / peak)
    noisy = synth.add_noise(leveled, perf.snr_db, _rng(perf.seed, _NOISE))
    noisy *= min(1.0, 0.99 / (np.max(np.abs(noisy)) + 1e-12))
    return noisy.astype(np.float32)
