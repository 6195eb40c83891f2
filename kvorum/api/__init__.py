"""etcd v3's wire protocol for kvorum: .proto sources, generated code and (later) servicers.

Layout
------
``kvorum/api/proto/<pkg>/<name>.proto``
    Our own .proto sources for etcd's packages ``etcdserverpb`` (KV, Watch, Lease, Cluster,
    Maintenance, Auth), ``mvccpb``, ``authpb``, ``v3lockpb`` and ``v3electionpb``. Their wire
    identifiers (packages, services, methods, streaming, message and field names, field numbers,
    enum values) match etcd v3.4 exactly; a handful of additive etcd v3.5 fields and methods are
    included and marked "3.5" in the sources.
``kvorum/api/pb/<pkg>/<name>_pb2.py``, ``.pyi``, ``_pb2_grpc.py``
    Code generated from them by ``make proto`` (``scripts/gen_proto.py``, grpcio-tools). It is
    committed, never edited by hand, and a unit test regenerates it and compares byte for byte.
    Import it as e.g. ``from kvorum.api.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc``.

Import paths
------------
protoc is run with the virtual include root ``-Ikvorum/api/pb=kvorum/api/proto``: the sources
sit in a flat tree, yet protoc knows them as ``kvorum/api/pb/etcdserverpb/rpc.proto`` etc., so the
imports it writes into generated code are the real package paths (``from kvorum.api.pb.mvccpb
import kv_pb2``) and no post-processing is needed. The .proto files import each other by those
same virtual paths (``import "kvorum/api/pb/mvccpb/kv.proto";``).

The file names registered in protobuf's default descriptor pool are therefore
``kvorum/api/pb/...``, while the message names are etcd's own (``etcdserverpb.RangeRequest``).
File names never travel on the wire; message names do, so loading another etcd protobuf binding
(such as the ``etcd3`` PyPI client) into the same process would clash on those names. Keep such
clients in a separate process (as the e2e tests do with ``etcdctl``).

Verification: ``tests/unit/api`` checks field numbers against a table taken by hand from etcd's
rpc.proto and against the descriptors compiled into ``/usr/bin/etcd`` (3.4);
``tests/e2e/api`` drives the real ``etcdctl`` against a gRPC server built on this code.
"""
