"""Generated protobuf and gRPC modules for etcd's v3 API.

Do not edit: run `make proto` (scripts/gen_proto.py) after changing kvorum/api/proto.
"""
