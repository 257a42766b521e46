"""HNSW vs KD-tree vs brute force (jnp, chunked) at growing index sizes.

    python benchmarks/index_scale.py                 # 10k and 100k, dimensions 12 and 240
    python benchmarks/index_scale.py --million       # adds 1M (minutes, several GB)
    python benchmarks/index_scale.py --million --dims 6 12 30 240 --record   # the paper's sizes
    python benchmarks/index_scale.py --real small    # adds the CENS shingles of a corpus

Prints a Markdown table: build time, query time (per query, one thread,
batch of queries), recall@10 against brute force, and the reference for exact
search on the device: one matrix product and one top-k over the whole database. Vectors are random unit
vectors (the hard case for every index: no low-dimensional structure); real
shingles live on a much lower-dimensional set, where trees and graphs do better.
Goal of the project: HNSW under 1 ms per query at 1M with recall@10 >= 0.95.
"""

from __future__ import annotations

import argparse
import functools

import jax
import jax.numpy as jnp
import numpy as np

from _timing import RECORD_HELP, recorded_output
from experiments.retrieval import index as indexes


def unit_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def real_shingles(data: str) -> np.ndarray:
    from experiments.data import build_corpus, corpus_config
    from experiments.features import FeatureConfig, corpus_features
    from experiments.retrieval import shingles

    corpus = build_corpus(corpus_config(data))
    cens = corpus_features(corpus, FeatureConfig(kind="cens", rate_hz=10.0))
    return shingles.build_shingle_database(cens, 10.0, rate_hz=1.0).vectors


@functools.partial(jax.jit, static_argnames=("k",))
def exact_top_k(q: jax.Array, x: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """The reference exact search: the (Q, N) squared distances of the whole database in one matrix
    product, and one ``lax.top_k`` over all of them. Returns (-distances, ids), each (Q, k)."""
    distances = jnp.sum(q * q, axis=1, keepdims=True) - 2.0 * q @ x.T + jnp.sum(x * x, axis=1)[None, :]
    return jax.lax.top_k(-distances, k)


def one_call_ms(vectors: np.ndarray, queries: np.ndarray, k: int = 10) -> float:
    """Query time (ms per query) of :func:`exact_top_k`, every query in one call."""
    import time

    q, x = jnp.asarray(queries), jnp.asarray(vectors)
    jax.block_until_ready(exact_top_k(q, x, k))
    start = time.perf_counter()
    jax.block_until_ready(exact_top_k(q, x, k))
    return 1000.0 * (time.perf_counter() - start) / len(queries)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--million", action="store_true", help="add 1,000,000 vectors")
    parser.add_argument("--dims", type=int, nargs="+", default=[12, 240])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--ef", type=int, default=64, help="HNSW ef at query time")
    parser.add_argument("--threads", type=int, default=1, help="threads for HNSW and KD-tree")
    parser.add_argument("--skip-kdtree-above", type=int, default=200_000,
                        help="KD-tree in 240 dimensions is slower than brute force; skip it above this size")
    parser.add_argument("--skip-hnsw-above", type=int, default=200_000,
                        help="an HNSW build in 240 dimensions takes about an hour at 1M on 2 cores; skip it above "
                             "this size (dimensions above 30 only)")
    parser.add_argument("--real", default=None, help="corpus config whose CENS shingles to add (tiny, small)")
    parser.add_argument("--record", action="store_true", help=RECORD_HELP)
    args = parser.parse_args(argv)
    with recorded_output(args.record):
        sizes = sorted(set(args.sizes + ([1_000_000] if args.million else [])))
        options = {"hnsw": {"ef_search": args.ef, "threads": args.threads}, "kdtree": {"workers": args.threads}}
        print("| data | dim | size | index | build (s) | query (ms) | recall@10 |")
        print("|---|---:|---:|---|---:|---:|---:|")
        sets = [("random", dim, size) for dim in args.dims for size in sizes]
        for name, dim, size in sets:
            data = unit_vectors(size + args.queries, dim, seed=size + dim)
            kinds = ["brute"] + [kind for kind, limit in (("hnsw", args.skip_hnsw_above), ("kdtree", args.skip_kdtree_above))
                                 if size <= limit or dim <= 30]
            for r in indexes.time_indexes(data[:size], data[size:], k=10, kinds=kinds, options=options):
                print(f"| {name} | {dim} | {size} | {r['index']} | {r['build_s']:.2f} | {r['query_ms']:.3f} "
                      f"| {r['recall@10']:.3f} |", flush=True)
            print(f"| {name} | {dim} | {size} | one matmul + top_k (reference) | – "
                  f"| {one_call_ms(data[:size], data[size:]):.3f} | 1.000 |", flush=True)
        if args.real:
            vectors = real_shingles(args.real)
            rng = np.random.default_rng(0)
            pick = rng.choice(len(vectors), size=min(args.queries, len(vectors) // 5), replace=False)
            # Queries: held-out shingles with a little noise, so they are not exact duplicates.
            queries = vectors[pick] + 0.02 * rng.normal(size=vectors[pick].shape).astype(np.float32)
            for r in indexes.time_indexes(vectors, queries, k=10, options=options):
                print(f"| shingles ({args.real}) | {r['dim']} | {r['size']} | {r['index']} | {r['build_s']:.2f} "
                      f"| {r['query_ms']:.3f} | {r['recall@10']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
