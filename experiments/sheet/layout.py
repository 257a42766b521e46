"""Staves and systems found in page images, and the systems unrolled into one strip.

Score following reads a page sequence as one long line of music: every system is cut out,
scaled to a common height and appended to the strip (Dorfer et al. 2018 follow such unrolled
scores). Nothing here knows how a page was made, so it works on engraved, scanned or
photographed pages alike:

1. deskew: the page is turned by the angle (within +-3 degrees) that makes its row
   profile sharpest, so that staff lines run along rows;
2. staff lines are rows that hold a long unbroken run of ink (a short final system too);
   lines a staff space apart form a staff;
3. neighbouring staves belong to one system when a vertical line (the system's opening
   bar line or brace) joins them at their left end.
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["System", "Strip", "find_systems", "page_to_strip", "rotate_points", "skew_angle", "strip_to_page", "unroll"]

INK = 200            # a pixel darker than this is ink (paper is 255; blur greys thin lines)
LINE_INK = 64.0      # grey levels of ink over three rows that make a staff line pixel
LINE_RUN = 0.1       # a staff line row holds an unbroken run of ink this long (fraction of the width)
MARGIN_SPACES = 3.0  # rows kept above the top and below the bottom staff line, in staff spaces


@dataclasses.dataclass(frozen=True)
class System:
    """A system found on a page, in deskewed page pixels.

    Attributes:
      page: index of its page.
      top, bottom: rows of its first and last staff line.
      left, right: columns where its staff lines begin and end.
      staff_space: distance between two lines of a staff.
      staves: number of staves.
      angle: skew of its page in degrees (the page was turned by ``-angle`` before detection).
    """

    page: int
    top: float
    bottom: float
    left: float
    right: float
    staff_space: float
    staves: int
    angle: float = 0.0


@dataclasses.dataclass(frozen=True)
class Strip:
    """Systems unrolled into one image.

    Attributes:
      image: ``(H, W)`` float32, ink = 1, paper = 0.
      system: ``(W,)`` int, the system (index into ``systems``) of every column.
      x: ``(W,)`` float, the deskewed page column every strip column comes from.
      systems: the unrolled systems, in reading order.
      shapes: ``(height, width)`` of every page, to undo the deskew.
    """

    image: np.ndarray
    system: np.ndarray
    x: np.ndarray
    systems: tuple[System, ...]
    shapes: tuple[tuple[int, int], ...]

    @property
    def width(self) -> int:
        return self.image.shape[1]


def _rotate(image: np.ndarray, angle: float) -> np.ndarray:
    from scipy import ndimage

    return ndimage.rotate(image, angle, reshape=False, order=1, mode="constant", cval=255.0)


def rotate_points(x, y, angle: float, shape: tuple[int, int]):
    """Where the points ``(x, y)`` of an ``(H, W)`` page land after ``_rotate(page, angle)``."""
    cy, cx = (shape[0] - 1) / 2.0, (shape[1] - 1) / 2.0
    a = np.deg2rad(angle)
    dx, dy = np.asarray(x, float) - cx, np.asarray(y, float) - cy
    return cx + np.cos(a) * dx + np.sin(a) * dy, cy - np.sin(a) * dx + np.cos(a) * dy


def skew_angle(page: np.ndarray, max_degrees: float = 3.0, step: float = 0.1) -> float:
    """The skew of a page in degrees: the angle whose undoing (turning the page by its negative)
    makes the row profile sharpest.

    Coarse search (0.5 degree steps) on a quarter-size page, then ``step`` around the best.
    """
    from scipy import ndimage

    ink = 1.0 - page.astype(np.float32) / 255.0

    def sharpness(image, angle):
        return float(np.var(ndimage.rotate(image, -angle, reshape=False, order=1, cval=0.0).sum(axis=1)))

    coarse = np.arange(-max_degrees, max_degrees + 1e-9, 0.5)
    best = coarse[int(np.argmax([sharpness(ink[::4, ::4], a) for a in coarse]))]
    fine = best + np.arange(-0.5, 0.5 + 1e-9, step)
    angle = float(fine[int(np.argmax([sharpness(ink, a) for a in fine]))])
    return 0.0 if abs(angle) < step / 2 else angle


def _longest_runs(ink: np.ndarray) -> np.ndarray:
    """``(H,)`` length of the longest horizontal run of ink in every row (gaps of 2 pixels bridged)."""
    from scipy import ndimage

    closed = ndimage.binary_closing(ink, structure=np.ones((1, 3), bool))
    padded = np.pad(closed, ((0, 0), (1, 1))).astype(np.int8)
    edges = np.diff(padded, axis=1)
    longest = np.zeros(ink.shape[0])
    for row in np.flatnonzero(closed.any(axis=1)):
        starts, stops = np.flatnonzero(edges[row] == 1), np.flatnonzero(edges[row] == -1)
        longest[row] = (stops - starts).max()
    return longest


def _line_rows(page: np.ndarray) -> np.ndarray:
    """Centre rows of the staff lines: runs of rows holding ink runs over ``LINE_RUN`` of the width.

    Ink is summed over three rows first: a line that a rotation or blur spread grey over two or
    three rows carries as much ink as a sharp one, and is still one unbroken run. (Engraved at
    about 100 dpi, a staff line is half a pixel thick: 130 grey levels of ink in all.)
    """
    from scipy import ndimage

    darkness = 3.0 * ndimage.uniform_filter1d(255.0 - page.astype(np.float32), 3, axis=0)
    rows = np.flatnonzero(_longest_runs(darkness > LINE_INK) > LINE_RUN * page.shape[1])
    if rows.size == 0:
        return rows.astype(float)
    runs = np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1)
    return np.asarray([run.mean() for run in runs])


def _staves(lines: np.ndarray) -> list[np.ndarray]:
    """Lines -> staves: 4 to 6 lines with equal gaps (5 as printed; one may be lost to noise)."""
    if lines.size < 4:
        return []
    gaps = np.diff(lines)
    space = np.median(gaps[gaps <= np.percentile(gaps, 75)])
    groups = np.split(lines, np.flatnonzero(gaps > 1.6 * space) + 1)
    return [g for g in groups if 4 <= len(g) <= 6]


def _extent(ink: np.ndarray, staff: np.ndarray) -> tuple[float, float]:
    rows = ink[np.round(staff).astype(int)]
    columns = np.flatnonzero(rows.mean(axis=0) >= 0.6)
    return (float(columns[0]), float(columns[-1])) if columns.size else (0.0, float(ink.shape[1] - 1))


def _joined(ink: np.ndarray, upper: np.ndarray, lower: np.ndarray, left: float, space: float) -> bool:
    """Whether a vertical line joins two staves near their left end (a system's opening bar line)."""
    top, bottom = int(round(upper[-1])) + 1, int(round(lower[0]))
    if bottom <= top:
        return True
    start = max(int(left - space), 0)
    window = ink[top:bottom, start:int(left + 2 * space) + 1]
    return bool(window.size and window.mean(axis=0).max() >= 0.9)


def _page_systems(page: np.ndarray, index: int, deskew: bool) -> list[System]:
    angle = skew_angle(page) if deskew else 0.0
    upright = _rotate(page, -angle) if angle else page
    ink = upright < INK
    staves = _staves(_line_rows(upright))
    systems: list[list[np.ndarray]] = []
    extents: list[tuple[float, float]] = []
    for staff in staves:
        left, right = _extent(ink, staff)
        space = float(np.median(np.diff(staff)))
        if systems and _joined(ink, systems[-1][-1], staff, min(left, extents[-1][0]), space):
            systems[-1].append(staff)
            extents[-1] = (min(left, extents[-1][0]), max(right, extents[-1][1]))
        else:
            systems.append([staff])
            extents.append((left, right))
    return [System(index, float(group[0][0]), float(group[-1][-1]), left, right,
                   float(np.median(np.concatenate([np.diff(s) for s in group]))), len(group), angle)
            for group, (left, right) in zip(systems, extents)]


def find_systems(pages, *, deskew: bool = True) -> list[System]:
    """Every system of a page sequence, in reading order.

    Args:
      pages: grayscale page images, ``(H, W)`` uint8 each.
      deskew: estimate and undo a page rotation of up to 3 degrees (off for engraved pages
        saves a second per page).

    Raises:
      ValueError: when a page has no staff (a blank page or no sheet music).
    """
    systems = []
    for index, page in enumerate(pages):
        if page.ndim != 2:
            raise ValueError(f"page {index}: expected a grayscale (H, W) image, got shape {page.shape}")
        found = _page_systems(page, index, deskew)
        if not found:
            raise ValueError(f"page {index}: no staff found (is it sheet music, dark ink on light paper?)")
        systems += found
    return systems


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image.astype(np.float32), mode="F").resize((width, height), Image.BILINEAR))


