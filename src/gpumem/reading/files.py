"""Reading and writing files safely: capped reads that refuse anything but regular files, and one
atomic writer (a crash or Ctrl-C never leaves half a file) that refuses to replace anything but a
regular file and honours the umask."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from ..constants import SMALL_FILE_CAP
from ..errors import FormatError, GpumemError


def open_regular(path: str | os.PathLike, name: str | None = None):
    """Open `path` for binary reading only if it is a regular file (a FIFO, device or folder would hang or
    never end): O_NONBLOCK so that opening a FIFO cannot block, then fstat of what was opened."""
    label = name or str(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise GpumemError(f"{label}: cannot read ({exc.strerror or exc})") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise FormatError(f"{label}: not a regular file (a {_kind(mode)}); refusing to read it")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_capped(path: str | os.PathLike, limit: int = SMALL_FILE_CAP, name: str | None = None) -> bytes:
    """The whole of a regular file of at most `limit` bytes; a FormatError for a larger one."""
    label = name or str(path)
    with open_regular(path, name) as handle:
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise GpumemError(f"{label}: cannot read ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise FormatError(f"{label}: over {limit:,} bytes; refusing to read it as metadata")
    return data


def write_atomically(path: Path, text: str, *, mode: int | None = None, durable: bool = True) -> None:
    """Write `text` to a temp file beside the final path, flush it to disk (unless not `durable`), then rename it
    into place: a reader sees the old file or the new one, never part of one. Without `durable` a crash of the
    machine soon after may leave the file empty or short, which suits what is checked on reading and made again.

    The final path is resolved first (a link is written through to its target's folder, never replaced by a
    file), and only a regular file or nothing may be there: a device node, FIFO or folder is refused with an
    OSError. The file gets `mode` (default 0o666) less the umask, as open() would give it.
    """
    target = Path(os.path.realpath(path))
    try:
        existing = os.stat(target).st_mode
    except FileNotFoundError:
        existing = None
    if existing is not None and not stat.S_ISREG(existing):
        raise IsADirectoryError(21, f"not a regular file (a {_kind(existing)}); refusing to replace it", str(path))
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".part")
    try:
        os.fchmod(fd, (0o666 if mode is None else mode) & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


_UMASK: list[int] = []


def _umask() -> int:
    """The process umask, read once (os.umask can only be read by setting it, which races other threads)."""
    if not _UMASK:
        current = os.umask(0o022)
        os.umask(current)
        _UMASK.append(current)
    return _UMASK[0]


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"
