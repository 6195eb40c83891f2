"""The client gRPC server takes etcd's sizes and limits from the server flags."""

from __future__ import annotations

from kvorum.api.grpcserver import GRPC_OVERHEAD_BYTES, MAX_SEND_BYTES, GrpcOptions, channel_options
from kvorum.config import load_config


def test_defaults_are_etcds() -> None:
    opts = dict(channel_options(GrpcOptions()))
    assert opts["grpc.max_receive_message_length"] == 1572864 + 512 * 1024
    assert opts["grpc.max_send_message_length"] == MAX_SEND_BYTES == 2**31 - 1
    # etcd's default of MaxUint32 streams does not fit gRPC core's int32 argument.
    assert opts["grpc.max_concurrent_streams"] == 2**31 - 1
    assert opts["grpc.http2.min_ping_interval_without_data_ms"] == 5000
    assert opts["grpc.keepalive_time_ms"] == 2 * 60 * 60 * 1000
    assert opts["grpc.keepalive_timeout_ms"] == 20000


def test_options_follow_the_flags() -> None:
    config = load_config(
        [
            "--max-request-bytes=1000",
            "--max-txn-ops=7",
            "--max-concurrent-streams=50",
            "--grpc-keepalive-min-time=2s",
            "--grpc-keepalive-interval=30s",
            "--grpc-keepalive-timeout=3s",
        ]
    )
    options = GrpcOptions.from_config(config)
    assert options.limits.max_txn_ops == 7
    assert options.limits.max_request_bytes == 1000
    opts = dict(channel_options(options))
    assert opts["grpc.max_receive_message_length"] == 1000 + GRPC_OVERHEAD_BYTES
    assert opts["grpc.max_concurrent_streams"] == 50
    assert opts["grpc.http2.min_ping_interval_without_data_ms"] == 2000
    assert opts["grpc.keepalive_time_ms"] == 30000
    assert opts["grpc.keepalive_timeout_ms"] == 3000
