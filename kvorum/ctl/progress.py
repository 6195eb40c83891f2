"""A one-line progress bar on stderr, drawn only when stderr is a terminal.

etcdctl 3.4 prints no progress for ``snapshot save``/``restore``; ``check perf`` draws a bar
(cheggaaa/pb) on stderr. kvorumctl draws one for all three -- but only on a terminal: piped or
captured, stderr holds exactly etcdctl's bytes, so scripts and the differential tests see no
difference. The bar redraws in place (carriage return) and erases itself when done, so what
stays on the screen is what etcdctl prints.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import BinaryIO

from kvorum.ctl.gofmt import humanize_bytes

__all__ = ["BAR_WIDTH", "Progress", "for_stream"]

BAR_WIDTH = 30
#: Redraws at most this often; a bar that redraws per 32 KiB message would cost more than the
#: copy it reports on.
REDRAW_INTERVAL_S = 0.1
_ERASE_LINE = b"\r\x1b[K"


class Progress:
    """Progress towards ``total`` units (bytes when ``unit`` is "B", else plain counts).

    ``total`` of 0 means unknown: the bar then shows only the amount done. A disabled
    ``Progress`` accepts every call and writes nothing.
    """

    def __init__(
        self,
        stream: BinaryIO | None,
        label: str,
        total: int,
        *,
        unit: str = "B",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self.label = label
        self.total = max(total, 0)
        self.unit = unit
        self.done = 0
        self._clock = clock
        self._last_draw_s: float | None = None
        self.drawn = 0  # how many times the bar was drawn (tests look)
        self._erased = False

    @property
    def enabled(self) -> bool:
        return self._stream is not None

    def set_total(self, total: int) -> None:
        self.total = max(total, 0)

    def advance(self, amount: int) -> None:
        self.update(self.done + amount)

    def update(self, done: int) -> None:
        self.done = done
        if self._stream is None:
            return
        now = self._clock()
        if self._last_draw_s is not None and now - self._last_draw_s < REDRAW_INTERVAL_S:
            return
        self._last_draw_s = now
        self._erased = False
        self._draw()

    def render(self) -> str:
        """The bar's text, e.g. ``snapshot [=======>      ]  45% 1.2 MB / 2.6 MB``."""
        amount = self._amount(self.done)
        if self.total <= 0:
            return f"{self.label} {amount}"
        fraction = min(self.done / self.total, 1.0)
        filled = int(fraction * BAR_WIDTH)
        head = ">" if filled < BAR_WIDTH else ""
        bar = "=" * filled + head + " " * (BAR_WIDTH - filled - len(head))
        return (
            f"{self.label} [{bar}] {int(fraction * 100):3d}% {amount} / {self._amount(self.total)}"
        )

    def _amount(self, n: int) -> str:
        return humanize_bytes(n) if self.unit == "B" else f"{n}{self.unit}"

    def _draw(self) -> None:
        assert self._stream is not None
        self._stream.write(b"\r" + self.render().encode())
        self._stream.flush()
        self.drawn += 1

    def finish(self) -> None:
        """Erase the bar: the line is left as it was before the bar appeared."""
        if self._stream is None or self.drawn == 0 or self._erased:
            return
        self._stream.write(_ERASE_LINE)
        self._stream.flush()
        self._erased = True


def _is_terminal(stream: BinaryIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a file
        return False


def for_stream(
    stream: BinaryIO,
    label: str,
    total: int,
    *,
    unit: str = "B",
    clock: Callable[[], float] = time.monotonic,
) -> Progress:
    """A bar on ``stream`` if it is a terminal, else a disabled one."""
    return Progress(stream if _is_terminal(stream) else None, label, total, unit=unit, clock=clock)
