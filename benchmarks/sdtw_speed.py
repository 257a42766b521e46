"""Speed of soft-DTW value+grad and hard DTW, side by side with OTT-JAX and tslearn.

    python benchmarks/sdtw_speed.py            # both sizes
    python benchmarks/sdtw_speed.py --quick    # first size only
    python benchmarks/sdtw_speed.py --impl xla pallas --no-tslearn \
        --sizes 16x256 256x256 64x512 4x1024 1x4096   # the GPU comparison

Soft-DTW: value and gradient w.r.t. the first sequence of a batch, with the
squared Euclidean cost, gamma = 0.1, float32 (tslearn computes in float64 on
the CPU, one pair at a time). Hard DTW: value only.
Rows "per-pair gradients" time ``vmap(value_and_grad(loss))`` instead of
``value_and_grad(sum(vmap(loss)))``; their ratio column divides by the
first back end's per-pair row.
Throughput is in million DP cells per second (B * N * M / time).
``--impl`` picks sdtw's back ends (``impl`` of :func:`sdtw.soft_dtw`), one
row each; "pallas" off a GPU runs in interpret mode, far too slow to time.
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


def ours_soft(gamma, impl="auto", per_pair=False):
    def loss(a, b):
        return sdtw.soft_dtw(sdtw.costs.squared_euclidean(a, b), gamma, impl=impl)

    return _batched_value_and_grad(loss, per_pair)


def ott_soft(gamma, per_pair=False):
    from ott.geometry.costs import SoftDTW

    return _batched_value_and_grad(SoftDTW(gamma), per_pair)


def _batched_value_and_grad(loss, per_pair):
    """Jitted value+grad of ``loss`` over a batch of pairs, the two ways users batch:
    ``value_and_grad(sum(vmap(loss)))``, or per-pair gradients ``vmap(value_and_grad(loss))``."""
    if per_pair:
        return jax.jit(jax.vmap(jax.value_and_grad(loss)))
    return jax.jit(jax.value_and_grad(lambda x, y: jnp.sum(jax.vmap(loss)(x, y))))


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


PER_PAIR = "per-pair gradients"


def ours_hard(impl="auto"):
    return jax.jit(jax.vmap(lambda a, b: sdtw.dtw(sdtw.costs.squared_euclidean(a, b), impl=impl)))


def tslearn_hard():
    from tslearn.metrics import dtw

    return lambda x, y: np.array([dtw(a, b) ** 2 for a, b in zip(x, y)])


def ours_name(impl):
    """Row name: "sdtw" for the default back end, "sdtw-xla" / "sdtw-pallas" when chosen."""
    return "sdtw" if impl == "auto" else f"sdtw-{impl}"


def bench_size(batch, length, dim, gamma, repeats, with_tslearn, impls=("auto",)):
    key_x, key_y = jax.random.split(jax.random.PRNGKey(0))
    x = jax.random.normal(key_x, (batch, length, dim))
    y = jax.random.normal(key_y, (batch, length, dim))
    x64, y64 = np.asarray(x, np.float64), np.asarray(y, np.float64)
    cells = batch * length * length / 1e6
    results = {}
    few = max(1, repeats // 3)  # tslearn is slow at the larger size
    soft = {f"{ours_name(impl)} soft": ours_soft(gamma, impl) for impl in impls}
    soft["OTT-JAX soft"] = ott_soft(gamma)
    soft[f"{ours_name(impls[0])} soft, {PER_PAIR}"] = ours_soft(gamma, impls[0], per_pair=True)
    soft[f"OTT-JAX soft, {PER_PAIR}"] = ott_soft(gamma, per_pair=True)
    hard = {f"{ours_name(impl)} hard": ours_hard(impl) for impl in impls}
    if with_tslearn:
        soft["tslearn soft"], hard["tslearn hard"] = tslearn_soft(gamma), tslearn_hard()
    for name, fn in {**soft, **hard}.items():
        args = (x64, y64) if name.startswith("tslearn") else (x, y)
        results[name] = best_time(lambda: fn(*args), repeats=few if name.startswith("tslearn") else repeats)
    for fns in (soft, hard):
        outputs = [(name, fns[name](x, y)) for name in fns if name.startswith("sdtw") and PER_PAIR not in name]
        print_agreement(outputs, f"B={batch} N=M={length}")
    rows = []
    first = ours_name(impls[0])
    for name, seconds in results.items():
        kind = f"soft, {PER_PAIR}" if PER_PAIR in name else "soft" if "soft" in name else "hard"
        reference = results[f"{first} {kind}"]
        rows.append([f"B={batch} N=M={length}", name, seconds * 1e3, cells / seconds, seconds / reference])
    return rows


def print_agreement(outputs, size: str):
    """Largest differences of each back end's outputs (summed value, gradient) from the first one's."""
    (reference_name, reference), *others = outputs
    for name, output in others:
        gaps = [float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree.leaves(output), jax.tree.leaves(reference))]
        print(f"{size}: {name} vs {reference_name}: max |difference| " + ", ".join(f"{gap:.3g}" for gap in gaps))


def parse_size(text):
    """"16x256" -> (16, 256)."""
    batch, length = text.lower().split("x")
    return int(batch), int(length)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="first size only")
    parser.add_argument("--no-tslearn", action="store_true")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument(
        "--impl", nargs="+", default=["auto"], choices=["auto", "xla", "pallas"],
        help="sdtw back ends to time, one row each; the ratio column divides by the first",
    )
    parser.add_argument(
        "--sizes", nargs="+", metavar="BxN", type=parse_size,
        help="batch x length pairs (N = M), e.g. 16x256 4x1024; default 16x256 4x1024",
    )
    parser.add_argument("--record", action="store_true", help=RECORD_HELP)
    args = parser.parse_args()
    with recorded_output(args.record):
        sizes = args.sizes or [(16, 256), (4, 1024)]
        sizes = sizes[:1] if args.quick else sizes
        print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}, float32, gamma=0.1, D=12\n")
        rows = []
        for batch, length in sizes:
            rows += bench_size(batch, length, 12, 0.1, args.repeats, not args.no_tslearn, tuple(args.impl))
        print_table(["size", "implementation", "ms", "M cells/s", f"time / {ours_name(args.impl[0])}"], rows)


if __name__ == "__main__":
    main()
