"""Transient progress on stderr while many file headers or repos are read (rich loaded only when shown)."""

from __future__ import annotations

import _thread
import sys
import threading
import time
from typing import Any


class ReadProgress:
    """Transient progress on stderr (repos done, file headers read) once reading takes more than a moment.

    Silent off a TTY or with --quiet. The callbacks come from the fetcher's threads, header reads from the HTTP
    thread that moves every transfer: they only count and update the bar; the bar itself (rich's ~0.1-0.2 s of
    imports) is built on a thread of its own, so no callback ever waits for it.
    """

    DELAY_S = 0.5

    def __init__(self, repos: int, quiet: bool) -> None:
        self._enabled = not quiet and sys.stderr.isatty()
        self._began = time.monotonic()
        self._lock = threading.Lock()
        self._repos, self._repos_done, self._headers = repos, 0, 0
        self._progress: Any = None  # a rich Progress once shown (rich is imported only then)
        self._building = self._closed = False
        self.shown = threading.Event()  # set once the bar is up (or will never be: closed first)

    def __enter__(self) -> ReadProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._closed = True
            progress = self._progress
        self.shown.set()
        if progress:
            progress.stop()

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
        if self._progress is not None:
            self._progress.update(self._repo_task, completed=self._repos_done)
            self._progress.update(self._header_task, completed=self._headers)
        elif self._enabled and not self._building and time.monotonic() - self._began >= self.DELAY_S:
            self._building = True
            _thread.start_new_thread(self._show, ())  # (Thread.start would wait for it to run)

    def _show(self) -> None:
        from rich.console import Console
        from rich.progress import Progress

        with self._lock:
            if not self._closed:
                self._progress = Progress(console=Console(stderr=True), transient=True)
                self._repo_task = self._progress.add_task("Repos", total=self._repos, visible=self._repos > 1)
                self._header_task = self._progress.add_task("Headers read", total=None)
                self._progress.start()
                self._refresh()
        self.shown.set()
