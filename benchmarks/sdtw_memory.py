"""Peak memory of soft-DTW value+grad, side by side with OTT-JAX.

    python benchmarks/sdtw_memory.py              # N = M = 4096, and 8192 (ours only)
    python benchmarks/sdtw_memory.py --sizes 1024 2048

Two measures, float32, one pair, gradient w.r.t. the (N, M) cost matrix ("from cost"), and
w.r.t. the first of two (N, 12) sequences whose squared Euclidean cost matrix is computed inside
the compiled function ("from features", the way a model uses the loss):
- XLA's buffer assignment of the compiled value+grad (temporaries + output),
  exact and deterministic, in units of N*M floats "above the inputs";
- the peak resident memory of a fresh process that runs it once (includes the
  JAX runtime, so it is larger), measured in a subprocess per implementation.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _timing import RECORD_HELP, print_table, recorded_output  # noqa: E402


FEATURES = 12


def build(implementation: str, n: int, source: str = "cost"):
    """Jitted value+grad and its arguments: of a cost matrix (``source="cost"``) or of two
    (n, 12) sequences, the gradient w.r.t. the first (``"features"``)."""
    import jax
    import jax.numpy as jnp
    from ott.geometry.costs import SoftDTW

    import sdtw

    key_x, key_y = jax.random.split(jax.random.PRNGKey(0))
    if source == "features":
        args = (jax.random.normal(key_x, (n, FEATURES), jnp.float32),
                jax.random.normal(key_y, (n, FEATURES), jnp.float32))
        if implementation == "sdtw":
            loss = lambda x, y: sdtw.soft_dtw(sdtw.costs.squared_euclidean(x, y), 0.1)  # noqa: E731
        else:
            loss = SoftDTW(0.1)  # squared Euclidean ground cost by default
    else:
        args = (jax.random.uniform(key_x, (n, n), jnp.float32),)
        if implementation == "sdtw":
            loss = lambda C: sdtw.soft_dtw(C, 0.1)  # noqa: E731
        else:
            # OTT-JAX takes sequences: its recursion runs on C through a ground cost that looks C up.
            loss = lambda C: _ott_soft_dtw_on_cost(SoftDTW(0.1), C)  # noqa: E731
    return jax.jit(jax.value_and_grad(loss)), args


def _ott_soft_dtw_on_cost(cost_fn, C):
    """OTT-JAX's soft-DTW with its ground cost replaced by a lookup of C."""
    import jax.numpy as jnp
    from ott.geometry import costs

    class Lookup(costs.CostFn):
        def all_pairs(self, x, y):
            return C

        def __call__(self, x, y):  # pragma: no cover - unused
            raise NotImplementedError

    cost = costs.SoftDTW(cost_fn.gamma, ground_cost=Lookup())
    n, m = C.shape
    return cost(jnp.zeros((n, 1)), jnp.zeros((m, 1)))


def compiled_footprint(implementation: str, n: int, source: str = "cost") -> dict:
    fn, args = build(implementation, n, source)
    analysis = fn.lower(*args).compile().memory_analysis()
    floats = n * n * 4
    return {
        "temp_nm": analysis.temp_size_in_bytes / floats,
        "output_nm": analysis.output_size_in_bytes / floats,
    }


def run_once(implementation: str, n: int, source: str = "cost") -> dict:
    import jax

    fn, args = build(implementation, n, source)
    jax.block_until_ready(args)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    compiled = fn.lower(*args).compile()
    start = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": seconds, "peak_rss_mb": peak / 1024, "rss_above_inputs_mb": (peak - base) / 1024}


def in_subprocess(implementation: str, n: int, what: str, source: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", implementation, str(n), what, source],
        capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096])
    parser.add_argument("--large", type=int, default=8192, help="size run by sdtw alone (0: skip)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--record", action="store_true", help=RECORD_HELP)
    args = parser.parse_args()
    if args.child:
        implementation, n, what, source = args.child
        measure = compiled_footprint if what == "compiled" else run_once
        result = measure(implementation, int(n), source)
        print(json.dumps(result))
        return

    with recorded_output(args.record):
        rows = []
        jobs = [(n, impl, source) for source in ("cost", "features") for n in args.sizes
                for impl in ("sdtw", "OTT-JAX")]
        if args.large:
            jobs.append((args.large, "sdtw", "cost"))
        for n, impl, source in jobs:
            key = "sdtw" if impl == "sdtw" else "ott"
            compiled = in_subprocess(key, n, "compiled", source)
            measured = in_subprocess(key, n, "run", source)
            nm_mb = n * n * 4 / 2**20
            rows.append([
                f"N=M={n}", f"from {source}", impl,
                compiled["temp_nm"] + compiled["output_nm"],
                (compiled["temp_nm"] + compiled["output_nm"]) * nm_mb,
                measured["rss_above_inputs_mb"], measured["seconds"],
            ])
        print("value+grad of soft-DTW, float32, gamma = 0.1: w.r.t. an (N, M) cost matrix, or w.r.t. "
              f"an (N, {FEATURES}) sequence through its squared Euclidean costs\n")
        print_table(["size", "input", "implementation", "XLA temp+out (N*M floats)", "XLA temp+out MB",
                     "peak RSS above inputs MB", "seconds"], rows)


if __name__ == "__main__":
    main()
