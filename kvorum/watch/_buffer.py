"""One stream's outgoing responses: a bounded FIFO, and the split of large responses.

The FIFO is the only place responses wait, so stream order is queue order: a progress
answer queued after a watcher's events is sent after them. Fragmenting happens on the way
out, so the limits count whole responses.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

from kvorum.mvcc import Event
from kvorum.watch.types import RESPONSE_OVERHEAD_BYTES, WatchResponse


@dataclass(frozen=True, slots=True)
class _Queued:
    response: WatchResponse
    size_bytes: int
    fragment: bool  # the watcher asked for large responses to be split


class OutputBuffer:
    """Responses waiting for the stream's consumer, bounded in count and bytes."""

    __slots__ = ("_items", "_max_bytes", "_max_responses", "_size_bytes")

    def __init__(self, max_responses: int, max_bytes: int) -> None:
        self._items: deque[_Queued] = deque()
        self._max_responses = max_responses
        self._max_bytes = max_bytes
        self._size_bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def size_bytes(self) -> int:
        return self._size_bytes

    def has_room(self) -> bool:
        """Whether some event response could go in now."""
        if not self._items:
            return True
        return len(self._items) < self._max_responses and self._size_bytes < self._max_bytes

    def room_bytes(self) -> int | None:
        """Bytes an event response may take now; None = any size (the buffer is empty)."""
        if not self._items:
            return None
        if len(self._items) >= self._max_responses:
            return 0
        return max(0, self._max_bytes - self._size_bytes)

    def fits(self, size_bytes: int) -> bool:
        room = self.room_bytes()
        return room is None or size_bytes <= room

    def push(self, response: WatchResponse, size_bytes: int, *, fragment: bool = False) -> None:
        """Append unconditionally; event responses are checked with `fits` first."""
        self._items.append(_Queued(response, size_bytes, fragment))
        self._size_bytes += size_bytes

    def pop(
        self, max_responses: int, max_response_bytes: int, size_of: Callable[[Event], int]
    ) -> list[WatchResponse]:
        """Up to `max_responses` queued responses, oldest first, fragments expanded."""
        out: list[WatchResponse] = []
        for _ in range(min(max_responses, len(self._items))):
            item = self._items.popleft()
            self._size_bytes -= item.size_bytes
            if item.fragment and item.size_bytes > max_response_bytes:
                out.extend(fragment(item.response, max_response_bytes, size_of))
            else:
                out.append(item.response)
        return out


def fragment(
    response: WatchResponse, max_response_bytes: int, size_of: Callable[[Event], int]
) -> list[WatchResponse]:
    """Split `response` into pieces of at most `max_response_bytes` (etcd's sendFragments).

    Every piece holds at least one event, so an event larger than the limit travels alone;
    all pieces but the last carry fragment=True and the client joins them.
    """
    if len(response.events) < 2:
        return [response]
    pieces: list[list[Event]] = [[]]
    piece_bytes = RESPONSE_OVERHEAD_BYTES
    for event in response.events:
        size = size_of(event)
        if pieces[-1] and piece_bytes + size > max_response_bytes:
            pieces.append([])
            piece_bytes = RESPONSE_OVERHEAD_BYTES
        pieces[-1].append(event)
        piece_bytes += size
    last = len(pieces) - 1
    return [
        replace(response, events=tuple(events), fragment=i < last)
        for i, events in enumerate(pieces)
    ]
