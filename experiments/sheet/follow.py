"""Score following on page images: where in the printed score a recording is, at every moment.

The unrolled systems are embedded snippet by snippet (one every ``stride`` strip pixels), the
recording frame by frame, with the two branches of a trained
:class:`models.SheetAudioEmbedder`; the cosine distances form a cost matrix, and soft-DTW's
expected alignment through it (:func:`experiments.sync.dtw.expected_path`) gives a strip
column for every audio frame, which the strip maps back to page, x and system.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from experiments.sheet import layout
from experiments.sheet.data import SnippetConfig, audio_snippets, sheet_snippets

__all__ = ["Embedder", "Following", "follow", "linear_following"]

BATCH = 256  # snippets per network call: one compiled shape, bounded memory


@dataclasses.dataclass(frozen=True)
class Embedder:
    """The two branches of a trained sheet-audio model as numpy functions.

    Attributes:
      model: a :class:`models.SheetAudioEmbedder`.
      config: the snippet sizes it was trained on.
    """

    model: object
    config: SnippetConfig

    @functools.cached_property
    def _branches(self):
        from flax import nnx

        return nnx.jit(lambda m, x: m.embed_sheet(x)), nnx.jit(lambda m, x: m.embed_audio(x))

    def _batched(self, fn, snippets: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(snippets), BATCH):
            chunk = snippets[start:start + BATCH]
            padded = np.concatenate([chunk, np.zeros((BATCH - len(chunk), *chunk.shape[1:]), chunk.dtype)])
            out.append(np.asarray(fn(self.model, padded))[:len(chunk)])
        return np.concatenate(out) if out else np.zeros((0, self.model.embedding_dim), np.float32)

    def sheet(self, strip: layout.Strip, columns) -> np.ndarray:
        """``(K, D)`` embeddings of the strip snippets centred on ``columns``."""
        return self._batched(self._branches[0], sheet_snippets(strip, columns, self.config.sheet_width))

    def audio(self, spec: np.ndarray, frames) -> np.ndarray:
        """``(K, D)`` embeddings of the spectrogram snippets centred on ``frames``."""
        return self._batched(self._branches[1], audio_snippets(spec, frames, self.config.audio_frames))


@dataclasses.dataclass(frozen=True)
class Following:
    """Where a recording is in a strip.

    Attributes:
      times_s: ``(T,)`` audio frame times.
      columns: ``(T,)`` strip column at each frame (fractional).
    """

    times_s: np.ndarray
    columns: np.ndarray

    def column_at(self, seconds) -> np.ndarray:
        return np.interp(seconds, self.times_s, self.columns)


def follow(embedder: Embedder, strip: layout.Strip, spec: np.ndarray, *, stride: int = 4,
           gamma: float = 0.1) -> Following:
    """Follow the recording ``spec`` (``(T, F)``, see :func:`experiments.sheet.data.spectrogram`)
    through ``strip``.

    Args:
      stride: strip pixels between two snippets.
      gamma: soft-DTW smoothing of the path (0 would be the hard DTW path; the expectation
        places frames between snippets and averages near-ties).
    """
    from experiments.sync.dtw import expected_path

    if len(spec) < 2:
        raise ValueError(f"the recording has {len(spec)} frame(s): too short to follow")
    snippet_columns = np.arange(0, strip.width, stride, dtype=np.float64)
    sheet = embedder.sheet(strip, snippet_columns)
    audio = embedder.audio(spec, np.arange(len(spec)))
    cost = (1.0 - audio @ sheet.T).astype(np.float32)
    path = expected_path(cost, gamma)[1:-1]
    columns = np.interp(path[:, 1], np.arange(len(snippet_columns)), snippet_columns)
    return Following(np.arange(len(spec)) / embedder.config.rate_hz, columns)


def linear_following(strip: layout.Strip, num_frames: int, rate_hz: float) -> Following:
    """The baseline that knows nothing: the strip read at constant speed over the recording."""
    times = np.arange(num_frames) / rate_hz
    return Following(times, np.linspace(0.0, strip.width - 1.0, num_frames))
