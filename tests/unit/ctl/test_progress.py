"""The progress bar: drawn on a terminal only, throttled, erased when done."""

from __future__ import annotations

import io
import os
import pty
import select

from kvorum.ctl import progress
from kvorum.ctl.progress import BAR_WIDTH, REDRAW_INTERVAL_S, Progress


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


class TerminalBytes(io.BytesIO):
    """A stream that says it is a terminal (what a real tty's ``isatty`` says)."""

    def isatty(self) -> bool:
        return True


def test_not_a_terminal_means_no_bar() -> None:
    out = io.BytesIO()
    bar = progress.for_stream(out, "snapshot", 1000)
    assert not bar.enabled
    for done in range(0, 1001, 100):
        bar.update(done)
    bar.finish()
    assert out.getvalue() == b""
    assert bar.done == 1000  # the count is kept all the same


def test_a_closed_stream_counts_as_no_terminal() -> None:
    out = io.BytesIO()
    out.close()
    assert not progress.for_stream(out, "x", 1).enabled


def test_a_terminal_gets_a_bar_redrawn_in_place_and_erased() -> None:
    out = TerminalBytes()
    clock = FakeClock()
    bar = progress.for_stream(out, "snapshot", 2_000_000, clock=clock)
    assert bar.enabled
    bar.update(500_000)
    # Within the redraw interval nothing more is drawn.
    clock.now_s += REDRAW_INTERVAL_S / 2
    bar.update(600_000)
    assert bar.drawn == 1
    clock.now_s += REDRAW_INTERVAL_S
    bar.update(1_000_000)
    assert bar.drawn == 2
    bar.finish()
    text = out.getvalue()
    frames = text.split(b"\r")
    assert frames[0] == b""
    assert frames[1].startswith(b"snapshot [=======>")
    assert frames[1].endswith(b"]  25% 500 kB / 2.0 MB")
    assert frames[2].endswith(b"]  50% 1.0 MB / 2.0 MB")
    # finish() erases the line: the screen keeps only what etcdctl prints.
    assert text.endswith(b"\r\x1b[K")
    assert b"\n" not in text


def test_render_full_empty_and_unknown_totals() -> None:
    bar = Progress(None, "restore", 10)
    assert bar.render() == f"restore [>{' ' * (BAR_WIDTH - 1)}]   0% 0 B / 10 B"
    bar.update(10)
    assert bar.render() == f"restore [{'=' * BAR_WIDTH}] 100% 10 B / 10 B"
    bar.update(15)  # more than announced: capped at full
    assert bar.render().startswith(f"restore [{'=' * BAR_WIDTH}] 100%")
    unknown = Progress(None, "snapshot", 0)
    unknown.advance(2048)
    assert unknown.render() == "snapshot 2.0 kB"
    seconds = Progress(None, "check perf", 60, unit="s")
    seconds.update(30)
    assert seconds.render().endswith(" 50% 30s / 60s")


def test_finish_without_drawing_writes_nothing() -> None:
    out = TerminalBytes()
    bar = progress.for_stream(out, "x", 10)
    bar.finish()
    assert out.getvalue() == b""


def test_a_real_pseudo_terminal_is_detected() -> None:
    leader, follower = pty.openpty()
    try:
        with os.fdopen(follower, "wb", buffering=0, closefd=False) as tty:
            bar = progress.for_stream(tty, "snapshot", 100)  # type: ignore[arg-type]
            assert bar.enabled
            bar.update(50)
            bar.finish()
        # The two writes may arrive in separate reads; bounded in count and time.
        drawn = b""
        for _ in range(20):
            ready, _, _ = select.select([leader], [], [], 0.5)
            if not ready:
                break
            drawn += os.read(leader, 4096)
            if drawn.endswith(b"\r\x1b[K"):
                break
        assert drawn.startswith(b"\rsnapshot [") and drawn.endswith(b"\r\x1b[K"), drawn
    finally:
        os.close(leader)
        os.close(follower)
