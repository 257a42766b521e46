"""Data-parallel training with `jax.sharding`: batch split over a 'data' mesh axis, state replicated.

On one host the mesh spans the local devices (several GPUs, or fake CPU
devices with `XLA_FLAGS=--xla_force_host_platform_device_count=N`). The
jitted train step is written for the global batch; XLA's SPMD partitioner
runs it on every device's shard and inserts the all-reduce of the gradients,
so the parameters stay replicated and the result equals a one-device step
up to the order of floating-point sums.

Several processes (one per node or per GPU, e.g. on Slurm): the
`distributed` config group makes `initialize_distributed` call
`jax.distributed.initialize` before anything touches a device; `jax.devices()`
then lists the devices of every process and `data_mesh(global_devices=True)`
spans them. Every process draws the same global batch indices (the order is
a pure function of seed and step), takes only the rows its devices hold
(`local_rows`), and `shard_batch` assembles the global array with
`jax.make_array_from_process_local_data`. Only process 0 writes logs and
metrics; orbax checkpoints are saved and restored by all processes together.
"""

from __future__ import annotations

import contextlib
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec


class DistributedConfigError(ValueError):
    """The `distributed` options do not describe a run of several processes."""


def initialize_distributed(coordinator_address: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None, *, auto: bool = False,
                           cpu_collectives: str = "gloo", timeout_s: int = 300) -> bool:
    """Join a run of several processes, if the options ask for one; True if this run has several.

    Call before any JAX computation. `auto`: the cluster says who is who (Slurm, Open MPI, TPU
    pods; see `jax.distributed.initialize`). Otherwise `num_processes` > 1 needs the other two.
    On CPUs the processes talk through `cpu_collectives` (gloo).
    """
    if not auto and num_processes in (None, 1):
        return False
    if jax.distributed.is_initialized():
        return jax.process_count() > 1
    explicit = {"coordinator_address": coordinator_address, "num_processes": num_processes,
                "process_id": process_id}
    if not auto:
        if missing := [f"distributed.{key}" for key, value in explicit.items() if value is None]:
            raise DistributedConfigError(f"distributed.num_processes={num_processes} also needs {', '.join(missing)}"
                                         " (or distributed=auto on a cluster)")
        if not 0 <= process_id < num_processes:
            raise DistributedConfigError(f"distributed.process_id={process_id}: must lie in [0, {num_processes})")
    jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
    jax.distributed.initialize(**({} if auto else explicit), initialization_timeout=timeout_s)
    return jax.process_count() > 1


def is_main_process() -> bool:
    """True in process 0 (the one that writes logs, metrics and the run lock)."""
    return jax.process_index() == 0


def main_process_only(context: contextlib.AbstractContextManager) -> contextlib.AbstractContextManager:
    """`context` in process 0, a no-op elsewhere."""
    return context if is_main_process() else contextlib.nullcontext()


def data_mesh(num_devices: int | None = None, *, global_devices: bool = False) -> Mesh:
    """A 1-D mesh with axis 'data' over the first `num_devices` devices (all if None)."""
    devices = jax.devices() if global_devices else jax.local_devices()
    if num_devices is not None:
        if not 1 <= num_devices <= len(devices):
            raise ValueError(f"`num_devices` must lie in [1, {len(devices)}], got {num_devices}.")
        devices = devices[:num_devices]
    return Mesh(np.asarray(devices), ("data",))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec("data"))


def local_rows(global_size: int, mesh: Mesh) -> slice:
    """The rows of a global batch of `global_size` held by this process's devices (one block).

    Raises if they are not contiguous (a mesh whose devices interleave processes).
    """
    indices = batch_sharded(mesh).addressable_devices_indices_map((global_size,)).values()
    bounds = sorted(index[0].indices(global_size)[:2] for index in indices)
    if any(stop != next_start for (_, stop), (next_start, _) in zip(bounds, bounds[1:])):
        raise ValueError(f"this process's devices hold rows {bounds} of the batch, not one block")
    return slice(bounds[0][0], bounds[-1][1])


def local_part(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, np.ndarray]:
    """This process's rows of a global host batch (all of it with one process)."""
    rows = local_rows(len(next(iter(batch.values()))), mesh)
    return {key: value[rows] for key, value in batch.items()}


def shard_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Place host arrays `(B, ...)` with their batch axis split over 'data'.

    B must be divisible by the number of devices in the mesh; on several
    hosts each passes its local slice and gets the global array.
    """
    size = mesh.shape["data"]
    sharding = batch_sharded(mesh)
    out = {}
    for key, value in batch.items():
        local = np.asarray(value)
        if (local.shape[0] * jax.process_count()) % size:
            raise ValueError(f"batch axis of {key!r} ({local.shape[0]}) is not divisible by {size} devices.")
        out[key] = jax.make_array_from_process_local_data(sharding, local)
    return out


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Copy every array of `tree` to all devices of `mesh`."""
    return jax.device_put(tree, replicated(mesh))
