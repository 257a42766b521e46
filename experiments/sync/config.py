"""Synchronization settings (``conf/sync/default.yaml``) and the result of an alignment."""

from __future__ import annotations

import dataclasses

import numpy as np

from experiments import timebase

__all__ = ["SyncConfig", "SyncResult", "default_config", "path_to_seconds"]


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
      onset_weight: weight of the DLNCO onset features next to chroma in the cost (0: chroma only;
        see :func:`experiments.sync.dtw.sync_cost`).
      silence_db: audio quieter than its loudest frame minus this many dB, before the first and
        after the last louder frame, is silence, not aligned: the path crosses it at the tempo ratio
        of the music (0: off).
      soft_gamma: > 0: the path is the expected alignment of soft-DTW with this gamma (one point
        per frame of A: the mean frame of B under the Gibbs distribution over paths), which
        averages out the frame-level jitter of the optimal path; in multiscale mode that of every
        tile inside the band; 0: the optimal (hard) path.
      anchor_threshold: > 0: the path keeps only its points at the strong onsets of A (chroma onset
        norm at least this fraction of the largest within ``anchor_window_s`` around it) and runs
        straight between them (constant tempo; :func:`experiments.sync.dtw.anchor_at_onsets`);
        0: the path as DTW found it.
      anchor_window_s: the window of that comparison in seconds.
      anchor_max_spread_s: > 0 with a soft path: an onset anchors the path only where soft-DTW is
        sure where it goes, the standard deviation of its position in B at most this many seconds
        (:func:`experiments.sync.dtw.expected_columns`); a note that B does not show (a repeated
        note played legato) is crossed straight instead of pinned at a guess. 0: every strong onset.
    """

    feature: str = "chroma_cqt"
    rate_hz: float = 100.0
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
    log_compression: float = 100.0
    multiscale: bool = False
    coarse_rate_hz: float = 2.0
    band_radius_s: float = 2.0
    tile_frames: int = 400
    onset_weight: float = 0.5
    silence_db: float = 30.0
    soft_gamma: float = 0.4
    anchor_threshold: float = 0.7
    anchor_window_s: float = 0.8
    anchor_max_spread_s: float = 0.05


def default_config() -> SyncConfig:
    """``conf/sync/default.yaml``: the defaults of the command line and of the report."""
    from experiments.config import compose, from_config

    return from_config(SyncConfig, compose(["+sync=default"]).sync)


@dataclasses.dataclass(frozen=True)
class SyncResult:
    """A warping path between sequences A and B.

    Attributes:
      path: ``(L, 2)`` frames (a, b), from (0, 0) to (N-1, M-1), non-decreasing: integers on a
        hard path; on a soft one (``SyncConfig.soft_gamma``) the b of each a is a fractional frame.
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


def path_to_seconds(path: np.ndarray, rate_hz: float) -> np.ndarray:
    """``(L, 2)`` frame path -> ``(L, 2)`` times in seconds."""
    return timebase.frames_to_seconds(path, rate_hz)
