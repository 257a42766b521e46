"""The command line: two files or a CSV of pairs -> corresponding times (CSV), a figure, a summary;
or sheet music pages and a recording -> the followed position on the pages (``--sheet``)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from experiments.sync.dtw import CHROMA, block_mean
from experiments.sync.config import SyncConfig, default_config, path_to_seconds
from experiments.sync.features import Prepared, align_prepared, prepare_audio, prepare_score, score_events

__all__ = ["SyncInputError", "main", "plot_alignment", "positive_number", "synchronize_files",
           "synchronize_pairs", "write_times_csv"]


def _is_score(path: Path) -> bool:
    from experiments.data.loaders import SCORE_EXTENSIONS

    return path.suffix.lower() in SCORE_EXTENSIONS


MIN_SECONDS = 1.0  # shorter inputs cannot be synchronized meaningfully
# Above this many cells the command line switches to multiscale DTW: two 80 s recordings at 100 Hz,
# 8 s and 2 GiB for the full-resolution soft path on 2 cores. Both give the same soft path where the
# band holds it (docs/results/sync_accuracy.md, python benchmarks/sync_accuracy.py); below it, full
# resolution needs no band.
AUTO_CELLS = 64e6


class SyncInputError(ValueError):
    """A problem with the user's input, reported in one line without a traceback."""


def _prepared(path: Path, sr: int, config: SyncConfig, quantized_midi: bool = False) -> tuple[Prepared, str]:
    """Synchronization features of a score's notes or of audio at ``config.rate_hz`` with their active frames,
    and "score" or "audio".

    Raises:
      SyncInputError: an unreadable or empty file, or one shorter than ``MIN_SECONDS``.
    """
    from experiments.data.loaders import AudioLoadError, ScoreLoadError, load_audio, load_score

    try:
        if _is_score(path):
            piece = load_score(path, quantized_midi=quantized_midi)
            seconds = piece.end_q * 60.0 / piece.qpm
        else:
            audio = load_audio(path, sample_rate=sr)
            seconds = len(audio) / sr
    except (AudioLoadError, ScoreLoadError) as error:
        raise SyncInputError(str(error)) from None
    if seconds < MIN_SECONDS:  # checked before any analysis window meets a too short signal
        raise SyncInputError(f"{path} is {seconds:.2f} s long; synchronization needs at least {MIN_SECONDS:g} s")
    if _is_score(path):
        return prepare_score(score_events(piece), seconds, config), "score"
    return prepare_audio(audio, sr, config), "audio"


