"""Report sections of the retrieval experiments (used by :mod:`experiments.reproduce`).

Each section function writes its figures into ``out`` and returns Markdown
lines: a table of our numbers beside the seed's (Müller et al., "Music
Retrieval"; the seed's numbers come from other, private data, so compare
orderings and trends, not values).
"""

from __future__ import annotations

import pathlib
import time
from typing import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from experiments.features import FeatureConfig, audio_features, corpus_features  # noqa: E402
from experiments.retrieval import index as indexes  # noqa: E402
from experiments.retrieval import fingerprint, identification, matching, shingles, theme  # noqa: E402
from experiments.workers import map_in_workers  # noqa: E402

__all__ = ["audio_matching_section", "identification_section", "index_scale_section", "shingle_section",
           "theme_section"]

SEED_THEME = {  # Top-1, Top-10 (Zalkow & Müller 2021, MTD)
    "standard": (0.561, 0.723), "enhanced": (0.824, 0.861), "DNN (CTC)": (0.867, 0.942),
    "DNN (linear scaling)": (0.829, 0.914), "DNN (strong alignment)": (0.882, 0.939),
}
SEED_SHINGLES = {240: (0.996, 0.972, "23.0 s"), 30: (0.981, 0.959, "3.4 s"), 12: (0.964, 0.928, "1.8 s"),
                 6: (0.890, 0.856, "1.2 s")}   # P@1, MAP, total retrieval time (Zalkow & Müller 2020)
SEED_QUERY_MS = {("KD", 240): 772.95, ("KD", 30): 117.54, ("KD", 12): 7.24, ("KD", 6): 0.66,
                 ("HNSW", 240): 0.20, ("HNSW", 30): 0.08, ("HNSW", 12): 0.06, ("HNSW", 6): 0.06}
CENS_10HZ = FeatureConfig(kind="cens", rate_hz=10.0)


def _fmt(x: float) -> str:
    return "n/a" if x != x else f"{x:.3f}"


def _interval(bounds: tuple[float, float]) -> str:
    return "" if bounds[0] != bounds[0] else f"[{bounds[0]:.2f}, {bounds[1]:.2f}]"


def result_record(table: str, method: str, queries: int, items: int, **metrics) -> dict:
    """One row of ``results.json``: metric ``m`` with an interval is given as ``m=(value, (low, high))``."""
    record = {"table": table, "method": method, "queries": int(queries), "items": int(items)}
    for name, value in metrics.items():
        value, interval = value if isinstance(value, tuple) else (value, None)
        record[name] = None if value != value else round(float(value), 4)
        if interval is not None:
            record[f"{name}_ci95"] = [None if x != x else round(float(x), 4) for x in interval]
    return record


def _theme_database(corpus, extractor, audio: Mapping[str, np.ndarray] | None = None,
                    hcqt_cache: dict | None = None) -> dict[str, np.ndarray]:
    """Chroma of every recording of ``corpus``: its own audio, or ``audio`` (version id -> samples,
    e.g. another renderer's). A learned extractor reads the HCQT, computed once per recording:
    cached with the corpus for its own audio, in ``hcqt_cache`` for ``audio``."""
    learned = hasattr(extractor, "from_features")
    if audio is None:
        if learned:
            return {vid: extractor.from_features(values)
                    for vid, values in corpus_features(corpus, extractor.features).items()}
        return theme.chroma_database(corpus.versions, extractor, progress=True)
    database = {}
    for version in corpus.versions:
        samples = audio[version.version_id]
        if not learned:
            database[version.version_id] = extractor(samples, version.sample_rate)
            continue
        key = (version.version_id, str(extractor.features))
        if key not in hcqt_cache:
            hcqt_cache[key] = audio_features(samples, version.sample_rate, extractor.features)
        database[version.version_id] = extractor.from_features(hcqt_cache[key])
    return database


