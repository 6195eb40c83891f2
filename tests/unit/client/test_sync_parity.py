"""The sync ``Client`` offers every public method of ``AsyncClient`` with the same parameters."""

from __future__ import annotations

import inspect

import pytest

from kvorum.client import AsyncClient, Client

# Async-only plumbing: a prepared TxnRequest runs via txn().commit() on the sync side.
ASYNC_ONLY = {"submit_txn", "pool"}


def _public(cls: type) -> dict[str, object]:
    return {n: v for n, v in vars(cls).items() if not n.startswith("_") and n not in ASYNC_ONLY}


@pytest.mark.parametrize("name", sorted(_public(AsyncClient)))
def test_method_exists_with_the_same_parameters(name: str) -> None:
    assert hasattr(Client, name), f"Client lacks {name}"
    async_attr, sync_attr = getattr(AsyncClient, name), getattr(Client, name)
    if not callable(async_attr):
        return
    async_params = list(inspect.signature(async_attr).parameters)
    sync_params = list(inspect.signature(sync_attr).parameters)
    # Snapshot/defragment take a longer default timeout on the async side only.
    assert [p for p in async_params if p != "timeout_s"] == [
        p for p in sync_params if p != "timeout_s"
    ]
