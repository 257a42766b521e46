"""Trained shingle embedders for the shingle table (Zalkow & Müller 2020).

Each embedder is :class:`models.ShingleEmbedder` trained with the triplet loss by
``python -m experiments.train experiment=shingle_embedder_<dims>`` on the train pieces
of a corpus (positives: the same passage of the score in another version; negatives: other pieces). :func:`trained_embeddings` trains
(or resumes) the three of the paper, 6, 12 and 30 dimensions, in the run folders of
:func:`experiments.retrieval.dnn_chroma.train_run`, and wraps the best validated
checkpoint of each as an :data:`~experiments.retrieval.shingles.Embedding` for
:func:`~experiments.retrieval.shingles.version_identification`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import jax
import numpy as np

from experiments.retrieval.dnn_chroma import restore_run, train_run
from experiments.retrieval.shingles import Embedding

__all__ = ["EMBEDDERS", "load_embedding", "trained_embeddings"]

EMBEDDERS = {6: "shingle_embedder_6", 12: "shingle_embedder_12", 30: "shingle_embedder_30"}  # dims -> experiment


def load_embedding(run: str | Path, batch_size: int = 4096) -> Embedding:
    """The shingle embedder of a run folder (best checkpoint) as ``(S, length * 12) -> (S, d)``.

    Shingles go through the network ``batch_size`` at a time, each batch padded to a power of
    two (a few compiled shapes serve every call).

    Raises:
      NoTrainedNetworkError: the folder holds no finished run, or a run of another kind of network
        (:func:`experiments.retrieval.dnn_chroma.restore_run`).
    """
    model, _ = restore_run(run, "shingles", "shingle embedder",
                           f"python -m experiments.train experiment={EMBEDDERS[12]} data=small")
    apply = jax.jit(lambda x: model(x))

    def embed(shingles: np.ndarray) -> np.ndarray:
        shingles = np.asarray(shingles, np.float32)
        out = []
        for start in range(0, len(shingles), batch_size):
            block = shingles[start:start + batch_size]
            padded = np.pad(block, [(0, (1 << (len(block) - 1).bit_length()) - len(block)), (0, 0)])
            out.append(np.asarray(apply(padded))[:len(block)])
        return np.concatenate(out) if out else np.zeros((0, model.embedding_dim), np.float32)

    return embed


def trained_embeddings(data: str, steps: int, run_root: Path, *, rate_hz: float = 1.0,
                       dims=tuple(EMBEDDERS), overrides=()) -> Mapping[int, Embedding]:
    """Train (or resume) the embedders of ``dims`` for ``steps`` steps on the train pieces of corpus
    ``data``, on shingles of CENS at ``rate_hz``; dims -> embedding of the best validated checkpoint."""
    options = (f"shingle_rate_hz={rate_hz:g}", *overrides)
    return {dim: load_embedding(train_run(EMBEDDERS[dim], data, steps, run_root, options)) for dim in dims}
