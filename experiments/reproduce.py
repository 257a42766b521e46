"""Build the project's report: every table and figure, into one folder.

    python -m experiments.reproduce                 # the default corpus (see README for its run time)
    python -m experiments.reproduce --out reports/mine
    python -m experiments.reproduce --smoke         # does everything run? 2 pieces, 2 training steps
    python -m experiments.reproduce --record        # also save it, stamped, as docs/results/report.md

Sections:
- Soft-DTW explained: the expected alignment of two versions of a melody for
  gamma = 0, 0.1, 1, 10, 100 (figure), and how the soft-DTW value approaches
  DTW as gamma -> 0, down to gamma = 0.001 (table).
- Music synchronization on the embedded corpus (``--data small``, or ``full``):
  beat error of DTW on chroma, multiscale DTW, and the linear baseline, for
  every pair of versions of each piece and for score-to-audio (table), and
  the cost matrix and path of the pair whose tempi differ most (figure).
- Theme retrieval with standard, enhanced and learned chroma (the chroma CNN
  trained ``--dnn-steps`` steps with CTC, linear scaling, strong alignment and
  soft-DTW; the runs are kept in OUT/training and resumed), audio matching,
  shingle retrieval (tables beside the
  seed's, matching-curve and P@1/MAP-vs-dimension figures) and query time vs
  index size for brute force, KD-tree and HNSW (:mod:`experiments.retrieval.report`).
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import shutil
import sys
import time

import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

import sdtw  # noqa: E402
from experiments import provenance  # noqa: E402
from experiments import sync  # noqa: E402
from experiments.data import build_corpus, corpus_config  # noqa: E402
from experiments.data.corpus import CONF_DATA, Corpus, CorpusConfig  # noqa: E402
from experiments.retrieval import dnn_chroma  # noqa: E402
from experiments.retrieval import report as retrieval_report  # noqa: E402

GAMMAS = (0.0, 0.1, 1.0, 10.0, 100.0)  # figure panels (0: the DTW path)
TABLE_GAMMAS = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)
# --smoke: the corpus cut as `debug=smoke` cuts it for training (so both share one cache), 2 training
# steps, small indexes.
SMOKE_CORPUS = dict(OmegaConf.load(pathlib.Path(__file__).parents[1] / "conf/debug/data/smoke_small.yaml"))
SMOKE_DNN_STEPS = 2
CORPORA = sorted(p.stem for p in CONF_DATA.glob("*.yaml") if p.stem != "synthetic")


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


def synchronization_section(out: pathlib.Path, corpus: Corpus) -> list[str]:
    rate_hz = 20.0
    configs = {
        f"DTW on chroma ({rate_hz:g} Hz)": sync.SyncConfig(rate_hz=rate_hz),
        "multiscale DTW (2 Hz guide, 2 s band)": sync.SyncConfig(rate_hz=rate_hz, multiscale=True),
    }
    errors = sync.corpus_beat_errors(corpus, configs, progress=True)
    rows = ["| method | mean (ms) | median (ms) | <= 50 ms | <= 100 ms | <= 200 ms |", "|---|---:|---:|---:|---:|---:|"]
    for name, errs in errors.items():
        s = sync.beat_error_stats(errs)
        rows.append(
            f"| {name} | {s['mean_ms']:.1f} | {s['median_ms']:.1f} | {s['within_50ms_pct']:.1f}% "
            f"| {s['within_100ms_pct']:.1f}% | {s['within_200ms_pct']:.1f}% |"
        )
    a, b = most_warped_pair(corpus)
    config = next(iter(configs.values()))
    x = sync.audio_chroma(a.load_audio(), a.sample_rate, config)
    y = sync.audio_chroma(b.load_audio(), b.sample_rate, config)
    sync.plot_alignment(x, y, sync.align(x, y, config).path, rate_hz, out / "synchronization.png",
                        labels=(a.version_id, b.version_id))
    return [
        "## Music synchronization",
        "",
        f"Embedded corpus `{corpus.config.name}`: {len(corpus.pieces)} pieces, {len(corpus.versions)} versions, "
        f"{corpus.total_seconds / 60:.1f} minutes of audio rendered from music21 scores.",
        "Absolute error at every beat of the score, over every pair of versions of each piece",
        "(and each version against its score), against the exact ground truth of the renderer.",
        "",
        *rows,
        "",
        f"Figure: {a.version_id} ({a.duration_s:.1f} s) against {b.version_id} ({b.duration_s:.1f} s), "
        "the pair whose tempi differ most.",
        "",
        "![synchronization](synchronization.png)",
        "",
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m experiments.reproduce", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("reports/latest"), help="report folder")
    parser.add_argument("--data", default="small", choices=CORPORA, help="corpus config in conf/data/")
    parser.add_argument("--dnn-steps", type=int, default=100,
                        help="training steps of each chroma network for the theme table (0: skip the DNN rows); "
                             "runs are kept in OUT/training and resumed")
    parser.add_argument("--smoke", action="store_true",
                        help=f"check that everything runs: the corpus cut to {SMOKE_CORPUS['max_pieces']} pieces, "
                             f"{SMOKE_DNN_STEPS} training steps, small indexes; the tables mean nothing")
    parser.add_argument("--record", action="store_true",
                        help="also save the report and its figures, stamped with commit and machine, in "
                             "docs/results/ (the README includes its tables)")
    args = parser.parse_args(argv)
    if args.dnn_steps < 0:
        parser.error(f"--dnn-steps must be >= 0, got {args.dnn_steps}")
    if args.smoke and args.record:
        parser.error("--smoke tables mean nothing: they are not recorded")
    return args


def report_corpus(data: str, smoke: bool) -> CorpusConfig:
    config = corpus_config(data)
    return dataclasses.replace(config, **SMOKE_CORPUS) if smoke else config


def record(report: pathlib.Path) -> None:
    """Copy the report and its figures into docs/results/ and refresh the README's include blocks."""
    provenance.RESULTS.mkdir(parents=True, exist_ok=True)
    for path in report.parent.glob("*.png"):
        shutil.copy(path, provenance.RESULTS / path.name)
    shutil.copy(report, provenance.RESULTS / "report.md")
    provenance.update_readme()
    print(f"recorded in {provenance.RESULTS}")


