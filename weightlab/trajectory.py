"""A run's per-epoch snapshots in one file: ``snapshots/epochs.npy`` and ``snapshots/layout.json``.

``epochs.npy`` is a standard ``.npy`` file (format 1.0, little-endian float32, C order) of shape
``(epochs recorded, parameters)``: row k holds every variable at epoch k, flattened and joined in
layer order, so ``np.load(path, mmap_mode="r")`` is the trajectory matrix. ``layout.json`` names
the columns: ``{"format": 1, "variables": [{"name", "shape", "offset", "size"}, ...], "params"}``.
One file instead of one ``.npz`` per epoch because zip and ``.npy`` headers cost ~260 bytes per
array: more than all the weights of the tiny models weightlab is for.

The header has a fixed length (:data:`HEADER_LEN`), so its row count can be rewritten in place,
and that count is the commit marker. An epoch is appended by cutting off any bytes past the
committed rows (a row torn by a kill), writing the new row, fsyncing, and only then rewriting the
header with one more row. Readers trust the header and ignore bytes beyond its rows; a file
shorter than its header promises is damaged. So a kill at any moment leaves every epoch that was
committed readable, and nothing half-written is ever read.

No numpy at import: ``ls`` checks the header against the file size through :func:`damage`.
"""

from __future__ import annotations

import ast
import json
import math
import os
import re
import struct
import zlib
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NamedTuple

from weightlab import jsonio
from weightlab.errors import StoreError

if TYPE_CHECKING:
    import numpy as np

TRAJECTORY = "epochs.npy"
LAYOUT = "layout.json"
CHECKSUMS = "epochs.crc32"  # the CRC-32 of each committed row, 4 bytes little-endian per row
FORMAT = 1  # of layout.json
HEADER_LEN = 128  # magic, version, length, the dict padded with spaces: room for any row count
ITEMSIZE = 4  # float32
_MAGIC = b"\x93NUMPY"
_MAX_HEADER = 10000  # numpy's own limit (np.load's max_header_size)
_DICT = "{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {params}), }}"
# The header as weightlab (and numpy) writes it: matched directly, since literal_eval is slow
# next to a regex, and `ls` reads one header per run (docs/benchmarks.md).
_OWN = re.compile(rb"\{'descr': '<f4', 'fortran_order': False, 'shape': \((\d+), (\d+)\), \} *\n")


class Header(NamedTuple):
    """What an ``epochs.npy`` header says: where the rows start, how many, how wide."""

    offset: int
    rows: int
    params: int

    def end(self, rows: int | None = None) -> int:
        """The file size that holds ``rows`` rows (default: the committed ones) exactly."""
        return self.offset + (self.rows if rows is None else rows) * self.params * ITEMSIZE


def header(rows: int, params: int) -> bytes:
    """The :data:`HEADER_LEN`-byte ``.npy`` 1.0 header of a ``(rows, params)`` float32 array."""
    text = _DICT.format(rows=rows, params=params)
    body = text.ljust(HEADER_LEN - len(_MAGIC) - 4 - 1) + "\n"
    return _MAGIC + b"\x01\x00" + struct.pack("<H", len(body)) + body.encode("latin1")


def read_header(fh: IO[bytes]) -> Header:
    """Parse the header at the start of ``fh`` (any ``.npy`` version numpy writes).

    Raises:
        ValueError: not a 2-D little-endian float32 C-order ``.npy`` (the reason says which).
    """
    fh.seek(0)
    data = fh.read(HEADER_LEN)
    if data[:6] != _MAGIC or len(data) < 10:
        raise ValueError("not a .npy file (its first bytes are not the .npy magic string)")
    major = data[6]
    if major not in (1, 2, 3):
        raise ValueError(f"unknown .npy format version {major}.{data[7]}")
    if major == 1:
        start, (length,) = 10, struct.unpack("<H", data[8:10])
    else:
        start, (length,) = 12, struct.unpack("<I", data[8:12])
    if length > _MAX_HEADER:
        raise ValueError(f"its header claims {length} bytes; numpy itself refuses over 10000")
    text = data[start : start + length]
    if len(text) < length:
        text += fh.read(length - len(text))
    if len(text) < length:
        raise ValueError("the file ends inside its header")
    own = _OWN.fullmatch(text)
    if own:
        return Header(start + length, int(own[1]), int(own[2]))
    try:
        meta = ast.literal_eval(text.decode("latin1"))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise ValueError("its header is not a .npy header") from None
    if not isinstance(meta, dict):
        raise ValueError(f"its header is not a .npy header: {meta!r}")
    shape = meta.get("shape")
    if (meta.get("descr"), meta.get("fortran_order")) != ("<f4", False):
        raise ValueError(f"expected little-endian float32 in C order, the header says {meta!r}")
    if not (
        isinstance(shape, tuple)
        and len(shape) == 2
        and all(type(n) is int and n >= 0 for n in shape)
    ):
        raise ValueError(f"expected a 2-D shape (epochs, parameters), the header says {shape!r}")
    return Header(start + length, shape[0], shape[1])


