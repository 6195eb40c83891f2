"""The LMDB backend: batching policy, applied index persistence, sizes, snapshot, defragment."""

from __future__ import annotations

import os
from pathlib import Path

import lmdb
import pytest

from kvorum.backend import Backend, BatchTx, schema


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def open_backend(tmp_path: Path, **kw: object) -> Backend:
    return Backend(str(tmp_path / "member" / "snap" / "db"), map_size_bytes=256 << 20, **kw)  # type: ignore[arg-type]


def put(backend: Backend, key: bytes, value: bytes, bucket: bytes = schema.LEASE) -> None:
    backend.batch.write().put(key, value, db=backend.db(bucket))


def get(backend: Backend, key: bytes, bucket: bytes = schema.LEASE) -> bytes | None:
    with backend.view() as txn:
        return txn.get(key, db=backend.db(bucket))


def test_one_file_with_every_bucket(tmp_path: Path) -> None:
    backend = open_backend(tmp_path)
    path = tmp_path / "member" / "snap" / "db"
    assert path.is_file()  # subdir=False: the environment is the single file etcd names `db`
    with backend.view() as txn:
        names = set(backend._env.dbs(txn))  # the on-disk layout
    assert set(schema.ALL_BUCKETS) <= names
    backend.close()


def test_batch_commits_on_count_and_interval() -> None:
    clock = FakeClock()
    opened: list[str] = []

    class Env:
        def begin(self, write: bool) -> object:
            opened.append("txn")

            class Txn:
                def commit(self) -> None:
                    opened.append("commit")

            return Txn()

    batch = BatchTx(lambda: Env(), max_batch_count=3, max_batch_interval_s=0.1, clock=clock)  # type: ignore[arg-type, return-value]
    assert not batch.maybe_commit()  # nothing open
    batch.write()
    batch.write()
    assert batch.pending_count == 2
    assert not batch.maybe_commit()  # 2 < 3 writes and no time passed
    batch.write()
    assert batch.maybe_commit()  # count limit reached
    assert opened == ["txn", "commit"]
    batch.write()
    clock.now_s += 0.04
    assert not batch.maybe_commit()
    clock.now_s += 0.08
    assert batch.maybe_commit()  # interval reached
    assert batch.commit_count == 2
    with pytest.raises(ValueError):
        BatchTx(lambda: Env(), max_batch_count=0)  # type: ignore[arg-type, return-value]


def test_consistent_index_persists_with_the_data(tmp_path: Path) -> None:
    backend = open_backend(tmp_path)
    assert backend.consistent_index() == (0, 0)
    put(backend, b"k", b"v1")
    backend.set_consistent_index(7, 2)
    # Readers on the apply thread see the uncommitted batch.
    assert backend.consistent_index() == (7, 2)
    assert get(backend, b"k") == b"v1"
    backend.batch.commit()
    put(backend, b"k", b"v2")
    backend.set_consistent_index(8, 2)
    backend.batch.abort()  # the crash case: neither the data nor the index of entry 8 stay
    assert backend.consistent_index() == (7, 2)
    assert get(backend, b"k") == b"v1"
    backend.close()
    reopened = open_backend(tmp_path)
    assert reopened.consistent_index() == (7, 2)
    assert get(reopened, b"k") == b"v1"
    reopened.close()


def test_other_threads_read_the_last_committed_batch(tmp_path: Path) -> None:
    import threading

    backend = open_backend(tmp_path)
    put(backend, b"k", b"committed")
    backend.batch.commit()
    put(backend, b"k", b"pending")
    seen: list[bytes | None] = []
    thread = threading.Thread(target=lambda: seen.append(get(backend, b"k")))
    thread.start()
    thread.join()
    assert seen == [b"committed"]
    assert get(backend, b"k") == b"pending"
    backend.close()


def test_sizes_snapshot_and_hash(tmp_path: Path) -> None:
    backend = open_backend(tmp_path)
    for i in range(2000):
        put(backend, b"key-%05d" % i, os.urandom(100))
    backend.set_consistent_index(5, 1)
    backend.sync()
    assert 0 < backend.size_in_use_bytes() <= backend.size_bytes()
    digest = backend.hash()
    with backend.snapshot(chunk_bytes=4096) as snap:
        # Writes after the snapshot began are not in it.
        put(backend, b"key-late", b"x")
        backend.batch.commit()
        copy_path = tmp_path / "copy.db"
        with open(copy_path, "wb") as out:
            for chunk in snap:
                assert len(chunk) <= 4096
                out.write(chunk)
        assert copy_path.stat().st_size == snap.size_bytes
    copy = Backend(str(copy_path), map_size_bytes=256 << 20)
    assert copy.hash() == digest
    assert copy.consistent_index() == (5, 1)
    assert get(copy, b"key-00042") == get(backend, b"key-00042")
    assert get(copy, b"key-late") is None
    assert backend.hash() != digest
    copy.set_consistent_index(99, 9)  # the applied index is left out of the hash
    copy.batch.commit()
    copy.close()
    backend.close()


def test_defragment_shrinks_and_keeps_data(tmp_path: Path) -> None:
    backend = open_backend(tmp_path)
    for i in range(3000):
        put(backend, b"key-%05d" % i, b"v" * 500)
    backend.batch.commit()
    txn = backend.batch.write()
    for i in range(3000):
        if i % 10:
            txn.delete(b"key-%05d" % i, db=backend.db(schema.LEASE))
    backend.batch.commit()
    before = backend.size_bytes()
    digest = backend.hash()
    assert backend.size_in_use_bytes() < before // 2
    backend.defragment()
    assert backend.size_bytes() < before // 2
    assert backend.hash() == digest
    assert get(backend, b"key-00010") == b"v" * 500
    put(backend, b"after", b"defrag")  # still writable
    backend.close()
    reopened = open_backend(tmp_path)
    assert get(reopened, b"after") == b"defrag"
    reopened.close()


def test_map_full_is_an_lmdb_error(tmp_path: Path) -> None:
    backend = Backend(str(tmp_path / "db"), map_size_bytes=1 << 20)
    with pytest.raises(lmdb.MapFullError):
        for i in range(1000):
            put(backend, b"k%d" % i, b"x" * 4000)
    backend.batch.abort()
    backend.close()


@pytest.mark.timeout(30)
def test_snapshot_while_this_thread_holds_the_batch(tmp_path: Path) -> None:
    """LMDB's plain copy takes the writer lock: it would deadlock on the apply thread."""
    backend = open_backend(tmp_path)
    put(backend, b"committed", b"1")
    backend.batch.commit()
    put(backend, b"pending", b"2")
    with backend.snapshot() as snap:
        copy_path = tmp_path / "copy.db"
        copy_path.write_bytes(b"".join(snap))
    copy = Backend(str(copy_path), map_size_bytes=256 << 20)
    assert get(copy, b"committed") == b"1"
    assert get(copy, b"pending") is None  # the snapshot holds committed batches only
    copy.close()
    backend.close()
