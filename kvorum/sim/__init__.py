"""Deterministic simulation of a kvorum raft cluster: one seed fixes clock, network and disk.

``python -m kvorum.sim --seed N`` runs one seeded cluster under faults and checks Raft's safety
properties on every step; a failure names the invariant and the command that replays it. The
driver is ``kvorum.sim.cluster`` (``run_seed``, ``Cluster``); the checks are
``kvorum.sim.checker``.
"""