def _soundfont_recordings(corpus, per_piece: int) -> tuple[object, dict[str, np.ndarray], str] | None:
    """The first ``per_piece`` versions of every piece rendered with a General-MIDI SoundFont
    (cached with the corpus): (their corpus, version id -> audio, SoundFont name), or None without
    FluidSynth."""
    import dataclasses

    from experiments.data.soundfont import find_soundfont

    soundfont = find_soundfont()
    if soundfont is None or per_piece < 1:
        return None
    versions = [v for piece in corpus.pieces for v in corpus.versions_of(piece)[:per_piece]]
    rendered = map_in_workers(_soundfont_job, [(v, soundfont, corpus.root / "soundfont") for v in versions],
                              desc=f"render ({soundfont.name})")
    audio = dict(zip((v.version_id for v in versions), rendered))
    return dataclasses.replace(corpus, versions=versions), audio, soundfont.name


def _soundfont_job(job: tuple) -> np.ndarray:
    from experiments.data.soundfont import soundfont_version_audio

    return soundfont_version_audio(*job)


def theme_section(out: pathlib.Path, corpus, learned: Mapping[str, theme.ChromaExtractor] | None = None,
                  training_note: str = "", *, normalize: str = "query", soundfont_versions: int = 1,
                  results: list | None = None) -> list[str]:
    """Theme retrieval tables: standard and enhanced chroma at 10 Hz, and learned chroma
    (``learned``: row name -> extractor, see :mod:`experiments.retrieval.dnn_chroma`), on the
    corpus's recordings and, where FluidSynth and a General-MIDI SoundFont are installed, on
    ``soundfont_versions`` renders of every piece made with them (sounds no network has heard).

    ``corpus`` holds the pieces to measure on (the report passes its test pieces); one record per
    row is appended to ``results``.
    """
    rate_hz = 10.0
    extractors = {"standard": theme.standard_chroma, "enhanced": theme.enhanced_chroma, **(learned or {})}
    sets = {"project's synthesizer": (corpus, None)}
    rendered = _soundfont_recordings(corpus, soundfont_versions)
    if rendered is not None:
        sets[f"FluidSynth ({rendered[2]})"] = rendered[:2]
    rows = ["| recordings | chroma variant | queries / recordings | Top-1 [95% CI] | Top-10 | MAP [95% CI] "
            "| match on theme | seed Top-1 | seed Top-10 |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    hcqt_cache: dict = {}
    databases = {(label, name): (recordings, _theme_database(recordings, extractor, audio, hcqt_cache))
                 for label, (recordings, audio) in sets.items() for name, extractor in extractors.items()}
    evaluated = theme.evaluate_theme_retrievals(databases, rate_hz, normalize=normalize, progress=True)
    for label, (recordings, audio) in sets.items():
        for name in ({**SEED_THEME, **extractors} if audio is None else extractors):
            seed = SEED_THEME.get(name)
            if name in extractors:
                r = evaluated[label, name]
                ours = (f"{r.queries} / {r.items} | {_fmt(r.top1)} {_interval(r.top1_ci)} | {_fmt(r.top10)} "
                        f"| {_fmt(r.map)} {_interval(r.map_ci)} | {_fmt(r.position_accuracy)}")
                if results is not None:
                    results.append(result_record("theme_retrieval" if audio is None else "theme_retrieval_soundfont",
                                                 name, r.queries, r.items, top1=(r.top1, r.top1_ci), top10=r.top10,
                                                 map=(r.map, r.map_ci), match_on_theme=r.position_accuracy))
            else:
                ours = "– | – | – | – | –"
            seed_cells = "– | –" if seed is None or audio is not None else f"{seed[0]:.3f} | {seed[1]:.3f}"
            rows.append(f"| {label} | {name} | {ours} | {seed_cells} |")
    normalization = ("divided by the query length and by the recording's median over its end positions"
                     if normalize == "recording" else "divided by the query length")
    soundfont_note = (f"FluidSynth rows: the first {soundfont_versions} version(s) of every test piece rendered "
                      "with a General-MIDI SoundFont instead (same performances, sampled instruments; nothing was "
                      "trained or tuned on them)." if rendered is not None else
                      "Install `fluidsynth` and `fluid-soundfont-gm` for rows on SoundFont renders.")
    return [
        "## Theme retrieval",
        "",
        f"{len(corpus.pieces)} symbolic themes (first {corpus.config.theme_measures} measures of the principal voice)",
        f"of the test pieces vs their {len(corpus.versions)} recordings; subsequence DTW on chroma at {rate_hz:g} Hz",
        f"(steps (1,1), (2,1), (1,2), cosine cost {normalization}), in the 3 cyclic shifts that fit",
        f"each recording's pitch-class profile best and tempo scalings {theme.THEME_TEMPO_SCALES} of the query.",
        "Top-k: a recording of the query's piece within the first k (n/a where k reaches the number of",
        "other recordings: it could not fail); intervals: 95% bootstrap over the queries. *Match on theme*:",
        "fraction of (query, recording of its piece) pairs whose best match overlaps the theme.",
        training_note or "DNN rows: plug a trained network's chroma into `theme.chroma_database(versions, chroma_fn)`.",
        soundfont_note,
        "",
        *rows,
        "",
    ]


def _matching_figure(evaluation, path: pathlib.Path) -> None:
    curves = evaluation.example_curves
    fig, ax = plt.subplots(figsize=(10, 3.2), constrained_layout=True)
    offset = 0.0
    for item, curve in curves.items():
        t = offset + np.arange(len(curve.distance)) / curve.rate_hz
        ax.plot(t, np.where(np.isfinite(curve.distance), curve.distance, np.nan), lw=1)
        ax.axvline(offset, color="0.8", lw=0.8)
        ax.text(offset, 1.02, item.replace("__", " "), fontsize=6, rotation=20,
                transform=ax.get_xaxis_transform())
        offset = t[-1] + 1.0 / curve.rate_hz
    ax.set_xlabel("database (concatenated recordings, s)")
    ax.set_ylabel("Delta (0 = identical)")
    ax.set_title(f"Matching curve: first {evaluation.query_seconds:g} s of {evaluation.example_query}", pad=28)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def audio_matching_section(out: pathlib.Path, corpus, *, results: list | None = None) -> list[str]:
    """Audio matching table (diagonal and DTW), a ranked hit list and the matching-curve figure;
    one record per row appended to ``results``."""
    cens = corpus_features(corpus, CENS_10HZ)
    shortest = min(v.duration_s for v in corpus.versions)
    query_seconds = float(min(20.0, np.floor(shortest / 2)))
    rows = ["| method | queries / recordings | P@1 [95% CI] | MAP [95% CI] | best match at the right position |",
            "|---|---:|---:|---:|---:|"]
    evaluations = {}
    for method in ("diagonal", "dtw"):
        start = time.perf_counter()
        evaluations[method] = e = matching.evaluate_audio_matching(corpus, cens, query_seconds=query_seconds,
                                                                   method=method)
        if results is not None:
            results.append(result_record("audio_matching", method, e.queries, e.items, p_at_1=(e.p_at_1, e.p_at_1_ci),
                                         map=(e.map, e.map_ci), position=e.position_accuracy))
        rows.append(f"| {method} ({time.perf_counter() - start:.1f} s) | {e.queries} / {e.items} "
                    f"| {_fmt(e.p_at_1)} {_interval(e.p_at_1_ci)} | {_fmt(e.map)} {_interval(e.map_ci)} "
                    f"| {_fmt(e.position_accuracy)} |")
    example = evaluations["diagonal"]
    _matching_figure(example, out / "matching_curve.png")
    hits = ["| rank | recording | position (s) | distance |", "|---:|---|---|---:|"]
    hits += [f"| {r} | {h.item_id} | {h.start_s:.0f} - {h.end_s:.0f} | {h.distance:.3f} |"
             for r, h in enumerate(example.example_hits[:12], 1)]
    return [
        "## Audio matching",
        "",
        f"{len(corpus.pieces)} test pieces (`report.matching_pieces`). Query: the first {query_seconds:g} s of each recording; database: every recording; CENS (4.1 s",
        f"smoothing) at 1 Hz; tempo scalings {matching.TEMPO_SCALES}. P@1 and MAP rank the recordings by",
        "their best match (relevant: the other versions of the same piece; the query's own recording",
        "is left out). Position: the best match overlaps the query's passage in the other version.",
        "",
        *rows,
        "",
        f"Ranked hits for {example.example_query} (seed: Beethoven's Fifth, Bernstein, 0-21 s first,",
        "then its repeat and the other performances):",
        "",
        *hits,
        "",
        "![matching curve](matching_curve.png)",
        "",
    ]


def shingle_rate(corpus, length: int = 20) -> float:
    """1 Hz (the papers' rate) unless recordings are too short for a few shingles; then faster."""
    shortest = min(v.duration_s for v in corpus.versions)
    return float(max(1.0, np.ceil(2 * length / shortest)))


SHINGLE_INDEXES = {"brute": "brute", "kdtree": "KD", "hnsw": "HNSW"}


def _shingle_figure(by_family: Mapping[str, Mapping[int, dict]], path: pathlib.Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 3.2), constrained_layout=True)
    dims = sorted(SEED_SHINGLES)
    for (family, results), color in zip(by_family.items(), ("C0", "C1")):
        ours = sorted(results)
        ax.plot(ours, [results[d]["p@1"] for d in ours], "o-", color=color, label=f"P@1 ({family}, ours)")
        ax.plot(ours, [results[d]["map"] for d in ours], "s:", color=color, label=f"MAP ({family}, ours)")
    ax.plot(dims, [SEED_SHINGLES[d][0] for d in dims], "o--", color="0.6", label="P@1 (seed, DNN)")
    ax.plot(dims, [SEED_SHINGLES[d][1] for d in dims], "s--", color="0.3", label="MAP (seed, DNN)")
    ax.set_xscale("log")
    ax.set_xticks(dims, [str(d) for d in dims])
    ax.set_xlabel("shingle dimension (240: raw)")
    ax.set_ylabel("P@1 and MAP (version identification)")
    ax.set_ylim(0.0, 1.05)
    ax.legend(fontsize=6)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def shingle_section(out: pathlib.Path, corpus, *, train=None, learned: Mapping[int, shingles.Embedding] | None = None,
                    rate_hz: float | None = None, length: int = 20, results: list | None = None) -> list[str]:
    """Version identification with raw, PCA-reduced and learned shingle embeddings; P@1/MAP vs dimension.

    ``corpus`` holds the recordings searched (the report's test pieces); PCA is fit on the shingles
    of ``train`` (the train pieces; None: on the searched ones). ``learned`` maps dims -> a trained
    embedder (:func:`experiments.retrieval.shingle_embedding.trained_embeddings`, trained on shingles
    at the same ``rate_hz``; default :func:`shingle_rate`). Raw shingles are searched with every
    index; reduced ones with the KD-tree (exact, so brute force ranks alike) and HNSW. One record
    per row goes to ``results``.
    """
    cens = corpus_features(corpus, CENS_10HZ)
    rate_hz = shingle_rate(corpus, length) if rate_hz is None else rate_hz
    database = shingles.build_shingle_database(cens, 10.0, rate_hz=rate_hz, length=length)
    fit = database if train is None else shingles.build_shingle_database(corpus_features(train, CENS_10HZ), 10.0,
                                                                         rate_hz=rate_hz, length=length)
    queries, owners, relevant = shingles.corpus_shingle_queries(corpus, cens, 10.0, rate_hz=rate_hz,
                                                                length=length, query_hop_s=length / rate_hz)
    embeddings = [("raw", 240, None, ("brute", "kdtree", "hnsw"))]
    embeddings += [("PCA", dim, shingles.pca_embedding(fit.vectors, dim), ("kdtree", "hnsw")) for dim in (30, 12, 6)]
    embeddings += [("trained", dim, embed, ("kdtree", "hnsw")) for dim, embed in sorted((learned or {}).items(),
                                                                                      reverse=True)]
    rows = ["| shingles | dim | index | queries / recordings | P@1 [95% CI] | MAP [95% CI] | query (ms) | seed P@1 "
            "| seed MAP | seed query (ms) |",
            "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    by_family: dict[str, dict[int, dict]] = {}
    for family, dim, embed, kinds in tqdm(embeddings, desc="shingle retrieval", disable=len(embeddings) < 2):
        embedded, embedded_queries = shingles.embed_all(database, queries, embed)  # once for every index
        for kind in kinds:
            label = SHINGLE_INDEXES[kind]
            r = shingles.version_identification(embedded, embedded_queries, owners, relevant, index_kind=kind)
            for name in ("PCA", "trained") if family == "raw" else (family,):
                by_family.setdefault(name, {}).setdefault(dim, r)
            if results is not None:
                results.append(result_record("shingle_retrieval", f"{family} {dim} {label}", r["queries"], r["items"],
                                             p_at_1=(r["p@1"], r["p@1_ci95"]), map=(r["map"], r["map_ci95"]),
                                             query_ms=r["query_ms"]))
            # The seed's rows are the raw shingles and its trained networks (no PCA row).
            seed = ("", "", "") if family == "PCA" else (*(f"{x:.3f}" for x in SEED_SHINGLES[dim][:2]),
                                                         f"{SEED_QUERY_MS.get((label, dim), '')}")
            rows.append(f"| {family} | {dim} | {label} | {r['queries']} / {r['items']} "
                        f"| {_fmt(r['p@1'])} {_interval(r['p@1_ci95'])} | {_fmt(r['map'])} {_interval(r['map_ci95'])} "
                        f"| {r['query_ms']:.2f} | {' | '.join(seed)} |")
    if not learned:
        by_family.pop("trained")
    _shingle_figure(by_family, out / "shingle_dimension.png")
    trained_note = (" Trained rows: the shingle embedders of Zalkow & Müller (triplet loss; positives: the same "
                    "passage of the score in another version, negatives: other pieces) trained on the same "
                    f"{len(fit.vectors)} train shingles "
                    "(`python -m experiments.train experiment=shingle_embedder_<6|12|30>`), the checkpoint with the "
                    "best triplet accuracy on the val pieces." if learned else "")
    return [
        "## Shingle retrieval",
        "",
        f"{len(database.vectors)} CENS shingles ({length} frames x 12 at {rate_hz:g} Hz = {length / rate_hz:.3g} s)",
        f"of {len(database.item_ids)} recordings; {len(queries)} query shingles (every {length / rate_hz:.3g} s",
        f"of each recording) in {len(matching.TEMPO_SCALES)} tempo variants; a recording scores its nearest",
        "retrieved shingle (k = 100 per variant); relevant: the other versions of the same piece.",
        f"PCA rows: classical PCA{'' if train is None else f' fit on the {len(fit.vectors)} shingles of the train pieces'}."
        + trained_note,
        "Query time is per query (all variants), one thread. The seed's columns are its raw and trained (DNN) rows, "
        "its times at 1.25M shingles; query times at that scale: `python benchmarks/index_scale.py --million` "
        "([docs/results/index_scale.md](index_scale.md)).",
        "",
        *rows,
        "",
        "![P@1 and MAP vs dimension](shingle_dimension.png)",
        "",
    ]


def index_scale_section(out: pathlib.Path, sizes=(1_000, 4_000, 16_000), dims=(12, 240),
                        n_queries: int = 100) -> list[str]:
    """Query time vs index size for brute force, KD-tree and HNSW on random unit vectors."""
    rng = np.random.default_rng(0)
    results = []
    for dim in dims:
        data = rng.normal(size=(max(sizes) + n_queries, dim)).astype(np.float32)
        data /= np.linalg.norm(data, axis=1, keepdims=True)
        for size in sizes:
            results += indexes.time_indexes(data[:size], data[-n_queries:], k=10)
    rows = ["| dim | size | index | build (s) | query (ms) | recall@10 |", "|---:|---:|---|---:|---:|---:|"]
    rows += [f"| {r['dim']} | {r['size']} | {r['index']} | {r['build_s']:.2f} | {r['query_ms']:.3f} "
             f"| {r['recall@10']:.3f} |" for r in results]
    # Top row: query time; bottom row: recall@10, which an approximate index trades for speed.
    fig, axes = plt.subplots(2, len(dims), figsize=(5 * len(dims), 6.0), sharex="col", squeeze=False,
                             constrained_layout=True)
    for column, dim in enumerate(dims):
        time_ax, recall_ax = axes[0, column], axes[1, column]
        for name in (indexes.BruteForceIndex.name, indexes.KDTreeIndex.name, indexes.HNSWIndex.name):
            mine = [r for r in results if r["dim"] == dim and r["index"] == name]
            sizes_of = [r["size"] for r in mine]
            time_ax.plot(sizes_of, [r["query_ms"] for r in mine], "o-", label=name)
            recall_ax.plot(sizes_of, [r["recall@10"] for r in mine], "o-", label=name)
        time_ax.set_xscale("log")
        time_ax.set_yscale("log")
        time_ax.set_title(f"dimension {dim} (random unit vectors)")
        time_ax.set_ylabel("query time (ms)")
        time_ax.legend(fontsize=7)
        recall_ax.set_ylim(0.0, 1.05)
        recall_ax.set_xlabel("index size (vectors)")
        recall_ax.set_ylabel("recall@10 (vs brute force)")
    fig.savefig(out / "index_scale.png", dpi=110)
    plt.close(fig)
    return [
        "## Nearest-neighbour search: query time vs index size",
        "",
        f"{n_queries} queries, k = 10, one thread; recall@10 against brute force. Larger sizes (100k, 1M):",
        "`python benchmarks/index_scale.py`.",
        "",
        *rows,
        "",
        "![query time vs index size](index_scale.png)",
        "",
    ]


def _count_cell(counts: tuple[int, int]) -> str:
    n, total = counts
    return "–" if total == 0 else f"{n / total:.2f} ({n}/{total})"


def _confidence_figure(result: identification.IdentificationResult, path: pathlib.Path) -> None:
    """Best score of every clean query by clip kind, one panel per system, threshold marked."""
    fig, axes = plt.subplots(1, len(result.systems), figsize=(5 * len(result.systems), 3.2), squeeze=False,
                             constrained_layout=True)
    for ax, system in zip(axes[0], result.systems):
        landmark = system == identification.LandmarkSystem.name
        for kind, color in (("database", "tab:blue"), ("other rendering", "tab:orange"), ("outside", "tab:red")):
            scores = [o.score for o in result.select(system=system, kind=kind, condition="clean", search="speed 1",
                                                     part="test")]
            values = np.log10(1.0 + np.asarray(scores)) if landmark else np.asarray(scores)
            ax.hist(values, bins=30, alpha=0.6, color=color, label=f"{kind} ({len(scores)})")
        threshold = result.thresholds[system]
        ax.axvline(np.log10(1.0 + threshold) if landmark else threshold, color="k", ls="--", lw=1, label="threshold")
        ax.set_xlabel("log10(1 + confidence)" if landmark else "1 - bit error rate")
        ax.set_ylabel("clean clips")
        ax.set_title(system, fontsize=9)
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def identification_section(out: pathlib.Path, corpus, *, durations=(2.0, 5.0, 10.0),
                           per_recording: int = 12, results: list | None = None) -> list[str]:
    """Audio identification: identification rate under degradations, false positives, query time, index
    size; thresholds calibrated on half of the clips, every rate measured on the other half."""
    result = identification.evaluate_identification(corpus, durations=durations, per_recording=per_recording,
                                                    progress=True)
    result.calibrate()
    ours, others = result.systems[0], result.systems[1:]
    head = " | ".join(f"{d:g} s" + "".join(f" | {d:g} s ({_short(o)})" for o in others) for d in durations)
    align = "|---|" + "---:|" * (len(durations) * len(result.systems))
    conditions = list(dict.fromkeys(o.condition for o in result.outcomes))
    rows = [f"| condition | {head} |", align]
    for condition in conditions:
        searched = result.select(condition=condition, search="speed search", kind="database")
        searches = ["speed 1"] + (["speed search"] if searched else [])
        for search in searches:
            cells = []
            for d in durations:
                cells += [_count_cell(result.identified(system, condition=condition, duration_s=d, search=search,
                                                        part="test")) for system in result.systems]
            label = condition if search == "speed 1" else f"{condition}, speed search"
            if results is not None:
                for d in durations:
                    for system in result.systems:
                        n, total = result.identified(system, condition=condition, duration_s=d, search=search,
                                                     part="test")
                        if total:
                            results.append(result_record("audio_identification", f"{system}: {label}, {d:g} s",
                                                         total, result.index[ours]["files"], identified=n / total))
            rows.append(f"| {label} | {' | '.join(cells)} |")
    false_rows = [f"| clips from | {head} |", align]
    for kind in ("other rendering", "outside"):
        for search in ("speed 1", "speed search"):
            cells = []
            for d in durations:
                cells += [_count_cell(result.false_positives(system, kind=kind, duration_s=d, search=search,
                                                             part="test")) for system in result.systems]
            false_rows.append(f"| {kind}{', speed search' if search != 'speed 1' else ''} | {' | '.join(cells)} |")
    cost_rows = ["| system | " + " | ".join(f"query {d:g} s (ms)" for d in durations)
                 + " | with speed search (ms) | index entries | index size | build (s) |",
                 "|---|" + "---:|" * (len(durations) + 4)]
    for system in result.systems:
        facts = result.index[system]
        searched = [result.median_ms(system, duration_s=d, search="speed search") for d in durations
                    if result.select(system=system, duration_s=d, search="speed search")]
        cost_rows.append(
            f"| {system} | " + " | ".join(f"{result.median_ms(system, duration_s=d, search='speed 1'):.1f}"
                                          for d in durations)
            + f" | {' / '.join(f'{ms:.0f}' for ms in searched) or '–'} | {facts['entries']:,} "
            f"| {facts['bytes'] / 1024:.0f} KiB | {facts['build_s']:.1f} |")
    _confidence_figure(result, out / "identification_confidence.png")
    facts = result.index[ours]
    chromaprint_note = (f"{others[0]} is slid along each recording's words (match: bit error rate <= "
                        f"{1 - result.thresholds[others[0]]:.3f}); it cannot fingerprint clips under about 3 s."
                        if others else "Chromaprint is left out: neither libchromaprint nor `fpcalc` is installed "
                        "(`apt-get install libchromaprint-tools`).")
    return [
        "## Audio identification (fingerprints)",
        "",
        f"Index: {facts['files']} recordings ({facts['hours'] * 60:.1f} min) of {facts['pieces']} pieces. "
        f"Queries: {per_recording} clips "
        "of each length per recording, cut at random positions, then degraded. Half of the clips calibrate:",
        "each system's threshold is set just above the best score of any calibration clip whose recording",
        "is not in the index; every rate below is measured on the other half at that threshold",
        f"(ours: confidence >= {result.thresholds[ours]:.1f}, i.e. -log10 chance under the Poisson model of",
        f"`experiments/retrieval/fingerprint.py`; `experiments.search` uses {fingerprint.DEFAULT_MIN_CONFIDENCE:g}).",
        "*Identified*: the most confident match clears the threshold and is the clip's recording within",
        f"{identification.POSITION_TOLERANCE_S:g} s of the clip's position. Speed search: the clip is also read at",
        f"{identification.SPEED_SEARCH} times its speed. {chromaprint_note}",
        "Cells: rate (successes/queries).",
        "",
        *rows,
        "",
        "False positives: clips of recordings not in the index, clean: another rendering of an indexed",
        "piece (same notes; must not match: identification finds recordings, not pieces) and pieces",
        "left out of the index.",
        "",
        *false_rows,
        "",
        "Cost (median over clean queries, one process):",
        "",
        *cost_rows,
        "",
        "![confidence of clean clips](identification_confidence.png)",
        "",
        "At 1,000 hours of index entries: `python benchmarks/fingerprint_scale.py`.",
        "",
    ]


def _short(system: str) -> str:
    return system.split()[0]