def _system_scale(system: System, height: int) -> float:
    return height / (system.bottom - system.top + 2 * MARGIN_SPACES * system.staff_space)


def unroll(pages, systems, height: int = 96) -> Strip:
    """Cut every system out of its (deskewed) page, scale it to ``height`` rows, append them.

    Each system keeps ``MARGIN_SPACES`` staff spaces above and below for ledger lines.
    """
    pieces, owner, xs = [], [], []
    upright = {}
    for index, system in enumerate(systems):
        if system.page not in upright:
            page = pages[system.page].astype(np.float32)
            upright[system.page] = _rotate(page, -system.angle) if system.angle else page
        page = upright[system.page]
        margin = MARGIN_SPACES * system.staff_space
        top, bottom = int(np.floor(system.top - margin)), int(np.ceil(system.bottom + margin))
        padded = np.pad(page, ((max(-top, 0), max(bottom - page.shape[0], 0)), (0, 0)), constant_values=255.0)
        crop = padded[top + max(-top, 0):bottom + max(-top, 0), int(system.left):int(system.right) + 1]
        scale = _system_scale(system, height)
        width = max(int(round(crop.shape[1] * scale)), 1)
        pieces.append(1.0 - _resize(crop, height, width) / 255.0)
        owner.append(np.full(width, index))
        xs.append(system.left + np.arange(width) / scale)
    shapes = tuple(p.shape for p in pages)
    return Strip(np.concatenate(pieces, axis=1).astype(np.float32), np.concatenate(owner), np.concatenate(xs),
                 tuple(systems), shapes)


