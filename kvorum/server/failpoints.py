"""Named crash points for the fault-injection suite, inert unless armed by the environment.

``KVORUM_FAILPOINTS=name[@N][,name[@N]...]`` arms the named points when this module is first
imported (read once: a member's failpoints are fixed for its whole life). ``hit(name)`` at an
armed point counts the hit and, at the ``N``-th (the first when ``@N`` is left out), logs one
line and kills the process with SIGKILL -- no ``finally``, no ``atexit``, no flush of anything
the member has not made durable itself: what a power cut or ``kill -9`` at exactly that point
leaves on disk.

The points, each one call in the server:

- ``before-wal-write`` (``raftstorage.RaftStorage.persist``): a Ready's entries and hard state
  are about to be written to the WAL; nothing of them is durable.
- ``after-wal-write-before-send`` (``raftnode.RaftNode._handle_ready``): durable, but no vote,
  append response or other message that vouches for it has left.
- ``after-commit-before-apply`` (``raftnode.RaftNode._apply``): entries known committed, not yet
  applied to the backend; the restart replays them from the WAL.
- ``during-snapshot-apply`` (``member``'s applier, ``_restore``): the leader's database is
  written next to the backend but not yet swapped in.

Unarmed, ``hit`` is one truth test of an empty dict: cheap enough for the Ready loop.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Mapping

__all__ = ["ENV_VAR", "FAILPOINTS", "armed", "hit", "parse"]

ENV_VAR = "KVORUM_FAILPOINTS"
FAILPOINTS = frozenset(
    {
        "before-wal-write",
        "after-wal-write-before-send",
        "after-commit-before-apply",
        "during-snapshot-apply",
    }
)

logger = logging.getLogger("kvorum.server.failpoints")


def parse(spec: str) -> dict[str, int]:
    """``"a,b@3"`` -> ``{"a": 1, "b": 3}``: the hit at which each named point fires.

    An unknown name or a count below 1 raises ``ValueError``: a misspelt failpoint would
    otherwise leave a fault test that injects nothing and passes.
    """
    armed_at: dict[str, int] = {}
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        name, _, count = item.partition("@")
        if name not in FAILPOINTS:
            known = ", ".join(sorted(FAILPOINTS))
            raise ValueError(f"{ENV_VAR}: unknown failpoint {name!r} (known: {known})")
        fire_at = int(count) if count else 1
        if fire_at < 1:
            raise ValueError(f"{ENV_VAR}: {item!r}: the hit count must be >= 1")
        armed_at[name] = fire_at
    return armed_at


# name -> hits still to go before the crash (1: the next hit crashes). Empty when unarmed.
_remaining: dict[str, int] = parse(os.environ.get(ENV_VAR, ""))


def armed() -> Mapping[str, int]:
    """The armed points and how many hits each still lets through before it fires."""
    return dict(_remaining)


def hit(name: str) -> None:
    """Mark that the server reached point ``name``; crash here if it is armed and due."""
    if not _remaining or name not in _remaining:
        return
    _remaining[name] -= 1
    if _remaining[name] > 0:
        return
    logger.critical("failpoint %s reached: killing this member (pid %d)", name, os.getpid())
    # Up the logger chain, as a record travels: stream handlers flush at each line anyway, but
    # the one line that explains the crash must not sit in a buffer.
    chain: logging.Logger | None = logger
    while chain is not None:
        for handler in chain.handlers:
            handler.flush()
        chain = chain.parent if chain.propagate else None
    # Also straight to fd 2, in case logging is configured to go elsewhere or buffered.
    os.write(2, f"kvorum failpoint {name} reached: SIGKILL pid {os.getpid()}\n".encode())
    os.kill(os.getpid(), signal.SIGKILL)
    os._exit(137)  # pragma: no cover -- SIGKILL does not return
