"""What a path is, when it is not the regular file a command expected (the bottom layer).

``/dev/zero``, a directory or a named pipe given as a config or data file must be named as what
it is: reading one would block (a FIFO) or never end (a device), and "file not found" would lie.
"""

from __future__ import annotations

import os
import stat

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
)


def not_a_file(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` is not a readable regular file (``"is a directory"``, ...), or None if it is.

    Symbolic links are followed; nothing is opened, so a FIFO is never waited on.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "not found"
    except NotADirectoryError:
        return "not found (a part of the path is not a directory)"
    except OSError as e:
        return f"cannot be read: {e.strerror or e}"
    if stat.S_ISREG(mode):
        return None
    return f"is {mode_kind(mode)}, not a file"


def mode_kind(mode: int) -> str:
    """What a file of this ``st_mode`` is, in words: ``"a named pipe (FIFO)"``, ..."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")
