"""Our descriptors against the ones compiled into the real etcd 3.4 binary.

Go protobuf code registers each .proto file's descriptor, gzip-compressed, inside the binary.
This test finds those blobs in ``/usr/bin/etcd`` (installed by ``scripts/ensure-debian-packages``),
decodes them as ``FileDescriptorProto`` and requires that every service, method, message, field
(name, number, type, label, referenced type, oneof, JSON name) and enum value etcd declares is
declared identically by us. The only things we may declare beyond etcd 3.4 are the v3.5
additions listed in ``ALLOWED_EXTRAS``.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, FileDescriptor

from kvorum.api.pb.authpb import auth_pb2
from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.api.pb.mvccpb import kv_pb2
from kvorum.api.pb.v3electionpb import v3election_pb2
from kvorum.api.pb.v3lockpb import v3lock_pb2

ETCD_BINARY = Path("/usr/bin/etcd")
GZIP_MAGIC = b"\x1f\x8b\x08\x00"
# A descriptor blob is tens of KiB compressed; read at most this much past each gzip header.
MAX_BLOB_BYTES = 1 << 20
OUR_PACKAGES = ("etcdserverpb", "mvccpb", "authpb", "v3lockpb", "v3electionpb")

Item = tuple[object, ...]

ALLOWED_EXTRAS: set[Item] = {
    ("method", "etcdserverpb.Maintenance", "Downgrade", ".etcdserverpb.DowngradeRequest",
     ".etcdserverpb.DowngradeResponse", False, False),
    ("method", "etcdserverpb.Auth", "AuthStatus", ".etcdserverpb.AuthStatusRequest",
     ".etcdserverpb.AuthStatusResponse", False, False),
    ("message", "etcdserverpb.DowngradeRequest"),
    ("enum_value", "etcdserverpb.DowngradeRequest.DowngradeAction", "VALIDATE", 0),
    ("enum_value", "etcdserverpb.DowngradeRequest.DowngradeAction", "ENABLE", 1),
    ("enum_value", "etcdserverpb.DowngradeRequest.DowngradeAction", "CANCEL", 2),
    ("field", "etcdserverpb.DowngradeRequest", "action", 1, 14, 1,
     ".etcdserverpb.DowngradeRequest.DowngradeAction", None, "action"),
    ("field", "etcdserverpb.DowngradeRequest", "version", 2, 9, 1, "", None, "version"),
    ("message", "etcdserverpb.DowngradeResponse"),
    ("field", "etcdserverpb.DowngradeResponse", "header", 1, 11, 1,
     ".etcdserverpb.ResponseHeader", None, "header"),
    ("field", "etcdserverpb.DowngradeResponse", "version", 2, 9, 1, "", None, "version"),
    ("message", "etcdserverpb.AuthStatusRequest"),
    ("message", "etcdserverpb.AuthStatusResponse"),
    ("field", "etcdserverpb.AuthStatusResponse", "header", 1, 11, 1,
     ".etcdserverpb.ResponseHeader", None, "header"),
    ("field", "etcdserverpb.AuthStatusResponse", "enabled", 2, 8, 1, "", None, "enabled"),
    ("field", "etcdserverpb.AuthStatusResponse", "authRevision", 3, 4, 1, "", None,
     "authRevision"),
    ("field", "etcdserverpb.MemberListRequest", "linearizable", 1, 8, 1, "", None,
     "linearizable"),
    ("field", "etcdserverpb.HashKVResponse", "hash_revision", 4, 3, 1, "", None, "hashRevision"),
    ("field", "etcdserverpb.AuthUserAddRequest", "hashedPassword", 4, 9, 1, "", None,
     "hashedPassword"),
    ("field", "etcdserverpb.AuthUserChangePasswordRequest", "hashedPassword", 3, 9, 1, "", None,
     "hashedPassword"),
}  # fmt: skip


def _etcd_descriptors(binary: Path) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    """Decode every gzip blob in the binary that parses as a descriptor of one of our packages."""
    data = binary.read_bytes()
    found: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    start = data.find(GZIP_MAGIC)
    while start >= 0:
        try:
            raw = zlib.decompressobj(wbits=31).decompress(data[start : start + MAX_BLOB_BYTES])
            fdp = descriptor_pb2.FileDescriptorProto.FromString(raw)
        except (zlib.error, ValueError):
            fdp = None  # gzip magic by chance, or some other gzip payload
        if fdp is not None and fdp.package in OUR_PACKAGES:
            found[fdp.package + "/" + fdp.name] = fdp
        start = data.find(GZIP_MAGIC, start + 1)
    return found


def _flatten_reference(fdp: descriptor_pb2.FileDescriptorProto) -> set[Item]:
    items: set[Item] = set()
    pkg = fdp.package

    def enum(e: descriptor_pb2.EnumDescriptorProto, scope: str) -> None:
        for v in e.value:
            items.add(("enum_value", f"{scope}.{e.name}", v.name, v.number))

    def message(m: descriptor_pb2.DescriptorProto, scope: str) -> None:
        name = f"{scope}.{m.name}"
        items.add(("message", name))
        for e in m.enum_type:
            enum(e, name)
        for n in m.nested_type:
            message(n, name)
        for f in m.field:
            oneof = m.oneof_decl[f.oneof_index].name if f.HasField("oneof_index") else None
            items.add(
                ("field", name, f.name, f.number, f.type, f.label, f.type_name, oneof, f.json_name)
            )

    for e in fdp.enum_type:
        enum(e, pkg)
    for m in fdp.message_type:
        message(m, pkg)
    for s in fdp.service:
        for meth in s.method:
            items.add(
                ("method", f"{pkg}.{s.name}", meth.name, meth.input_type, meth.output_type,
                 meth.client_streaming, meth.server_streaming)
            )  # fmt: skip
    return items


def _flatten_ours(fd: FileDescriptor) -> set[Item]:
    items: set[Item] = set()

    def message(m: Descriptor) -> None:
        items.add(("message", m.full_name))
        for e in m.enum_types:
            for v in e.values:
                items.add(("enum_value", e.full_name, v.name, v.number))
        for n in m.nested_types:
            message(n)
        for f in m.fields:
            ref = ""
            if f.message_type is not None:
                ref = "." + f.message_type.full_name
            elif f.enum_type is not None:
                ref = "." + f.enum_type.full_name
            label = 3 if f.is_repeated else 1
            oneof = f.containing_oneof.name if f.containing_oneof is not None else None
            items.add(("field", m.full_name, f.name, f.number, f.type, label, ref, oneof,
                       f.json_name))  # fmt: skip

    for e in fd.enum_types_by_name.values():
        for v in e.values:
            items.add(("enum_value", e.full_name, v.name, v.number))
    for m in fd.message_types_by_name.values():
        message(m)
    for s in fd.services_by_name.values():
        for meth in s.methods:
            items.add(
                ("method", s.full_name, meth.name, "." + meth.input_type.full_name,
                 "." + meth.output_type.full_name, meth.client_streaming, meth.server_streaming)
            )  # fmt: skip
    return items


OURS = {
    "etcdserverpb/rpc.proto": rpc_pb2.DESCRIPTOR,
    "mvccpb/kv.proto": kv_pb2.DESCRIPTOR,
    "authpb/auth.proto": auth_pb2.DESCRIPTOR,
    "v3lockpb/v3lock.proto": v3lock_pb2.DESCRIPTOR,
    "v3electionpb/v3election.proto": v3election_pb2.DESCRIPTOR,
}


@pytest.fixture(scope="module")
def etcd_files() -> dict[str, descriptor_pb2.FileDescriptorProto]:
    if not ETCD_BINARY.exists():
        pytest.skip(f"{ETCD_BINARY} not installed (run scripts/ensure-debian-packages)")
    return _etcd_descriptors(ETCD_BINARY)


@pytest.mark.parametrize("name", sorted(OURS))
def test_matches_descriptor_in_etcd_binary(
    name: str, etcd_files: dict[str, descriptor_pb2.FileDescriptorProto]
) -> None:
    assert name in etcd_files, f"etcd binary has no {name}; found {sorted(etcd_files)}"
    reference = _flatten_reference(etcd_files[name])
    ours = _flatten_ours(OURS[name])
    assert sorted(reference - ours, key=repr) == [], "declared by etcd 3.4 but not by us"
    assert sorted(ours - reference - ALLOWED_EXTRAS, key=repr) == [], "ours beyond etcd 3.4"


def test_every_allowed_extra_is_used() -> None:
    """Keeps ALLOWED_EXTRAS honest: each entry must describe something we really declare."""
    ours: set[Item] = set().union(*(_flatten_ours(fd) for fd in OURS.values()))
    assert sorted(ALLOWED_EXTRAS - ours, key=repr) == []
