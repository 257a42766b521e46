"""Data-parallel training with `jax.sharding`: batch split over a 'data' mesh axis, state replicated.

On one host the mesh spans the local devices (several GPUs, or fake CPU
devices with `XLA_FLAGS=--xla_force_host_platform_device_count=N`). The
jitted train step is written for the global batch; XLA's SPMD partitioner
runs it on every device's shard and inserts the all-reduce of the gradients,
so the parameters stay replicated and the result equals a one-device step
up to the order of floating-point sums.

Multi-host (e.g. one process per node on Slurm): call
`jax.distributed.initialize()` at the start of every process (with no
arguments on Slurm/TPU pods, where coordinator address, process count and id
are detected; elsewhere pass `coordinator_address="host:port"`,
`num_processes`, `process_id`). `jax.devices()` then lists the devices of
all hosts and `data_mesh(global_devices=True)` spans them. Each process loads
its own slice of the global batch (`batch_size // jax.process_count()`
examples, e.g. indices strided by `jax.process_index()`), and `shard_batch`
assembles the global array with `jax.make_array_from_process_local_data`.
Only process 0 should write logs and checkpoints' metadata (orbax
coordinates the array writes itself).
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec


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