def plot_alignment(x: np.ndarray, y: np.ndarray, path: np.ndarray, rate_hz: float, out_png: Path,
                   *, labels=("A", "B"), max_side: int = 1500) -> None:
    """Save the cosine cost matrix (block-averaged to at most ``max_side`` frames a side) with the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    factor = max(1, -(-max(len(x), len(y)) // max_side))
    xs, ys = block_mean(x[:, :CHROMA], factor), block_mean(y[:, :CHROMA], factor)
    xs = xs / np.maximum(np.linalg.norm(xs, axis=1, keepdims=True), 1e-8)
    ys = ys / np.maximum(np.linalg.norm(ys, axis=1, keepdims=True), 1e-8)
    cost = 1.0 - xs @ ys.T
    step = factor / rate_hz
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.imshow(cost, origin="lower", aspect="auto", cmap="gray_r",
              extent=(0, len(ys) * step, 0, len(xs) * step))
    times = path_to_seconds(path, rate_hz)
    ax.plot(times[:, 1], times[:, 0], color="tab:red", linewidth=1.2, label="warping path")
    ax.set_xlabel(f"{labels[1]} (s)")
    ax.set_ylabel(f"{labels[0]} (s)")
    ax.set_title("Cosine cost matrix and optimal warping path")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def positive_number(kind: type):
    """argparse type: a ``kind`` (int or float) > 0; NaN refused."""

    def parse(text: str):
        value = kind(text)
        if not value > 0:  # also refuses NaN
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def _writable_folder(folder: Path) -> None:
    """Create ``folder`` and check that a file can be written there, before any work."""
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise SyncInputError(f"cannot write to --out {folder}: {error.strerror or error}") from None


def write_times_csv(path: Path, times: np.ndarray, names: tuple[str, str]) -> None:
    """Corresponding times in seconds, one row per path point, columns ``time_<name>_s`` (quoted as needed)."""
    import csv

    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([f"time_{name}_s" for name in names])
        writer.writerows([f"{a:.3f}", f"{b:.3f}"] for a, b in times)


def synchronize_files(a: Path, b: Path, out: Path, config: SyncConfig, *, sample_rate: int = 22050,
                      multiscale: bool | None = None, auto_cells: float = AUTO_CELLS, quantized_midi: bool = False,
                      extra: Mapping | None = None) -> dict:
    """Align two files (audio or score) and write ``sync.csv``, ``sync.png`` and ``summary.json`` to ``out``
    (the summary last: it marks the pair as done).

    ``multiscale=None`` chooses it above ``auto_cells`` cells; ``extra`` is added to the summary. Returns the summary.

    Raises:
      SyncInputError: an unreadable, empty, silent or too short input, or an unwritable ``out``.
    """
    _writable_folder(out)
    prepared_a, kind_a = _prepared(a, sample_rate, config, quantized_midi)
    prepared_b, kind_b = _prepared(b, sample_rate, config, quantized_midi)
    x, y = prepared_a.features, prepared_b.features
    if multiscale is None:
        multiscale = len(x) * len(y) > auto_cells
    config = dataclasses.replace(config, multiscale=multiscale)
    result = align_prepared(prepared_a, prepared_b, config)
    write_times_csv(out / "sync.csv", result.times(), (a.stem, b.stem))
    plot_alignment(x, y, result.path, config.rate_hz, out / "sync.png", labels=(a.name, b.name))
    summary = {"a": str(a), "b": str(b), "kinds": [kind_a, kind_b], "frames": [len(x), len(y)],
               "config": dataclasses.asdict(config), "seconds": result.seconds, "cells": result.cells,
               "path_length": len(result.path), **(extra or {})}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


PAIR_COLUMNS = ("row", "a", "b", "folder", "status", "seconds", "path_length")


def read_pairs(pairs_csv: Path) -> list[tuple[Path, Path]]:
    """The ``(a, b)`` rows of a pairs CSV, relative paths taken from the CSV's folder."""
    import csv

    if not pairs_csv.is_file():
        raise SyncInputError(f"--pairs {pairs_csv} does not exist")
    with open(pairs_csv, newline="") as handle:
        reader = csv.DictReader(handle)
        if not {"a", "b"} <= set(reader.fieldnames or ()):
            raise SyncInputError(f"--pairs {pairs_csv} needs the columns a,b (found: {reader.fieldnames})")
        rows = [(row["a"], row["b"]) for row in reader]
    if not rows:
        raise SyncInputError(f"--pairs {pairs_csv} lists no pair")
    return [(pairs_csv.parent / a.strip(), pairs_csv.parent / b.strip()) for a, b in rows]


def _pair_folder(out: Path, row: int, a: Path, b: Path) -> Path:
    return out / f"{row:04d}-{a.stem}-{b.stem}"


