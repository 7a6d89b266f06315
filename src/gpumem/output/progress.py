"""Transient progress on stderr while many file headers or repos are read (rich loaded only when shown)."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any


class ReadProgress:
    """Transient progress on stderr (repos done, file headers read) once reading takes more than a moment.

    Silent off a TTY or with --quiet. The callbacks come from the fetcher's worker threads.
    """

    DELAY_S = 0.5

    def __init__(self, repos: int, quiet: bool) -> None:
        self._enabled = not quiet and sys.stderr.isatty()
        self._began = time.monotonic()
        self._lock = threading.Lock()
        self._repos, self._repos_done, self._headers = repos, 0, 0
        self._progress: Any = None  # a rich Progress once shown (rich is imported only then)

    def __enter__(self) -> ReadProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress:
            self._progress.stop()

    def repo_done(self, _repo_id: str) -> None:
        """One more repo read."""
        with self._lock:
            self._repos_done += 1
            self._refresh()

    def header_read(self, _path: str) -> None:
        """One more byte range (a file header) read."""
        with self._lock:
            self._headers += 1
            self._refresh()

    def _refresh(self) -> None:
        if not self._enabled or (self._progress is None and time.monotonic() - self._began < self.DELAY_S):
            return
        if self._progress is None:
            from rich.console import Console
            from rich.progress import Progress

            self._progress = Progress(console=Console(stderr=True), transient=True)
            self._repo_task = self._progress.add_task("Repos", total=self._repos, visible=self._repos > 1)
            self._header_task = self._progress.add_task("Headers read", total=None)
            self._progress.start()
        self._progress.update(self._repo_task, completed=self._repos_done)
        self._progress.update(self._header_task, completed=self._headers)