def page_to_strip(strip: Strip, page, x, y) -> np.ndarray:
    """Strip columns of points ``(page, x, y)`` given in (not deskewed) page pixels.

    A point belongs to the nearest system of its page (by vertical distance to its staff
    lines); NaN where none lies within two staff heights.
    """
    page, x, y = (np.atleast_1d(np.asarray(v, float)) for v in (page, x, y))
    starts = np.concatenate([[0], np.flatnonzero(np.diff(strip.system)) + 1])
    best, columns = np.full(x.shape, np.inf), np.full(x.shape, np.nan)
    for index, system in enumerate(strip.systems):
        ux, uy = rotate_points(x, y, -system.angle, strip.shapes[system.page])
        distance = np.maximum(np.maximum(system.top - uy, uy - system.bottom), 0.0)
        distance[page != system.page] = np.inf
        closer = (distance < best) & (distance <= 8 * system.staff_space)
        best[closer] = distance[closer]
        columns[closer] = starts[index] + (ux[closer] - system.left) * _system_scale(system, strip.image.shape[0])
    return columns


def strip_to_page(strip: Strip, columns) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Strip columns -> (page, x, y_top, y_bottom) in (not deskewed) page pixels: the vertical
    segment through the system at that column, from its top to its bottom staff line."""
    columns = np.clip(np.asarray(columns, float), 0, strip.width - 1)
    index = strip.system[np.floor(columns).astype(int)]
    starts = np.concatenate([[0], np.flatnonzero(np.diff(strip.system)) + 1])
    page = np.zeros(columns.shape, int)
    x, top, bottom = (np.zeros(columns.shape) for _ in range(3))
    for k, system in enumerate(strip.systems):
        at = index == k
        upright_x = strip.x[starts[k]] + (columns[at] - starts[k]) / _system_scale(system, strip.image.shape[0])
        page[at] = system.page
        x[at], top[at] = rotate_points(upright_x, system.top, system.angle, strip.shapes[system.page])
        _, bottom[at] = rotate_points(upright_x, system.bottom, system.angle, strip.shapes[system.page])
    return page, x, top, bottom
