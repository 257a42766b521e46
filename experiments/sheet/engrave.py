"""Engraved sheet music with exact ground truth: a score -> page images + every note head's position.

Verovio engraves MusicXML to SVG; the SVG names every note, staff line and system, and
Verovio's time map gives each note's onset in quarter notes. Rasterizing the SVG (cairosvg)
keeps its geometry, so every note head of a page image has known pixel coordinates and, through
a recording's :class:`~experiments.data.TimeMap`, a known audio time in every rendered version.

The engraving of a corpus piece is cached next to the corpus
(``{corpus root}/sheets/{piece_id}/page-{k}.png`` and ``layout.json``), like the audio.
"""

from __future__ import annotations

import dataclasses
import io
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from experiments.data import cache

__all__ = ["EngravingConfig", "Sheet", "StaffBox", "engrave_musicxml", "engrave_piece", "load_page_images",
           "page_files", "score_musicxml"]

SVG = "{http://www.w3.org/2000/svg}"
TRANSLATE = re.compile(r"translate\(\s*(-?[\d.]+)[ ,]+(-?[\d.]+)\s*\)")
LINE = re.compile(r"M\s*(-?[\d.]+)[ ,]+(-?[\d.]+)\s*L\s*(-?[\d.]+)[ ,]+(-?[\d.]+)")


@dataclasses.dataclass(frozen=True)
class EngravingConfig:
    """Verovio page layout (Verovio units are tenths of a millimetre at scale 100).

    Attributes:
      page_width, page_height: page size in Verovio units (A4 by default).
      scale: percent; the page image is ``page_width * scale / 1000`` pixels wide
        (840 x 1188 pixels for A4 at 40, a staff space of 7.2 pixels: about 100 dpi).
      spacing_system: extra space between systems, so that they stand apart on the page.
    """

    page_width: int = 2100
    page_height: int = 2970
    scale: int = 40
    spacing_system: int = 12

    def verovio_options(self) -> dict[str, Any]:
        return {"pageWidth": self.page_width, "pageHeight": self.page_height, "scale": self.scale,
                "adjustPageHeight": False, "breaks": "auto", "header": "none", "footer": "none",
                "spacingSystem": self.spacing_system,
                "expandNever": True}  # score time as written: a repeat is not played twice


@dataclasses.dataclass(frozen=True)
class StaffBox:
    """One staff as engraved: its page, system and the pixel extent of its five lines."""

    page: int
    system: int
    top: float
    bottom: float
    left: float
    right: float


@dataclasses.dataclass(frozen=True)
class Sheet:
    """An engraved score.

    Attributes:
      pages: grayscale page images, ``(H, W)`` uint8 each (255 = paper).
      notes: ``(K, 5)`` float64, one row per sounding note head, sorted by onset:
        (onset in quarter notes, MIDI pitch, page, x, y); x is the centre of the note
        head and y its staff position in page pixels.
      staves: every staff of every page, in reading order (page, then top to bottom).
    """

    pages: tuple[np.ndarray, ...]
    notes: np.ndarray
    staves: tuple[StaffBox, ...]

    @property
    def num_systems(self) -> int:
        return len({(s.page, s.system) for s in self.staves})


def score_musicxml(score, max_measures: int | None = None) -> str:
    """A music21 score (its first ``max_measures`` measures, pickup included) as MusicXML text.

    Lyrics and text directions are left out: the corpus's madrigals carry several verses as
    both, which stack into unreadable columns and are no part of what a recording sounds like.
    """
    import copy

    from music21.musicxml.m21ToXml import GeneralObjectExporter

    score = copy.deepcopy(score)
    if max_measures is not None:
        score = score.measures(0, max_measures, indicesNotNumbers=True)  # end exclusive
    for note in score.recurse().notes:
        note.lyrics = []
    for text in list(score.recurse().getElementsByClass("TextExpression")):
        text.activeSite.remove(text)
    return GeneralObjectExporter(score).parse().decode("utf-8")


def _rasterize(svg: str) -> np.ndarray:
    import cairosvg
    from PIL import Image

    png = cairosvg.svg2png(bytestring=svg.encode("utf-8"), background_color="white")
    return np.asarray(Image.open(io.BytesIO(png)).convert("L"))