def main(argv: list[str] | None = None) -> pathlib.Path:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    corpus = build_corpus(report_corpus(args.data, args.smoke))
    dnn_steps = SMOKE_DNN_STEPS if args.smoke and args.dnn_steps else args.dnn_steps
    lines = ["# Report", ""]
    lines += soft_dtw_section(args.out)
    lines += synchronization_section(args.out, corpus)
    learned, note = {}, ""
    if dnn_steps > 0:
        # tiny has 8 validation windows: batches of 4 (debug=smoke sets them too).
        overrides = ("debug=smoke",) if args.smoke else ("trainer.batch_size=4",) if args.data == "tiny" else ()
        learned = dnn_chroma.trained_extractors(args.data, dnn_steps, args.out / "training", overrides=overrides)
        note = (f"DNN rows: the chroma CNN trained {dnn_steps} steps on this corpus's training versions "
                "(`python -m experiments.train experiment=<ctc|linear_scaling|strong|soft_dtw>_chroma`).")
    lines += retrieval_report.theme_section(args.out, corpus, learned, note)
    identification = {"durations": (2.0, 5.0), "per_recording": 4} if args.smoke else {}
    lines += retrieval_report.identification_section(args.out, corpus, **identification)
    lines += retrieval_report.audio_matching_section(args.out, corpus)
    lines += retrieval_report.shingle_section(args.out, corpus)
    sizes = (500, 2_000) if args.data == "tiny" or args.smoke else (1_000, 4_000, 16_000)
    lines += retrieval_report.index_scale_section(args.out, sizes=sizes)
    command = provenance.command_line("python -m experiments.reproduce", sys.argv[1:] if argv is None else argv)
    lines += ["## Run", "", provenance.stamp(command, time.perf_counter() - start), ""]
    report = args.out / "report.md"
    report.write_text("\n".join(lines))
    print(f"Report written to {report}")
    if args.record:
        record(report)
    return report

if __name__ == "__main__":
    main()
