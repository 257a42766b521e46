"""Score following and cross-modal retrieval measured against the engraving's exact truth.

Every note onset of a test recording has a true strip column (its note heads) and a true audio
time (the recording's time map). Following is scored at those onsets: the strip column followed
at the true audio time, read back as score time and audio time, against the truth -- in
seconds (how far behind or ahead the viewer is) and in pixels on the page.

Retrieval is scored in both directions on snippets at onsets: a score snippet ranks the
recordings (relevant: every recording of its piece) and, within the best, points at a time;
an audio snippet ranks the pieces and points at a strip position.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from experiments.sheet import layout
from experiments.sheet.data import PieceSheet, SnippetConfig
from experiments.sheet.follow import Embedder, Following, follow, linear_following

__all__ = ["OnsetErrors", "degrade", "find_embedder", "following_errors", "following_summary", "load_embedder",
           "retrieval_summary"]

SHEET_COMMAND = "python -m experiments.train experiment=sheet_audio data=small"
SHEET_RUN_ROOTS = (Path("reports/latest/training"), Path("logs/sheet_audio/runs"))  # the report's, the train app's


def load_embedder(run) -> Embedder:
    """The sheet-audio model of a finished training run folder (best checkpoint).

    Raises:
      NoTrainedNetworkError: the folder is not a finished ``sheet_audio`` run (names the command that trains one).
    """
    from experiments.retrieval.dnn_chroma import restore_run

    model, cfg = restore_run(run, "sheet_audio", "sheet-audio embedder", command=SHEET_COMMAND)
    return Embedder(model, SnippetConfig.of_model(cfg.model))


def find_embedder(run=None, option: str = "--model") -> Embedder:
    """The sheet-audio model of ``run``, or of the newest finished run under :data:`SHEET_RUN_ROOTS`.

    Raises:
      NoTrainedNetworkError: there is none; names the command that trains one and ``option``, the
        command-line option that names a run folder instead.
    """
    from experiments.retrieval.dnn_chroma import find_run

    return load_embedder(run or find_run(SHEET_RUN_ROOTS, "sheet_audio", command=SHEET_COMMAND, option=option))


@dataclasses.dataclass(frozen=True)
class OnsetErrors:
    """Errors at the onsets of one recording.

    Attributes:
      seconds: ``(K,)`` |audio time of the followed score position - true audio time|.
      pixels: ``(K,)`` |followed x - true x| in page pixels where the followed position lies on the
        true system, NaN elsewhere.
      right_system: ``(K,)`` bool, the followed position lies on the system of the true one.
    """

    seconds: np.ndarray
    pixels: np.ndarray
    right_system: np.ndarray


def onset_errors(following: Following, sheet: PieceSheet, version) -> OnsetErrors:
    """Score ``following`` of ``version`` at every onset of its piece that sounds in the recording."""
    true_s = version.time_map.to_seconds(sheet.onsets_q)
    inside = (true_s >= 0) & (true_s <= following.times_s[-1])
    true_s, true_columns = true_s[inside], sheet.columns[inside]
    followed = following.column_at(true_s)
    followed_s = version.time_map.to_seconds(sheet.quarters_of(followed))
    strip = sheet.strip
    _, true_x, _, _ = layout.strip_to_page(strip, true_columns)
    _, followed_x, _, _ = layout.strip_to_page(strip, followed)
    right = strip.system[np.round(followed).astype(int).clip(0, strip.width - 1)] == \
        strip.system[np.round(true_columns).astype(int).clip(0, strip.width - 1)]
    return OnsetErrors(np.abs(followed_s - true_s), np.where(right, np.abs(followed_x - true_x), np.nan), right)


Follower = Callable[[PieceSheet, np.ndarray], Following]


def following_errors(follower: Follower, sheets: Mapping[str, PieceSheet], versions,
                     spectrograms: Mapping[str, np.ndarray]) -> dict[str, OnsetErrors]:
    """version id -> the :class:`OnsetErrors` of ``follower`` on it, for every version of a piece in ``sheets``."""
    return {v.version_id: onset_errors(follower(sheets[v.piece_id], spectrograms[v.version_id]), sheets[v.piece_id], v)
            for v in versions if v.piece_id in sheets}


def learned_follower(embedder: Embedder, **options) -> Follower:
    return lambda sheet, spec: follow(embedder, sheet.strip, spec, **options)


def linear_follower(rate_hz: float) -> Follower:
    return lambda sheet, spec: linear_following(sheet.strip, len(spec), rate_hz)


def following_summary(errors: Sequence[OnsetErrors]) -> dict[str, object]:
    """Per recording, the share of onsets within 0.5 s and 1 s and on the right system, then their
    mean over recordings with a 95% bootstrap interval over recordings (onsets of one recording
    are not independent); median seconds and page pixels over all onsets; ``onsets`` and
    ``recordings`` say what it rests on."""
    from experiments.retrieval.metrics import bootstrap_interval

    def over_recordings(share):
        values = np.asarray([share(e) for e in errors])
        return float(np.mean(values)), bootstrap_interval(values)

    seconds = np.concatenate([e.seconds for e in errors])
    pixels = np.concatenate([e.pixels for e in errors])
    return {"onsets": int(seconds.size), "recordings": len(errors),
            "within_0.5s": over_recordings(lambda e: np.mean(e.seconds <= 0.5)),
            "within_1s": over_recordings(lambda e: np.mean(e.seconds <= 1.0)),
            "right_system": over_recordings(lambda e: np.mean(e.right_system)),
            "median_s": float(np.median(seconds)),
            "median_px": float(np.nanmedian(pixels)) if np.any(~np.isnan(pixels)) else float("nan")}


# ----------------------------------------------------------------------------- retrieval


def _every(n: int, count: int) -> np.ndarray:
    """``count`` evenly spread indices out of ``n`` (all when ``n <= count``)."""
    return np.arange(n) if n <= count else np.round(np.linspace(0, n - 1, count)).astype(int)


def _average_precision(ranked_relevant: np.ndarray) -> float:
    hits = np.flatnonzero(ranked_relevant)
    return float(np.mean((np.arange(len(hits)) + 1) / (hits + 1))) if hits.size else 0.0


@dataclasses.dataclass(frozen=True)
class _Database:
    """Snippet embeddings ``(K, D)`` of many items: the item of each and where in it (seconds or column)."""

    embeddings: np.ndarray
    owner: np.ndarray
    where: np.ndarray

    def best_per_item(self, similarity: np.ndarray, items: int) -> np.ndarray:
        """``(items,)`` the highest similarity of each item's snippets."""
        best = np.full(items, -np.inf)
        np.maximum.at(best, self.owner, similarity)
        return best

    def best_in(self, similarity: np.ndarray, item: int) -> float:
        """Where the item's most similar snippet lies."""
        own = self.owner == item
        return float(self.where[own][np.argmax(similarity[own])])


