"""In-process checks of the member's start-up decisions, logging lines and error hand-over.

These run without processes: ``bootstrap.plan`` against real data dirs (a real WAL) and a fake
peer, the log formatters on real records, and the error translation the servicers rely on.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from kvorum.api import errors as api_errors
from kvorum.api.errors import status_of
from kvorum.apply import NoSpaceError
from kvorum.config import ServerConfig, load_config
from kvorum.datadir import DataDir
from kvorum.membership import Member, MemberExistsError, PeerURLExistsError
from kvorum.server import RaftStorage
from kvorum.server import logging as member_logging
from kvorum.server.bootstrap import (
    BootstrapError,
    ClusterInfo,
    Mode,
    decode_cluster_info,
    encode_cluster_info,
    plan,
)
from kvorum.server.member import translate_error
from kvorum.transport import ClusterInfoError

A, B, C = "http://127.0.0.1:7001", "http://127.0.0.1:7002", "http://127.0.0.1:7003"
THREE = f"a={A},b={B},c={C}"


def _config(name: str, url: str, data_dir: Path, *extra: str, cluster: str = THREE) -> ServerConfig:
    flags = ["--name", name, "--initial-advertise-peer-urls", url, "--listen-peer-urls", url]
    flags += ["--initial-cluster", cluster, "--data-dir", str(data_dir), *extra]
    return load_config(flags)


async def _no_fetch(url: str, timeout_s: float) -> bytes:
    raise AssertionError(f"no peer may be asked ({url})")


def test_new_cluster_ids_come_from_the_flags_alone(tmp_path: Path) -> None:
    plans = [
        asyncio.run(plan(_config(n, u, tmp_path / n), DataDir(tmp_path / n), _no_fetch))
        for n, u in (("a", A), ("b", B), ("c", C))
    ]
    assert {p.mode for p in plans} == {Mode.NEW}
    # Every member derives the same cluster and the same member list on its own.
    assert len({p.cluster_id for p in plans}) == 1
    assert len({p.members for p in plans}) == 1
    ids = _config("a", A, tmp_path).initial_member_ids()
    assert [p.member_id for p in plans] == [ids["a"], ids["b"], ids["c"]]
    assert plans[0].voters == tuple(sorted(ids.values()))
    assert {(m.name, m.peer_urls) for m in plans[0].members} == {
        ("a", (A,)),
        ("b", (B,)),
        ("c", (C,)),
    }
    assert not any(m.client_urls for m in plans[0].members)  # published later


def _create_log(config: ServerConfig, member_id: int) -> DataDir:
    data_dir = DataDir(config.data_dir)
    storage = RaftStorage.open_or_create(
        data_dir, member_id, config.initial_cluster_id(), [member_id]
    )
    storage.wal.wal.close()
    return data_dir


def test_restart_takes_identity_from_the_wal_and_refuses_another_members_dir(
    tmp_path: Path,
) -> None:
    config_a = _config("a", A, tmp_path / "a.etcd")
    ids = config_a.initial_member_ids()
    data_dir = _create_log(config_a, ids["a"])
    # Other flags on restart are ignored, as etcd ignores them: the WAL says who we are.
    moved = _config("a", A, tmp_path / "a.etcd", cluster=f"a={A}")
    p = asyncio.run(plan(moved, data_dir, _no_fetch))
    assert (p.mode, p.member_id, p.cluster_id) == (
        Mode.RESTART,
        ids["a"],
        config_a.initial_cluster_id(),
    )
    # Member b of the same cluster pointed at a's data: two processes would be one member.
    with pytest.raises(BootstrapError, match="refusing to start on another member's data"):
        asyncio.run(plan(_config("b", B, tmp_path / "a.etcd"), data_dir, _no_fetch))


def test_a_directory_that_is_not_kvorums_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("mine")
    with pytest.raises(BootstrapError, match="not a kvorum data directory"):
        asyncio.run(plan(_config("a", A, junk), DataDir(junk), _no_fetch))
    assert (junk / "notes.txt").read_text() == "mine"


def test_join_asks_the_peers_in_turn_and_finds_itself_by_peer_urls(tmp_path: Path) -> None:
    config = _config("c", C, tmp_path / "c.etcd", "--initial-cluster-state", "existing")
    members = (
        Member(0x10, "a", (A,), ("http://127.0.0.1:2379",)),
        Member(0x20, "b", (B,)),
        Member(0x30, "", (C,)),  # added with `member add`, not started yet
    )
    asked: list[str] = []

    async def fetch(url: str, timeout_s: float) -> bytes:
        asked.append(url)
        if url == A:
            raise ClusterInfoError("connection refused")
        return encode_cluster_info(ClusterInfo(0xC1, 0x20, members))

    p = asyncio.run(plan(config, DataDir(config.data_dir), fetch))
    assert asked == [A, B]
    assert (p.mode, p.member_id, p.cluster_id) == (Mode.JOIN, 0x30, 0xC1)
    assert p.voters == (0x10, 0x20)  # itself only once its addition is replayed
    assert p.members == members

    async def unknown(url: str, timeout_s: float) -> bytes:
        return encode_cluster_info(ClusterInfo(0xC1, 0x10, members[:2]))

    with pytest.raises(BootstrapError, match="etcdctl member add c"):
        asyncio.run(plan(config, DataDir(config.data_dir), unknown))

    async def down(url: str, timeout_s: float) -> bytes:
        raise ClusterInfoError(f"{url} refused")

    with pytest.raises(BootstrapError, match="from any peer"):
        asyncio.run(plan(config, DataDir(config.data_dir), down))


def test_cluster_info_round_trips_and_garbage_is_refused() -> None:
    info = ClusterInfo(0xABC, 0x1, (Member(0x1, "a", (A,), (B,), False), Member(0x2, "", (C,))))
    assert decode_cluster_info(encode_cluster_info(info)) == info
    with pytest.raises(BootstrapError):
        decode_cluster_info(b"\xff\xff\xff")
    with pytest.raises(BootstrapError, match="no cluster id"):
        decode_cluster_info(encode_cluster_info(ClusterInfo(0, 1, info.members)))


def test_capnslog_and_zap_lines() -> None:
    record = logging.LogRecord(
        "kvorum.server.raft", logging.WARNING, "raftnode.py", 7, "x %d", (1,), None
    )
    record.created = 0.0
    line = member_logging.CapnslogFormatter().format(record)
    assert line == "1970-01-01 00:00:00.000000 W | server.raft: x 1"
    record.member = "8e9e05c52164694d"  # an ``extra=`` field
    fields = json.loads(member_logging.ZapFormatter().format(record))
    assert fields["level"] == "warn"
    assert fields["ts"] == "1970-01-01T00:00:00.000000Z"
    assert (fields["logger"], fields["msg"], fields["member"]) == (
        "server.raft",
        "x 1",
        record.member,
    )


def test_configure_honours_level_and_replaces_its_own_handlers(tmp_path: Path) -> None:
    log_file = tmp_path / "member.log"
    config = _config("a", A, tmp_path, "--logger", "zap", "--log-outputs", str(log_file),
                     "--log-level", "warn")  # fmt: skip
    root = logging.getLogger(member_logging.ROOT_LOGGER)
    saved = (list(root.handlers), root.level, root.propagate)
    try:
        member_logging.configure(config)
        handlers = member_logging.configure(config)  # again: no duplicate lines
        logging.getLogger("kvorum.server").info("hidden")
        logging.getLogger("kvorum.server").warning("shown")
        for h in handlers:
            h.flush()
        lines = log_file.read_text().splitlines()
        assert [json.loads(line)["msg"] for line in lines] == ["shown"]
    finally:
        for h in list(root.handlers):
            if h not in saved[0]:
                root.removeHandler(h)
                h.close()
        root.setLevel(saved[1])
        root.propagate = saved[2]


def test_membership_and_apply_errors_reach_clients_with_etcds_texts() -> None:
    for exc, text in (
        (MemberExistsError(), "etcdserver: member ID already exist"),
        (PeerURLExistsError(), "etcdserver: Peer URLs already exists"),
        (NoSpaceError(), "etcdserver: mvcc: database space exceeded"),
    ):
        spec = status_of(translate_error(exc))
        assert spec is not None and spec.text == text
    already = api_errors.MemberNotFoundError()
    assert translate_error(already) is already
