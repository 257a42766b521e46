"""Music synchronization: audio-audio and score-audio alignment with chroma features and DTW.

The classical pipeline (Müller, "Fundamentals of Music Processing", ch. 3):
chroma features of both versions, a cosine cost matrix, and the optimal
warping path of DTW (:func:`sdtw.dtw_path`) with unit step weights (the classical (1, 1, 2),
which charges a diagonal step as much as a horizontal plus a vertical one, is
a keyword away).

Multiscale mode (memory-bounded; Salvador & Chan 2007; Müller, Mattes, Kurth
2006): DTW on block-averaged features at ``coarse_rate_hz``; the coarse path,
projected to the fine grid and widened by ``band_radius_s``, is a band of
admissible cells. The fine path is then computed tile by tile along the band:
each tile starts where the previous fine path stopped and ends at a point of
the projected coarse path about ``2 * tile_frames`` cells (in n+m) further on;
only the first half of each tile's path is kept, so the provisional tile ends
do not bias the result. Memory is O(tile_frames^2 + N + M) instead of O(N M):
two 20-minute recordings at 20 Hz (24 000 frames each) need tiles of about a
million cells instead of a 576-million-cell table.

Command line::

    python -m experiments.sync A B --out DIR [--rate 20] [--feature chroma_cqt] [--multiscale]
    python -m experiments.sync --pairs pairs.csv --out DIR

where A and B are audio files (wav, flac, mp3, ...) or scores (MIDI, MusicXML)
and DIR receives ``sync.csv`` (corresponding times in seconds), ``sync.png``
(cost matrix and path) and ``summary.json``. MIDI keeps its note times (a
performance stays a performance); ``--quantized-midi`` reads it as notation.
``--pairs``: a CSV with columns ``a,b`` (paths absolute or relative to the
CSV's folder); every pair is aligned in one process into ``DIR/<row>-<a>-<b>/``
and listed in ``DIR/summary.csv``. A rerun skips the pairs already done, and a
pair that fails is reported without stopping the others.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from experiments import features, timebase
from experiments.data.types import NoteEvent, Piece

__all__ = [
    "SyncConfig",
    "SyncResult",
    "align",
    "audio_chroma",
    "compress_chroma",
    "default_config",
    "beat_error_stats",
    "beat_errors",
    "corpus_beat_errors",
    "linear_path",
    "multiscale_path",
    "path_to_seconds",
    "score_events",
    "sync_audio",
    "sync_features",
    "sync_score_audio",
    "warp_times",
]

# Cost matrices are padded to multiples of this size so the DTW kernel compiles once per bucket.
_TILE_BUCKET = 128


@dataclasses.dataclass
class SyncConfig:
    """Parameters of a synchronization.

    Attributes:
      feature: ``chroma_cqt``, ``chroma_stft`` or ``cens`` (audio side).
      rate_hz: feature rate of the final path in Hz.
      weights: DTW step weights (vertical, horizontal, diagonal). Unit weights
        gave lower beat errors than (1, 1, 2) on the embedded corpus.
      log_compression: gamma of :func:`compress_chroma` (chroma features only).
      multiscale: use the memory-bounded multiscale mode.
      coarse_rate_hz: feature rate of the coarse level in Hz (``rate_hz`` must
        be an integer multiple).
      band_radius_s: half-width in seconds of the band around the projected coarse path.
      tile_frames: tile size of the fine level in frames (see module docstring).
    """

    feature: str = "chroma_cqt"
    rate_hz: float = 20.0
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
    log_compression: float = 100.0
    multiscale: bool = False
    coarse_rate_hz: float = 2.0
    band_radius_s: float = 2.0
    tile_frames: int = 400


def default_config() -> SyncConfig:
    """``conf/sync/default.yaml``: the defaults of the command line and of the report."""
    from experiments.config import compose, from_config

    return from_config(SyncConfig, compose(["+sync=default"]).sync)


@dataclasses.dataclass(frozen=True)
class SyncResult:
    """A warping path between sequences A and B.

    Attributes:
      path: ``(L, 2)`` int frames (a, b), from (0, 0) to (N-1, M-1), non-decreasing.
      rate_hz: frame rate of both sequences in Hz.
      seconds: wall time of the alignment (features excluded).
      cells: number of cost cells evaluated (N*M for full resolution).
    """

    path: np.ndarray
    rate_hz: float
    seconds: float = 0.0
    cells: int = 0

    def times(self) -> np.ndarray:
        """``(L, 2)`` corresponding times in seconds."""
        return path_to_seconds(self.path, self.rate_hz)


# ----------------------------------------------------------------------------- alignment
def _cosine_cost(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    import sdtw

    return np.asarray(sdtw.costs.cosine(np.asarray(x, np.float32), np.asarray(y, np.float32)))


def _bucket(size: int) -> int:
    return -(-size // _TILE_BUCKET) * _TILE_BUCKET


def _dtw_path(cost: np.ndarray, weights, mask: np.ndarray | None = None) -> np.ndarray:
    """:func:`sdtw.dtw_path` on ``cost`` zero-padded to a multiple of 128 a side.

    The padding (excluded through ``lengths``) lets the compiled kernel be
    reused for inputs of similar size instead of compiling once per shape.
    """
    import sdtw

    n, m = cost.shape
    padded = np.zeros((_bucket(n), _bucket(m)), dtype=np.float32)
    padded[:n, :m] = cost
    options = {"weights": tuple(weights), "lengths": (n, m)}
    if mask is not None:
        padded_mask = np.zeros(padded.shape, dtype=bool)
        padded_mask[:n, :m] = mask
        options["mask"] = padded_mask
    return np.asarray(sdtw.dtw_path(padded, **options), dtype=np.int64)


def sync_features(x: np.ndarray, y: np.ndarray, *, weights=(1.0, 1.0, 1.0)) -> np.ndarray:
    """Full-resolution DTW path between feature sequences ``x`` (N, D) and ``y`` (M, D).

    Allocates the whole (N, M) cost matrix: use :func:`multiscale_path` for long inputs.

    Returns:
      ``(L, 2)`` int path of (row of x, row of y).
    """
    return _dtw_path(_cosine_cost(x, y), weights)


def _block_mean(x: np.ndarray, factor: int) -> np.ndarray:
    """Average non-overlapping blocks of ``factor`` frames: (T, D) -> (ceil(T / factor), D)."""
    n_blocks = -(-len(x) // factor)
    padded = np.concatenate([x, np.repeat(x[-1:], n_blocks * factor - len(x), axis=0)])
    return padded.reshape(n_blocks, factor, -1).mean(axis=1)


def _band_from_coarse(coarse: np.ndarray, factor: int, radius: int, n: int, m: int):
    """Admissible column range [lo, hi] of every fine row around a projected coarse path."""
    n_coarse = coarse[:, 0].max() + 1
    lo_c = np.full(n_coarse, np.iinfo(np.int64).max)
    hi_c = np.full(n_coarse, -1)
    np.minimum.at(lo_c, coarse[:, 0], coarse[:, 1])
    np.maximum.at(hi_c, coarse[:, 0], coarse[:, 1])
    rows = np.minimum(np.arange(n) // factor, n_coarse - 1)
    lo = lo_c[rows] * factor
    hi = hi_c[rows] * factor + factor - 1
    # Widen by `radius` rows and columns: a sliding min/max over rows, then +-radius.
    pad_lo = np.concatenate([np.full(radius, lo[0]), lo, np.full(radius, lo[-1])])
    pad_hi = np.concatenate([np.full(radius, hi[0]), hi, np.full(radius, hi[-1])])
    windows = np.lib.stride_tricks.sliding_window_view
    lo = windows(pad_lo, 2 * radius + 1).min(axis=1) - radius
    hi = windows(pad_hi, 2 * radius + 1).max(axis=1) + radius
    return np.clip(lo, 0, m - 1), np.clip(hi, 0, m - 1)


def _guide_points(coarse: np.ndarray, factor: int, n: int, m: int) -> np.ndarray:
    """Fine-grid points at the centres of the coarse path's cells, from (0, 0) to (n-1, m-1)."""
    centres = np.minimum(coarse * factor + factor // 2, [n - 1, m - 1])
    points = np.concatenate([[[0, 0]], centres, [[n - 1, m - 1]]])
    return np.maximum.accumulate(points, axis=0)


def _solve_tile(x, y, start, end, lo, hi, weights) -> np.ndarray:
    """DTW path from ``start`` to ``end`` (inclusive, fine frames) inside the band."""
    (n0, m0), (n1, m1) = start, end
    cost = _cosine_cost(x[n0:n1 + 1], y[m0:m1 + 1])
    columns = np.arange(m0, m1 + 1)[None, :]
    mask = (columns >= lo[n0:n1 + 1, None]) & (columns <= hi[n0:n1 + 1, None])
    mask[0, 0] = mask[-1, -1] = True
    return _dtw_path(cost, weights, mask=mask) + np.asarray([n0, m0])


def multiscale_path(x: np.ndarray, y: np.ndarray, *, factor: int, radius: int,
                    tile_frames: int = 400, weights=(1.0, 1.0, 1.0)) -> tuple[np.ndarray, int]:
    """Memory-bounded DTW path between ``x`` (N, D) and ``y`` (M, D).

    Args:
      x, y: feature sequences at the fine rate.
      factor: fine frames per coarse frame.
      radius: band half-width in fine frames.
      tile_frames: tile size in fine frames (memory ~ (2 * tile_frames)^2 cells at most).
      weights: DTW step weights.

    Returns:
      ``(path, cells)``: the ``(L, 2)`` fine path and the number of cost cells evaluated.
    """
    n, m = len(x), len(y)
    xc, yc = _block_mean(x, factor), _block_mean(y, factor)
    coarse = sync_features(xc, yc, weights=weights)
    cells = len(xc) * len(yc)
    lo, hi = _band_from_coarse(coarse, factor, radius, n, m)
    guide = _guide_points(coarse, factor, n, m)
    guide_diagonal = guide.sum(axis=1)
    pieces = []
    position = np.zeros(2, dtype=np.int64)
    while True:
        d0 = int(position.sum())
        ahead = np.nonzero(guide_diagonal >= d0 + 2 * tile_frames)[0]
        last = len(ahead) == 0 or n + m - 2 - d0 <= 3 * tile_frames
        end = np.asarray([n - 1, m - 1]) if last else np.maximum(guide[ahead[0]], position)
        tile = _solve_tile(x, y, position, end, lo, hi, weights)
        cells += int((end[0] - position[0] + 1) * (end[1] - position[1] + 1))
        if last:
            pieces.append(tile)
            break
        keep = tile[tile.sum(axis=1) < d0 + tile_frames]
        pieces.append(keep[:-1])
        position = keep[-1]
    return np.concatenate(pieces), cells


def linear_path(n: int, m: int) -> np.ndarray:
    """Diagonal (constant tempo ratio) path from (0, 0) to (n-1, m-1): the baseline."""
    length = max(n, m)
    a = np.round(np.linspace(0, n - 1, length)).astype(np.int64)
    b = np.round(np.linspace(0, m - 1, length)).astype(np.int64)
    return np.stack([a, b], axis=1)


def align(x: np.ndarray, y: np.ndarray, config: SyncConfig = SyncConfig()) -> SyncResult:
    """Align two feature sequences at ``config.rate_hz`` (full or multiscale)."""
    started = time.perf_counter()
    if config.multiscale:
        factor = int(round(config.rate_hz / config.coarse_rate_hz))
        if factor < 1 or abs(factor * config.coarse_rate_hz - config.rate_hz) > 1e-6:
            raise ValueError(f"rate_hz={config.rate_hz} must be an integer multiple of "
                             f"coarse_rate_hz={config.coarse_rate_hz}")
        radius = max(1, int(round(config.band_radius_s * config.rate_hz)))
        path, cells = multiscale_path(x, y, factor=factor, radius=radius,
                                      tile_frames=config.tile_frames, weights=config.weights)
    else:
        path, cells = sync_features(x, y, weights=config.weights), len(x) * len(y)
    return SyncResult(path, config.rate_hz, time.perf_counter() - started, cells)


def compress_chroma(chroma: np.ndarray, gamma: float) -> np.ndarray:
    """Logarithmic compression ``log(1 + gamma * chroma / max)`` (Müller, FMP sec. 3.1.2.1).

    Lifts the weak pitch classes of soft passages, so that the cosine cost
    compares harmony rather than loudness; ``gamma = 0`` returns the input.
    """
    if gamma <= 0:
        return chroma
    return np.log1p(gamma * chroma / max(float(chroma.max()), 1e-12)).astype(np.float32)


def audio_chroma(audio: np.ndarray, sr: int, config: SyncConfig = None) -> np.ndarray:
    """Chroma ``(T, 12)`` at ``config.rate_hz`` as used for synchronization."""
    config = config or SyncConfig()
    if config.feature == "cens":
        # CENS with a short window at the fine rate (like CENS^9_1 for synchronization).
        return features.chroma_cens(audio, sr, rate_hz=config.rate_hz, chroma_rate_hz=config.rate_hz,
                                    win_len_smooth=9)
    if config.feature == "chroma_cqt":
        chroma = features.chroma_cqt(audio, sr, rate_hz=config.rate_hz, norm=None)
    elif config.feature == "chroma_stft":
        chroma = features.chroma_stft(audio, sr, rate_hz=config.rate_hz, norm=None)
    else:
        raise ValueError(f"unknown synchronization feature {config.feature!r}")
    return compress_chroma(chroma, config.log_compression)


def sync_audio(audio_a: np.ndarray, audio_b: np.ndarray, sr: int,
               config: SyncConfig = SyncConfig()) -> SyncResult:
    """Synchronize two recordings (mono float arrays at ``sr`` Hz)."""
    return align(audio_chroma(audio_a, sr, config), audio_chroma(audio_b, sr, config), config)


def score_events(piece: Piece, qpm: float | None = None) -> list[NoteEvent]:
    """Notes of a score in seconds at a constant tempo (default: the piece's ``qpm``)."""
    seconds_per_q = 60.0 / float(qpm or piece.qpm)
    return [NoteEvent(n.onset_q * seconds_per_q, n.offset_q * seconds_per_q, n.pitch, n.part)
            for n in piece.notes]


def sync_score_audio(piece: Piece, audio: np.ndarray, sr: int,
                     config: SyncConfig = SyncConfig()) -> SyncResult:
    """Synchronize a score (sequence A, at its nominal tempo) with a recording (B).

    The score side is the binary chroma of its notes (:func:`features.notes_to_chroma`);
    path times on the A axis are score seconds at ``piece.qpm`` (score quarter
    = seconds * qpm / 60).
    """
    events = score_events(piece)
    score_chroma = features.notes_to_chroma(events, config.rate_hz,
                                            timebase.num_frames(piece.end_q * 60.0 / piece.qpm, config.rate_hz))
    return align(score_chroma, audio_chroma(audio, sr, config), config)


# ----------------------------------------------------------------------------- evaluation
def path_to_seconds(path: np.ndarray, rate_hz: float) -> np.ndarray:
    """``(L, 2)`` frame path -> ``(L, 2)`` times in seconds."""
    return timebase.frames_to_seconds(path, rate_hz)


def warp_times(times_a: np.ndarray, path: np.ndarray, rate_hz: float) -> np.ndarray:
    """Map times of A (seconds) to times of B along a warping path.

    Where the path runs horizontally (one frame of A to several of B) the mean
    B position is used; in between, linear interpolation.
    """
    a, inverse = np.unique(path[:, 0], return_inverse=True)
    b = np.bincount(inverse, weights=path[:, 1]) / np.bincount(inverse)
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


# ----------------------------------------------------------------------------- command line
def corpus_beat_errors(corpus, configs: Mapping[str, SyncConfig], *, progress: bool = False
                       ) -> dict[str, np.ndarray]:
    """Beat errors (seconds) of every method on every pair of versions of each piece.

    Args:
      corpus: an :class:`experiments.data.Corpus`.
      configs: method name -> synchronization config; all must share ``rate_hz``.
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
    pairs = [pair for piece_id in corpus.pieces for pair in itertools.combinations(corpus.versions_of(piece_id), 2)]
    errors: dict[str, list[np.ndarray]] = {name: [] for name in [*configs, "linear (diagonal)", "score-audio"]}
    chroma_cache: dict[tuple[str, str], np.ndarray] = {}

    def chroma(version, config):
        key = (version.version_id, config.feature)
        if key not in chroma_cache:
            chroma_cache[key] = audio_chroma(version.load_audio(), version.sample_rate, config)
        return chroma_cache[key]

    for a, b in tqdm(pairs, desc="synchronizing version pairs", disable=not progress):
        for name, config in configs.items():
            x, y = chroma(a, config), chroma(b, config)
            errors[name].append(beat_errors(align(x, y, config).path, rate_hz, a.beats_s, b.beats_s))
        errors["linear (diagonal)"].append(beat_errors(linear_path(len(x), len(y)), rate_hz, a.beats_s, b.beats_s))
    first = next(iter(configs.values()))
    for v in corpus.versions:
        piece = corpus.pieces[v.piece_id]
        result = sync_score_audio(piece, v.load_audio(), v.sample_rate, first)
        errors["score-audio"].append(beat_errors(result.path, rate_hz, piece.beats_q * 60 / piece.qpm, v.beats_s))
    return {name: np.concatenate(errs) for name, errs in errors.items()}


def _is_score(path: Path) -> bool:
    from experiments.data.loaders import SCORE_EXTENSIONS

    return path.suffix.lower() in SCORE_EXTENSIONS


MIN_SECONDS = 1.0  # shorter inputs cannot be synchronized meaningfully


class SyncInputError(ValueError):
    """A problem with the user's input, reported in one line without a traceback."""


def _features_of(path: Path, sr: int, config: SyncConfig, quantized_midi: bool = False) -> tuple[np.ndarray, str]:
    """Chroma of a score's notes or of audio, ``(T, 12)`` at ``config.rate_hz``, and "score" or "audio".

    Raises:
      SyncInputError: an unreadable or empty file, or one shorter than ``MIN_SECONDS``.
    """
    from experiments.data.loaders import AudioLoadError, ScoreLoadError, load_audio, load_score

    try:
        if _is_score(path):
            piece = load_score(path, quantized_midi=quantized_midi)
            seconds = piece.end_q * 60.0 / piece.qpm
        else:
            audio = load_audio(path, sample_rate=sr)
            seconds = len(audio) / sr
    except (AudioLoadError, ScoreLoadError) as error:
        raise SyncInputError(str(error)) from None
    if seconds < MIN_SECONDS:  # checked before any analysis window meets a too short signal
        raise SyncInputError(f"{path} is {seconds:.2f} s long; synchronization needs at least {MIN_SECONDS:g} s")
    if _is_score(path):
        n_frames = timebase.num_frames(seconds, config.rate_hz)
        return features.notes_to_chroma(score_events(piece), config.rate_hz, n_frames), "score"
    return audio_chroma(audio, sr, config), "audio"


def plot_alignment(x: np.ndarray, y: np.ndarray, path: np.ndarray, rate_hz: float, out_png: Path,
                   *, labels=("A", "B"), max_side: int = 1500) -> None:
    """Save the cosine cost matrix (block-averaged to at most ``max_side`` frames a side) with the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    factor = max(1, -(-max(len(x), len(y)) // max_side))
    xs, ys = _block_mean(x, factor), _block_mean(y, factor)
    xs = xs / np.maximum(np.linalg.norm(xs, axis=1, keepdims=True), 1e-8)
    ys = ys / np.maximum(np.linalg.norm(ys, axis=1, keepdims=True), 1e-8)
    cost = 1.0 - xs @ ys.T
    step = factor / rate_hz
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.imshow(cost, origin="lower", aspect="auto", cmap="gray_r",
              extent=(0, len(ys) * step, 0, len(xs) * step))
    times = path_to_seconds(path, rate_hz)
    ax.plot(times[:, 1], times[:, 0], color="tab:red", linewidth=1.2, label="warping path")
    ax.set_xlabel(f"{labels[1]} (s)")
    ax.set_ylabel(f"{labels[0]} (s)")
    ax.set_title("Cosine cost matrix and optimal warping path")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def positive_number(kind: type):
    """argparse type: a ``kind`` (int or float) > 0; NaN refused."""

    def parse(text: str):
        value = kind(text)
        if not value > 0:  # also refuses NaN
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def _writable_folder(folder: Path) -> None:
    """Create ``folder`` and check that a file can be written there, before any work."""
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise SyncInputError(f"cannot write to --out {folder}: {error.strerror or error}") from None


def write_times_csv(path: Path, times: np.ndarray, names: tuple[str, str]) -> None:
    """Corresponding times in seconds, one row per path point, columns ``time_<name>_s`` (quoted as needed)."""
    import csv

    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([f"time_{name}_s" for name in names])
        writer.writerows([f"{a:.3f}", f"{b:.3f}"] for a, b in times)


def synchronize_files(a: Path, b: Path, out: Path, config: SyncConfig, *, sample_rate: int = 22050,
                      multiscale: bool | None = None, auto_cells: float = 16e6, quantized_midi: bool = False,
                      extra: Mapping | None = None) -> dict:
    """Align two files (audio or score) and write ``sync.csv``, ``sync.png`` and ``summary.json`` to ``out``
    (the summary last: it marks the pair as done).

    ``multiscale=None`` chooses it above ``auto_cells`` cells; ``extra`` is added to the summary. Returns the summary.

    Raises:
      SyncInputError: an unreadable, empty, silent or too short input, or an unwritable ``out``.
    """
    _writable_folder(out)
    x, kind_a = _features_of(a, sample_rate, config, quantized_midi)
    y, kind_b = _features_of(b, sample_rate, config, quantized_midi)
    if multiscale is None:
        multiscale = len(x) * len(y) > auto_cells
    config = dataclasses.replace(config, multiscale=multiscale)
    result = align(x, y, config)
    write_times_csv(out / "sync.csv", result.times(), (a.stem, b.stem))
    plot_alignment(x, y, result.path, config.rate_hz, out / "sync.png", labels=(a.name, b.name))
    summary = {"a": str(a), "b": str(b), "kinds": [kind_a, kind_b], "frames": [len(x), len(y)],
               "config": dataclasses.asdict(config), "seconds": result.seconds, "cells": result.cells,
               "path_length": len(result.path), **(extra or {})}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


PAIR_COLUMNS = ("row", "a", "b", "folder", "status", "seconds", "path_length")


def read_pairs(pairs_csv: Path) -> list[tuple[Path, Path]]:
    """The ``(a, b)`` rows of a pairs CSV, relative paths taken from the CSV's folder."""
    import csv

    if not pairs_csv.is_file():
        raise SyncInputError(f"--pairs {pairs_csv} does not exist")
    with open(pairs_csv, newline="") as handle:
        reader = csv.DictReader(handle)
        if not {"a", "b"} <= set(reader.fieldnames or ()):
            raise SyncInputError(f"--pairs {pairs_csv} needs the columns a,b (found: {reader.fieldnames})")
        rows = [(row["a"], row["b"]) for row in reader]
    if not rows:
        raise SyncInputError(f"--pairs {pairs_csv} lists no pair")
    return [(pairs_csv.parent / a.strip(), pairs_csv.parent / b.strip()) for a, b in rows]


def _pair_folder(out: Path, row: int, a: Path, b: Path) -> Path:
    return out / f"{row:04d}-{a.stem}-{b.stem}"


def synchronize_pairs(pairs_csv: Path, out: Path, config: SyncConfig, **options) -> list[dict]:
    """Align every pair of ``pairs_csv`` in this process (see the module docstring); ``options`` go to
    :func:`synchronize_files`. ``DIR/summary.csv`` is rewritten after each pair, so an interrupted run
    leaves it complete up to there.

    Returns:
      One row per pair: ``PAIR_COLUMNS``; status ``ok``, ``done before`` or ``error: <message>``.
    """
    import csv

    pairs = read_pairs(pairs_csv)
    _writable_folder(out)
    request = lambda a, b: json.loads(json.dumps([str(a), str(b), dataclasses.asdict(config), options]))  # noqa: E731
    rows = []
    for row, (a, b) in enumerate(tqdm(pairs, desc="pairs", unit="pair"), 1):
        folder = _pair_folder(out, row, a, b)
        entry = {"row": row, "a": str(a), "b": str(b), "folder": str(folder)}
        done = folder / "summary.json"
        previous = json.loads(done.read_text()) if done.is_file() and (folder / "sync.csv").is_file() else None
        if previous and previous.get("request") == request(a, b):
            rows.append({**entry, "status": "done before", "seconds": previous["seconds"],
                         "path_length": previous["path_length"]})
        else:
            try:
                summary = synchronize_files(a, b, folder, config, extra={"request": request(a, b)}, **options)
                rows.append({**entry, "status": "ok", "seconds": round(summary["seconds"], 3),
                             "path_length": summary["path_length"]})
            except SyncInputError as error:
                rows.append({**entry, "status": f"error: {error}", "seconds": "", "path_length": ""})
        with open(out / "summary.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=PAIR_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (2 for bad input, with one line on stderr; 1 when
    some pairs of ``--pairs`` failed)."""
    import sys

    defaults = default_config()
    parser = argparse.ArgumentParser(prog="python -m experiments.sync", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("a", type=Path, nargs="?", help="audio file or score (MIDI/MusicXML)")
    parser.add_argument("b", type=Path, nargs="?", help="audio file or score")
    parser.add_argument("--pairs", type=Path, default=None,
                        help="CSV with columns a,b: align every pair in one process (instead of A B)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--rate", type=positive_number(float), default=defaults.rate_hz, help="feature rate in Hz")
    parser.add_argument("--feature", default=defaults.feature, choices=("chroma_cqt", "chroma_stft", "cens"))
    parser.add_argument("--sample-rate", type=positive_number(int), default=22050, help="audio is resampled to this rate")
    parser.add_argument("--quantized-midi", action="store_true",
                        help="read MIDI as notation (onsets moved to the beat grid) instead of at its note times")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--multiscale", action="store_true", help="memory-bounded multiscale DTW")
    mode.add_argument("--full", action="store_true", help="full-resolution DTW")
    parser.add_argument("--auto-cells", type=positive_number(float), default=16e6,
                        help="without --multiscale/--full, use multiscale above this many cells")
    args = parser.parse_args(argv)
    two_files = args.a is not None and args.b is not None
    if (args.pairs is None and not two_files) or (args.pairs is not None and args.a is not None):
        parser.error("give two files A B, or --pairs CSV")
    # Neither flag: multiscale where conf/sync says so, else chosen by size (--auto-cells).
    multiscale = True if args.multiscale or (defaults.multiscale and not args.full) else False if args.full else None
    options = {"sample_rate": args.sample_rate, "multiscale": multiscale, "auto_cells": args.auto_cells,
               "quantized_midi": args.quantized_midi}
    config = dataclasses.replace(defaults, feature=args.feature, rate_hz=args.rate)
    try:
        if args.pairs is not None:
            rows = synchronize_pairs(args.pairs, args.out, config, **options)
        else:
            summary = synchronize_files(args.a, args.b, args.out, config, **options)
    except SyncInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.pairs is not None:
        failed = [r for r in rows if r["status"].startswith("error")]
        for r in failed:
            print(f"pair {r['row']} ({r['a']}, {r['b']}) failed: {r['status'][len('error: '):]}", file=sys.stderr)
        print(f"{len(rows) - len(failed)} of {len(rows)} pairs aligned; see {args.out / 'summary.csv'}")
        return 1 if failed else 0
    print(f"wrote {args.out / 'sync.csv'} and {args.out / 'sync.png'} ({summary['path_length']} path points, "
          f"{summary['seconds']:.2f} s, {'multiscale' if summary['config']['multiscale'] else 'full'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
