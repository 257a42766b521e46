"""Music synchronization: audio-audio and score-audio alignment with chroma features and DTW.

The classical pipeline (Müller, "Fundamentals of Music Processing", ch. 3):
chroma features of both versions, a cosine cost matrix, and the optimal
warping path of DTW (:func:`sdtw.dtw_path`) with unit step weights (the classical (1, 1, 2),
which charges a diagonal step as much as a horizontal plus a vertical one, is
a keyword away). Here the cost also compares onsets (DLNCO), and by default
the path is soft-DTW's expected alignment (:func:`~experiments.sync.dtw.expected_path`,
``SyncConfig.soft_gamma``) rather than the optimal path: the mean position
under the distribution over all paths, between frames where the evidence says so.
The path then keeps its points at the strong onsets of A and runs straight between them
(:func:`~experiments.sync.dtw.anchor_at_onsets`, ``SyncConfig.anchor_threshold``).

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

from experiments.sync.dtw import align, block_mean, expected_path, linear_path, multiscale_path, sync_features
from experiments.sync.cli import SyncInputError, main, plot_alignment, positive_number, synchronize_files
from experiments.sync.cli import synchronize_pairs
from experiments.sync.config import SyncConfig, SyncResult, default_config, path_to_seconds
from experiments.sync.evaluate import beat_error_stats, beat_errors, corpus_beat_errors, warp_times
from experiments.sync.features import audio_chroma, compress_chroma, score_events, sync_audio, sync_score_audio

__all__ = [
    "SyncConfig",
    "SyncInputError",
    "SyncResult",
    "align",
    "audio_chroma",
    "beat_error_stats",
    "beat_errors",
    "block_mean",
    "compress_chroma",
    "corpus_beat_errors",
    "default_config",
    "expected_path",
    "linear_path",
    "main",
    "multiscale_path",
    "path_to_seconds",
    "plot_alignment",
    "positive_number",
    "score_events",
    "sync_audio",
    "sync_features",
    "sync_score_audio",
    "synchronize_files",
    "synchronize_pairs",
    "warp_times",
]