def _stack(parts) -> _Database:
    embeddings, owner, where = zip(*parts)
    return _Database(np.concatenate(embeddings), np.concatenate(owner), np.concatenate(where))


def _audio_database(embedder: Embedder, versions, spectrograms, stride_s: float) -> _Database:
    step = max(int(round(stride_s * embedder.config.rate_hz)), 1)
    parts = []
    for k, v in enumerate(versions):
        frames = np.arange(0, len(spectrograms[v.version_id]), step)
        parts.append((embedder.audio(spectrograms[v.version_id], frames), np.full(len(frames), k),
                      frames / embedder.config.rate_hz))
    return _stack(parts)


def _sheet_database(embedder: Embedder, sheets: Sequence[PieceSheet], stride_px: int) -> _Database:
    parts = []
    for k, sheet in enumerate(sheets):
        columns = np.arange(0, sheet.strip.width, stride_px, dtype=np.float64)
        parts.append((embedder.sheet(sheet.strip, columns), np.full(len(columns), k), columns))
    return _stack(parts)


def _query_result(best: np.ndarray, relevant: np.ndarray, error_s: float) -> tuple[bool, float, float]:
    """(top-1 hit, average precision, position error) of one query from its items' scores."""
    ranked = relevant[np.argsort(-best)]
    return bool(ranked[0]), _average_precision(ranked), error_s


