"""Shared pytest configuration for the kvorum test suite."""

from hypothesis import settings

# Property tests check what is computed, never how fast: on a loaded 2-core CI machine one
# example can take far longer than hypothesis' default 200 ms deadline (a flake, not a bug).
settings.register_profile("kvorum", deadline=None)
settings.load_profile("kvorum")
