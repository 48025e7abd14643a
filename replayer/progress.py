"""Progress on stderr: a bar on a terminal (tqdm), plain periodic lines otherwise."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

__all__ = ["Progress"]


class Progress:
    """Counts units of work; shows them as a bar or as a line every ``interval`` seconds."""

    def __init__(
        self,
        label: str,
        unit: str,
        *,
        stream: TextIO | None = None,
        interval: float = 10.0,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream or sys.stderr
        self.label = label
        self.unit = unit
        self.interval = interval
        self.clock = clock
        self.count = 0
        self.started = clock()
        self._last_line = self.started
        self._lock = threading.Lock()
        self._bar: Any = None
        self.enabled = enabled
        if enabled and self.stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(desc=label, unit=f" {unit}", file=self.stream, dynamic_ncols=True)

    def add(self, n: int) -> None:
        with self._lock:
            self.count += n
            if self._bar is not None:
                self._bar.update(n)
                return
            now = self.clock()
            if self.enabled and now - self._last_line >= self.interval:
                self._last_line = now
                rate = self.count / max(now - self.started, 1e-9)
                print(
                    f"{self.label}: {self.count} {self.unit} ({rate:,.0f}/s)",
                    file=self.stream,
                    flush=True,
                )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    @property
    def elapsed(self) -> float:
        return self.clock() - self.started
