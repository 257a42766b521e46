"""Flax NNX models: deep chroma, deep salience / CTC chroma CNN, shingle embedder.

Every model takes `rngs: nnx.Rngs` for its parameters and, when called, an
optional `dropout_key` (dropout is on only when a key is given).
"""

from models._context import context_windows
from models._deep_chroma import DeepChroma
from models._factory import MODELS
from models._factory import count_params
from models._factory import create_model
from models._salience import SalienceCNN
from models._shingle import ShingleEmbedder
from models._shingle import l2_normalize

__all__ = [
    "DeepChroma",
    "MODELS",
    "SalienceCNN",
    "ShingleEmbedder",
    "context_windows",
    "count_params",
    "create_model",
    "l2_normalize",
]
