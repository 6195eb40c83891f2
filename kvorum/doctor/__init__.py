"""``kvorum doctor``: measure whether this machine can hold a stable cluster member, judge
the measurements against etcd's guidance, and advise the raft timing flags.

``verdict`` holds the pure rules (measurements in, findings and advice out), ``measure`` the
measurements, ``cli`` the command line and its table and JSON output.
"""

from kvorum.doctor.cli import main

__all__ = ["main"]