def _scale_of(root: ET.Element) -> float:
    """Page pixels per SVG user unit (the inner ``definition-scale`` viewBox is in Verovio units)."""
    width_px = float(root.get("width").removesuffix("px"))
    inner = next(e for e in root.iter(f"{SVG}svg") if e.get("viewBox"))
    return width_px / float(inner.get("viewBox").split()[2])


def _classes(element: ET.Element) -> set[str]:
    return set((element.get("class") or "").split())


def _staff_box(staff: ET.Element, page: int, system: int, scale: float, dx: float, dy: float) -> StaffBox | None:
    lines = [tuple(map(float, m.groups())) for path in staff.findall(f"{SVG}path")
             if (m := LINE.match(path.get("d", "")))]
    if not lines:
        return None
    xs = [x + dx for x1, _, x2, _ in lines for x in (x1, x2)]
    ys = [y + dy for _, y1, _, y2 in lines for y in (y1, y2)]
    return StaffBox(page, system, min(ys) * scale, max(ys) * scale, min(xs) * scale, max(xs) * scale)


def _page_layout(svg: str, page: int) -> tuple[list[StaffBox], dict[str, tuple[float, float]]]:
    """Staves and note-head centres ``{note id: (x, y)}`` of one SVG page, in page pixels.

    Verovio draws everything inside one ``page-margin`` group shifted by the page margins.
    """
    root = ET.fromstring(svg)
    scale = _scale_of(root)
    margin = next(g for g in root.iter(f"{SVG}g") if "page-margin" in _classes(g))
    dx, dy = map(float, TRANSLATE.search(margin.get("transform")).groups())
    staves, heads = [], {}
    systems = [g for g in root.iter(f"{SVG}g") if "system" in _classes(g)]
    for index, system in enumerate(systems):
        for staff in (g for g in system.iter(f"{SVG}g") if "staff" in _classes(g)):
            box = _staff_box(staff, page, index, scale, dx, dy)
            if box is not None:
                staves.append(box)
        for note in (g for g in system.iter(f"{SVG}g") if "note" in _classes(g)):
            use = next((u for g in note if "notehead" in _classes(g) for u in g), None)
            match = TRANSLATE.search(use.get("transform", "")) if use is not None else None
            if match:
                heads[note.get("id")] = (float(match.group(1)), float(match.group(2)))
    staff_space = np.median([(b.bottom - b.top) / 4 for b in staves]) if staves else 0.0
    # A note head's anchor is its left edge; its glyph is about 1.2 staff spaces wide.
    heads = {k: ((x + dx) * scale + 0.6 * staff_space, (y + dy) * scale) for k, (x, y) in heads.items()}
    return staves, heads


def engrave_musicxml(xml: str, config: EngravingConfig = EngravingConfig()) -> Sheet:
    """Engrave MusicXML text into page images and note-head positions (see :class:`Sheet`).

    Raises:
      ValueError: when Verovio cannot read ``xml`` or engraves no note.
    """
    import verovio

    toolkit = verovio.toolkit()
    toolkit.setOptions(config.verovio_options())
    if not toolkit.loadData(xml):
        raise ValueError("Verovio could not read the score (is it MusicXML or MEI?)")
    onsets = {note: float(event["qstamp"]) for event in toolkit.renderToTimemap() for note in event.get("on", ())}
    pages, staves, rows = [], [], []
    for page in range(toolkit.getPageCount()):
        svg = toolkit.renderToSVG(page + 1)
        pages.append(_rasterize(svg))
        page_staves, heads = _page_layout(svg, page)
        staves += page_staves
        for note, (x, y) in heads.items():
            if note in onsets:  # tied continuations and grace notes have no onset of their own
                pitch = toolkit.getMIDIValuesForElement(note).get("pitch", -1)
                rows.append((onsets[note], pitch, page, x, y))
    if not rows:
        raise ValueError("the engraved score has no note with an onset")
    notes = np.asarray(sorted(rows), dtype=np.float64)
    return Sheet(tuple(pages), notes, tuple(staves))


