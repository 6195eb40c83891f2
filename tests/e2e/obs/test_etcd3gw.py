"""The ``etcd3gw`` client (etcd's JSON gateway from Python), differential: the same calls
against a real etcd 3.4's client URL and against kvorum's -- put, get, create, replace,
delete, transactions, leases (grant, ttl, keepalive, keys, revoke), its lock recipe and
watches (from the past and live) -- give equal results once ids and terms are normalised.
"""

from __future__ import annotations

import queue
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from kvorum.testing import ETCD, Cluster, binary_for
from tests.e2e.obs.test_gateway import normalise

etcd3gw = pytest.importorskip("etcd3gw")
from etcd3gw.watch import Watcher  # noqa: E402

CALL_TIMEOUT_S = 10.0
EVENT_TIMEOUT_S = 10.0
LEASE_TTL_S = 30
#: A lease's remaining TTL counts down while the test runs; a loaded machine may take seconds.
TTL_SLACK_S = 10


def _client(endpoint: str) -> Any:
    parts = urlsplit(endpoint)
    return etcd3gw.client(host=parts.hostname, port=parts.port, timeout=CALL_TIMEOUT_S)


def _next_event(events: queue.Queue[Any]) -> Any:
    try:
        return events.get(timeout=EVENT_TIMEOUT_S)
    except queue.Empty:
        raise AssertionError(f"no watch event within {EVENT_TIMEOUT_S} s") from None


def scenario(endpoint: str) -> list[tuple[str, Any]]:
    client = _client(endpoint)
    out: list[tuple[str, Any]] = []
    out.append(("api path", client.api_path))  # discovered from /version: /v3/ for 3.4
    out.append(("put", client.put("foo", "bar")))
    out.append(("get", client.get("foo")))
    out.append(("get metadata", normalise(client.get("foo", metadata=True))))
    out.append(("get missing", client.get("nothing")))
    out.append(("create new", client.create("made", "1")))
    out.append(("create existing", client.create("made", "2")))
    out.append(("replace", client.replace("foo", "bar", "baz")))
    out.append(("replace stale", client.replace("foo", "bar", "qux")))
    client.put("dir/a", "1")
    client.put("dir/b", "2")
    out.append(("get prefix", sorted(client.get_prefix("dir/"))))
    out.append(("get all", len(client.get_all())))
    out.append(("delete", client.delete("made")))
    out.append(("delete missing", client.delete("made")))
    out.append(("delete prefix", client.delete_prefix("dir/")))
    txn = {
        "compare": [{"key": "Zm9v", "result": "EQUAL", "target": "VALUE", "value": "YmF6"}],
        "success": [{"request_put": {"key": "Zm9v", "value": "MQ=="}}],
    }
    out.append(("transaction", normalise(client.transaction(txn))))

    lease = client.lease(ttl=LEASE_TTL_S)
    out.append(("put with lease", client.put("leased", "v", lease=lease)))
    ttl = lease.ttl()
    out.append(("lease ttl counts down", LEASE_TTL_S - TTL_SLACK_S <= ttl <= LEASE_TTL_S))
    out.append(("lease keepalive", lease.refresh()))  # over /v3/lease/keepalive
    out.append(("lease keys", lease.keys()))
    out.append(("lease revoke", lease.revoke()))
    out.append(("leased key gone", client.get("leased")))

    lock = client.lock("gw", ttl=LEASE_TTL_S)
    other = client.lock("gw", ttl=LEASE_TTL_S)
    out.append(("lock acquire", lock.acquire()))
    out.append(("lock held", lock.is_acquired()))
    out.append(("lock contended", other.acquire()))
    out.append(("lock release", lock.release()))
    out.append(("lock taken after release", other.acquire()))
    other.release()

    # A watch from the past sees history; a live one sees a put made after it started.
    events: queue.Queue[Any] = queue.Queue()
    past = Watcher(client, "foo", events.put, start_revision=1)
    try:
        out.append(("watch past 1", normalise(_next_event(events))))
        out.append(("watch past 2", normalise(_next_event(events))))
    finally:
        past.stop()
    live_events: queue.Queue[Any] = queue.Queue()
    live = Watcher(client, "live", live_events.put, prev_kv=True)
    try:
        # The watch is created once its stream answered; a put right after may precede it,
        # so put until the event shows (each put is seen once the watch exists).
        deadline = time.monotonic() + EVENT_TIMEOUT_S
        event: Any = None
        while event is None and time.monotonic() < deadline:
            client.put("live", "1")
            try:
                event = live_events.get(timeout=0.5)
            except queue.Empty:
                continue
        assert event is not None, "no live watch event"
        event["kv"].pop("mod_revision")  # how many puts it took is timing
        event["kv"].pop("version")
        event.pop("prev_kv", None)
        out.append(("watch live", normalise(event)))
    finally:
        live.stop()
    status = client.status()
    out.append(("status keys", sorted(status)))
    out.append(("members", len(client.members())))
    return out


def test_etcd3gw_against_kvorum_and_etcd(tmp_path: Path) -> None:
    kvorum = binary_for("kvorum")
    for binary in (ETCD, kvorum[0]):
        if not Path(binary).exists():
            pytest.skip(f"{binary} is not installed")
    results: dict[str, list[tuple[str, Any]]] = {}
    for name, binary in (("etcd", ETCD), ("kvorum", kvorum)):
        with Cluster(binary, 1, base_dir=tmp_path / name) as c:
            results[name] = scenario(c.endpoints[0])
    assert results["etcd"][0] == ("api path", "/v3/")
    for mine, reference in zip(results["kvorum"], results["etcd"], strict=True):
        assert mine == reference, mine[0]
