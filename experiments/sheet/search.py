"""A snippet of sheet music (an image) found in recordings: ``python -m experiments.search --method sheet``.

The query's systems are unrolled and embedded every ``stride_px`` strip pixels, every recording
frame by frame (``frame_step`` frames apart); subsequence DTW over the cosine distances finds,
in each recording, the passage the snippet sequence matches best (Dorfer et al. 2018 identify
pieces from sheet snippets the same way, by their audio embeddings).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from experiments.sheet import layout
from experiments.sheet.follow import Embedder

__all__ = ["search_sheet"]


def search_sheet(pages, spectrograms: Mapping[str, np.ndarray], embedder: Embedder, top: int, *,
                 stride_px: int = 8, frame_step: int = 2):
    """Rank recordings by how well the sheet music ``pages`` (grayscale images) matches a passage of each.

    Args:
      pages: page images of the query (a cropped system or a whole page).
      spectrograms: recording id -> ``(T, F)`` spectrogram (:func:`experiments.sheet.data.spectrogram`).
      top: number of hits.

    Returns:
      ``top`` :class:`~experiments.retrieval.matching.Hit` (one per recording, best first); the
      distance is the mean cosine distance along the match, halved into [0, 1].
    """
    import sdtw
    from experiments.retrieval.matching import Hit

    strip = layout.unroll(pages, layout.find_systems(pages), embedder.config.height)
    query = embedder.sheet(strip, np.arange(0, strip.width, stride_px, dtype=np.float64))
    seconds_per_frame = frame_step / embedder.config.rate_hz
    hits = []
    for item, spec in spectrograms.items():
        frames = np.arange(0, len(spec), frame_step)
        cost = 1.0 - query @ embedder.audio(spec, frames).T
        delta, starts = (np.asarray(a) for a in sdtw.subsequence_dtw(cost.astype(np.float32)))
        end = int(np.argmin(delta))
        distance = float(delta[end]) / len(query) / 2.0
        hits.append(Hit(item, float(starts[end]) * seconds_per_frame, end * seconds_per_frame, distance))
    return sorted(hits, key=lambda hit: hit.distance)[:top]