def retrieval_summary(embedder: Embedder, sheets: Mapping[str, PieceSheet], versions,
                      spectrograms: Mapping[str, np.ndarray], *, queries_per_item: int = 8,
                      stride_s: float = 0.5, stride_px: int = 8) -> dict[str, dict[str, np.ndarray]]:
    """Per-query results of both directions on the pieces of ``sheets`` and their ``versions``.

    Sheet -> audio: ``queries_per_item`` score snippets at onsets of every piece, against audio
    snippets every ``stride_s`` of every recording; a recording scores by its best snippet.
    Audio -> sheet: ``queries_per_item`` audio snippets at onsets of every recording, against
    score snippets every ``stride_px`` of every strip; a piece scores by its best snippet.

    Returns:
      ``{"sheet_to_audio": {...}, "audio_to_sheet": {...}}``, each with per-query arrays
      ``top1`` (the best item is of the right piece), ``ap`` (average precision over the ranked
      items) and ``error_s`` (seconds between the best snippet of the right item and the truth;
      sheet -> audio: the median over the piece's recordings).
    """
    rate = embedder.config.rate_hz
    versions = [v for v in versions if v.piece_id in sheets]
    pieces = sorted(sheets)
    version_piece = np.asarray([pieces.index(v.piece_id) for v in versions])
    audio_db = _audio_database(embedder, versions, spectrograms, stride_s)
    sheet_db = _sheet_database(embedder, [sheets[p] for p in pieces], stride_px)

    to_audio = []
    for k, piece in enumerate(pieces):
        sheet = sheets[piece]
        chosen = _every(len(sheet.onsets_q), queries_per_item)
        queries = embedder.sheet(sheet.strip, sheet.columns[chosen])
        for q, row in zip(sheet.onsets_q[chosen], queries @ audio_db.embeddings.T):
            errors = [abs(audio_db.best_in(row, j) - float(versions[j].time_map.to_seconds(q)))
                      for j in np.flatnonzero(version_piece == k)]
            to_audio.append(_query_result(audio_db.best_per_item(row, len(versions)), version_piece == k,
                                          float(np.median(errors))))
    to_sheet = []
    for j, v in enumerate(versions):
        sheet, k = sheets[v.piece_id], version_piece[j]
        seconds = v.time_map.to_seconds(sheet.onsets_q)
        inside = np.flatnonzero((seconds >= 0) & (seconds * rate < len(spectrograms[v.version_id])))
        chosen = inside[_every(len(inside), queries_per_item)]
        queries = embedder.audio(spectrograms[v.version_id], seconds[chosen] * rate)
        for index, row in zip(chosen, queries @ sheet_db.embeddings.T):
            pointed_s = float(v.time_map.to_seconds(sheet.quarters_of(sheet_db.best_in(row, k))))
            to_sheet.append(_query_result(sheet_db.best_per_item(row, len(pieces)), np.arange(len(pieces)) == k,
                                          abs(pointed_s - seconds[index])))
    return {direction: dict(zip(("top1", "ap", "error_s"), map(np.asarray, zip(*results))))
            for direction, results in (("sheet_to_audio", to_audio), ("audio_to_sheet", to_sheet))}


# ----------------------------------------------------------------------------- degraded pages


def degrade(page: np.ndarray, rng: np.random.Generator, *, blur_px: float = 1.0, noise: float = 12.0,
            max_degrees: float = 1.5, scale: float = 0.8):
    """A scan-like copy of an engraved page and the map of its points.

    Gaussian blur, a rotation of up to ``max_degrees``, a resolution ``scale``, additive grey
    noise. Returns ``(page, to_degraded)`` where ``to_degraded(x, y) -> (x', y')`` moves a point
    of the clean page to where it lands on the degraded one (the truth follows the page).
    """
    from scipy import ndimage

    angle = float(rng.uniform(-max_degrees, max_degrees))
    image = ndimage.gaussian_filter(page.astype(np.float32), blur_px)
    image = ndimage.rotate(image, angle, reshape=False, order=1, cval=255.0)
    image = ndimage.zoom(image, scale, order=1)
    image = np.clip(image + rng.normal(0.0, noise, image.shape), 0, 255).astype(np.uint8)

    def to_degraded(x, y):
        rx, ry = layout.rotate_points(x, y, angle, page.shape)
        return rx * scale, ry * scale

    return image, to_degraded
