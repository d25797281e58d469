"""A progress bar for long inference runs: tqdm's when installed, else a plain one.

tqdm is optional (not a dependency); without it a one-line text bar is redrawn on
standard error at most ten times a second.
"""

from __future__ import annotations

import sys
import time


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


class TextBar:
    """``desc: 40%|########            | 400/1000 [1.2 s]`` on a stream."""

    width = 30

    def __init__(self, total: int, desc: str, stream=None) -> None:
        self.total, self.desc = max(int(total), 1), desc
        self.stream = stream if stream is not None else sys.stderr
        self.count = 0
        self.start = self._last = time.perf_counter()
        self._draw()

    def update(self, n: int = 1) -> None:
        self.count += n
        now = time.perf_counter()
        if now - self._last >= 0.1 or self.count >= self.total:
            self._last = now
            self._draw()

    def _draw(self) -> None:
        frac = min(self.count / self.total, 1.0)
        filled = int(round(frac * self.width))
        bar = "#" * filled + " " * (self.width - filled)
        elapsed = time.perf_counter() - self.start
        self.stream.write(
            f"\r{self.desc}: {100 * frac:3.0f}%|{bar}| {self.count}/{self.total} [{elapsed:.1f} s]"
        )
        self.stream.flush()

    def close(self) -> None:
        self._draw()
        self.stream.write("\n")
        self.stream.flush()


def progress_bar(total: int, desc: str, enabled: bool):
    """An object with ``update(n)`` and ``close()``: tqdm, the text bar, or nothing."""
    if not enabled:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return TextBar(total, desc)
    return tqdm(total=total, desc=desc)
