"""A progress display for long command-line operations: a bar on a terminal, a line every few
seconds elsewhere (logs stay readable)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 30
LOG_EVERY_SECONDS = 5.0


class Progress:
    def __init__(self, total: int, label: str, stream: TextIO = sys.stderr) -> None:
        self._total = max(total, 0)
        self._label = label
        self._stream = stream
        self._done = 0
        self._failed = 0
        self._started = time.monotonic()
        self._last_line = 0.0
        self._tty = stream.isatty()

    def advance(self, *, failed: bool = False) -> None:
        self._done += 1
        self._failed += int(failed)
        self._show()

    def _text(self) -> str:
        share = self._done / self._total if self._total else 1.0
        bar = "#" * int(share * WIDTH)
        elapsed = time.monotonic() - self._started
        failed = f", {self._failed} failed" if self._failed else ""
        return (
            f"{self._label} [{bar:<{WIDTH}}] {self._done}/{self._total}{failed} ({elapsed:.0f} s)"
        )

    def _show(self) -> None:
        now = time.monotonic()
        if self._tty:
            self._stream.write("\r" + self._text())
            self._stream.flush()
        elif now - self._last_line >= LOG_EVERY_SECONDS or self._done == self._total:
            self._last_line = now
            self._stream.write(self._text() + "\n")

    def close(self) -> None:
        if self._tty:
            self._stream.write("\r" + self._text() + "\n")
        elif self._done != self._total:
            self._stream.write(self._text() + "\n")
        self._stream.flush()
