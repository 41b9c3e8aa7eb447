"""JSON that stays valid with NaN and infinity in it, written atomically."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def encode(obj: Any) -> Any:
    """Replace non-finite floats by the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``.

    Python's json writes bare ``NaN``, which strict JSON readers (``jq``, browsers) reject.
    """
    if isinstance(obj, float) and not math.isfinite(obj):
        return "NaN" if math.isnan(obj) else ("Infinity" if obj > 0 else "-Infinity")
    if isinstance(obj, dict):
        return {k: encode(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [encode(v) for v in obj]
    return obj


def decode(obj: Any) -> Any:
    """Inverse of :func:`encode` for the values of metric and statistic mappings."""
    if isinstance(obj, str) and obj in _NONFINITE:
        return _NONFINITE[obj]
    if isinstance(obj, dict):
        return {k: decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [decode(v) for v in obj]
    return obj


def loads(text: str) -> Any:
    """``json.loads`` and :func:`decode`; the decoding walk is skipped when nothing needs it."""
    obj = json.loads(text)
    return decode(obj) if any(f'"{k}"' in text for k in _NONFINITE) else obj


def dumps(obj: Any, **kwargs: Any) -> str:
    return json.dumps(encode(obj), allow_nan=False, **kwargs)


def atomic_write_bytes(path: Path, data: bytes, *, fsync: bool = True) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it, and rename it into place.

    Without ``fsync`` the file is still complete or absent after the process is killed (the
    rename is atomic), only not after a power cut; for files that cost nothing to lose.
    """
    atomic_write(path, lambda fh: fh.write(data), fsync=fsync)


def atomic_write(path: Path, write: Callable[[IO[bytes]], object], *, fsync: bool = True) -> int:
    """:func:`atomic_write_bytes` for a writer that streams into the file itself (``np.savez``),
    sparing a copy of the whole contents in memory.

    Returns:
        The file's size in bytes.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~umask())  # mkstemp makes it 0600: a shared store needs the umask's
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            size = fh.tell()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return size


def umask() -> int:
    """This process's umask (read by setting it, so read once: the umask rarely changes)."""
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0o022)
        os.umask(_UMASK)
    return _UMASK


_UMASK: int | None = None


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (dumps(obj, indent=2) + "\n").encode())


def read_json(path: Path) -> Any:
    return decode(json.loads(path.read_text(encoding="utf-8")))
