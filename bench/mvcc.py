"""Benchmark of the LMDB-backed mvcc store: write and read rates, memory, size, reopen time.

    .venv/bin/python bench/mvcc.py                 # full run: 1M keys of 256-byte values
    .venv/bin/python bench/mvcc.py --keys 100000   # quicker

Figures:
  * puts/s with 100 puts per backend commit (an apply batch) and with 1 put per commit;
  * point reads/s (random existing keys), range reads/s (ranges of exactly 100 keys) and
    the time of a count over every key (etcd's count walks all matches, like a paged list);
  * after loading --keys keys: VmRSS and RssAnon (Python heap, what must stay bounded), the
    database file size and pages in use, and the time to reopen the store.
The database lives under --dir (default /tmp), removed afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import time

from kvorum.backend import Backend
from kvorum.mvcc import MvccStore, PutRequest, RangeRequest


def proc_status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def key_of(i: int) -> bytes:
    return b"/registry/pods/default/pod-%08d" % i


def bench_puts(store: MvccStore, backend: Backend, count: int, per_commit: int) -> float:
    value = os.urandom(256)
    start = time.perf_counter()
    for i in range(count):
        store.put(PutRequest(b"/bench/put-%d/%08d" % (per_commit, i), value))
        if (i + 1) % per_commit == 0:
            backend.batch.commit()
    backend.batch.commit()
    return count / (time.perf_counter() - start)


def load(store: MvccStore, backend: Backend, keys: int) -> float:
    start = time.perf_counter()
    rnd = random.Random(1)
    for i in range(keys):
        store.put(PutRequest(key_of(i), rnd.randbytes(256)))
        if (i + 1) % 1000 == 0:
            backend.batch.commit()
    backend.batch.commit()
    return time.perf_counter() - start


def bench_point_reads(store: MvccStore, keys: int, count: int) -> float:
    rnd = random.Random(2)
    picks = [key_of(rnd.randrange(keys)) for _ in range(count)]
    start = time.perf_counter()
    for key in picks:
        if not store.range(RangeRequest(key)).kvs:
            raise AssertionError(f"missing {key!r}")
    return count / (time.perf_counter() - start)


def bench_range_reads(store: MvccStore, keys: int, count: int) -> float:
    """Ranges of exactly 100 keys: [key_i, key_i+100)."""
    rnd = random.Random(3)
    firsts = [rnd.randrange(max(1, keys - 100)) for _ in range(count)]
    start = time.perf_counter()
    for i in firsts:
        resp = store.range(RangeRequest(key_of(i), key_of(i + 100)))
        if len(resp.kvs) != 100:
            raise AssertionError("short range")
    return count / (time.perf_counter() - start)


def bench_count(store: MvccStore, keys: int) -> float:
    """Seconds to count every key (count_only over the whole prefix), the worst-case read."""
    start = time.perf_counter()
    resp = store.range(RangeRequest(b"/registry/", b"/registry0", count_only=True))
    if resp.count != keys:
        raise AssertionError(f"count {resp.count} != {keys}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--puts", type=int, default=50_000, help="puts per write benchmark")
    parser.add_argument("--reads", type=int, default=50_000)
    parser.add_argument("--ranges", type=int, default=2_000)
    parser.add_argument("--dir", default="/tmp")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    workdir = os.path.join(args.dir, f"kvorum-bench-mvcc-{os.getpid()}")
    path = os.path.join(workdir, "db")
    try:
        backend = Backend(path)
        store = MvccStore(backend)
        batched = bench_puts(store, backend, args.puts, 100)
        single = bench_puts(store, backend, args.puts // 5, 1)
        print(f"puts/s, 100 per commit:   {batched:10.0f}")
        print(f"puts/s, 1 per commit:     {single:10.0f}")

        load_s = load(store, backend, args.keys)
        print(f"loaded {args.keys} keys x 256 B in {load_s:.1f} s ({args.keys / load_s:.0f}/s)")
        print(f"point reads/s:            {bench_point_reads(store, args.keys, args.reads):10.0f}")
        print(f"100-key range reads/s:    {bench_range_reads(store, args.keys, args.ranges):10.0f}")
        print(f"count of all {args.keys} keys: {bench_count(store, args.keys) * 1000:.0f} ms")
        backend.sync()
        print(f"VmRSS:   {proc_status_kib('VmRSS') / 1024:8.1f} MiB")
        print(f"RssAnon: {proc_status_kib('RssAnon') / 1024:8.1f} MiB (Python heap)")
        print(f"RssFile: {proc_status_kib('RssFile') / 1024:8.1f} MiB (LMDB map pages)")
        print(f"db size: {backend.size_bytes() / 2**20:8.1f} MiB")
        print(f"in use:  {backend.size_in_use_bytes() / 2**20:8.1f} MiB")
        rev = store.current_revision
        backend.close()

        start = time.perf_counter()
        backend = Backend(path)
        store = MvccStore(backend)
        reopen_s = time.perf_counter() - start
        first = store.range(RangeRequest(key_of(args.keys // 2)))
        first_read_s = time.perf_counter() - start
        if store.current_revision != rev or not first.kvs:
            raise AssertionError("reopen lost state")
        print(f"reopen:  {reopen_s * 1000:8.2f} ms (first read after {first_read_s * 1000:.2f} ms)")
        print(f"RssAnon after reopen: {proc_status_kib('RssAnon') / 1024:.1f} MiB")
        backend.close()
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
