"""Opening a file the user named (an image to read, a settings file) without surprises.

`open()` on a FIFO blocks until some other process writes to it, so a pipe named
`picture.png` (or `settings.json`) would hang the program; a device or a folder gives odd
errors. `open_regular_file` opens without blocking, then refuses anything that is not a
regular file, from the descriptor it will read (no gap in which the name could be swapped).
The scanner's ingest reads whole files the same way (library/ingest.py `_read`).
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from typing import BinaryIO


class NotARegularFileError(OSError):
    """The path names a folder, pipe, socket or device rather than a file."""


def open_regular_file(path: str | os.PathLike[str]) -> BinaryIO:
    """The file at `path` opened for binary reading (blocking reads, like open()).

    Raises NotARegularFileError for anything but a regular file (after a symlink is
    followed), and the usual OSErrors (FileNotFoundError, PermissionError…)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a folder" if stat.S_ISDIR(mode) else "a pipe or device"
            raise NotARegularFileError(errno.EINVAL, f"not a regular file ({kind})",
                                       os.fspath(path))
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
