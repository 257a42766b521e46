"""The training loop: `loss_fn`, the jitted `train_step`, validation, checkpoints, NaN guard.

Everything here takes built objects (model, optimizer, datasets, ...); the
Hydra app `experiments.train` builds them from a config.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh
from tqdm.auto import tqdm

from experiments.training import parallel
from experiments.training import scores
from experiments.training.checkpoints import Checkpoints
from experiments.training.checkpoints import load_training_state
from experiments.training.checkpoints import training_state
from experiments.training.datasets import ArrayDataset
from experiments.training.datasets import make_sampler

Objective = Callable[[jax.Array, dict], jax.Array]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


def make_loss_fn(objective: Objective):
    """`loss_fn(model, batch, dropout_key=None) -> (mean loss, model outputs)`.

    `batch["inputs"]` goes to the model; `objective(outputs, batch)` gives the
    `(B,)` per-example losses, averaged over the global batch.
    """

    def loss_fn(model: nnx.Module, batch: dict, dropout_key: jax.Array | None = None):
        outputs = model(batch["inputs"], dropout_key=dropout_key)
        return jnp.mean(objective(outputs, batch)), outputs

    return loss_fn


def make_train_step(loss_fn):
    """The jitted update `train_step(model, optimizer, metrics, batch, dropout_key) -> loss`.

    Updates `model`, `optimizer` and the running `metrics` in place. Under a
    mesh (batch sharded over 'data', state replicated) XLA partitions it and
    all-reduces the gradients.
    """

    @nnx.jit
    def train_step(model, optimizer, metrics, batch, dropout_key):
        grad_fn = nnx.value_and_grad(loss_fn, has_aux=True)
        (loss, _), grads = grad_fn(model, batch, dropout_key)
        optimizer.update(model, grads)
        metrics.update(loss=loss)
        return loss

    return train_step


def make_eval_step(loss_fn, task: str):
    """Jitted `eval_step(model, batch) -> (loss, score counts)` without dropout."""

    @nnx.jit
    def eval_step(model, batch):
        loss, outputs = loss_fn(model, batch)
        return loss, scores.task_counts(task, outputs, batch)

    return eval_step


def validate(eval_step, model, dataset: ArrayDataset, batch_size: int, mesh: Mesh, task: str) -> dict[str, float]:
    """Mean loss and the task score over the full batches of `dataset`."""
    losses, counts = [], None
    for batch in dataset.batches(batch_size):
        loss, batch_counts = eval_step(model, parallel.shard_batch(parallel.local_part(batch, mesh), mesh))
        losses.append(float(loss))
        counts = batch_counts if counts is None else counts + batch_counts
    if counts is None:
        raise ValueError(f"the validation set ({len(dataset)} examples) is smaller than one batch ({batch_size}).")
    name, value = scores.task_score(task, counts)
    return {"val/loss": float(np.mean(losses)), f"val/{name}": value, "val/score": value}


@dataclasses.dataclass
class LoopConfig:
    """Knobs of `fit` (the `trainer` config group).

    Attributes:
      steps: total optimizer steps of the run (a resumed run counts from 0 too).
      batch_size: global batch size B (divisible by the number of devices).
      log_every, val_every: logging and validation intervals in steps.
      seed: seed of the batch order and of the dropout keys.
      examples_per_label: draw batches of B / K labels with K examples each (triplet losses); None:
        shuffled epochs.
      progress: show a tqdm bar.
      description: the bar's label, e.g. "train ctc_chroma".
    """

    steps: int
    batch_size: int
    log_every: int = 10
    val_every: int = 50
    seed: int = 0
    examples_per_label: int | None = None
    progress: bool = True
    description: str = "train"


@dataclasses.dataclass
class FitResult:
    metrics: dict[str, float]
    start_step: int
    seconds: float


def place_state(*objects: nnx.Object, mesh: Mesh) -> None:
    """Replicate the state of ``objects`` (model, optimizer, metrics) over the mesh.

    Every input of the train step then has a sharding: one left unplaced (as fresh metrics are)
    is placed by the first step's output, and the step compiles a second time.
    """
    for obj in objects:
        nnx.update(obj, parallel.replicate(nnx.state(obj), mesh))


def _check_finite(loss: float, step: int, checkpoints: Checkpoints) -> None:
    if not math.isfinite(loss):
        last = checkpoints.latest_path()
        raise NonFiniteLossError(
            f"training loss is {loss} at step {step}; stopping. Last good checkpoint: "
            f"{last if last is not None else 'none (no checkpoint saved yet)'}."
        )


def fit(model: nnx.Module, optimizer: nnx.Optimizer, loss_fn, *, task: str, train_set: ArrayDataset,
        val_set: ArrayDataset, checkpoints: Checkpoints, loggers: Sequence, mesh: Mesh,
        config: LoopConfig) -> FitResult:
    """Train to `config.steps`, resuming from the latest checkpoint if there is one.

    Returns the final validation metrics, the step the run started from (0
    for a fresh run) and its wall time. Raises `NonFiniteLossError` at the
    first non-finite loss.
    """
    started = time.perf_counter()
    place_state(model, optimizer, mesh=mesh)  # first: every process restores into the replicated layout
    restored = checkpoints.restore_latest(training_state(model, optimizer))
    start = 0
    if restored is not None:
        start, state = restored
        load_training_state(model, optimizer, state)
    sampler = make_sampler(train_set, config.batch_size, config.seed, config.examples_per_label)
    train_step = make_train_step(loss_fn)
    eval_step = make_eval_step(loss_fn, task)
    metrics = nnx.MultiMetric(loss=nnx.metrics.Average("loss"))
    place_state(metrics, mesh=mesh)
    base_key = jax.random.key(config.seed)

    def log(values: dict, step: int) -> None:
        for logger in loggers:
            logger.log(values, step)

    for logger in loggers:
        logger.resume(start)

    val_metrics: dict[str, float] = {}
    bar = tqdm(total=config.steps, initial=start, disable=not (config.progress and parallel.is_main_process()),
               desc=config.description, unit="step")
    rows = parallel.local_rows(config.batch_size, mesh)  # every process draws the global batch, keeps its rows
    interval_start, interval_examples = time.perf_counter(), 0
    for step in range(start, config.steps):
        batch = parallel.shard_batch(train_set.take(sampler.indices(step)[rows]), mesh)
        # The dropout key of a step depends only on (seed, step): resuming redraws the same masks.
        loss = float(train_step(model, optimizer, metrics, batch, jax.random.fold_in(base_key, step)))
        done = step + 1
        _check_finite(loss, done, checkpoints)
        interval_examples += config.batch_size
        bar.update(1)
        if done % config.log_every == 0 or done == config.steps:
            throughput = interval_examples / max(time.perf_counter() - interval_start, 1e-9)
            values = {"train/loss": float(metrics.compute()["loss"]), "train/examples_per_s": throughput}
            metrics.reset()
            log(values, done)
            bar.set_postfix(loss=f"{values['train/loss']:.4f}", ex_s=f"{throughput:.0f}")
            interval_start, interval_examples = time.perf_counter(), 0
        if done % config.val_every == 0 or done == config.steps:
            val_metrics = validate(eval_step, model, val_set, config.batch_size, mesh, task)
            log(val_metrics, done)
            checkpoints.save_best(done, training_state(model, optimizer), val_metrics["val/score"])
        checkpoints.save_latest(done, training_state(model, optimizer), force=done == config.steps)
    bar.close()
    if not val_metrics:  # nothing left to train (the run had finished): score the restored model
        val_metrics = validate(eval_step, model, val_set, config.batch_size, mesh, task)
    return FitResult(val_metrics, start, time.perf_counter() - started)
