"""`count_params(model)`: the size of a model."""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx


def count_params(model: nnx.Module) -> int:
    """Number of trainable parameters (`nnx.Param` entries) of `model`."""
    leaves = jax.tree.leaves(nnx.state(model, nnx.Param))
    return int(sum(np.prod(x.shape) for x in leaves))
