"""In-memory example sets and a resumable batch order.

The order of examples is a pure function of (seed, step): epoch e visits the
examples in `permutation(seed, e)`, and step s takes positions
`s * B .. s * B + B - 1` of the concatenated epochs. A resumed run therefore
only needs the step number to draw exactly the batches an uninterrupted run
would have drawn.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, Mapping

import numpy as np

from experiments.config import from_config
from experiments.training import synthetic


def data_key(data_cfg) -> str:
    """``<name>-<hash>`` of a resolved data config (its cache folder aside): names the run folders of
    the report's networks, and is stored in every checkpoint so that one trained on other data is refused."""
    from omegaconf import DictConfig, OmegaConf

    values = OmegaConf.to_container(data_cfg, resolve=True) if isinstance(data_cfg, DictConfig) else dict(data_cfg)
    values.pop("cache_dir", None)
    digest = hashlib.sha1(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return f"{values.get('name', 'data')}-{digest}"


@dataclasses.dataclass
class ArrayDataset:
    """Examples stored as arrays with a common leading axis N."""

    arrays: dict[str, np.ndarray]

    def __post_init__(self):
        sizes = {key: len(value) for key, value in self.arrays.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"all arrays need the same number of examples, got {sizes}.")

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))

    def take(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        return {key: value[indices] for key, value in self.arrays.items()}

    def batches(self, batch_size: int):
        """Consecutive full batches in stored order (validation); the remainder is dropped."""
        for start in range(0, len(self) - batch_size + 1, batch_size):
            yield self.take(np.arange(start, start + batch_size))


class EpochSampler:
    """Indices of the batch of any step, shuffled anew each epoch, reproducible from `seed`."""

    def __init__(self, num_examples: int, batch_size: int, seed: int):
        if num_examples < 1 or batch_size < 1:
            raise ValueError(f"need examples and a positive batch size, got {num_examples}, {batch_size}.")
        self.num_examples = num_examples
        self.batch_size = batch_size
        self.seed = seed
        self._permutations: dict[int, np.ndarray] = {}

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch not in self._permutations:
            self._permutations = {epoch: np.random.default_rng([self.seed, epoch]).permutation(self.num_examples)}
        return self._permutations[epoch]

    def indices(self, step: int) -> np.ndarray:
        """`(B,)` example indices of step `step` (0-based)."""
        positions = step * self.batch_size + np.arange(self.batch_size)
        epochs, offsets = np.divmod(positions, self.num_examples)
        return np.asarray([self._permutation(int(e))[o] for e, o in zip(epochs, offsets)])


class LabelSampler:
    """Batches of ``B / K`` labels with ``K`` examples each (P-K sampling, Hermans et al. 2017).

    A triplet needs a positive in its batch: with many labels (passages of pieces) a shuffled
    batch holds almost none. The batch of a step depends only on (seed, step), so a resumed run
    draws the batches an uninterrupted run would have. Labels with a single example are never drawn.
    """

    def __init__(self, labels: np.ndarray, batch_size: int, per_label: int, seed: int):
        if per_label < 2 or batch_size % per_label:
            raise ValueError(f"examples_per_label must be >= 2 and divide the batch size {batch_size}, "
                             f"got {per_label}.")
        _, inverse = np.unique(np.asarray(labels), return_inverse=True)
        counts = np.bincount(inverse)
        self._members = np.split(np.argsort(inverse, kind="stable"), np.cumsum(counts)[:-1])
        self._labels = np.flatnonzero(counts >= 2)
        if len(self._labels) < batch_size // per_label:
            raise ValueError(f"a batch of {batch_size} needs {batch_size // per_label} labels with 2 or more "
                             f"examples; the training set has {len(self._labels)}.")
        self.batch_size, self.per_label, self.seed = batch_size, per_label, seed

    def indices(self, step: int) -> np.ndarray:
        """`(B,)` example indices of step `step`, label by label."""
        rng = np.random.default_rng([self.seed, step])
        chosen = rng.choice(self._labels, self.batch_size // self.per_label, replace=False)
        return np.concatenate([rng.choice(self._members[label], self.per_label,
                                          replace=len(self._members[label]) < self.per_label) for label in chosen])


def make_sampler(train_set: ArrayDataset, batch_size: int, seed: int, examples_per_label: int | None = None):
    """:class:`LabelSampler` of the set's ``labels`` given ``examples_per_label`` (at most ``B / 2``, so
    that a batch holds two labels: negatives), else :class:`EpochSampler`."""
    if examples_per_label is None:
        return EpochSampler(len(train_set), batch_size, seed)
    return LabelSampler(train_set.arrays["labels"], batch_size, min(examples_per_label, batch_size // 2), seed)


def synthetic_datasets(data_cfg: Mapping[str, Any], *, inputs: str, model_cfg: Mapping[str, Any],
                       seed: int) -> tuple[ArrayDataset, ArrayDataset]:
    """Train and validation sets of `experiments.training.synthetic` examples.

    Sizes (bins, harmonics, shingle frames) follow `model_cfg`, so a model
    config and the data always fit together.
    """
    data = from_config(synthetic.SyntheticConfig, data_cfg)
    if inputs == "shingles":
        options = dict(num_classes=data.num_classes, shingle_frames=int(model_cfg.get("shingle_frames", 20)))
        make = lambda n, s: synthetic.shingle_examples(n, seed=s, **options)  # noqa: E731
    else:
        options = dict(num_frames=data.num_frames, inputs=inputs,
                       num_bins=int(model_cfg["num_bins"]), num_harmonics=int(model_cfg.get("num_harmonics", 6)))
        make = lambda n, s: synthetic.chroma_examples(n, seed=s, **options)  # noqa: E731
    # Distinct seeds for the two sets; the data seed is independent of the init/order seed.
    return (ArrayDataset(make(data.num_train, [data.seed, 0])),
            ArrayDataset(make(data.num_val, [data.seed, 1])))
