"""Follow a recording on sheet music pages: ``python -m experiments.sync --sheet PAGES recording.wav --out DIR``.

PAGES is a folder of page images (PNG, JPEG, ..., read in name order), a PDF, or one image. Writes ``follow.csv``
(audio time -> page, x and the vertical extent of the system there, in page pixels) and
``follow.png`` (the pages with the followed position drawn every second, coloured by time).
"""

from __future__ import annotations

import time
from pathlib import Path
import numpy as np

from experiments.sheet import layout
from experiments.sheet.follow import Embedder, Following, follow

__all__ = ["follow_files", "plot_following", "write_following_csv"]


def _spectrogram(recording: Path, embedder: Embedder, sample_rate: int) -> np.ndarray:
    from experiments import features as feats
    from experiments.data import load_audio
    from experiments.sheet.data import spectrogram

    audio = load_audio(recording, sample_rate=sample_rate)
    return spectrogram(feats.audio_features(audio, sample_rate, embedder.config.features))


def write_following_csv(path: Path, strip: layout.Strip, following: Following) -> None:
    page, x, top, bottom = layout.strip_to_page(strip, following.columns)
    rows = np.column_stack([following.times_s, page, x, top, bottom])
    np.savetxt(path, rows, delimiter=",", fmt=["%.3f", "%d", "%.1f", "%.1f", "%.1f"],
               header="time_s,page,x,y_top,y_bottom", comments="")


def plot_following(pages, strip: layout.Strip, following: Following, path: Path, *, every_s: float = 1.0,
                   truth_columns: np.ndarray | None = None, title: str = "") -> None:
    """The pages with the followed position every ``every_s`` seconds (a vertical bar through the
    system, coloured by time); ``truth_columns`` (same times) are drawn as black ticks below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times = np.arange(0.0, following.times_s[-1] + 1e-9, every_s)
    page, x, top, bottom = layout.strip_to_page(strip, following.column_at(times))
    fig, axes = plt.subplots(1, len(pages), figsize=(5.5 * len(pages), 7.5), squeeze=False)
    colours = plt.cm.viridis(times / max(times[-1], 1e-9))
    for k, ax in enumerate(axes[0]):
        ax.imshow(pages[k], cmap="gray", vmin=0, vmax=255)
        on = page == k
        ax.vlines(x[on], top[on] - 6, bottom[on] + 6, colors=colours[on], linewidth=2.0, alpha=0.8)
        if truth_columns is not None:
            tpage, tx, _, tbottom = layout.strip_to_page(strip, truth_columns)
            ax.plot(tx[tpage == k], tbottom[tpage == k] + 14, "k^", markersize=3)
        ax.set_title(f"page {k + 1}" + (f" - {title}" if title and k == 0 else ""), fontsize=9)
        ax.axis("off")
    scale = plt.cm.ScalarMappable(cmap="viridis", norm=plt.Normalize(0, times[-1]))
    fig.colorbar(scale, ax=axes[0].tolist(), shrink=0.5, label="audio time (s)")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def follow_files(pages: Path, recording: Path, out: Path, embedder: Embedder, *,
                 sample_rate: int = 22050) -> dict:
    """Follow ``recording`` through the pages ``pages`` (see :func:`~experiments.sheet.engrave.page_files`);
    writes ``follow.csv`` and ``follow.png`` into ``out``. Returns a summary (pages, systems, frames, seconds)."""
    from experiments.sheet.engrave import load_page_images, page_files

    start = time.perf_counter()
    images = load_page_images(page_files(pages))
    systems = layout.find_systems(images)
    strip = layout.unroll(images, systems, embedder.config.height)
    following = follow(embedder, strip, _spectrogram(recording, embedder, sample_rate))
    out.mkdir(parents=True, exist_ok=True)
    write_following_csv(out / "follow.csv", strip, following)
    plot_following(images, strip, following, out / "follow.png", title=recording.name)
    return {"pages": len(images), "systems": len(systems), "frames": len(following.times_s),
            "seconds": time.perf_counter() - start}
