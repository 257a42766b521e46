"""Flax NNX models: deep chroma, deep salience / CTC chroma CNN, shingle embedder, sheet-audio embedder.

Every model takes `rngs: nnx.Rngs` for its parameters and, when called, an
optional `dropout_key` (dropout is on only when a key is given). In a Hydra config a
model is a `_target_` node, e.g. `_target_: models.SalienceCNN` (see `conf/model/`).
"""

from models._context import context_windows
from models._deep_chroma import DeepChroma
from models._params import count_params
from models._salience import SalienceCNN
from models._sheet_audio import SheetAudioEmbedder
from models._shingle import ShingleEmbedder
from models._shingle import l2_normalize

__all__ = [
    "DeepChroma",
    "SalienceCNN",
    "SheetAudioEmbedder",
    "ShingleEmbedder",
    "context_windows",
    "count_params",
    "l2_normalize",
]
