"""The report's sheet-music section: score following and cross-modal retrieval on the test pieces."""

from __future__ import annotations

import pathlib
from typing import Mapping

import numpy as np

from experiments import features as feats
from experiments.sheet import layout
from experiments.sheet.cli import plot_following
from experiments.sheet.data import PieceSheet, corpus_sheets, onset_columns, spectrogram
from experiments.sheet.engrave import Sheet
from experiments.sheet.evaluate import (degrade, following_errors, following_summary, learned_follower,
                                        linear_follower, retrieval_summary)
from experiments.sheet.follow import Embedder, follow

__all__ = ["degraded_sheet", "sheet_section", "trained_embedder"]

def trained_embedder(data: str, steps: int, run_root: pathlib.Path, overrides=()) -> Embedder:
    """Train (or resume) the sheet-audio model ``steps`` steps on corpus ``data``; its best checkpoint."""
    from experiments.retrieval.dnn_chroma import train_run
    from experiments.sheet.evaluate import load_embedder

    return load_embedder(train_run("sheet_audio", data, steps, run_root, overrides))


def degraded_sheet(sheet: PieceSheet, rng: np.random.Generator, height: int) -> PieceSheet:
    """``sheet`` with every page degraded like a scan (:func:`~experiments.sheet.evaluate.degrade`),
    its systems found again (deskewed) and its truth moved with the pages.

    Raises:
      ValueError: when the degraded pages lose a staff or a note head falls off every system.
    """
    pages, notes = [], sheet.sheet.notes.copy()
    for k, page in enumerate(sheet.sheet.pages):
        image, to_degraded = degrade(page, rng)
        on = notes[:, 2] == k
        notes[on, 3], notes[on, 4] = to_degraded(notes[on, 3], notes[on, 4])
        pages.append(image)
    moved = Sheet(tuple(pages), notes, ())
    strip = layout.unroll(pages, layout.find_systems(pages), height)
    return PieceSheet(moved, strip, sheet.onsets_q, onset_columns(moved, strip, sheet.onsets_q))


def _pct(value) -> str:
    mean, (low, high) = value
    return f"{100 * mean:.1f}% [{100 * low:.0f}, {100 * high:.0f}]"


def _following_rows(name: str, summary: Mapping) -> str:
    return (f"| {name} | {summary['recordings']} | {summary['onsets']} | {_pct(summary['within_0.5s'])} | "
            f"{_pct(summary['within_1s'])} | {summary['median_s']:.2f} | {_pct(summary['right_system'])} | "
            f"{summary['median_px']:.0f} |")


def _figure(out: pathlib.Path, embedder: Embedder, sheets: Mapping[str, PieceSheet], versions,
            spectrograms: Mapping[str, np.ndarray]) -> str:
    """The followed position on the pages of the test piece with the most systems (its first recording)."""
    piece = max(sorted(sheets), key=lambda p: (len(sheets[p].strip.systems), p))
    version = next(v for v in versions if v.piece_id == piece)
    sheet = sheets[piece]
    following = follow(embedder, sheet.strip, spectrograms[version.version_id])
    times = np.arange(0.0, following.times_s[-1] + 1e-9, 1.0)
    truth = sheet.column_of(version.time_map.to_quarters(times))
    plot_following(sheet.sheet.pages, sheet.strip, following, out / "score_following.png",
                   truth_columns=truth, title=version.version_id)
    return version.version_id


