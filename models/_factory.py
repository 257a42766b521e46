"""`create_model(cfg, seed)`: a model from a plain mapping, e.g. a Hydra `model` config."""

from __future__ import annotations

from typing import Any, Mapping

import jax
import numpy as np
from flax import nnx

from models._deep_chroma import DeepChroma
from models._salience import SalienceCNN
from models._shingle import ShingleEmbedder

MODELS = {
    "deep_chroma": DeepChroma,
    "salience_cnn": SalienceCNN,
    "shingle_embedder": ShingleEmbedder,
}


def _as_python(value: Any) -> Any:
    """Lists (e.g. OmegaConf ListConfig) -> tuples, recursively; other values unchanged."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ListConfig":
        return tuple(_as_python(v) for v in value)
    return value


def create_model(cfg: Mapping[str, Any], seed: int) -> nnx.Module:
    """Build the model that `cfg` names, with parameters initialised from `seed`.

    Args:
      cfg: mapping with `name` (one of `deep_chroma`, `salience_cnn`,
        `shingle_embedder`) and the keyword arguments of that class.
      seed: integer seed of the parameter initialisation.

    Returns:
      The model; `nnx.eval_shape(lambda: create_model(cfg, seed))` gives its
      abstract structure, e.g. to restore a checkpoint into.
    """
    options = {str(k): _as_python(v) for k, v in dict(cfg).items()}
    name = options.pop("name", None)
    if name not in MODELS:
        raise ValueError(f"unknown model name {name!r}; expected one of {sorted(MODELS)}.")
    return MODELS[name](**options, rngs=nnx.Rngs(params=seed))


def count_params(model: nnx.Module) -> int:
    """Number of trainable parameters (`nnx.Param` entries) of `model`."""
    leaves = jax.tree.leaves(nnx.state(model, nnx.Param))
    return int(sum(np.prod(x.shape) for x in leaves))
