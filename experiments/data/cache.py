"""Atomic writes and config hashing for on-disk caches.

Every cache file is written to a temporary name in the same folder and then
renamed over the final name (``os.replace`` is atomic on POSIX and Windows),
so an interrupted run never leaves a half-written file under a final name.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["atomic_write", "config_hash", "exclusive", "is_intact", "load_array", "read_json", "save_array", "seal",
           "user_cache_dir", "write_json", "write_wav"]


def user_cache_dir(*parts: str) -> Path:
    """``$XDG_CACHE_HOME/sdtw-retrieval/...`` (``~/.cache/sdtw-retrieval/...`` when unset): caches of
    things derived from the user's own files, kept out of their folders."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base, "sdtw-retrieval", *parts)


@contextlib.contextmanager
def exclusive(lock_file: str | Path):
    """Hold an exclusive lock on ``lock_file`` inside the block, waiting for any other holder (flock:
    released by the system when a process dies, so a crash leaves no stale lock)."""
    lock_file = Path(lock_file)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def config_hash(payload: Any, length: int = 12) -> str:
    """Short SHA-1 of a JSON-serialisable payload (key order does not matter)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=_jsonable)
    return hashlib.sha1(text.encode()).hexdigest()[:length]


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then rename ``tmp_path`` to ``path``.

    The temporary file lives in the destination folder (same file system) and
    is removed if ``write`` fails.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Keep the final suffix: some writers (np.save, soundfile) choose the format by it.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | Path, payload: Any) -> Path:
    """Atomically write ``payload`` as JSON."""
    def write(tmp: Path) -> None:
        tmp.write_text(json.dumps(payload, default=_jsonable, separators=(",", ":")))

    return atomic_write(path, write)


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> Path:
    """Atomically write mono float32 WAV (lossless for float32 samples)."""
    import soundfile

    def write(tmp: Path) -> None:
        soundfile.write(str(tmp), np.asarray(audio, dtype=np.float32), int(sample_rate),
                        subtype="FLOAT", format="WAV")

    return atomic_write(path, write)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def seal(path: str | Path) -> Path:
    """Write ``{path}.sha256`` for a finished file, so :func:`is_intact` can tell it from a damaged one."""
    path = Path(path)
    checksum = _sha256(path)
    return atomic_write(path.with_name(path.name + ".sha256"), lambda tmp: tmp.write_text(checksum))


def is_intact(path: str | Path) -> bool:
    """True if ``path`` and its seal exist and agree (a file never sealed, truncated or flipped: False)."""
    path = Path(path)
    sealed = path.with_name(path.name + ".sha256")
    try:
        return path.is_file() and sealed.read_text().strip() == _sha256(path)
    except OSError:
        return False


def save_array(path: str | Path, array: np.ndarray) -> Path:
    """Atomically save ``array`` as ``.npy`` and seal it."""
    atomic_write(path, lambda tmp: np.save(tmp, array))
    return seal(path)


def load_array(path: str | Path) -> np.ndarray | None:
    """The array saved by :func:`save_array`, or None if it is missing or damaged (then compute it again)."""
    if not is_intact(path):
        return None
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
