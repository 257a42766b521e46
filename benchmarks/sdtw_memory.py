"""Peak memory of soft-DTW value+grad, side by side with OTT-JAX.

    python benchmarks/sdtw_memory.py              # N = M = 4096, and 8192 (ours only)
    python benchmarks/sdtw_memory.py --sizes 1024 2048

Two measures, float32, one pair, gradient w.r.t. the (N, M) cost matrix:
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


def build(implementation: str, n: int):
    import jax
    import jax.numpy as jnp

    if implementation == "sdtw":
        import sdtw

        loss = lambda C: sdtw.soft_dtw(C, 0.1)  # noqa: E731
    else:
        from ott.geometry.costs import SoftDTW

        # OTT-JAX takes sequences; with a 1-D "feature" per frame and a cost
        # matrix passed through a custom ground cost this is awkward, so we
        # reproduce its recursion on C directly via its own function.
        cost_fn = SoftDTW(0.1)

        def loss(C):
            # Same scan as ott.geometry.costs.SoftDTW._soft_dtw, on a given C.
            return _ott_soft_dtw_on_cost(cost_fn, C)

    C = jax.random.uniform(jax.random.PRNGKey(0), (n, n), jnp.float32)
    return jax.jit(jax.value_and_grad(loss)), C


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


def compiled_footprint(implementation: str, n: int) -> dict:
    fn, C = build(implementation, n)
    analysis = fn.lower(C).compile().memory_analysis()
    floats = n * n * 4
    return {
        "temp_nm": analysis.temp_size_in_bytes / floats,
        "output_nm": analysis.output_size_in_bytes / floats,
    }


def run_once(implementation: str, n: int) -> dict:
    import jax

    fn, C = build(implementation, n)
    jax.block_until_ready(C)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    compiled = fn.lower(C).compile()
    start = time.perf_counter()
    jax.block_until_ready(compiled(C))
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": seconds, "peak_rss_mb": peak / 1024, "rss_above_inputs_mb": (peak - base) / 1024}


def in_subprocess(implementation: str, n: int, what: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", implementation, str(n), what],
        capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096])
    parser.add_argument("--large", type=int, default=8192, help="size run by sdtw alone (0: skip)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--record", action="store_true", help=RECORD_HELP)
    args = parser.parse_args()
    if args.child:
        implementation, n, what = args.child
        result = compiled_footprint(implementation, int(n)) if what == "compiled" else run_once(implementation, int(n))
        print(json.dumps(result))
        return

    with recorded_output(args.record):
        rows = []
        jobs = [(n, impl) for n in args.sizes for impl in ("sdtw", "OTT-JAX")]
        if args.large:
            jobs.append((args.large, "sdtw"))
        for n, impl in jobs:
            key = "sdtw" if impl == "sdtw" else "ott"
            compiled = in_subprocess(key, n, "compiled")
            measured = in_subprocess(key, n, "run")
            nm_mb = n * n * 4 / 2**20
            rows.append([
                f"N=M={n}", impl,
                compiled["temp_nm"] + compiled["output_nm"],
                (compiled["temp_nm"] + compiled["output_nm"]) * nm_mb,
                measured["rss_above_inputs_mb"], measured["seconds"],
            ])
        print("value+grad of soft-DTW w.r.t. an (N, M) float32 cost matrix, gamma = 0.1\n")
        print_table(["size", "implementation", "XLA temp+out (N*M floats)", "XLA temp+out MB",
                     "peak RSS above inputs MB", "seconds"], rows)


if __name__ == "__main__":
    main()
