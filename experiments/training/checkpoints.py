"""Checkpoints with orbax: the latest for resuming, the best-k by validation score.

Two `CheckpointManager`s share a run's `checkpoints/` folder:

* `latest/` keeps the last `keep_latest` training states (model parameters,
  optimizer state, step), written every `save_every` steps and at the end;
  re-running a command resumes from its newest entry.
* `best/` keeps the `keep_best` states with the highest validation score.

orbax writes each checkpoint into a temporary folder and renames it when
complete, so a run killed mid-save (even by SIGKILL) leaves the previous
checkpoint intact. Every checkpoint also stores the model config; restoring
into a different config is refused (`CheckpointMismatchError`) instead of
failing deep inside orbax with a shape error, or worse, silently succeeding
when shapes happen to agree.

Integrity: a state with NaN or infinite values is never saved
(`NonFiniteStateError`), and every save stores a SHA-256 of the state's
arrays. Restoring verifies it; a checkpoint that fails to load, holds
non-finite values or does not match its checksum (flipped bytes, a truncated
file, an emptied metadata file) is moved to `checkpoints/corrupt/` and the
next older one is tried, with a warning naming what was skipped.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

# Checkpoints are written without OCDBT (see `_item_handlers`); orbax then logs a
# warning at every save that there is nothing to merge. Its errors still show.
logging.getLogger("absl").setLevel(logging.ERROR)


log = logging.getLogger(__name__)


class CheckpointMismatchError(ValueError):
    """A checkpoint was written for another model config, or trained on other data, than the run restoring it."""


class NonFiniteStateError(FloatingPointError):
    """Parameters or optimizer state hold NaN or infinite values; such a state is not saved."""


def _leaves(state: dict) -> list[tuple[str, np.ndarray]]:
    """(path, host array) of every leaf, in a fixed order; PRNG keys as their raw data."""
    leaves = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        leaves.append((jax.tree_util.keystr(path), np.asarray(leaf)))
    return leaves


def state_checksum(state: dict) -> str:
    """SHA-256 over the paths, dtypes, shapes and bytes of every array of `state`."""
    digest = hashlib.sha256()
    for path, array in _leaves(state):
        digest.update(f"{path}|{array.dtype}|{array.shape}|".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def nonfinite_paths(state: dict) -> list[str]:
    """Paths of the floating-point arrays of `state` that hold a NaN or an infinity."""
    return [path for path, array in _leaves(state)
            if np.issubdtype(array.dtype, np.inexact) and not np.isfinite(array).all()]


def _differences(saved: dict, current: dict) -> list[str]:
    keys = sorted(set(saved) | set(current))
    return [f"{k}: checkpoint {saved.get(k)!r}, now {current.get(k)!r}" for k in keys
            if saved.get(k) != current.get(k)]


def training_state(model: nnx.Module, optimizer: nnx.Optimizer) -> dict[str, Any]:
    """Pure-dict pytree of what a resumed run needs: parameters and optimizer state (incl. its step)."""
    return {
        "model": nnx.to_pure_dict(nnx.state(model)),
        "optimizer": nnx.to_pure_dict(nnx.state(optimizer)),
    }


def load_training_state(model: nnx.Module, optimizer: nnx.Optimizer, state: dict[str, Any]) -> None:
    """Write a `training_state` dict back into `model` and `optimizer` in place."""
    for obj, values in ((model, state["model"]), (optimizer, state["optimizer"])):
        current = nnx.state(obj)
        nnx.replace_by_pure_dict(current, values)
        nnx.update(obj, current)


def _item_handlers() -> dict:
    # One file per array instead of an OCDBT database. With OCDBT, a step
    # committed just before a SIGKILL failed to open in the next process
    # (tensorstore NOT_FOUND on the array metadata; cause not pinned down);
    # without it the kill -9 test (tests/experiments/test_train.py, slow) passes.
    return {"state": ocp.StandardCheckpointHandler(use_ocdbt=False), "meta": ocp.JsonCheckpointHandler()}


class Checkpoints:
    """The latest and best checkpoints of one run.

    Args:
      directory: the run's checkpoint folder.
      model_config: plain dict of the model config; stored with every save
        and compared on restore.
      data_key: identity of the data the run trains on (`datasets.data_key`); stored with every
        save, and a checkpoint of other data is refused on restore (None: not checked, as when a
        trained network is evaluated on other data).
      save_every: save the latest state every this many steps.
      keep_latest: latest states kept.
      keep_best: best states kept (by `score`, higher is better).
    """

    def __init__(self, directory: str | Path, model_config: dict, *, save_every: int,
                 keep_latest: int = 2, keep_best: int = 2, data_key: str | None = None):
        self.directory = Path(directory).absolute()
        self.model_config = model_config
        self.data_key = data_key
        self.save_every = save_every
        self.latest = ocp.CheckpointManager(
            self.directory / "latest", item_handlers=_item_handlers(),
            options=ocp.CheckpointManagerOptions(
                max_to_keep=keep_latest, enable_async_checkpointing=False, create=True,
            ),
        )
        self.best = ocp.CheckpointManager(
            self.directory / "best", item_handlers=_item_handlers(),
            options=ocp.CheckpointManagerOptions(
                max_to_keep=keep_best, best_fn=lambda metrics: metrics["score"], best_mode="max",
                enable_async_checkpointing=False, create=True,
            ),
        )

    def _args(self, state: dict, step: int, extra: dict | None = None) -> ocp.args.Composite:
        """Save arguments, after refusing a non-finite state (it would poison every resume)."""
        bad = nonfinite_paths(state)
        if bad:
            last = self.latest_path()
            raise NonFiniteStateError(
                f"parameters or optimizer state are not finite at step {step} ({', '.join(bad[:3])}"
                f"{', ...' if len(bad) > 3 else ''}); not saved, stopping. Last good checkpoint: "
                f"{last if last is not None else 'none (no checkpoint saved yet)'}."
            )
        meta = {"step": step, "model_config": self.model_config, "checksum": state_checksum(state),
                **({} if self.data_key is None else {"data_key": self.data_key}), **(extra or {})}
        return ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))

    def save_latest(self, step: int, state: dict, *, force: bool = False) -> bool:
        """Save if `step` is due (a multiple of `save_every`) or `force`; True if saved."""
        if not (force or step % self.save_every == 0) or step in self.latest.all_steps():
            return False
        return self.latest.save(step, args=self._args(state, step), force=True)

    def save_best(self, step: int, state: dict, score: float) -> None:
        """Offer the state with its validation `score`; kept if among the best k."""
        if step in self.best.all_steps():  # already offered before an interruption
            return
        self.best.save(step, args=self._args(state, step, {"score": score}),
                       metrics={"score": score}, force=True)

    def latest_path(self) -> Path | None:
        """Folder of the newest saved state, None if there is none."""
        step = self.latest.latest_step()
        return None if step is None else self.directory / "latest" / str(step)

    def restore(self, abstract_state: dict, *, kind: str = "best", step: int | None = None) -> tuple[int, dict]:
        """(step, state) of one checkpoint, verified: `step` of the `kind` ("best" or "latest")
        checkpoints, or the highest-scoring best / the newest latest one when `step` is None.

        Raises:
          FileNotFoundError: there is no such checkpoint.
          CheckpointMismatchError: it was written for another model config.
          ValueError: it fails its checksum or holds non-finite values.
        """
        manager = {"best": self.best, "latest": self.latest}[kind]
        if step is None:
            step = manager.best_step() if kind == "best" else manager.latest_step()
        if step is None or step not in manager.all_steps():
            raise FileNotFoundError(f"no {kind} checkpoint{'' if step is None else f' at step {step}'} in "
                                    f"{self.directory} (steps: {sorted(manager.all_steps()) or 'none'})")
        return step, self._restore_verified(step, jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state),
                                            manager)

    def restore_latest(self, abstract_state: dict) -> tuple[int, dict] | None:
        """(step, state) of the newest intact checkpoint, or None if there is none.

        Checkpoints that fail to load or to verify are moved to
        `checkpoints/corrupt/` (so no later save or restore meets them again)
        and named in a warning.

        Raises:
          CheckpointMismatchError: the checkpoint's model config differs from
            this run's.
        """
        target = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)
        skipped = []
        for step in sorted(self.latest.all_steps(), reverse=True):
            try:
                state = self._restore_verified(step, target)
            except CheckpointMismatchError:
                raise
            except Exception as error:  # orbax and tensorstore raise many types for damaged files
                skipped.append(f"step {step} ({type(error).__name__}: {str(error).splitlines()[0][:200]})")
                self._set_aside(step)
                continue
            if skipped:
                log.warning("resuming from step %d; skipped damaged checkpoint(s), moved to %s: %s",
                            step, self.directory / "corrupt", "; ".join(skipped))
            return step, state
        if skipped:
            log.warning("no intact checkpoint in %s, starting from step 0; skipped, moved to %s: %s",
                        self.directory / "latest", self.directory / "corrupt", "; ".join(skipped))
        return None

    def _restore_verified(self, step: int, target: dict, manager: ocp.CheckpointManager | None = None) -> dict:
        manager = self.latest if manager is None else manager
        meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
        differences = _differences(meta["model_config"], self.model_config)
        if differences:
            raise CheckpointMismatchError(
                f"The checkpoint {Path(manager.directory) / str(step)} was written for another model "
                f"config ({'; '.join(differences)}). Refusing to restore it: run with the model config it "
                f"was trained with, or choose a new output folder (or delete this one) to start afresh."
            )
        if self.data_key is not None and meta.get("data_key", self.data_key) != self.data_key:
            raise CheckpointMismatchError(
                f"The checkpoint {Path(manager.directory) / str(step)} was trained on other data "
                f"({meta['data_key']}, now {self.data_key}). Refusing to resume it: run with the data config "
                f"it was trained on, or choose a new output folder (or delete this one) to start afresh."
            )
        state = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target))).state
        if bad := nonfinite_paths(state):
            raise ValueError(f"non-finite values in {', '.join(bad[:3])}")
        if "checksum" in meta and meta["checksum"] != state_checksum(state):  # older checkpoints have none
            raise ValueError("the arrays do not match the checksum written at save time")
        return state

    def _set_aside(self, step: int) -> None:
        corrupt = self.directory / "corrupt"
        corrupt.mkdir(exist_ok=True)
        destination, n = corrupt / f"latest-{step}", 1
        while destination.exists():
            destination, n = corrupt / f"latest-{step}-{n}", n + 1
        shutil.move(str(self.directory / "latest" / str(step)), destination)
        self.latest.reload()

    def close(self) -> None:
        self.latest.close()
        self.best.close()
