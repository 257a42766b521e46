"""Beat errors of a warping path against ground truth, and over every pair of a corpus."""

from __future__ import annotations

from typing import Mapping

import numpy as np
from tqdm.auto import tqdm

from experiments import timebase
from experiments.sync.dtw import linear_path, path_columns
from experiments.sync.config import SyncConfig
from experiments.sync.features import align_prepared, prepare_audio, prepare_score, score_events

__all__ = ["beat_error_stats", "beat_errors", "corpus_beat_errors", "warp_times"]


def warp_times(times_a: np.ndarray, path: np.ndarray, rate_hz: float) -> np.ndarray:
    """Map times of A (seconds) to times of B along a warping path (integer or fractional frames):
    linear interpolation between the frames of A, each at the position of B it maps to
    (:func:`~experiments.sync.dtw.path_columns`)."""
    a, b = path_columns(path)
    return timebase.frames_to_seconds(
        np.interp(timebase.seconds_to_frames(times_a, rate_hz, rounding="none"), a, b), rate_hz)


def beat_errors(path: np.ndarray, rate_hz: float, beats_a_s: np.ndarray, beats_b_s: np.ndarray) -> np.ndarray:
    """Absolute errors in seconds: ``|warp(beat in A) - beat in B|`` for corresponding beats."""
    beats_a_s, beats_b_s = np.asarray(beats_a_s), np.asarray(beats_b_s)
    if beats_a_s.shape != beats_b_s.shape:
        raise ValueError(f"beat lists differ in length: {beats_a_s.shape} vs {beats_b_s.shape}")
    return np.abs(warp_times(beats_a_s, path, rate_hz) - beats_b_s)


def beat_error_stats(errors_s: np.ndarray) -> dict[str, float]:
    """Mean/median absolute error in ms and percent of beats within 50/100/200 ms."""
    errors_ms = 1000.0 * np.asarray(errors_s, dtype=np.float64)
    stats = {"mean_ms": float(np.mean(errors_ms)), "median_ms": float(np.median(errors_ms))}
    for tolerance in (50, 100, 200):
        stats[f"within_{tolerance}ms_pct"] = float(100.0 * np.mean(errors_ms <= tolerance))
    return stats


def corpus_beat_errors(corpus, configs: Mapping[str, SyncConfig], *,
                       recordings: Mapping[str, np.ndarray] | None = None, progress: bool = False
                       ) -> dict[str, np.ndarray]:
    """Beat errors (seconds) of every method on every pair of versions of each piece.

    Args:
      corpus: an :class:`experiments.data.Corpus`.
      configs: method name -> synchronization config; all must share ``rate_hz``.
      recordings: version id -> audio to align instead of the corpus's own renders (e.g. the same
        performances rendered with a SoundFont; same sample rate).
      progress: show a progress bar over the pairs.

    Returns:
      method name -> all beat errors, plus ``"linear (diagonal)"``, the
      baseline that stretches one version linearly onto the other, and
      ``"score-audio"`` (each version against its score, first config).
    """
    rates = {config.rate_hz for config in configs.values()}
    if len(rates) != 1:
        raise ValueError(f"`configs` must share one rate_hz, got {sorted(rates)}")
    rate_hz = rates.pop()
    pairs = corpus.version_pairs()
    errors: dict[str, list[np.ndarray]] = {name: [] for name in [*configs, "linear (diagonal)", "score-audio"]}
    prepared: dict[tuple, tuple] = {}

    def prepare(version, config):
        key = (version.version_id, config.feature, config.log_compression, bool(config.onset_weight),
               bool(config.anchor_threshold), config.silence_db)
        if key not in prepared:
            audio = version.load_audio() if recordings is None else recordings[version.version_id]
            prepared[key] = prepare_audio(audio, version.sample_rate, config)
        return prepared[key]

    for a, b in tqdm(pairs, desc="synchronizing version pairs", disable=not progress):
        for name, config in configs.items():
            x, y = prepare(a, config), prepare(b, config)
            errors[name].append(beat_errors(align_prepared(x, y, config).path, rate_hz, a.beats_s, b.beats_s))
        diagonal = linear_path(len(x.features), len(y.features))
        errors["linear (diagonal)"].append(beat_errors(diagonal, rate_hz, a.beats_s, b.beats_s))
    first = next(iter(configs.values()))
    for v in corpus.versions:
        piece = corpus.pieces[v.piece_id]
        score = prepare_score(score_events(piece), piece.end_q * 60.0 / piece.qpm, first)
        result = align_prepared(score, prepare(v, first), first)  # the audio features computed above
        errors["score-audio"].append(beat_errors(result.path, rate_hz, piece.beats_q * 60 / piece.qpm, v.beats_s))
    return {name: np.concatenate(errs) for name, errs in errors.items()}
