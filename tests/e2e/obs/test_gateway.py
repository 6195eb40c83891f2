"""etcd's JSON gateway, differential: the same plain-HTTP requests to a real etcd 3.4's client
URL and to kvorum's (gRPC and HTTP on one port) give the same status and JSON once ids are
normalised; kvorum's metrics URL serves the same gateway."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from kvorum.testing import ETCD, Cluster, binary_for
from tests.e2e.obs.helpers import MetricsCluster

TIMEOUT_S = 10.0

# Keys named `foo`, `bar`... in base64, as the gateway takes them.
FOO, BAR, BAZ, QUX = "Zm9v", "YmFy", "YmF6", "cXV4"
REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("kv/put", {"key": FOO, "value": BAR}),
    ("kv/put", {"key": FOO, "value": BAZ, "prev_kv": True}),
    ("kv/range", {"key": FOO}),
    ("kv/range", {"key": "bm9uZQ=="}),
    ("kv/range", {"key": "AA==", "range_end": "AA==", "count_only": True}),
    ("kv/range", {"key": FOO, "revision": 100}),
    ("kv/range", {"unknown_field": 1}),
    (
        "kv/txn",
        {
            "compare": [{"key": FOO, "result": "EQUAL", "target": "VERSION", "version": 2}],
            "success": [
                {"request_put": {"key": FOO, "value": QUX}},
                {"request_range": {"key": FOO}},
            ],
        },
    ),
    ("kv/deleterange", {"key": FOO, "prev_kv": True}),
    ("kv/compaction", {"revision": 3}),
    ("kv/range", {"key": FOO, "revision": 2}),
    ("lease/grant", {"TTL": 30, "ID": 12345}),
    ("lease/timetolive", {"ID": 12345, "keys": True}),
    ("kv/lease/leases", {}),
    ("lease/revoke", {"ID": 12345}),
    ("lease/revoke", {"ID": 12345}),
    ("maintenance/status", {}),
    ("maintenance/alarm", {"action": "GET"}),
    ("cluster/member/list", {}),
]

# Values that differ between any two clusters: ids, terms, indexes, sizes, ports.
_VARYING = {
    "cluster_id",
    "member_id",
    "raft_term",
    "raftIndex",
    "raftTerm",
    "raftAppliedIndex",
    "dbSize",
    "dbSizeInUse",
    "leader",
    "peerURLs",
    "clientURLs",
}


def normalise(value: Any, parent: str = "") -> Any:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            varying = k in _VARYING or (parent == "members" and k == "ID")
            out[k] = "<varies>" if varying else normalise(v, k)
        return out
    if isinstance(value, list):
        return [normalise(v, parent) for v in value]
    return value


def post(
    base: str,
    path: str,
    body: bytes,
    method: str = "POST",
    prefix: str = "/v3",
    token: str | None = None,
) -> tuple[int, Any]:
    headers = {"Authorization": token} if token is not None else {}
    url = f"{base}{prefix}/{path}"
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        text = err.read()
        try:
            return err.code, json.loads(text)
        except ValueError:
            return err.code, text.decode()


def run_all(base: str) -> list[tuple[int, Any]]:
    replies = []
    for path, body in REQUESTS:
        status, reply = post(base, path, json.dumps(body).encode())
        if path == "lease/timetolive" and status == 200:
            reply["TTL"] = "<counts down>"  # 29 or 30, by timing
        replies.append((status, normalise(reply)))
    return replies


def test_gateway_answers_as_etcds(tmp_path: Path) -> None:
    kvorum = binary_for("kvorum")
    for binary in (ETCD, kvorum[0]):
        if not Path(binary).exists():
            pytest.skip(f"{binary} is not installed")
    with Cluster(ETCD, 1, base_dir=tmp_path / "etcd") as e:
        theirs = run_all(e.endpoints[0])
    with MetricsCluster(kvorum, 1, base_dir=tmp_path / "kvorum") as k:
        base = k.endpoints[0]
        ours = run_all(base)
        # The metrics URL serves the same gateway.
        request = json.dumps({"key": FOO}).encode()
        assert post(k.metrics_url(0), "kv/range", request) == post(base, "kv/range", request)
        # What only plain HTTP can get wrong: method, body, path.
        assert post(base, "kv/range", b"", method="GET")[0] == 405
        bad_json = post(base, "kv/range", b"{not json")
        assert bad_json[0] == 400 and bad_json[1]["code"] == 3
        assert post(base, "kv/nothing", b"{}")[0] == 404
        assert post(base, "watch", b"{}", method="GET")[0] == 405
        empty_body = post(base, "kv/range", b"")
        assert empty_body == (
            400,
            {
                "error": "etcdserver: key is not provided",
                "message": "etcdserver: key is not provided",
                "code": 3,
            },
        )

    for (path, body), mine, reference in zip(REQUESTS, ours, theirs, strict=True):
        assert mine == reference, f"{path} {body}"
