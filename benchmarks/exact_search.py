"""Exact k-NN on the default device: ``BruteForceIndex`` against one matmul + top_k over the whole database.

    python benchmarks/exact_search.py                     # 100k x 12 and 100k x 240, 1000 queries
    python benchmarks/exact_search.py --sizes 1000000x12 200000x240 --queries 4096   # the GPU comparison

The reference computes every query's distance to every row in one matrix
product and takes one ``lax.top_k`` over all of them: the fastest exact search
there is when memory allows it (Q x N distances at once: 16 GB at 4096 x 1M).
The index scans the database in chunks, so its memory stays bounded; each row
of the table is one (chunk_size, query_chunk) setting, timed on the same
queries after a warm-up, with its agreement with the reference (the fraction
of the reference's neighbours it returns; ties can swap equal distances).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from _timing import RECORD_HELP, print_table, recorded_output
from experiments.retrieval import index as indexes
from index_scale import exact_top_k, unit_vectors


def timed(fn, repeats: int) -> tuple[float, np.ndarray]:
    """(fastest seconds of ``fn()`` after one warm-up call, its last result as numpy)."""
    result = np.asarray(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = np.asarray(fn())
        times.append(time.perf_counter() - start)
    return min(times), result


def parse_size(text: str) -> tuple[int, int]:
    """"1000000x12" -> (1000000, 12)."""
    size, dim = text.lower().split("x")
    return int(size), int(dim)


def parse_setting(text: str) -> tuple[int, int]:
    """"16384:1024" -> (chunk_size, query_chunk)."""
    chunk, queries = text.split(":")
    return int(chunk), int(queries)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", type=parse_size, default=[(100_000, 12), (100_000, 240)],
                        metavar="NxD")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--settings", nargs="+", type=parse_setting, metavar="CHUNK:QUERIES",
                        help="BruteForceIndex (chunk_size, query_chunk) settings; default: the index's defaults")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--record", action="store_true", help=RECORD_HELP)
    args = parser.parse_args(argv)
    with recorded_output(args.record):
        print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}, float32, k = 10, "
              f"{args.queries} queries per call\n")
        rows = []
        for size, dim in args.sizes:
            data = unit_vectors(size + args.queries, dim, seed=size + dim)
            vectors, queries = data[:size], data[size:]
            x, q = jnp.asarray(vectors), jnp.asarray(queries)
            reference_s, truth = timed(lambda: exact_top_k(q, x, 10)[1], args.repeats)
            rows.append([f"{size} x {dim}", "one matmul + top_k (reference)", 1e3 * reference_s / args.queries,
                         1.0, 1.0])
            for chunk, query_chunk in args.settings or [(None, None)]:
                options = {} if chunk is None else {"chunk_size": chunk, "query_chunk": query_chunk}
                index = indexes.BruteForceIndex(**options).build(vectors)
                seconds, ids = timed(lambda: index.search(queries, 10)[1], args.repeats)
                rows.append([f"{size} x {dim}", f"BruteForceIndex, chunk {index.chunk_size}, "
                             f"{index.query_chunk} queries per call", 1e3 * seconds / args.queries,
                             seconds / reference_s, indexes.recall_at_k(ids, truth)])
        print_table(["database", "search", "ms / query", "time / reference", "agreement@10"], rows)


if __name__ == "__main__":
    main()