def sheet_section(out: pathlib.Path, corpus, embedder: Embedder, note: str, *, degraded_pieces: int | None = 12,
                  results: list | None = None) -> list[str]:
    """Score following on the engraved and on scan-like pages, retrieval in both directions, a figure.

    ``corpus``: the test pieces; ``note``: how the model was trained. ``degraded_pieces``: the first
    this many engraved test pieces are also degraded (None: all).
    """
    from experiments.retrieval.metrics import bootstrap_interval
    from experiments.retrieval.report import result_record

    rate = embedder.config.rate_hz
    sheets, skipped = corpus_sheets(corpus, corpus.pieces, embedder.config.height)
    versions = [v for v in corpus.versions if v.piece_id in sheets]
    values = feats.corpus_features(corpus, embedder.config.features, progress=False)
    spectrograms = {v.version_id: spectrogram(values[v.version_id]) for v in versions}
    learned = learned_follower(embedder)
    errors = {"learned embeddings, soft-DTW path": following_errors(learned, sheets, versions, spectrograms),
              "constant speed (baseline)": following_errors(linear_follower(rate), sheets, versions, spectrograms)}
    summaries = {name: following_summary(list(by_version.values())) for name, by_version in errors.items()}
    rng = np.random.default_rng(0)
    degraded, lost = {}, []
    for piece in sorted(sheets)[:degraded_pieces]:
        try:
            degraded[piece] = degraded_sheet(sheets[piece], rng, embedder.config.height)
        except ValueError as error:
            lost.append(f"{piece} ({error})")
    if degraded:
        scanned = following_errors(learned, degraded, versions, spectrograms)
        clean = [errors["learned embeddings, soft-DTW path"][version_id] for version_id in scanned]  # run above
        pieces = f"{len(degraded)} piece{'s' if len(degraded) != 1 else ''}"
        summaries[f"same, {pieces}, engraved pages"] = following_summary(clean)
        summaries[f"same, {pieces}, scan-like pages"] = following_summary(list(scanned.values()))
    retrieval = retrieval_summary(embedder, sheets, versions, spectrograms)
    shown = _figure(out, embedder, sheets, versions, spectrograms)

    for name, summary in summaries.items():
        if results is not None:
            results.append(result_record("score following", name, summary["onsets"], summary["recordings"],
                                         within_0_5s=summary["within_0.5s"], within_1s=summary["within_1s"],
                                         right_system=summary["right_system"], median_s=summary["median_s"],
                                         median_px=summary["median_px"]))
    lines = [
        "## Sheet music and audio",
        "",
        f"The test pieces engraved with Verovio (every note head's position and score time known), their "
        f"systems found in the page images and unrolled; {len(sheets)} of {len(corpus.pieces)} test pieces "
        f"({len(versions)} recordings; {len(skipped)} left out where Verovio's reading of the score's time "
        f"differs from the recordings'). {note}",
        "",
        "**Score following**: the position followed at the true time of every note onset, read back as "
        "score time and audio time (seconds off) and as page x on the right system (pixels off; pages "
        "are 840 x 1188 pixels, about 100 dpi). Shares are means over recordings [95% bootstrap interval "
        "over recordings]. Scan-like pages: blurred (1 px), rotated by up to 1.5 degrees, scaled to 80%, "
        "grey noise (std 12); deskewed and their systems found again"
        + (f"; lost: {', '.join(lost)}" if lost else "") + ".",
        "",
        "| method | recordings | onsets | <= 0.5 s | <= 1 s | median s | right system | median px |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *(_following_rows(name, summary) for name, summary in summaries.items()),
        "",
        f"![score following](score_following.png)\n\n*The followed position every second on the pages of "
        f"`{shown}` (coloured by time); black triangles: the true positions.*",
        "",
        "**Cross-modal retrieval** on snippets at note onsets (8 per piece or recording): a score snippet "
        "ranks the test recordings (relevant: the recordings of its piece; a recording scores by its "
        "best audio snippet, every 0.5 s); an audio snippet ranks the test pieces (a piece scores by its "
        "best score snippet, every 8 strip pixels). Position error: the best snippet within the right "
        "item against the truth.",
        "",
        "| direction | queries | items | Top-1 | MAP | median position error (s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for direction, label, items in (("sheet_to_audio", "score snippet -> recordings", len(versions)),
                                    ("audio_to_sheet", "audio snippet -> pieces", len(sheets))):
        r = retrieval[direction]
        top1, ap = (float(np.mean(r["top1"])), bootstrap_interval(r["top1"])), \
            (float(np.mean(r["ap"])), bootstrap_interval(r["ap"]))
        lines.append(f"| {label} | {len(r['top1'])} | {items} | {_pct(top1)} | {_pct(ap)} | "
                     f"{np.median(r['error_s']):.2f} |")
        if results is not None:
            results.append(result_record("sheet retrieval", label, len(r["top1"]), items, top1=top1, map=ap,
                                         median_error_s=float(np.median(r["error_s"]))))
    return lines + [""]
