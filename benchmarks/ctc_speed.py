"""CTC value+grad speed and memory, losses.ctc_loss side by side with optax.ctc_loss.

Run: python benchmarks/ctc_speed.py [--repeats 15]

Speed: jitted value_and_grad of the summed loss w.r.t. the logits, warmed
up, median wall time of several runs (block_until_ready); the two
implementations alternate run by run so that both see the same machine
load. Memory: XLA's compiled memory analysis of the same function at
T = 4000 frames (temporary buffers plus outputs, arguments excluded), which
needs compilation only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import losses  # noqa: E402
from benchmarks._timing import print_table, RECORD_HELP, recorded_output  # noqa: E402

SPEED_SIZES = [(16, 500, 13, 40), (32, 1000, 88, 100)]  # (B, T, K, L)
MEMORY_SIZES = [(16, 4000, 13, 40), (32, 4000, 88, 100)]
IMPLEMENTATIONS = {"losses": losses.ctc_loss, "optax": optax.ctc_loss}


def make_batch(batch, frames, classes, labels, seed=0):
    """Random logits and labels; a quarter of the examples padded by 10%."""
    rng = np.random.default_rng(seed)
    logits = jnp.asarray(rng.normal(size=(batch, frames, classes)), jnp.float32)
    label_array = jnp.asarray(rng.integers(1, classes, size=(batch, labels)), jnp.int32)
    logit_paddings = np.zeros((batch, frames), np.float32)
    logit_paddings[: batch // 4, int(0.9 * frames) :] = 1.0
    label_paddings = np.zeros((batch, labels), np.float32)
    label_paddings[: batch // 4, int(0.9 * labels) :] = 1.0
    return logits, jnp.asarray(logit_paddings), label_array, jnp.asarray(label_paddings)


def value_and_grad_fn(loss_fn):
    def total(logits, logit_paddings, labels, label_paddings):
        return jnp.sum(loss_fn(logits, logit_paddings, labels, label_paddings))

    return jax.jit(jax.value_and_grad(total))


def median_times(functions, args, repeats):
    """Median seconds per call of each function, runs interleaved."""
    for fn in functions.values():
        jax.block_until_ready(fn(*args))  # compile and warm up
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, fn in functions.items():
            start = time.perf_counter()
            jax.block_until_ready(fn(*args))
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}


def compiled_bytes(fn, args):
    analysis = fn.lower(*args).compile().memory_analysis()
    return analysis.temp_size_in_bytes + analysis.output_size_in_bytes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--record", action="store_true", help=RECORD_HELP)
    options = parser.parse_args()
    with recorded_output(options.record):
        functions = {name: value_and_grad_fn(fn) for name, fn in IMPLEMENTATIONS.items()}

        print(f"jax {jax.__version__}, optax {optax.__version__}, device {jax.devices()[0]}")
        print(f"\nvalue+grad, median of {options.repeats} runs (ms)\n")
        rows = []
        for batch, frames, classes, labels in SPEED_SIZES:
            args = make_batch(batch, frames, classes, labels)
            ours, reference = IMPLEMENTATIONS
            np.testing.assert_allclose(
                functions[ours](*args)[0], functions[reference](*args)[0], rtol=1e-4
            )
            median = median_times(functions, args, options.repeats)
            rows.append(
                [f"B={batch} T={frames} K={classes} L={labels}", 1e3 * median[ours],
                 1e3 * median[reference], f"{median[reference] / median[ours]:.2f}x"]
            )
        print_table(["size", "losses.ctc_loss", "optax.ctc_loss", "speed-up"], rows)

        print("\nvalue+grad memory: compiled temporaries + outputs (MiB)\n")
        rows = []
        for batch, frames, classes, labels in MEMORY_SIZES:
            args = make_batch(batch, frames, classes, labels)
            mib = {name: compiled_bytes(fn, args) / 2**20 for name, fn in functions.items()}
            ours, reference = IMPLEMENTATIONS
            rows.append(
                [f"B={batch} T={frames} K={classes} L={labels}", mib[ours], mib[reference],
                 f"{mib[ours] / mib[reference]:.2f}"]
            )
        print_table(["size", "losses.ctc_loss", "optax.ctc_loss", "ratio"], rows)


if __name__ == "__main__":
    main()
