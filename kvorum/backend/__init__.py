"""The transactional store under mvcc: one LMDB environment with named buckets.

`Backend` owns the environment and its buckets, `BatchTx` the batched write transaction the
apply loop writes through, `schema` the bucket and meta key names.
"""

from kvorum.backend import schema
from kvorum.backend._backend import (
    DEFAULT_MAP_SIZE_BYTES,
    Backend,
    Snapshot,
    write_file_durably,
)
from kvorum.backend._batch import (
    DEFAULT_MAX_BATCH_COUNT,
    DEFAULT_MAX_BATCH_INTERVAL_S,
    BatchTx,
)

__all__ = [
    "DEFAULT_MAP_SIZE_BYTES",
    "DEFAULT_MAX_BATCH_COUNT",
    "DEFAULT_MAX_BATCH_INTERVAL_S",
    "Backend",
    "BatchTx",
    "Snapshot",
    "schema",
    "write_file_durably",
]
