"""Build the project's report: every table and figure, into one folder (a Hydra app, ``conf/reproduce.yaml``).

    python -m experiments.reproduce                  # the default corpus (see README for its run time)
    python -m experiments.reproduce out=reports/mine data=full
    python -m experiments.reproduce debug=smoke      # does everything run? 5 pieces, 2 training steps
    python -m experiments.reproduce record=true      # also save it, stamped, as docs/results/report.md

Every table is computed on the test pieces of the corpus (``data.split``); networks and PCA fit on
its train pieces, networks are selected on its val pieces. ``results.json`` holds every table row
as data, with the commit, the machine and the pieces of each split.

Sections:
- Soft-DTW explained: the expected alignment of two versions of a melody for
  gamma = 0, 0.1, 1, 10, 100 (figure), and how the soft-DTW value approaches
  DTW as gamma -> 0, down to gamma = 0.001 (table).
- Music synchronization on the first ``report.sync_per_collection`` test pieces of every collection
  (composer) with ``conf/sync``:
  beat error of DTW on chroma, multiscale DTW, and the linear baseline, for
  every pair of versions of each piece and for score-to-audio (table), and
  the cost matrix and path of the pair whose tempi differ most (figure).
- Theme retrieval with standard, enhanced and learned chroma (the chroma CNN
  trained ``report.dnn_steps`` steps with CTC, linear scaling, strong alignment and
  soft-DTW on the melody of the train pieces; the runs are kept in ``out/training`` and
  resumed), also on FluidSynth renders of the test pieces where installed, audio matching,
  shingle retrieval with raw, PCA and trained embeddings (the shingle embedders trained
  ``report.embedder_steps`` steps on the train pieces; tables beside the
  seed's, matching-curve and P@1/MAP-vs-dimension figures) and query time vs
  index size for brute force, KD-tree and HNSW (:mod:`experiments.retrieval.report`).
- Sheet music and audio: the test pieces engraved (Verovio), followed through their recordings
  with the sheet-audio embedder trained ``report.sheet_steps`` steps on the train pieces, also on
  scan-like copies of the pages, and cross-modal retrieval in both directions
  (:mod:`experiments.sheet.report`).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import shutil
import sys
import time

import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import hydra  # noqa: E402
from hydra.core.config_store import ConfigStore  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

import sdtw  # noqa: E402
from experiments import provenance  # noqa: E402
from experiments import sync  # noqa: E402
from experiments import workers  # noqa: E402
from experiments.config import from_config, register_schemas  # noqa: E402
from experiments.data import build_corpus  # noqa: E402
from experiments.data.corpus import Corpus, CorpusConfig  # noqa: E402
from experiments.retrieval import dnn_chroma, shingle_embedding  # noqa: E402
from experiments.retrieval import report as retrieval_report  # noqa: E402
from experiments.retrieval import theme  # noqa: E402
from experiments.sheet import report as sheet_report  # noqa: E402

GAMMAS = (0.0, 0.1, 1.0, 10.0, 100.0)  # figure panels (0: the DTW path)
TABLE_GAMMAS = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)


def melody_chroma(
    pitches: list[int], durations: list[float], *, fifth: float = 0.0, rate: float = 10.0
) -> np.ndarray:
    """Chroma (T, 12) of a monophonic melody (MIDI pitches, durations in seconds).

    ``fifth`` adds energy at the fifth above each note, as the third partial of
    a real instrument would.
    """
    frames = []
    for pitch, seconds in zip(pitches, durations):
        frame = np.zeros(12)
        frame[pitch % 12] = 1.0
        frame[(pitch + 7) % 12] += fifth
        frames += [frame] * max(1, round(seconds * rate))
    return np.array(frames)


def two_versions() -> tuple[np.ndarray, np.ndarray]:
    """The opening of "Ode to Joy" at two tempi, the second with a ritardando,
    a brighter timbre and some noise."""
    pitches = [64, 64, 65, 67, 67, 65, 64, 62, 60, 60, 62, 64, 64, 62, 62]
    steady = [0.4] * 15
    slowing = [0.25 + 0.03 * i for i in range(15)]
    second = melody_chroma(pitches, slowing, fifth=0.4)
    second += 0.1 * np.random.default_rng(0).random(second.shape)
    return melody_chroma(pitches, steady), second


def expected_alignment_figure(C: jnp.ndarray, path: pathlib.Path) -> None:
    fig, axes = plt.subplots(1, len(GAMMAS), figsize=(3.2 * len(GAMMAS), 3.4), constrained_layout=True)
    for ax, gamma in zip(axes, GAMMAS):
        E = sdtw.alignment_matrix(C) if gamma == 0 else sdtw.expected_alignment(C, gamma)
        ax.imshow(np.asarray(E), origin="lower", aspect="auto", cmap="gray_r", vmin=0, vmax=1)
        ax.set_title("DTW path (gamma = 0)" if gamma == 0 else f"gamma = {gamma:g}")
        ax.set_xlabel("version 2 (frames)")
    axes[0].set_ylabel("version 1 (frames)")
    fig.suptitle("Expected alignment E = d SDTW / d C of two versions of a melody (cosine cost)")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def soft_dtw_section(out: pathlib.Path) -> list[str]:
    x, y = two_versions()
    C = sdtw.costs.cosine(x, y)
    expected_alignment_figure(C, out / "expected_alignment.png")
    hard = float(sdtw.dtw(C))
    rows = ["| gamma | SDTW | SDTW - DTW | sharp SDTW |", "|---|---|---|---|"]
    for gamma in TABLE_GAMMAS:
        soft = float(sdtw.soft_dtw(C, gamma))
        sharp = float(sdtw.sharp_soft_dtw(C, gamma))
        rows.append(f"| {gamma:g} | {soft:.4f} | {soft - hard:.4f} | {sharp:.4f} |")
    return [
        "## Soft-DTW explained",
        "",
        f"Two versions of a melody ({x.shape[0]} and {y.shape[0]} chroma frames at 10 Hz), cosine cost.",
        f"DTW cost: {hard:.3f}. Soft-DTW approaches it from below as gamma -> 0; sharp soft-DTW",
        "(the cost of the expected alignment) from above.",
        "",
        *rows,
        "",
        "![expected alignment](expected_alignment.png)",
        "",
    ]


def most_warped_pair(corpus: Corpus):
    """The two versions of one piece whose durations differ most (ratio): the example that shows warping."""
    pairs = [(a, b) for piece in corpus.pieces for i, a in enumerate(corpus.versions_of(piece))
             for b in corpus.versions_of(piece)[i + 1:]]
    return max(pairs, key=lambda pair: max(pair[0].duration_s, pair[1].duration_s)
               / min(pair[0].duration_s, pair[1].duration_s))


def synchronization_section(out: pathlib.Path, corpus: Corpus, config: sync.SyncConfig, *,
                            results: list | None = None) -> list[str]:
    """Beat errors of full-resolution and multiscale DTW with ``config`` (``conf/sync``), and a figure;
    one record per row appended to ``results``."""
    full = dataclasses.replace(config, multiscale=False)
    rate_hz = config.rate_hz
    features = "chroma + DLNCO onsets" if config.onset_weight else "chroma"
    soft = f", expected path at gamma {full.soft_gamma:g}" if full.soft_gamma > 0 else ""
    configs = {
        f"DTW on {features} ({rate_hz:g} Hz{soft})": full,
        f"multiscale DTW ({config.coarse_rate_hz:g} Hz guide, {config.band_radius_s:g} s band{soft} in every tile)":
            dataclasses.replace(config, multiscale=True),
    }
    anchors = (f"; the path straight between the strong onsets of A, anchor_threshold {config.anchor_threshold:g}"
               if config.anchor_threshold > 0 else "")
    errors = sync.corpus_beat_errors(corpus, configs, progress=True)
    rows = ["| method | mean (ms) | median (ms) | <= 50 ms | <= 100 ms | <= 200 ms |", "|---|---:|---:|---:|---:|---:|"]
    for name, errs in errors.items():
        s = sync.beat_error_stats(errs)
        if results is not None:
            results.append({"table": "synchronization", "method": name, "beats": len(errs),
                            **{key: round(float(value), 2) for key, value in s.items()}})
        rows.append(
            f"| {name} | {s['mean_ms']:.1f} | {s['median_ms']:.1f} | {s['within_50ms_pct']:.1f}% "
            f"| {s['within_100ms_pct']:.1f}% | {s['within_200ms_pct']:.1f}% |"
        )
    a, b = most_warped_pair(corpus)
    x = sync.features.prepare_audio(a.load_audio(), a.sample_rate, full)
    y = sync.features.prepare_audio(b.load_audio(), b.sample_rate, full)
    path = sync.features.align_prepared(x, y, full).path
    sync.plot_alignment(x.features, y.features, path, rate_hz, out / "synchronization.png",
                        labels=(a.version_id, b.version_id))
    return [
        "## Music synchronization",
        "",
        f"{len(corpus.pieces)} test pieces ({', '.join(corpus.pieces)}), {len(corpus.versions)} recordings "
        f"({corpus.total_seconds / 60:.1f} minutes; `report.sync_per_collection`).",
        "Absolute error at every beat of the score, over every pair of versions of each piece",
        "(and each version against its score), against the exact ground truth of the renderer.",
        f"Settings: `conf/sync` ({features}; silence more than {config.silence_db:g} dB below the loudest",
        f"frame before and after the music crossed at the music's tempo ratio{anchors}).",
        "`python benchmarks/sync_accuracy.py` compares them with the Sync Toolbox, also on recordings",
        "rendered with General-MIDI SoundFonts.",
        "",
        *rows,
        "",
        f"Figure: {a.version_id} ({a.duration_s:.1f} s) against {b.version_id} ({b.duration_s:.1f} s), "
        "the pair whose tempi differ most.",
        "",
        "![synchronization](synchronization.png)",
        "",
    ]


@dataclasses.dataclass
class ReportConfig:
    """What the report measures beyond the corpus (``conf/report/default.yaml``).

    Attributes:
      dnn_steps: training steps of each chroma network for the theme table (0: no DNN rows); the
        runs are kept in ``out/training`` and resumed.
      embedder_steps: training steps of each shingle embedder (6, 12, 30 dims) for the shingle
        table (0: no trained rows); kept and resumed like the chroma networks.
      theme_normalize: cost normalization of theme matching (``experiments.retrieval.theme.match_theme``).
      theme_soundfont_versions: versions of every test piece also rendered with a General-MIDI
        SoundFont for a second theme table, where FluidSynth is installed (0: none).
      sync_per_collection: the synchronization table uses the first this many test pieces of every
        collection (composer; ``None``: all).
      matching_pieces, identification_pieces: the audio matching and identification tables use
        the first this many test pieces (``None``: all); the theme and shingle tables use every test piece.
      index_sizes: database sizes of the query-time-vs-index-size table.
      identification_durations: clip lengths in seconds of the audio identification table.
      identification_per_recording: clips cut from every recording for it.
      sheet_steps: training steps of the sheet-audio embedder (0: no sheet music section).
      sheet_degraded_pieces: the first this many engraved test pieces are also followed on
        scan-like pages (``None``: all).
    """

    dnn_steps: int = 400
    embedder_steps: int = 400
    theme_normalize: str = "query"
    theme_soundfont_versions: int = 1
    sync_per_collection: int | None = 1
    matching_pieces: int | None = 8
    identification_pieces: int | None = 6
    index_sizes: tuple[int, ...] = (1_000, 4_000, 16_000)
    identification_durations: tuple[float, ...] = (2.0, 5.0, 10.0)
    identification_per_recording: int = 6
    sheet_steps: int = 1000
    sheet_degraded_pieces: int | None = 12


register_schemas()
ConfigStore.instance().store(group="report", name="report_schema", node=ReportConfig)


class ConfigError(ValueError):
    """An option the report cannot run with (one line on stderr, exit status 2)."""


def check(options: ReportConfig, data: str, debug: str | None, record: bool) -> None:
    for name in ("dnn_steps", "embedder_steps", "sheet_steps"):
        if (value := getattr(options, name)) < 0:
            raise ConfigError(f"report.{name} must be >= 0, got {value}")
    if options.theme_normalize not in theme.NORMALIZATIONS:
        raise ConfigError(f"report.theme_normalize must be one of {theme.NORMALIZATIONS}, "
                          f"got {options.theme_normalize!r}")
    if options.theme_soundfont_versions < 0:
        raise ConfigError(f"report.theme_soundfont_versions must be >= 0, got {options.theme_soundfont_versions}")
    for name in ("sync_per_collection", "matching_pieces", "identification_pieces", "sheet_degraded_pieces"):
        if (value := getattr(options, name)) is not None and value < 1:
            raise ConfigError(f"report.{name} must be >= 1 or null (every test piece), got {value}")
    if min(options.index_sizes, default=1) < 1 or min(options.identification_durations, default=1) <= 0:
        raise ConfigError("report.index_sizes and report.identification_durations must be positive")
    if data == "synthetic":
        raise ConfigError("data=synthetic holds training examples, not recordings: use data=small, tiny or full")
    if debug and record:
        raise ConfigError(f"debug={debug} tables mean nothing: they are not recorded")


def record_report(report: pathlib.Path) -> None:
    """Copy the report, its figures and results.json into docs/results/ and refresh the README's include blocks."""
    provenance.RESULTS.mkdir(parents=True, exist_ok=True)
    for path in [*report.parent.glob("*.png"), report.parent / "results.json"]:
        shutil.copy(path, provenance.RESULTS / path.name)
    shutil.copy(report, provenance.RESULTS / "report.md")
    provenance.update_readme()
    print(f"recorded in {provenance.RESULTS}")


