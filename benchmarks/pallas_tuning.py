"""Warps per program of the fused Pallas soft-DTW kernels (GPU only): value and value+grad times.

    python benchmarks/pallas_tuning.py --sizes 16x256 256x256 64x512 4x1024 1x4096

One program aligns one pair and holds its anti-diagonal (W = the power of two
>= N lanes) in registers; ``num_warps`` spreads those lanes over 32 * num_warps
threads: fewer threads give each more lanes and leave room for more programs
per multiprocessor. The default is W / 32 warps (at most 32): one lane per thread. Each row
times ``value_and_grad(sum(vmap(soft_dtw)))`` and the value alone, squared
Euclidean cost (D = 12), gamma = 0.1, float32.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp

from _timing import best_time, print_table
from sdtw_speed import parse_size

import sdtw
from sdtw import _pallas


DEFAULT_PARAMS = _pallas._compiler_params


def with_warps(num_warps: int | None) -> None:
    """Point the kernels' compiler parameters at ``num_warps`` (None: the default rule)."""

    def params(width, interpret):
        if num_warps is None or interpret:
            return DEFAULT_PARAMS(width, interpret)
        return _pallas.plt.CompilerParams(num_warps=num_warps, num_stages=1)

    _pallas._compiler_params = params
    jax.clear_caches()  # sdtw's inner jit would otherwise keep the kernels traced with the last setting


def loss(a, b):
    return sdtw.soft_dtw(sdtw.costs.squared_euclidean(a, b), 0.1, impl="pallas")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", type=parse_size, default=[(16, 256), (1, 4096)], metavar="BxN")
    parser.add_argument("--warps", nargs="+", type=int, default=[1, 2, 4, 8])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}\n")
    rows = []
    for batch, length in args.sizes:
        kx, ky = jax.random.split(jax.random.PRNGKey(0))
        x, y = jax.random.normal(kx, (batch, length, 12)), jax.random.normal(ky, (batch, length, 12))
        for warps in [None, *args.warps]:
            with_warps(warps)
            value = jax.jit(lambda a, b: jnp.sum(jax.vmap(loss)(a, b)))
            value_and_grad = jax.jit(jax.value_and_grad(lambda a, b: jnp.sum(jax.vmap(loss)(a, b))))
            try:
                rows.append([f"B={batch} N=M={length}", "default" if warps is None else warps,
                             1e3 * best_time(lambda: value(x, y), repeats=args.repeats),
                             1e3 * best_time(lambda: value_and_grad(x, y), repeats=args.repeats)])
            except Exception as error:  # a setting Triton rejects is reported, not fatal
                rows.append([f"B={batch} N=M={length}", warps, f"failed: {type(error).__name__}", ""])
    with_warps(None)
    print_table(["size", "num_warps", "value (ms)", "value+grad (ms)"], rows)


if __name__ == "__main__":
    main()