def _sheet_to_json(sheet: Sheet) -> dict:
    return {"notes": sheet.notes.tolist(), "staves": [dataclasses.asdict(s) for s in sheet.staves],
            "num_pages": len(sheet.pages)}


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".pdf")


def page_files(pages: str | Path) -> list[Path]:
    """The page files of ``pages``: a folder's images and PDFs in name order, or the one file.

    Raises:
      FileNotFoundError: ``pages`` does not exist, or the folder holds no image.
    """
    pages = Path(pages)
    if pages.is_dir():
        files = sorted(p for p in pages.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"no page image ({', '.join(IMAGE_SUFFIXES)}) in {pages}")
        return files
    if not pages.exists():
        raise FileNotFoundError(f"no page image or folder at {pages}")
    return [pages]


def load_page_images(paths: Sequence[str | Path]) -> tuple[np.ndarray, ...]:
    """Page images as grayscale ``(H, W)`` uint8 arrays; a PDF gives one image per page.

    Raises:
      FileNotFoundError / ValueError: naming the file that is missing or not an image.
    """
    from PIL import Image, UnidentifiedImageError

    pages = []
    for path in map(Path, paths):
        if not path.exists():
            raise FileNotFoundError(f"no page image at {path}")
        if path.suffix.lower() == ".pdf":
            pages += _pdf_pages(path)
            continue
        try:
            pages.append(np.asarray(Image.open(path).convert("L")))
        except UnidentifiedImageError:
            raise ValueError(f"{path} is not an image (PNG, JPEG, TIFF, ... or a PDF)") from None
    return tuple(pages)


def _pdf_pages(path: Path, dpi: float = 100.0) -> list[np.ndarray]:
    try:
        import pypdfium2
    except ImportError:
        raise ImportError(f"reading {path} needs pypdfium2: pip install pypdfium2") from None
    document = pypdfium2.PdfDocument(str(path))
    return [np.asarray(page.render(scale=dpi / 72.0).to_pil().convert("L")) for page in document]


def engrave_piece(piece, root: str | Path, max_measures: int | None,
                  config: EngravingConfig = EngravingConfig()) -> Sheet:
    """The engraving of a corpus :class:`~experiments.data.Piece`, cached under ``{root}/sheets/``.

    Its note onsets are checked against the piece's own notes: the engraving and the
    recordings must agree on score time, or the truth would be wrong.
    """
    from PIL import Image

    from experiments.data.score import parse_score

    folder = Path(root) / "sheets" / cache.config_hash(dataclasses.asdict(config), 8) / piece.piece_id
    layout = folder / "layout.json"
    if layout.exists():
        sheet = _load_sheet(folder, cache.read_json(layout))
    else:
        sheet = engrave_musicxml(score_musicxml(parse_score(piece.source), max_measures), config)
        folder.mkdir(parents=True, exist_ok=True)
        for k, page in enumerate(sheet.pages):
            cache.atomic_write(folder / f"page-{k}.png", lambda tmp, page=page: Image.fromarray(page).save(tmp, "PNG"))
        cache.write_json(layout, _sheet_to_json(sheet))  # last: its presence marks the folder complete
    _check_onsets(sheet, piece)
    return sheet


def _load_sheet(folder: Path, payload: Mapping[str, Any]) -> Sheet:
    pages = load_page_images([folder / f"page-{k}.png" for k in range(payload["num_pages"])])
    return Sheet(pages, np.asarray(payload["notes"], dtype=np.float64).reshape(-1, 5),
                 tuple(StaffBox(**s) for s in payload["staves"]))


def _check_onsets(sheet: Sheet, piece) -> None:
    expected = np.unique([n.onset_q for n in piece.notes])
    engraved = np.unique(sheet.notes[:, 0])
    missing = expected[np.abs(engraved[None, :] - expected[:, None]).min(axis=1) > 1e-3]
    if len(missing) > 0.05 * len(expected):
        raise ValueError(f"{piece.piece_id}: the engraving misses {len(missing)} of {len(expected)} onsets "
                         f"(first at {missing[0]} quarters): score time of sheet and audio disagree")