def split_note(corpus: Corpus) -> list[str]:
    counts = {split: len(corpus.split_pieces(split)) for split in ("train", "val", "test")}
    test = corpus.subset("test")
    return [
        "## Corpus",
        "",
        f"Corpus `{corpus.config.name}`: {len(corpus.pieces)} pieces, {len(corpus.versions)} recordings, "
        f"{corpus.total_seconds / 60:.0f} minutes of audio rendered from music21 scores. Split by piece "
        f"(`data.split`): {counts['train']} train, {counts['val']} val and {counts['test']} test pieces. "
        "Networks, PCA and thresholds fit on train pieces (networks select on val); every table of the report is "
        f"computed on test pieces only ({len(test.versions)} recordings, {test.total_seconds / 60:.0f} minutes).",
        "",
    ]


def results_document(corpus: Corpus, rows: list[dict], command: str, seconds: float,
                     section_seconds: dict[str, float]) -> dict:
    """The report's figures as data (``results.json``): provenance, the split, one record per table row."""
    return {
        "commit": provenance.commit(), "machine": provenance.machine(), "command": command,
        "seconds": round(seconds, 1), "section_seconds": {k: round(v, 1) for k, v in section_seconds.items()},
        "data": {"name": corpus.config.name, "recordings": len(corpus.versions),
                 **{f"{split}_pieces": corpus.split_pieces(split) for split in ("train", "val", "test")}},
        "rows": rows,
    }