def committed(path: str | os.PathLike[str]) -> Header:
    """The header of ``path``, checked against the file's size.

    Unbuffered: one small read, and ``ls`` does this for every run (a buffered reader and a
    ``Path`` were most of its cost; docs/benchmarks.md).

    Raises:
        OSError: the file cannot be read.
        ValueError: a bad header, or a file shorter than the rows its header promises.
    """
    with open(path, "rb", buffering=0) as fh:
        return _checked(fh)


def _checked(fh: IO[bytes]) -> Header:
    head = read_header(fh)
    size = os.fstat(fh.fileno()).st_size
    if size < head.end():
        raise ValueError(
            f"it holds {size} bytes, its header promises {head.rows} epochs of {head.params} "
            f"parameters ({head.end()} bytes): truncated"
        )
    return head


def damage(snap_dir: str) -> str | None:
    """What is visibly wrong with a run's ``epochs.npy`` (header and size only), if anything.

    Cheap enough for ``ls``: one open and one read, and nothing when the run has no such file.
    """
    try:
        committed(os.path.join(snap_dir, TRAJECTORY))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        return f"snapshot {TRAJECTORY} is damaged: {e}"
    return None


# ---- layout.json ---------------------------------------------------------------------------------


def layout_of(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """The ``layout.json`` of a row made of ``arrays`` (in their order)."""
    variables, offset = [], 0
    for name, array in arrays.items():
        variables.append(
            {"name": name, "shape": list(array.shape), "offset": offset, "size": int(array.size)}
        )
        offset += int(array.size)
    return {"format": FORMAT, "variables": variables, "params": offset}


Layout = list[tuple[str, tuple[int, ...], int, int]]  # (name, shape, offset, size) per variable


def read_layout(snap_dir: Path) -> Layout:
    """``[(name, shape, offset, size), ...]`` from ``layout.json``, checked to tile the row.

    Raises:
        OSError: the file cannot be read (FileNotFoundError when it is missing).
        ValueError: it is not a layout, or its variables overlap, leave gaps or miscount.
    """
    try:
        layout = json.loads((snap_dir / LAYOUT).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{LAYOUT} is not valid JSON: {e}") from None
    try:
        if layout["format"] != FORMAT:
            raise ValueError(f"{LAYOUT} has format {layout['format']!r}, expected {FORMAT}")
        out: Layout = []
        offset = 0
        for v in layout["variables"]:
            shape = tuple(v["shape"])
            if not all(type(n) is int and n >= 0 for n in shape):
                raise ValueError(f"{LAYOUT}: variable {v['name']!r} has shape {v['shape']!r}")
            size = math.prod(shape)
            if not isinstance(v["name"], str) or v["offset"] != offset or v["size"] != size:
                raise ValueError(f"{LAYOUT}: variable {v['name']!r} does not follow the previous")
            if any(v["name"] == name for name, *_ in out):
                raise ValueError(f"{LAYOUT}: variable {v['name']!r} appears twice")
            out.append((v["name"], shape, offset, size))
            offset += size
        if layout["params"] != offset:
            raise ValueError(f"{LAYOUT}: params is {layout['params']}, its variables hold {offset}")
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{LAYOUT} is not a snapshot layout ({type(e).__name__}: {e})") from None
    return out


def problems(snap_dir: Path) -> list[str]:
    """Everything wrong with a run's trajectory, for ``weightlab check`` (reads it whole)."""
    import numpy as np

    if not (snap_dir / TRAJECTORY).exists():
        return []  # a run killed between writing layout.json and its first row has no epochs
    where = f"snapshot {TRAJECTORY} is damaged"
    try:
        layout = read_layout(snap_dir)
    except FileNotFoundError:
        return [f"snapshots/{LAYOUT} is missing: the columns of {TRAJECTORY} have no names"]
    except OSError as e:
        return [f"snapshots/{LAYOUT} cannot be read: {e.strerror or e}"]
    except ValueError as e:
        return [f"snapshots/{e}"]  # the reason starts with the file's name
    try:
        head = committed(snap_dir / TRAJECTORY)
        _agree(head, layout)
        matrix = np.load(snap_dir / TRAJECTORY, mmap_mode="r", allow_pickle=False)
        if matrix.shape[1:] != (head.params,):  # pragma: no cover - numpy agrees
            raise ValueError(f"numpy reads shape {matrix.shape}")
        rows = np.asarray(matrix[: head.rows])  # bytes past the committed rows are ignored
        del matrix
    except (OSError, ValueError) as e:
        return [f"{where}: {e}"]
    out = []
    bad = [int(i) for i in np.flatnonzero(~np.isfinite(rows).all(axis=1))]
    if bad:
        out.append(f"{where}: {_epochs(bad)} non-finite values (writers never write them)")
    sums = read_checksums(snap_dir)
    if sums is not None:
        wrong = [i for i, crc in enumerate(sums[: head.rows]) if crc != row_crc(rows[i])]
        if wrong:
            out.append(f"{where}: {_epochs(wrong)} not what was written (CRC-32 differs)")
    return out


def checksum_note(snap_dir: Path, final: bool) -> tuple[str, str] | None:
    """``(kind, text)`` when the rows of ``epochs.npy`` are not all covered by checksums:
    a note for runs of older versions (no checksum file) and for a run whose writer was killed
    between a row and its checksum; damage for a finished run that lacks some."""
    if not (snap_dir / TRAJECTORY).exists():
        return None
    try:
        rows = committed(snap_dir / TRAJECTORY).rows
    except (OSError, ValueError):
        return None  # named by problems()
    sums = read_checksums(snap_dir)
    if sums is None:
        return (
            "note",
            f"snapshots/{CHECKSUMS} is missing (a run of an older weightlab): rows "
            "checked for finite values only",
        )
    if len(sums) >= rows:
        return None
    text = f"snapshots/{CHECKSUMS} covers {len(sums)} of {rows} rows"
    return ("corrupt", text) if final else ("note", text + " (the writer stopped in between)")


def _epochs(rows: list[int]) -> str:
    shown = ", ".join(str(r) for r in rows[:8]) + (
        f" and {len(rows) - 8} more" if len(rows) > 8 else ""
    )
    return f"epoch {shown} holds" if len(rows) == 1 else f"epochs {shown} hold"


def row_crc(row: Any) -> int:
    """The CRC-32 of one row (a float32 array) as stored: its little-endian bytes."""
    return zlib.crc32(row.astype("<f4").tobytes())


def read_checksums(snap_dir: Path) -> list[int] | None:
    """The recorded CRC-32 of each row, or None for a trajectory without a checksum file."""
    try:
        data = (snap_dir / CHECKSUMS).read_bytes()
    except FileNotFoundError:
        return None
    n = len(data) // 4
    return list(struct.unpack(f"<{n}I", data[: 4 * n]))


# ---- reading -------------------------------------------------------------------------------------


def read_epoch(snap_dir: Path, epoch: int) -> dict[str, np.ndarray]:
    """Every variable at ``epoch``: one row read, split by the layout.

    Raises:
        IndexError: the trajectory has no such epoch.
        OSError, ValueError: a missing or damaged file (the reason says which).
    """
    import numpy as np

    layout = read_layout(snap_dir)
    with open(snap_dir / TRAJECTORY, "rb") as fh:
        head = _checked(fh)
        _agree(head, layout)
        if not 0 <= epoch < head.rows:
            raise IndexError(epoch)
        fh.seek(head.end(epoch))
        row = bytearray(head.params * ITEMSIZE)  # writable arrays, as np.load gives
        fh.readinto(row)
    values = np.frombuffer(row, dtype="<f4")
    return {name: values[o : o + n].reshape(shape) for name, shape, o, n in layout}


def read_variable(snap_dir: Path, variable: str) -> np.ndarray | None:
    """One variable at every epoch, shape ``(epochs, *shape)``; None if the run has no such one.

    Raises:
        OSError, ValueError: a missing or damaged file.
    """
    import numpy as np

    layout = read_layout(snap_dir)
    found = [(shape, o, n) for name, shape, o, n in layout if name == variable]
    if not found:
        return None
    shape, o, n = found[0]
    head = committed(snap_dir / TRAJECTORY)
    _agree(head, layout)
    if head.rows == 0:
        return np.zeros((0, *shape), dtype=np.float32)
    matrix = np.memmap(
        snap_dir / TRAJECTORY, dtype="<f4", mode="r", offset=head.offset, shape=head[1:]
    )
    try:
        return np.array(matrix[:, o : o + n]).reshape(head.rows, *shape)
    finally:
        del matrix


def variable_names(snap_dir: Path) -> list[str]:
    return [name for name, *_ in read_layout(snap_dir)]


def _agree(head: Header, layout: Layout) -> None:
    params = sum(n for *_, n in layout)
    if head.params != params:
        raise ValueError(f"it has {head.params} columns, {LAYOUT} describes {params}")


# ---- writing -------------------------------------------------------------------------------------


class TrajectoryWriter:
    """Appends one row per epoch to ``snap_dir/epochs.npy`` (see the module docstring).

    Args:
        snap_dir: the run's ``snapshots`` directory; an existing trajectory is continued.
    """

    def __init__(self, snap_dir: Path):
        self.dir = snap_dir
        self.path = snap_dir / TRAJECTORY
        self.names: list[str] | None = None  # the layout's variables, once known
        self.rows = 0
        self.sums = snap_dir / CHECKSUMS
        if self.path.exists():
            try:
                self.names = variable_names(snap_dir)
                self.rows = committed(self.path).rows
                self._complete_checksums()
            except (OSError, ValueError) as e:
                raise StoreError(f"cannot continue {self.path}: {e}") from None

    def _complete_checksums(self) -> None:
        """Bring the checksum file to one entry per committed row: a kill between a row and its
        checksum leaves one missing, an older run has none; committed rows are trusted here."""
        have = read_checksums(self.dir) or []
        if len(have) == self.rows:
            return
        with open(self.path, "rb") as fh:
            head = read_header(fh)
            sums = have[: self.rows]
            for i in range(len(sums), self.rows):
                fh.seek(head.end(i))
                sums.append(zlib.crc32(fh.read(head.params * ITEMSIZE)))
        jsonio.atomic_write_bytes(self.sums, struct.pack(f"<{len(sums)}I", *sums), fsync=False)

    def append(self, epoch: int, arrays: dict[str, np.ndarray]) -> int | None:
        """Add ``arrays`` as epoch ``epoch``'s row; returns the bytes it added on disk.

        Returns None, writing nothing, when the first row is not all float32: such a run keeps
        one ``.npz`` per epoch.

        Raises:
            StoreError: rows out of order, or variables that differ from the layout's.
        """
        import numpy as np

        if epoch != self.rows:
            raise StoreError(f"{self.path}: epoch {epoch} cannot follow {self.rows} rows")
        if self.names is None:
            if not arrays or any(a.dtype != np.float32 for a in arrays.values()):
                return None
            layout = jsonio.dumps(layout_of(arrays)).encode() + b"\n"
            jsonio.atomic_write_bytes(self.dir / LAYOUT, layout)
            self.names = list(arrays)
            row = _row(arrays)
            data = header(1, len(row) // ITEMSIZE) + row
            jsonio.atomic_write_bytes(self.path, data)  # a first row is complete or absent
            self.rows = 1
            jsonio.atomic_write_bytes(self.sums, struct.pack("<I", zlib.crc32(row)), fsync=False)
            return len(layout) + len(data)
        if list(arrays) != self.names:
            raise StoreError(f"{self.path}: the variables changed ({list(arrays)})")
        row = _row(arrays)
        with open(self.path, "r+b") as fh:
            head = read_header(fh)
            if (head.offset, head.rows, head.params * ITEMSIZE) != (
                HEADER_LEN,
                self.rows,
                len(row),
            ):
                raise StoreError(f"{self.path}: this row does not fit its header {head}")
            fh.truncate(head.end(self.rows))  # a row torn by a kill is dropped
            fh.seek(head.end(self.rows))
            fh.write(row)
            fh.flush()
            # The row is on disk before the header counts it. The header needs no fsync of its
            # own: after a power cut an old count only hides this row, and the next append's
            # fsync flushes it.
            _sync(fh)
            fh.seek(0)
            fh.write(header(self.rows + 1, head.params))
        # After the commit, never fsynced: a checksum missing after a kill is computed again
        # from the committed row when the run is continued (and `check` notes it until then).
        with open(self.sums, "ab") as fh:
            if fh.tell() != 4 * self.rows:
                fh.truncate(4 * self.rows)
            fh.write(struct.pack("<I", zlib.crc32(row)))
        self.rows += 1
        return len(row)

    def truncate(self, rows: int) -> None:
        """Keep the first ``rows`` epochs (``resume``: later ones are trained again), and no
        bytes past them (a row torn by a kill), so the file's size is what the run records."""
        if not self.path.exists():
            return
        rows = min(rows, self.rows)
        with open(self.path, "r+b") as fh:
            head = read_header(fh)
            if rows < head.rows:
                # The header first: a kill before the cut leaves extra bytes, which readers ignore.
                fh.seek(0)
                fh.write(header(rows, head.params))
                fh.flush()
                _sync(fh)
            fh.truncate(head.end(rows))
        if self.sums.exists():
            with open(self.sums, "r+b") as fh:
                fh.truncate(4 * rows)
        self.rows = rows


def _sync(fh: IO[bytes]) -> None:
    getattr(os, "fdatasync", os.fsync)(fh.fileno())  # the size is flushed too; no mtime needed


def _row(arrays: dict[str, np.ndarray]) -> bytes:
    import numpy as np

    return np.concatenate([a.ravel() for a in arrays.values()]).astype("<f4").tobytes()