def synchronize_pairs(pairs_csv: Path, out: Path, config: SyncConfig, **options) -> list[dict]:
    """Align every pair of ``pairs_csv`` in this process (see the module docstring); ``options`` go to
    :func:`synchronize_files`. ``DIR/summary.csv`` is rewritten after each pair, so an interrupted run
    leaves it complete up to there.

    Returns:
      One row per pair: ``PAIR_COLUMNS``; status ``ok``, ``done before`` or ``error: <message>``.
    """
    import csv

    pairs = read_pairs(pairs_csv)
    _writable_folder(out)
    request = lambda a, b: json.loads(json.dumps([str(a), str(b), dataclasses.asdict(config), options]))  # noqa: E731
    rows = []
    for row, (a, b) in enumerate(tqdm(pairs, desc="pairs", unit="pair"), 1):
        folder = _pair_folder(out, row, a, b)
        entry = {"row": row, "a": str(a), "b": str(b), "folder": str(folder)}
        done = folder / "summary.json"
        previous = json.loads(done.read_text()) if done.is_file() and (folder / "sync.csv").is_file() else None
        if previous and previous.get("request") == request(a, b):
            rows.append({**entry, "status": "done before", "seconds": previous["seconds"],
                         "path_length": previous["path_length"]})
        else:
            try:
                summary = synchronize_files(a, b, folder, config, extra={"request": request(a, b)}, **options)
                rows.append({**entry, "status": "ok", "seconds": round(summary["seconds"], 3),
                             "path_length": summary["path_length"]})
            except SyncInputError as error:
                rows.append({**entry, "status": f"error: {error}", "seconds": "", "path_length": ""})
        with open(out / "summary.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=PAIR_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (2 for bad input, with one line on stderr; 1 when
    some pairs of ``--pairs`` failed)."""
    import sys

    defaults = default_config()
    parser = argparse.ArgumentParser(prog="python -m experiments.sync", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("a", type=Path, nargs="?", help="audio file or score (MIDI/MusicXML)")
    parser.add_argument("b", type=Path, nargs="?", help="audio file or score")
    parser.add_argument("--pairs", type=Path, default=None,
                        help="CSV with columns a,b: align every pair in one process (instead of A B)")
    parser.add_argument("--sheet", type=Path, default=None, metavar="PAGES",
                        help="a folder of page images (read in name order), a PDF or one image: follow the "
                             "recording A on it")
    parser.add_argument("--model", type=Path, default=None,
                        help="with --sheet: run folder of a trained sheet-audio model (default: the newest "
                             "under reports/latest/training and logs/sheet_audio/runs)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--rate", type=positive_number(float), default=defaults.rate_hz, help="feature rate in Hz")
    parser.add_argument("--feature", default=defaults.feature, choices=("chroma_cqt", "chroma_stft", "cens"))
    parser.add_argument("--sample-rate", type=positive_number(int), default=22050,
                        help="audio is resampled to this rate")
    parser.add_argument("--quantized-midi", action="store_true",
                        help="read MIDI as notation (onsets moved to the beat grid) instead of at its note times")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--multiscale", action="store_true", help="memory-bounded multiscale DTW")
    mode.add_argument("--full", action="store_true", help="full-resolution DTW")
    parser.add_argument("--auto-cells", type=positive_number(float), default=AUTO_CELLS,
                        help="without --multiscale/--full, use multiscale above this many cells")
    args = parser.parse_args(argv)
    if args.sheet is not None:
        if args.a is None or args.b is not None or args.pairs is not None:
            parser.error("--sheet PAGES takes one recording: "
                         "python -m experiments.sync --sheet PAGES recording.wav --out DIR")
        return _follow_sheet(args)
    two_files = args.a is not None and args.b is not None
    if (args.pairs is None and not two_files) or (args.pairs is not None and args.a is not None):
        parser.error("give two files A B, or --pairs CSV")
    # A flag decides; without one, multiscale where conf/sync says so, else chosen by size (--auto-cells).
    if args.multiscale or args.full:
        multiscale = args.multiscale
    else:
        multiscale = True if defaults.multiscale else None
    options = {"sample_rate": args.sample_rate, "multiscale": multiscale, "auto_cells": args.auto_cells,
               "quantized_midi": args.quantized_midi}
    config = dataclasses.replace(defaults, feature=args.feature, rate_hz=args.rate)
    try:
        if args.pairs is not None:
            rows = synchronize_pairs(args.pairs, args.out, config, **options)
        else:
            summary = synchronize_files(args.a, args.b, args.out, config, **options)
    except SyncInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.pairs is not None:
        failed = [r for r in rows if r["status"].startswith("error")]
        for r in failed:
            print(f"pair {r['row']} ({r['a']}, {r['b']}) failed: {r['status'][len('error: '):]}", file=sys.stderr)
        print(f"{len(rows) - len(failed)} of {len(rows)} pairs aligned; see {args.out / 'summary.csv'}")
        return 1 if failed else 0
    print(f"wrote {args.out / 'sync.csv'} and {args.out / 'sync.png'} ({summary['path_length']} path points, "
          f"{summary['seconds']:.2f} s, {'multiscale' if summary['config']['multiscale'] else 'full'})")
    return 0


def _follow_sheet(args) -> int:
    import sys

    from experiments.data import AudioLoadError
    from experiments.retrieval.dnn_chroma import NoTrainedNetworkError
    from experiments.sheet.cli import follow_files
    from experiments.sheet.evaluate import find_embedder

    try:
        summary = follow_files(args.sheet, args.a, args.out, find_embedder(args.model), sample_rate=args.sample_rate)
    except (NoTrainedNetworkError, AudioLoadError, FileNotFoundError, ValueError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.out / 'follow.csv'} and {args.out / 'follow.png'} ({summary['pages']} pages, "
          f"{summary['systems']} systems, {summary['frames']} frames, {summary['seconds']:.1f} s)")
    return 0