def build_report(cfg: DictConfig, debug: str | None, command: str) -> pathlib.Path:
    """Every section into ``cfg.out``; returns the path of ``report.md``."""
    options = from_config(ReportConfig, cfg.report)
    data = HydraConfig.get().runtime.choices["data"]
    check(options, data, debug, cfg.record)
    out = pathlib.Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    timings: dict[str, float] = {}
    rows: list[dict] = []

    def timed(name: str, section, *args, **kwargs) -> list[str]:
        began = time.perf_counter()
        lines = section(*args, **kwargs)
        timings[name] = time.perf_counter() - began
        return lines

    corpus = timed("corpus", build_corpus, from_config(CorpusConfig, cfg.data))
    test = corpus.subset("test")
    lines = ["# Report", "", *split_note(corpus)]
    lines += timed("soft-DTW", soft_dtw_section, out)
    sync_pieces = corpus.subset("test", per_collection=options.sync_per_collection)
    lines += timed("synchronization", synchronization_section, out, sync_pieces,
                   from_config(sync.SyncConfig, cfg.sync), results=rows)
    # tiny has 8 validation windows: batches of 4 (debug=smoke sets them too).
    # The networks train on the report's corpus: its command-line data options go along.
    overrides = (f"debug={debug}",) if debug else ("trainer.batch_size=4",) if data == "tiny" else ()
    overrides += tuple(o for o in HydraConfig.get().overrides.task if o.lstrip("+~").startswith("data."))
    learned, note = {}, ""
    if options.dnn_steps > 0:
        learned = timed("training", dnn_chroma.trained_extractors, data, options.dnn_steps, out / "training",
                        overrides=overrides)
        note = (f"DNN rows: the chroma CNN trained {options.dnn_steps} steps on the train pieces, the checkpoint "
                "with the best validation score on the val pieces "
                "(`python -m experiments.train experiment=<ctc|linear_scaling|strong|soft_dtw>_chroma`).")
    lines += timed("theme retrieval", retrieval_report.theme_section, out, test, learned, note,
                   normalize=options.theme_normalize, soundfont_versions=options.theme_soundfont_versions,
                   results=rows)
    lines += timed("identification", retrieval_report.identification_section, out,
                   corpus.subset("test", options.identification_pieces),
                   durations=options.identification_durations, per_recording=options.identification_per_recording,
                   results=rows)
    lines += timed("audio matching", retrieval_report.audio_matching_section, out,
                   corpus.subset("test", options.matching_pieces), results=rows)
    rate_hz = retrieval_report.shingle_rate(corpus)  # one rate for the embedders and the table
    embedders = {}
    if options.embedder_steps > 0:
        embedders = timed("shingle embedders", shingle_embedding.trained_embeddings, data, options.embedder_steps,
                          out / "training", rate_hz=rate_hz, overrides=overrides)
    lines += timed("shingles", retrieval_report.shingle_section, out, test, train=corpus.subset("train"),
                   learned=embedders, rate_hz=rate_hz, results=rows)
    lines += timed("index scale", retrieval_report.index_scale_section, out, sizes=options.index_sizes)
    if options.sheet_steps > 0:
        embedder = timed("sheet-audio model", sheet_report.trained_embedder, data, options.sheet_steps,
                         out / "training", overrides=overrides)
        note = (f"The sheet-audio embedder trained {options.sheet_steps} steps on pairs of the train pieces, "
                "the checkpoint with the best validation score on the val pieces "
                "(`python -m experiments.train experiment=sheet_audio`).")
        lines += timed("sheet music", sheet_report.sheet_section, out, test, embedder, note,
                       degraded_pieces=options.sheet_degraded_pieces, results=rows)
    seconds = time.perf_counter() - start
    spent = ", ".join(f"{name} {t:.0f} s" for name, t in timings.items())
    lines += ["## Run", "", provenance.stamp(command, seconds), "", f"Time by section: {spent}.", ""]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    results = results_document(corpus, rows, command, seconds, timings)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(f"Report written to {report} (figures as data: {out / 'results.json'})")
    if cfg.record:
        record_report(report)
    return report


@hydra.main(version_base="1.3", config_path="../conf", config_name="reproduce")
def main(cfg: DictConfig) -> pathlib.Path:
    """Hydra entry point: a bad option ends with one line on stderr and exit status 2."""
    overrides = [o for o in HydraConfig.get().overrides.task if o != "record=true"]
    command = " ".join(["python -m experiments.reproduce", *overrides])
    try:
        return build_report(cfg, HydraConfig.get().runtime.choices.get("debug"), command)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    workers.use_all_cores()  # renders and features over every core (this module is guarded)
    main()
