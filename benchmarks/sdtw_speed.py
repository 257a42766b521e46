"""Speed of soft-DTW value+grad and hard DTW, side by side with OTT-JAX and tslearn.

    python benchmarks/sdtw_speed.py            # both sizes
    python benchmarks/sdtw_speed.py --quick    # first size only

Soft-DTW: value and gradient w.r.t. the first sequence of a batch, with the
squared Euclidean cost, gamma = 0.1, float32 (tslearn computes in float64 on
the CPU, one pair at a time). Hard DTW: value only.
Throughput is in million DP cells per second (B * N * M / time).
"""

from __future__ import annotations

import argparse
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _timing import best_time, print_table, RECORD_HELP, recorded_output  # noqa: E402

import sdtw  # noqa: E402


def ours_soft(gamma):
    def loss(x, y):
        per_pair = jax.vmap(lambda a, b: sdtw.soft_dtw(sdtw.costs.squared_euclidean(a, b), gamma))
        return jnp.sum(per_pair(x, y))

    return jax.jit(jax.value_and_grad(loss))


def ott_soft(gamma):
    from ott.geometry.costs import SoftDTW

    cost = SoftDTW(gamma)
    return jax.jit(jax.value_and_grad(lambda x, y: jnp.sum(jax.vmap(cost)(x, y))))


def tslearn_soft(gamma):
    from tslearn.metrics import soft_dtw_alignment

    def value_and_grad(x, y):
        total, grads = 0.0, []
        for a, b in zip(x, y):
            E, value = soft_dtw_alignment(a, b, gamma=gamma)
            total += value
            # d/da of sum_ij E_ij ||a_i - b_j||^2
            grads.append(2.0 * (E.sum(1)[:, None] * a - E @ b))
        return total, np.stack(grads)

    return value_and_grad


def ours_hard():
    return jax.jit(jax.vmap(lambda a, b: sdtw.dtw(sdtw.costs.squared_euclidean(a, b))))


def tslearn_hard():
    from tslearn.metrics import dtw

    return lambda x, y: np.array([dtw(a, b) ** 2 for a, b in zip(x, y)])


def bench_size(batch, length, dim, gamma, repeats, with_tslearn):
    key_x, key_y = jax.random.split(jax.random.PRNGKey(0))
    x = jax.random.normal(key_x, (batch, length, dim))
    y = jax.random.normal(key_y, (batch, length, dim))
    x64, y64 = np.asarray(x, np.float64), np.asarray(y, np.float64)
    cells = batch * length * length / 1e6
    results = {}
    few = max(1, repeats // 3)  # tslearn is slow at the larger size
    soft = {"sdtw soft": ours_soft(gamma), "OTT-JAX soft": ott_soft(gamma)}
    hard = {"sdtw hard": ours_hard()}
    if with_tslearn:
        soft["tslearn soft"], hard["tslearn hard"] = tslearn_soft(gamma), tslearn_hard()
    for name, fn in {**soft, **hard}.items():
        args = (x64, y64) if name.startswith("tslearn") else (x, y)
        results[name] = best_time(lambda: fn(*args), repeats=few if name.startswith("tslearn") else repeats)
    rows = []
    for name, seconds in results.items():
        reference = results["sdtw soft" if "soft" in name else "sdtw hard"]
        rows.append([f"B={batch} N=M={length}", name, seconds * 1e3, cells / seconds, seconds / reference])
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="first size only")
    parser.add_argument("--no-tslearn", action="store_true")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--record", action="store_true", help=RECORD_HELP)
    args = parser.parse_args()
    with recorded_output(args.record):
        sizes = [(16, 256)] if args.quick else [(16, 256), (4, 1024)]
        print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}, float32, gamma=0.1, D=12\n")
        rows = []
        for batch, length in sizes:
            rows += bench_size(batch, length, 12, 0.1, args.repeats, not args.no_tslearn)
        print_table(["size", "implementation", "ms", "M cells/s", "time / sdtw"], rows)


if __name__ == "__main__":
    main()
